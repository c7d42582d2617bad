/**
 * The routing mesh across network namespaces (issue 5): three hosts, one `shoal agent` each,
 * on an underlay switch (a Linux bridge in a namespace of its own, 198.18.20.0/24), one catalog
 * with whoami tasks on node-1 (two) and node-2 (one), published on 8080. node-3 runs no task.
 *
 *   switch ns:  br0 ── veth ── h1 (198.18.20.11, node-1: whoami.1, whoami.2)
 *                  ├── veth ── h2 (198.18.20.12, node-2: whoami.3)
 *                  ├── veth ── h3 (198.18.20.13, node-3: no task)
 *                  └── veth ── kernel (198.18.20.50; vx0: kernel VXLAN, VNI 4096, 100.64.0.50/24)
 *
 * curl in each host namespace reaches every task through its own agent and through the others
 * (node-3 only over the userspace overlay). The fourth namespace runs no shoal at all: a plain
 * kernel VXLAN device whose remotes are the three agents' VTEPs (`bridge fdb append 00:00:00:00:00:00`,
 * as a Linux host joins a VXLAN mesh by hand), and the agents are told about it with --fdb/--flood.
 * curl there fetches from each task's overlay address: the kernel ARPs (flooded to every VTEP),
 * the owning agent answers for its task's address, and its userspace TCP terminates the
 * connection and relays it to the task.
 *
 * veth leaves checksums to an offload that never happens (CHECKSUM_PARTIAL): the kernel's inner
 * TCP checksum would carry only the pseudo-header sum and shoal (which verifies checksums, as
 * it must with kernel peers: attachTcp's verifyChecksum stays on) would drop every segment, so
 * curl from the kernel namespace times out (checked: it does without the ethtool lines).
 * `ethtool -K <veth> tx off` makes the kernel compute them, as a real NIC would.
 *
 * By hand: sudo npx vitest run test/interop/mesh-netns.test.ts
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { apiRequest } from '../../src/cli/api-client.js';
import { type AgentProcess, startAgent } from '../helpers/agent.js';
import { describeInterop } from '../helpers/interop.js';
import { Netns, run, stopProcess } from '../helpers/netns.js';

// Unique to this file (and this run), so interop files can run in parallel.
const TAG = `ms${process.pid % 100000}`;
const PUBLISHED = 8080;
const TARGET = 80;
const KERNEL_UNDERLAY = '198.18.20.50';
const KERNEL_OVERLAY = '100.64.0.50';
/** Swarm's rule: 02:42 + the IPv4 address's bytes (100.64.0.50). */
const KERNEL_MAC = '02:42:64:40:00:32';
const VNI = 4096;

const HOSTS = [
  { node: 'node-1', underlay: '198.18.20.11' },
  { node: 'node-2', underlay: '198.18.20.12' },
  { node: 'node-3', underlay: '198.18.20.13' },
] as const;

/** Tasks get the catalog network's upper half, in file order (src/agent/catalog.ts). */
const TASKS = [
  { task: 'whoami.1', node: 'node-1', overlay: '100.64.0.128' },
  { task: 'whoami.2', node: 'node-1', overlay: '100.64.0.129' },
  { task: 'whoami.3', node: 'node-2', overlay: '100.64.0.130' },
] as const;
const ALL_TASKS = TASKS.map((t) => t.task);

const CATALOG = `network:
  subnet: 100.64.0.0/24
  vni: ${VNI}
services:
  whoami:
    image: shoal/whoami
    ports:
      - "${PUBLISHED}:${TARGET}"
nodes:
  node-1:
    - service: whoami
      replicas: 2
  node-2:
    - service: whoami
  node-3: []
`;

interface WhoamiJson {
  readonly task: string;
  readonly node: string;
  readonly client: { readonly address: string };
}

