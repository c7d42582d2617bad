/**
 * Three nodes' meshes in one process, as three agents will run them: each with a real VTEP on
 * its own loopback address (127.0.0.2–4, UDP 18410), the userspace TCP on its overlay
 * interface, whoami tasks started by its catalog supervisor, and ingress on 127.0.0.x:18420.
 * The gossip is stood in for by direct delivery of broadcasts and a push/pull at start: the
 * only part not real here. node-3 runs no task, so everything it answers crosses the overlay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { OverlayNode } from '../../src/agent/overlay-node.js';
import { attachTcp, type AttachedTcp } from '../../src/netstack/tcp/index.js';
import { overlayPeerTarget } from '../../src/mesh/overlay-peers.js';
import { parseCatalog } from '../../src/agent/catalog.js';
import { CatalogMesh, LB_SERVICE } from '../../src/agent/catalog-mesh.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const VTEP_PORT = 18410;
const PUBLISHED = 18420;
const CATALOG = parseCatalog(`
services:
  whoami:
    image: shoal/whoami
    ports: ["${PUBLISHED}:80"]
nodes:
  node-1:
    - service: whoami
      replicas: 2
  node-2:
    - service: whoami
  node-3: []
`);

interface Node {
  readonly name: string;
  readonly host: string;
  readonly overlay: OverlayNode;
  readonly tcp: AttachedTcp;
  readonly mesh: CatalogMesh;
}

const nodes: Node[] = [];
const clock = new RealClock();
/** Nodes that hear no broadcast for now (a slow gossip). */
const deaf = new Set<string>();

beforeAll(async () => {
  for (let i = 1; i <= 3; i++) {
    const host = `127.0.0.${i + 1}`;
    const overlay = await OverlayNode.start({ underlay: { address: host, port: VTEP_PORT }, vni: 4096, address: 0x64400000 + i + 1, prefixLen: 24 }, { clock });
    const tcp = attachTcp(overlay.iface, { clock, rng: new SeededRng(i) });
    const mesh = await CatalogMesh.start({
      catalog: CATALOG,
      nodeName: `node-${i}`,
      listenHost: host,
      vtep: { address: host, port: VTEP_PORT },
      clock,
      rng: new SeededRng(100 + i),
      // Long enough that a killed task stays down while a test looks at the others.
      backoff: { initialMs: 3000 },
      // A crashed node's tasks cost a connection this long before it is retried elsewhere.
      connectTimeoutMs: 1000,
      overlay: { nodeAddress: 0x64400000 + i + 1, sockets: tcp.sockets, addresses: overlay.iface, peers: overlayPeerTarget(overlay.vtep.fdb, overlay.iface, 4096) },
    });
    nodes.push({ name: `node-${i}`, host, overlay, tcp, mesh });
  }
  // The gossip's part: broadcasts to every other node, and a join push/pull.
  for (const n of nodes) {
    n.mesh.table.setReplication({
      broadcast: (payload) => {
        for (const peer of nodes) if (peer !== n && !deaf.has(peer.name)) setImmediate(() => peer.mesh.table.notifyMsg(payload));
      },
    });
  }
  for (const a of nodes) for (const b of nodes) if (a !== b) b.mesh.table.mergeRemoteState(a.mesh.table.localState(true), true);
  await waitFor(() => nodes.every((n) => n.mesh.table.endpoints('whoami').length === 3), 30_000, 'every table to hold the three tasks');
});

const crashed = new Set<string>();

afterAll(async () => {
  for (const n of nodes) {
    await n.mesh.close();
    n.tcp.driver.stop();
    if (!crashed.has(n.name)) await n.overlay.close();
  }
});

async function tasksSeenThrough(host: string, want: number, maxRequests = 200): Promise<{ tasks: Map<string, number>; failed: number }> {
  const tasks = new Map<string, number>();
  let failed = 0;
  for (let i = 0; i < maxRequests && tasks.size < want; i++) {
    try {
      const r = await httpGet(host, PUBLISHED);
      const a = JSON.parse(r.body) as { task: string };
      tasks.set(a.task, (tasks.get(a.task) ?? 0) + 1);
    } catch {
      failed++;
    }
  }
  return { tasks, failed };
}

