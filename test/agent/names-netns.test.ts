/**
 * Names seen from Linux itself (root): a namespace with a plain kernel VXLAN device
 * (100.64.11.50/24, VNI 4096, no shoal) asks shoal's DNS on the overlay with `dig` and fetches
 * the service's VIP with `curl`; inside shoal's own namespace, `dig` asks the default address
 * 127.0.0.11:53 and `curl` goes through the VIP's mirror. shoal's side is
 * names-netns-runner.ts (NameService over a real VTEP, userspace UDP and TCP).
 *
 *   shoal ns (198.18.9.1, VTEP :24460) ── veth ── kernel ns (198.18.9.2; vx0 100.64.11.50/24)
 *
 * Checksum offload is turned off on both veth ends, as in test/interop/mesh-netns.test.ts:
 * otherwise the kernel's inner TCP checksums are left partial and shoal drops the segments.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeInterop } from '../helpers/interop.js';
import { Netns, linkNamespaces, stopProcess, waitForLine } from '../helpers/netns.js';

const TAG = 'shnm';
const SHOAL_UNDERLAY = '198.18.9.1';
const KERNEL_UNDERLAY = '198.18.9.2';
const KERNEL_MAC = '02:42:64:40:0b:32';
const VTEP_PORT = 24460;
const TARGET = 24450;
const T1 = 'k5q3n9x2m7c4v8b1z6a0s3d5f';
const T2 = 'p0o9i8u7y6t5r4e3w2q1a2s3d';
const RUNNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'names-netns-runner.ts');

describeInterop('agent: names from a kernel VXLAN namespace (dig and curl against the overlay)', ['ip', 'bridge', 'dig', 'curl', 'ethtool'], () => {
  let shoal: Netns;
  let kernel: Netns;
  let runner: ChildProcess | undefined;

  const digShort = async (ns: Netns, server: string, ...args: string[]): Promise<string[]> =>
    (await ns.exec('dig', [`@${server}`, '+short', '+tries=2', '+time=2', ...args])).split('\n').filter((l) => l.length > 0).sort();

  const tasksSeen = async (ns: Netns, url: string, requests: number): Promise<{ tasks: Set<string>; failed: number }> => {
    const tasks = new Set<string>();
    let failed = 0;
    for (let i = 0; i < requests; i++) {
      try {
        tasks.add((JSON.parse(await ns.exec('curl', ['-sS', '--max-time', '5', url])) as { task: string }).task);
      } catch {
        failed++;
      }
    }
    return { tasks, failed };
  };

  beforeAll(async () => {
    shoal = await Netns.create(`${TAG}-shoal`);
    kernel = await Netns.create(`${TAG}-kern`);
    await linkNamespaces(shoal, `${TAG}s`, `${SHOAL_UNDERLAY}/24`, kernel, `${TAG}k`, `${KERNEL_UNDERLAY}/24`);
    await shoal.exec('ethtool', ['-K', `${TAG}s`, 'tx', 'off']);
    await kernel.exec('ethtool', ['-K', `${TAG}k`, 'tx', 'off']);
    await kernel.exec('ip', ['link', 'add', 'vx0', 'address', KERNEL_MAC, 'type', 'vxlan', 'id', '4096', 'dstport', String(VTEP_PORT), 'local', KERNEL_UNDERLAY, 'dev', `${TAG}k`]);
    await kernel.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', SHOAL_UNDERLAY]);
    await kernel.exec('ip', ['addr', 'add', '100.64.11.50/24', 'dev', 'vx0']);
    await kernel.exec('ip', ['link', 'set', 'vx0', 'up']);
    const config = JSON.stringify({ underlay: SHOAL_UNDERLAY, vtepPort: VTEP_PORT, kernelUnderlay: KERNEL_UNDERLAY, kernelMac: KERNEL_MAC });
    runner = shoal.spawn(process.execPath, ['--import', 'tsx', RUNNER, config]);
    const ready = JSON.parse(await waitForLine(runner, (l) => l.includes('"ready"'), 60_000)) as { dns: { address: string; port: number } };
    expect(ready.dns).toEqual({ address: '127.0.0.11', port: 53 });
  }, 90_000);

  afterAll(async () => {
    if (runner) await stopProcess(runner);
    await kernel?.destroy();
    await shoal?.destroy();
  });

  it('dig @<agent overlay address> answers the service with its VIP and tasks.<service> with the tasks, in overlay form', async () => {
    expect(await digShort(kernel, '100.64.11.2', 'web')).toEqual(['100.64.11.254']);
    expect(await digShort(kernel, '100.64.11.2', 'tasks.web')).toEqual(['100.64.11.130', '100.64.11.131']);
    expect(await digShort(kernel, '100.64.11.2', '-x', '100.64.11.254')).toEqual(['web.']);
    expect(await digShort(kernel, '100.64.11.2', '+tcp', 'tasks.web')).toEqual(['100.64.11.130', '100.64.11.131']);
  });

  it('curl from the kernel namespace to the VIP reaches both tasks', async () => {
    const seen = await tasksSeen(kernel, `http://100.64.11.254:${TARGET}/`, 20);
    expect(seen.failed).toBe(0);
    expect([...seen.tasks].sort()).toEqual([T1, T2].sort());
  });

  it('inside the agent’s namespace, 127.0.0.11:53 answers in mirror form and curl reaches the tasks through the VIP’s mirror', async () => {
    expect(await digShort(shoal, '127.0.0.11', 'web')).toEqual(['127.64.11.254']);
    const seen = await tasksSeen(shoal, `http://127.64.11.254:${TARGET}/`, 20);
    expect(seen.failed).toBe(0);
    expect([...seen.tasks].sort()).toEqual([T1, T2].sort());
    const one = await tasksSeen(shoal, `http://127.64.11.131:${TARGET}/`, 3);
    expect([...one.tasks]).toEqual([T2]);
  });
});
