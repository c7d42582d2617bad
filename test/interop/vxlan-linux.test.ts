/**
 * Linux interop for the foundation (issue 2): a network namespace holds a *kernel* VXLAN device
 * (VNI 4096, dstport 4789, 100.64.0.2/24, MAC 02:42:64:40:00:02 by Swarm's rule) whose remote is
 * shoal's VTEP; shoal's agent runs in a second namespace with 100.64.0.3/24 on its userspace
 * interface. The two ping each other, tshark decodes the capture, and junk sent at the VTEP is
 * counted and dropped without stopping it.
 *
 * By hand: sudo npx vitest run test/interop/vxlan-linux.test.ts
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { apiRequest } from '../../src/cli/api-client.js';
import { type AgentProcess, startAgent } from '../helpers/agent.js';
import { describeInterop } from '../helpers/interop.js';
import { Netns, linkNamespaces, run, stopProcess, waitForLine } from '../helpers/netns.js';

// Unique to this file, so interop files can run in parallel.
const TAG = `vx${process.pid % 100000}`;
const KERNEL_UNDERLAY = '198.18.10.1';
const SHOAL_UNDERLAY = '198.18.10.2';

describeInterop('VXLAN and ARP/ICMP against the Linux kernel', ['ip', 'ping', 'tshark', 'tcpdump', 'ethtool', 'python3'], () => {
  let kernel: Netns;
  let host: Netns;
  let agent: AgentProcess;
  let tmp: string;
  let capture: ChildProcess | undefined;

  const metric = async (name: string): Promise<number> => {
    const { text } = await apiRequest(agent.apiSocket, 'GET', '/metrics');
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    if (!line) throw new Error(`No metric ${name}`);
    return Number(line.split(' ').pop());
  };

  const shoalPing = async (address: string, count: number) => {
    const { status, json } = await apiRequest(agent.apiSocket, 'POST', '/shoal/overlay/ping', { address, count, intervalMs: 200, timeoutMs: 2000 });
    expect(status).toBe(200);
    return (json as { replies: { seqNo: number; ttl?: number; error?: string }[] }).replies;
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), `shoal-${TAG}-`));
    kernel = await Netns.create(`${TAG}-kernel`);
    host = await Netns.create(`${TAG}-shoal`);
    await linkNamespaces(kernel, `${TAG}k`, `${KERNEL_UNDERLAY}/30`, host, `${TAG}s`, `${SHOAL_UNDERLAY}/30`);
    // veth leaves UDP checksums to an offload that never happens; compute them in software so
    // the capture holds the checksums a real wire would carry.
    await kernel.exec('ethtool', ['-K', `${TAG}k`, 'tx', 'off']);
    await host.exec('ethtool', ['-K', `${TAG}s`, 'tx', 'off']);
    await kernel.exec('ip', ['link', 'add', 'vx0', 'address', '02:42:64:40:00:02', 'type', 'vxlan', 'id', '4096', 'dstport', '4789', 'remote', SHOAL_UNDERLAY, 'local', KERNEL_UNDERLAY, 'dev', `${TAG}k`]);
    await kernel.exec('ip', ['addr', 'add', '100.64.0.2/24', 'dev', 'vx0']);
    await kernel.exec('ip', ['link', 'set', 'vx0', 'up']);
    // The kernel's VTEP is not a shoal peer: give shoal its MAC's route and flood to it, nothing more.
    agent = await startAgent(
      ['--node-name', 'shoal-1', '--advertise-addr', SHOAL_UNDERLAY, '--overlay-addr', '100.64.0.3/24', '--fdb', `02:42:64:40:00:02@${KERNEL_UNDERLAY}`, '--flood', KERNEL_UNDERLAY, '--api-socket', path.join(tmp, 'api.sock')],
      { netns: host },
    );
    capture = kernel.spawn('tcpdump', ['-i', `${TAG}k`, '--immediate-mode', '-U', '-w', path.join(tmp, 'ping.pcap'), 'udp', 'port', '4789']);
    await waitForLineOnStderr(capture, /listening on/);
  });

  afterAll(async () => {
    if (capture) await stopProcess(capture);
    if (agent) await stopProcess(agent.child);
    await kernel?.destroy();
    await host?.destroy();
    await rm(tmp, { recursive: true, force: true });
  });

  it('shoal resolves the kernel by ARP and pings it: five replies', async () => {
    const replies = await shoalPing('100.64.0.2', 5);
    expect(replies.map((r) => r.error ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(replies.every((r) => r.ttl === 64)).toBe(true);
    expect(await metric('arp_tx_requests')).toBeGreaterThanOrEqual(1);
    expect(await metric('arp_rx_replies')).toBeGreaterThanOrEqual(1);
  });

  it('the kernel pings shoal: 5 packets transmitted, 5 received, and it learnt our MAC by ARP', async () => {
    await kernel.exec('ip', ['neigh', 'flush', 'dev', 'vx0']);
    const out = await kernel.exec('ping', ['-c', '5', '-i', '0.2', '-W', '2', '100.64.0.3']);
    expect(out).toMatch(/5 packets transmitted, 5 received, 0% packet loss/);
    const neigh = await kernel.exec('ip', ['neigh', 'show', '100.64.0.3', 'dev', 'vx0']);
    expect(neigh).toMatch(/lladdr 02:42:64:40:00:03/);
  });

  it('tshark decodes the exchange as VXLAN → Ethernet → ARP/IPv4/ICMP with no malformed or bad-checksum packet', async () => {
    await stopProcess(capture!);
    capture = undefined;
    const pcap = path.join(tmp, 'ping.pcap');
    const validate = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
    const protocols = (await run('tshark', ['-n', '-r', pcap, ...validate, '-T', 'fields', '-e', 'frame.protocols'])).trim().split('\n');
    const overlay = protocols.filter((p) => p.includes(':vxlan:') && !p.includes('ipv6'));
    expect(overlay.filter((p) => p.endsWith(':vxlan:eth:ethertype:arp')).length).toBeGreaterThanOrEqual(2);
    expect(overlay.filter((p) => p.endsWith(':vxlan:eth:ethertype:ip:icmp:data')).length).toBeGreaterThanOrEqual(20);
    const bad = await run('tshark', ['-n', '-r', pcap, ...validate, '-Y', '_ws.malformed || _ws.expert.severity >= "warning" || ip.checksum.status == "Bad" || icmp.checksum.status == "Bad" || udp.checksum.status == "Bad"', '-T', 'fields', '-e', 'frame.number', '-e', '_ws.col.Info', '-e', '_ws.expert.message']);
    expect(bad.trim()).toBe('');
  });

  it('counts and drops malformed VXLAN datagrams and inner frames, and keeps answering pings', async () => {
    const before = await metric('vtep_rx_datagrams');
    // VXLAN header (I flag, VNI 4096) + Ethernet to shoal's MAC from the kernel's.
    const vx = '0800000000100000';
    const eth = (type: string) => `024264400003 024264400002 ${type}`.replace(/ /g, '');
    const ip = (mutate: (h: number[]) => void) => {
      const h = [0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0, 0, 100, 64, 0, 2, 100, 64, 0, 3];
      mutate(h);
      let sum = 0;
      for (let i = 0; i < 20; i += 2) if (i !== 10) sum += (h[i]! << 8) | h[i + 1]!;
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      h[10] = (~sum >> 8) & 0xff;
      h[11] = ~sum & 0xff;
      return Buffer.from(h).toString('hex') + '0800f7ff00000000'; // an echo request with a valid ICMP checksum
    };
    const junk = [
      '0800', // truncated VXLAN header
      '0000000000100000' + eth('0800') + ip(() => {}), // I flag clear
      '0800000000200000' + eth('0800') + ip(() => {}), // VNI 8192: not ours
      vx + '0242644000', // runt inner frame
      vx + eth('0800') + ip((h) => (h[0] = 0x65)), // IP version 6 in an IPv4 header
      vx + eth('0800') + ip((h) => (h[6] = 0x20)), // a fragment (MF set)
      vx + eth('0800') + ip(() => {}).replace(/^(.{20})..../, '$1dead'), // bad header checksum
      vx + eth('0806') + '0001080006', // truncated ARP
      vx + eth('86dd') + '60000000', // IPv6: not spoken on the overlay
    ];
    const script = `import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor h in sys.argv[1:]: s.sendto(bytes.fromhex(h),('${SHOAL_UNDERLAY}',4789))`;
    await kernel.exec('python3', ['-c', script, ...junk]);
    // Counters move once the agent has read the datagrams; poll (bounded) rather than sleep.
    for (let i = 0; i < 50 && (await metric('vtep_rx_datagrams')) < before + junk.length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await metric('vtep_rx_datagrams')).toBe(before + junk.length);
    expect(await metric('vtep_rx_dropped_truncated')).toBe(1);
    expect(await metric('vtep_rx_dropped_bad_flags')).toBe(1);
    expect(await metric('vtep_rx_dropped_unknown_vni')).toBe(1);
    expect(await metric('vtep_rx_dropped_runt_frame')).toBe(1);
    expect(await metric('iface_rx_dropped_bad_version')).toBe(1);
    expect(await metric('iface_rx_dropped_fragmented')).toBe(1);
    expect(await metric('iface_rx_dropped_bad_checksum')).toBe(1);
    expect(await metric('iface_rx_dropped_truncated')).toBe(1);
    expect(await metric('iface_rx_dropped_unknown_ethertype')).toBe(1);
    const out = await kernel.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '100.64.0.3']);
    expect(out).toMatch(/3 packets transmitted, 3 received/);
  });
});

function waitForLineOnStderr(child: ChildProcess, pattern: RegExp): Promise<void> {
  const proxy = { stdout: child.stderr, stderr: null, once: child.once.bind(child), off: child.off.bind(child) } as unknown as ChildProcess;
  return waitForLine(proxy, (l) => pattern.test(l), 10_000).then(() => undefined);
}
