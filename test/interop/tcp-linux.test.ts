/**
 * Linux interop for shoal's userspace TCP (issue 3): a namespace holds a *kernel* VXLAN device
 * (VNI 4096, 100.64.0.2/24) whose remote is shoal's VTEP in a second namespace, where
 * tcp-linux-runner.ts runs shoal's stack on 100.64.0.3/24. curl fetches from shoal's HTTP
 * server, shoal fetches from Python's, the same under 3 % random loss (nftables), refused and
 * vanishing peers give ECONNREFUSED / ECONNRESET / ETIMEDOUT, and tshark finds nothing wrong
 * in a captured transfer.
 *
 * veth leaves checksums to an offload that never happens (CHECKSUM_PARTIAL: the inner TCP
 * checksum holds only the pseudo-header sum), so tx checksumming is switched off on both veth
 * ends first, with the legacy ethtool ioctl from Python (no ethtool binary needed).
 *
 * By hand: sudo npx vitest run test/interop/tcp-linux.test.ts
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeInterop } from '../helpers/interop.js';
import { Netns, linkNamespaces, run, stopProcess, waitForLine } from '../helpers/netns.js';

const TAG = `tc${process.pid % 100000}`;
const KERNEL_UNDERLAY = '198.18.20.1';
const SHOAL_UNDERLAY = '198.18.20.2';
const KERNEL_MAC = '02:42:64:40:00:02';
const RUNNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tcp-linux-runner.ts');
const MB = 1024 * 1024;

/** ETHTOOL_STXCSUM (0x17) = 0 through SIOCETHTOOL (0x8946). */
const TX_CSUM_OFF = `import array,fcntl,socket,struct,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
a=array.array("B",struct.pack("II",0x17,0))
fcntl.ioctl(s.fileno(),0x8946,struct.pack("16sQ",sys.argv[1].encode(),a.buffer_info()[0]))`;

interface RunnerResult {
  readonly sha256?: string;
  readonly bytes?: number;
  readonly status?: number;
  readonly error?: string;
  readonly end?: number;
}