describeInterop('the routing mesh across network namespaces, and a kernel VXLAN host on its overlay', ['ip', 'bridge', 'curl', 'ethtool'], () => {
  let sw: Netns;
  let kernel: Netns;
  const hosts: Netns[] = [];
  const agents: AgentProcess[] = [];
  let tmp: string;

  const metric = async (agent: AgentProcess, name: string): Promise<number> => {
    const { text } = await apiRequest(agent.apiSocket, 'GET', '/metrics');
    const lines = text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  };

  /**
   * `count` GETs from inside `ns`, each on a connection of its own, `parallel` at a time: the
   * balancer prefers a local task only on a tie of outstanding connections, so concurrent
   * connections are what spread a node's traffic over local and remote tasks alike.
   */
  const fetchMany = async (ns: Netns, url: string, count: number, parallel: number): Promise<{ answers: WhoamiJson[]; failed: number }> => {
    const urls = Array.from({ length: count }, () => url);
    const out = await ns.exec('curl', ['-sS', '--max-time', '10', '-H', 'Connection: close', '-H', 'Accept: application/json', '-w', '\\n%{http_code}\\n', ...(parallel > 1 ? ['-Z', '--parallel-max', String(parallel)] : []), ...urls], { timeoutMs: 60_000 }).catch((error: unknown) => (error as Error).message);
    const answers: WhoamiJson[] = [];
    for (const line of out.split('\n')) {
      if (line.startsWith('{')) answers.push(JSON.parse(line) as WhoamiJson);
    }
    return { answers, failed: count - answers.length };
  };

  /** Tasks seen through `url` from `ns`, fetching rounds until all are seen (bounded). */
  const tasksSeen = async (ns: Netns, url: string): Promise<{ tasks: Set<string>; failed: number; requests: number }> => {
    const tasks = new Set<string>();
    let failed = 0;
    let requests = 0;
    for (let round = 0; round < 5 && tasks.size < ALL_TASKS.length; round++) {
      const r = await fetchMany(ns, url, 30, 10);
      requests += 30;
      failed += r.failed;
      for (const a of r.answers) tasks.add(a.task);
    }
    return { tasks, failed, requests };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), `shoal-${TAG}-`));
    const catalog = path.join(tmp, 'catalog.yaml');
    await writeFile(catalog, CATALOG);

    // The underlay: a bridge in a namespace of its own, a veth into each host.
    sw = await Netns.create(`${TAG}-sw`);
    await sw.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await sw.exec('ip', ['link', 'set', 'br0', 'up']);
    const plug = async (ns: Netns, index: number, address: string): Promise<void> => {
      const inside = `${TAG}h${index}`;
      const port = `${TAG}p${index}`;
      await run('ip', ['link', 'add', inside, 'netns', ns.name, 'type', 'veth', 'peer', 'name', port, 'netns', sw.name]);
      await sw.exec('ip', ['link', 'set', port, 'master', 'br0']);
      await sw.exec('ip', ['link', 'set', port, 'up']);
      await sw.exec('ethtool', ['-K', port, 'tx', 'off']);
      await ns.exec('ip', ['addr', 'add', `${address}/24`, 'dev', inside]);
      await ns.exec('ip', ['link', 'set', inside, 'up']);
      await ns.exec('ethtool', ['-K', inside, 'tx', 'off']);
    };
    for (const [i, h] of HOSTS.entries()) {
      const ns = await Netns.create(`${TAG}-h${i + 1}`);
      hosts.push(ns);
      await plug(ns, i + 1, h.underlay);
    }

    // The Linux host with no shoal: a kernel VXLAN device flooding to every agent's VTEP.
    kernel = await Netns.create(`${TAG}-kern`);
    await plug(kernel, 9, KERNEL_UNDERLAY);
    await kernel.exec('ip', ['link', 'add', 'vx0', 'address', KERNEL_MAC, 'type', 'vxlan', 'id', String(VNI), 'dstport', '4789', 'local', KERNEL_UNDERLAY, 'dev', `${TAG}h9`]);
    for (const h of HOSTS) await kernel.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', h.underlay]);
    await kernel.exec('ip', ['addr', 'add', `${KERNEL_OVERLAY}/24`, 'dev', 'vx0']);
    await kernel.exec('ip', ['link', 'set', 'vx0', 'up']);

    // The agents: node-1 first, the others join it.
    const started = await Promise.all(
      HOSTS.map((h, i) =>
        startAgent(
          [
            '--node-name', h.node,
            '--advertise-addr', h.underlay,
            ...(i === 0 ? [] : ['--join', HOSTS[0].underlay]),
            '--catalog', catalog,
            // The kernel's VTEP is not a shoal peer: its MAC's route, and a place in the flood list.
            '--fdb', `${KERNEL_MAC}@${KERNEL_UNDERLAY}`,
            '--flood', KERNEL_UNDERLAY,
            '--api-socket', path.join(tmp, `${h.node}.sock`),
            '--data-dir', path.join(tmp, h.node),
          ],
          { netns: hosts[i]! },
        ),
      ),
    );
    agents.push(...started);

    // Converged: every table holds three tasks and three nodes' own rows.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const rows = await Promise.all(agents.map((a) => metric(a, 'mesh_table_rows')));
      if (rows.every((r) => r === TASKS.length + HOSTS.length)) break;
      if (Date.now() > deadline) throw new Error(`The endpoint tables did not converge: rows ${rows.join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => stopProcess(a.child)));
    for (const ns of [kernel, ...hosts, sw]) await ns?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('curl in each host namespace reaches every task through its own agent’s published port', async () => {
    for (const [i, h] of HOSTS.entries()) {
      const seen = await tasksSeen(hosts[i]!, `http://${h.underlay}:${PUBLISHED}/`);
      expect({ node: h.node, failed: seen.failed, tasks: [...seen.tasks].sort() }).toEqual({ node: h.node, failed: 0, tasks: ALL_TASKS });
    }
    // node-3 has no task: everything it served crossed the userspace overlay to node-1 or node-2.
    expect(await metric(agents[2]!, 'mesh_upstream_cx_connect_fail')).toBe(0);
  }, 120_000);

  it('curl in each host namespace reaches every task through the other namespaces’ agents', async () => {
    for (const [i] of HOSTS.entries()) {
      for (const [j, target] of HOSTS.entries()) {
        if (i === j) continue;
        const seen = await tasksSeen(hosts[i]!, `http://${target.underlay}:${PUBLISHED}/`);
        expect({ from: i + 1, to: target.node, failed: seen.failed, tasks: [...seen.tasks].sort() }).toEqual({ from: i + 1, to: target.node, failed: 0, tasks: ALL_TASKS });
      }
    }
  }, 180_000);

  it('a 1 MiB answer crosses the overlay whole (node-3 → a remote task)', async () => {
    for (let k = 0; k < 3; k++) {
      const out = await hosts[2]!.exec('curl', ['-sS', '--max-time', '20', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://${HOSTS[2].underlay}:${PUBLISHED}/?size=1048576`], { timeoutMs: 30_000 });
      expect(out).toBe('200 1048576');
    }
  }, 60_000);

  it('a kernel VXLAN host with no shoal fetches from every task’s overlay address', async () => {
    for (const t of TASKS) {
      const out = await kernel.exec('curl', ['-sS', '--max-time', '10', '-H', 'Accept: application/json', `http://${t.overlay}:${TARGET}/`], { timeoutMs: 20_000 });
      const answer = JSON.parse(out) as WhoamiJson;
      expect({ task: answer.task, node: answer.node }).toEqual({ task: t.task, node: t.node });
    }
    // The kernel learnt each task's MAC by ARP (answered by its owner), and where it lives from the frames.
    const neigh = await kernel.exec('ip', ['neigh', 'show', 'dev', 'vx0']);
    for (const t of TASKS) expect(neigh).toMatch(new RegExp(`${t.overlay.replace(/\./g, '\\.')} lladdr 02:42:64:40:00:${(Number(t.overlay.split('.')[3]) & 0xff).toString(16).padStart(2, '0')}`));
    // Every segment the kernel sent passed shoal's checksum check.
    for (const a of agents) expect(await metric(a, 'tcp_rx_dropped_checksum')).toBe(0);
    const fdb = await kernel.exec('bridge', ['fdb', 'show', 'dev', 'vx0']);
    for (const t of TASKS) {
      const owner = HOSTS.find((h) => h.node === t.node)!;
      expect(fdb).toContain(`02:42:64:40:00:${(Number(t.overlay.split('.')[3]) & 0xff).toString(16).padStart(2, '0')} dst ${owner.underlay}`);
    }
  }, 60_000);

  it('the kernel host fetches 1 MiB from a task’s overlay address whole, and every task through node-3’s published port on the underlay', async () => {
    const out = await kernel.exec('curl', ['-sS', '--max-time', '20', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://${TASKS[2].overlay}:${TARGET}/?size=1048576`], { timeoutMs: 30_000 });
    expect(out).toBe('200 1048576');
    const seen = await tasksSeen(kernel, `http://${HOSTS[2].underlay}:${PUBLISHED}/`);
    expect({ failed: seen.failed, tasks: [...seen.tasks].sort() }).toEqual({ failed: 0, tasks: ALL_TASKS });
  }, 60_000);
});