describe('three nodes, one catalog', () => {
  it('every table knows every task and every node’s overlay address, and every VTEP a route to each remote one', () => {
    for (const n of nodes) {
      expect(n.mesh.table.endpoints(LB_SERVICE).map((r) => r.node).sort()).toEqual(['node-1', 'node-2', 'node-3']);
      expect(n.mesh.table.endpoints('whoami').map((r) => r.taskId).sort()).toEqual(['whoami.1', 'whoami.2', 'whoami.3']);
      const remote = nodes.flatMap((m) => m.mesh.table.endpoints().filter((r) => r.node !== n.name && r.node === m.name));
      expect(n.overlay.vtep.fdb.size).toBe(remote.length);
    }
  });

  it('the node with no task answers on the published port from every task, over the userspace overlay', async () => {
    const { tasks, failed } = await tasksSeenThrough('127.0.0.4', 3);
    expect(failed).toBe(0);
    expect([...tasks.keys()].sort()).toEqual(['whoami.1', 'whoami.2', 'whoami.3']);
    expect(nodes[2]!.mesh.router.counters.get('mesh_upstream_cx_connect_fail')).toBe(0);
    expect(nodes[0]!.mesh.taskListeners!.counters.get('mesh_downstream_cx_total') + nodes[1]!.mesh.taskListeners!.counters.get('mesh_downstream_cx_total')).toBeGreaterThanOrEqual(3);
  });

  it('every node answers, mixing local and remote tasks', async () => {
    for (const host of ['127.0.0.2', '127.0.0.3']) {
      const { tasks, failed } = await tasksSeenThrough(host, 3);
      expect(failed).toBe(0);
      expect(tasks.size).toBe(3);
    }
  });

  it('a big answer crosses the overlay whole', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await httpGet('127.0.0.4', PUBLISHED, '/?size=1048576', 20_000);
      expect(r.body.length).toBe(1_048_576);
    }
  });

  it('a killed task is marked unhealthy everywhere and costs no request through the far node', async () => {
    const victim = nodes[0]!.mesh.supervisor.status().find((s) => s.taskId === 'whoami.1')!;
    process.kill(victim.pid!, 'SIGKILL');
    await waitFor(() => nodes.every((n) => n.mesh.table.get('whoami', 'whoami.1')?.health === 'unhealthy'), 10_000, 'whoami.1 unhealthy everywhere');
    const { tasks, failed } = await tasksSeenThrough('127.0.0.4', 99, 40);
    expect(failed).toBe(0);
    expect([...tasks.keys()].sort()).toEqual(['whoami.2', 'whoami.3']);
    // Restarted after its backoff, it is healthy again everywhere.
    await waitFor(() => nodes.every((n) => n.mesh.table.get('whoami', 'whoami.1')?.health === 'none'), 20_000, 'whoami.1 back');
  });

  it('a task killed before the far node heard of it costs no request: the owner refuses the overlay connect and the far node retries', async () => {
    deaf.add('node-3');
    const victim = nodes[1]!.mesh.supervisor.status().find((s) => s.taskId === 'whoami.3')!;
    process.kill(victim.pid!, 'SIGKILL');
    await waitFor(() => nodes[0]!.mesh.table.get('whoami', 'whoami.3')?.health === 'unhealthy', 10_000, 'whoami.3 unhealthy on node-1');
    expect(nodes[2]!.mesh.table.get('whoami', 'whoami.3')?.health).toBe('none');
    const refusedBefore = nodes[2]!.mesh.router.counters.get('mesh_upstream_cx_connect_fail');
    const { tasks, failed } = await tasksSeenThrough('127.0.0.4', 99, 40);
    expect(failed).toBe(0);
    expect([...tasks.keys()].sort()).toEqual(['whoami.1', 'whoami.2']);
    expect(nodes[2]!.mesh.router.counters.get('mesh_upstream_cx_connect_fail')).toBeGreaterThan(refusedBefore);
    deaf.delete('node-3');
    nodes[2]!.mesh.table.mergeRemoteState(nodes[1]!.mesh.table.localState(false), false);
    await waitFor(() => nodes.every((n) => n.mesh.table.get('whoami', 'whoami.3')?.health === 'none'), 20_000, 'whoami.3 back');
  });

  it('a node that vanishes costs no request: connects to it time out and go elsewhere; once declared dead, its tasks leave every table', async () => {
    // node-1's data path disappears at once, as in a SIGKILL; the gossip has not noticed yet.
    crashed.add('node-1');
    nodes[0]!.tcp.driver.stop();
    await nodes[0]!.overlay.close();
    const timeoutsBefore = nodes[2]!.mesh.router.counters.get('mesh_upstream_cx_connect_timeout');
    const during = await tasksSeenThrough('127.0.0.4', 99, 10);
    expect(during.failed).toBe(0);
    expect([...during.tasks.keys()]).toEqual(['whoami.3']);
    expect(nodes[2]!.mesh.router.counters.get('mesh_upstream_cx_connect_timeout')).toBeGreaterThan(timeoutsBefore);
    // The failure detector's verdict.
    for (const n of nodes.slice(1)) n.mesh.table.memberDead('node-1');
    for (const n of nodes.slice(1)) expect(n.mesh.table.endpoints('whoami').map((r) => r.taskId)).toEqual(['whoami.3']);
    const after = await tasksSeenThrough('127.0.0.4', 99, 20);
    expect(after.failed).toBe(0);
    expect([...after.tasks.keys()]).toEqual(['whoami.3']);
  });
});