describeInterop('TCP against the Linux kernel over VXLAN', ['ip', 'curl', 'python3', 'nft', 'tshark', 'tcpdump', 'sha256sum'], () => {
  let kernel: Netns;
  let host: Netns;
  let tmp: string;
  const children: ChildProcess[] = [];

  const runner = (mode: string, args: readonly string[], tcp: Record<string, unknown> = {}): ChildProcess => {
    const config = JSON.stringify({ underlay: SHOAL_UNDERLAY, kernelUnderlay: KERNEL_UNDERLAY, kernelMac: KERNEL_MAC, tcp });
    const child = host.spawn(process.execPath, ['--import', 'tsx', RUNNER, config, mode, ...args]);
    children.push(child);
    return child;
  };
  const result = async (child: ChildProcess, timeoutMs = 120_000): Promise<RunnerResult> =>
    JSON.parse(await waitForLine(child, (l) => l.startsWith('{') && !l.includes('"firstData"') && !l.includes('"ready"'), timeoutMs)) as RunnerResult;
  const kernelHttp = (): ChildProcess => {
    const child = kernel.spawn('python3', ['-m', 'http.server', '8080', '--bind', '100.64.0.2', '--directory', tmp]);
    children.push(child);
    return child;
  };
  const waitForPort = async (port: number): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      const out = await kernel.exec('ss', ['-ltn', `sport = :${port}`]);
      if (out.includes(`:${port}`)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`Nothing listens on ${port}`);
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), `shoal-${TAG}-`));
    kernel = await Netns.create(`${TAG}-kernel`);
    host = await Netns.create(`${TAG}-shoal`);
    await linkNamespaces(kernel, `${TAG}k`, `${KERNEL_UNDERLAY}/30`, host, `${TAG}s`, `${SHOAL_UNDERLAY}/30`);
    await kernel.exec('python3', ['-c', TX_CSUM_OFF, `${TAG}k`]);
    await host.exec('python3', ['-c', TX_CSUM_OFF, `${TAG}s`]);
    await kernel.exec('ip', ['link', 'add', 'vx0', 'address', KERNEL_MAC, 'type', 'vxlan', 'id', '4096', 'dstport', '4789', 'remote', SHOAL_UNDERLAY, 'local', KERNEL_UNDERLAY, 'dev', `${TAG}k`]);
    await kernel.exec('ip', ['addr', 'add', '100.64.0.2/24', 'dev', 'vx0']);
    await kernel.exec('ip', ['link', 'set', 'vx0', 'up']);
    await run('sh', ['-c', `head -c ${50 * MB} /dev/urandom > ${path.join(tmp, 'body.bin')}`]);
  });

  afterAll(async () => {
    for (const child of children) await stopProcess(child);
    await kernel?.destroy();
    await host?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('curl in the kernel namespace fetches 10 MB from an HTTP server on shoal, sha256 equal; tshark finds nothing wrong', async () => {
    const server = runner('serve', ['8080', String(10 * MB)]);
    const ready = JSON.parse(await waitForLine(server, (l) => l.includes('"ready"'))) as { sha256: string };
    const pcap = path.join(tmp, 'curl.pcap');
    const capture = kernel.spawn('tcpdump', ['-i', `${TAG}k`, '-B', '131072', '-U', '-w', pcap, 'udp', 'port', '4789']);
    children.push(capture);
    await waitForLine({ stdout: capture.stderr, stderr: null, once: capture.once.bind(capture), off: capture.off.bind(capture) } as unknown as ChildProcess, (l) => l.includes('listening on'), 10_000);
    const sha = await kernel.exec('sh', ['-c', 'curl -sS --max-time 60 http://100.64.0.3:8080/body | sha256sum'], { timeoutMs: 90_000 });
    expect(sha.split(' ')[0]).toBe(ready.sha256);
    await new Promise((r) => setTimeout(r, 500));
    await stopProcess(capture);
    await stopProcess(server);
    const bad = await run('tshark', ['-n', '-r', pcap, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', 'tcp.checksum.status == "Bad" || ip.checksum.status == "Bad" || ' + '_ws.malformed || tcp.analysis.ack_lost_segment || tcp.analysis.lost_segment', '-T', 'fields', '-e', 'frame.number', '-e', '_ws.col.Info']);
    expect(bad.trim()).toBe('');
    const segments = await run('tshark', ['-n', '-r', pcap, '-Y', 'tcp.port == 8080', '-T', 'fields', '-e', 'frame.number']);
    expect(segments.trim().split('\n').length).toBeGreaterThan(1000);
  });

  it('shoal fetches 50 MB from a server in the kernel namespace, sha256 equal, with checksums verified', async () => {
    const want = (await run('sha256sum', [path.join(tmp, 'body.bin')])).split(' ')[0];
    const server = kernelHttp();
    await waitForPort(8080);
    const got = await result(runner('fetch', ['100.64.0.2', '8080', '/body.bin']));
    expect(got.error).toBeUndefined();
    expect(got.bytes).toBe(50 * MB);
    expect(got.sha256).toBe(want);
    await stopProcess(server);
  });

  it('the same with nftables dropping 3 % of packets at random: still byte-exact', async () => {
    const want = (await run('sha256sum', [path.join(tmp, 'body.bin')])).split(' ')[0];
    await kernel.exec('nft', ['add', 'table', 'inet', 'shoalloss']);
    await kernel.exec('nft', ['add', 'chain', 'inet', 'shoalloss', 'in', '{ type filter hook input priority 0; }']);
    await kernel.exec('nft', ['add', 'chain', 'inet', 'shoalloss', 'out', '{ type filter hook output priority 0; }']);
    for (const chain of ['in', 'out']) {
      await kernel.exec('nft', ['add', 'rule', 'inet', 'shoalloss', chain, 'meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '100', '<', '3', 'drop']);
    }
    try {
      const server = kernelHttp();
      await waitForPort(8080);
      const got = await result(runner('fetch', ['100.64.0.2', '8080', '/body.bin']), 240_000);
      expect(got.error).toBeUndefined();
      expect(got.sha256).toBe(want);
      await stopProcess(server);
      // And curl from shoal's server through the same loss.
      const shoal = runner('serve', ['8081', String(10 * MB)]);
      const ready = JSON.parse(await waitForLine(shoal, (l) => l.includes('"ready"'))) as { sha256: string };
      const sha = await kernel.exec('sh', ['-c', 'curl -sS --max-time 120 http://100.64.0.3:8081/body | sha256sum'], { timeoutMs: 150_000 });
      expect(sha.split(' ')[0]).toBe(ready.sha256);
      await stopProcess(shoal);
    } finally {
      await kernel.exec('nft', ['delete', 'table', 'inet', 'shoalloss']);
    }
  }, 400_000);

  it('a port the kernel refuses gives ECONNREFUSED', async () => {
    const got = await result(runner('fetch', ['100.64.0.2', '9', '/']));
    expect(got.error).toBe('ECONNREFUSED');
  });

  it('a server killed with our bytes unread resets the connection: ECONNRESET', async () => {
    // Sends 64 kB, then waits without reading what we send: killing it makes the kernel RST.
    const script = `import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("100.64.0.2",8090)); s.listen()
c,_=s.accept(); c.sendall(b"x"*65536); print("sent",flush=True); time.sleep(120)`;
    const server = kernel.spawn('python3', ['-c', script]);
    children.push(server);
    await waitForPort(8090);
    const client = runner('read', ['100.64.0.2', '8090']);
    await waitForLine(client, (l) => l.includes('"firstData"'));
    server.kill('SIGKILL');
    const got = await result(client, 30_000);
    expect(got.error).toBe('ECONNRESET');
  });

  it('a server that vanishes mid-transfer gives ETIMEDOUT (keepalive), never a hang', async () => {
    const script = `import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("100.64.0.2",8091)); s.listen()
c,_=s.accept(); c.sendall(b"x"*65536); time.sleep(120)`;
    const server = kernel.spawn('python3', ['-c', script]);
    children.push(server);
    await waitForPort(8091);
    const client = runner('read', ['100.64.0.2', '8091'], { keepAliveIdleMs: 1000, keepAliveIntervalMs: 500, keepAliveProbes: 3 });
    await waitForLine(client, (l) => l.includes('"firstData"'));
    await kernel.exec('ip', ['link', 'set', 'vx0', 'down']);
    try {
      const got = await result(client, 30_000);
      expect(got.error).toBe('ETIMEDOUT');
    } finally {
      await kernel.exec('ip', ['link', 'set', 'vx0', 'up']);
      await stopProcess(server);
    }
  });
});
