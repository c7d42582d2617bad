/**
 * The routing mesh as a user meets it (issue 5, "Must show"): three real `shoal agent`
 * processes on loopback (127.0.0.60–62), whoami tasks on two of them, published on a port
 * unique to this file. Every node answers on it, and every task answers through every node —
 * also through node-3, which runs no task, so its answers crossed the userspace overlay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshCluster, httpGet } from '../helpers/mesh-cluster.js';

const PUBLISHED = 18600;
const GOSSIP_PORT = 18601;
const DATA_PATH_PORT = 18602;
const NODES = [
  { name: 'node-1', address: '127.0.0.60' },
  { name: 'node-2', address: '127.0.0.61' },
  { name: 'node-3', address: '127.0.0.62' },
];
const TASKS = ['whoami.1', 'whoami.2', 'whoami.3'];
const CATALOG = `
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
`;
/** Requests per node at most while looking for every task. */
const MAX_REQUESTS = 300;
/** The longest passive ejection (the balancer's backoff cap is 30 s), plus a margin. */
const EJECTION_WAIT_MS = 35_000;

let cluster: MeshCluster;

beforeAll(async () => {
  cluster = await MeshCluster.start({ catalog: CATALOG, nodes: NODES, gossipPort: GOSSIP_PORT, dataPathPort: DATA_PATH_PORT, publishedPort: PUBLISHED, expectedRows: NODES.length + TASKS.length, readyTimeoutMs: 75_000 });
}, 90_000);

afterAll(async () => {
  // A stopped agent stops its tasks: none is left for the cleanup to kill.
  if (cluster) expect(await cluster.stop()).toEqual([]);
});

interface Seen {
  readonly tasks: Map<string, number>;
  readonly nodes: Set<string>;
  readonly failed: number;
  readonly requests: number;
}

/** GETs through `address` (fresh connections) until every task has answered or MAX_REQUESTS. */
async function seenThrough(address: string): Promise<Seen> {
  const tasks = new Map<string, number>();
  const nodes = new Set<string>();
  let failed = 0;
  let requests = 0;
  // A few rounds past the first sighting of every task, so the counters below have something to show.
  // Past MAX_REQUESTS, keep asking slowly for up to EJECTION_WAIT_MS: an endpoint passively
  // ejected after a slow connect at start (a loaded machine) returns when its backoff ends.
  const deadline = Date.now() + EJECTION_WAIT_MS;
  while (requests < 30 || (tasks.size < TASKS.length && (requests < MAX_REQUESTS || Date.now() < deadline))) {
    if (requests >= MAX_REQUESTS) await new Promise((r) => setTimeout(r, 100));
    requests++;
    try {
      const r = await httpGet(address, PUBLISHED);
      if (r.status !== 200) {
        failed++;
        continue;
      }
      const a = JSON.parse(r.body) as { task: string; node: string };
      tasks.set(a.task, (tasks.get(a.task) ?? 0) + 1);
      nodes.add(a.node);
    } catch {
      failed++;
    }
  }
  return { tasks, nodes, failed, requests };
}

describe('three agents on loopback, whoami on two of them', () => {
  it('every node answers on the published port', async () => {
    for (const n of NODES) {
      const r = await httpGet(n.address, PUBLISHED);
      expect(r.status, n.name).toBe(200);
      expect((JSON.parse(r.body) as { service: string }).service).toBe('whoami');
    }
  });

  it.each(NODES)('every task answers through $name', async (n) => {
    const seen = await seenThrough(n.address);
    expect(seen.failed).toBe(0);
    expect([...seen.tasks.keys()].sort()).toEqual(TASKS);
    expect([...seen.nodes].sort()).toEqual(['node-1', 'node-2']);
  });

  it('node-3 runs no task: what it answered crossed the overlay (its userspace TCP opened the connections, the owners relayed them)', async () => {
    const before = await Promise.all(NODES.map((n) => cluster.metrics(n.name)));
    const seen = await seenThrough('127.0.0.62');
    expect(seen.failed).toBe(0);
    const after = await Promise.all(NODES.map((n) => cluster.metrics(n.name)));
    const delta = (i: number, name: string, where: Record<string, string> = {}): number => after[i]!.get(name, where) - before[i]!.get(name, where);
    const answered = seen.requests - seen.failed;
    // node-3: every ingress connection went upstream, each over its own overlay TCP connection.
    expect(delta(2, 'mesh_downstream_cx_total', { path: 'ingress' })).toBeGreaterThanOrEqual(answered);
    expect(delta(2, 'mesh_upstream_cx_connect_fail', { path: 'ingress' })).toBe(0);
    expect(delta(2, 'tcp_active_opens')).toBeGreaterThanOrEqual(answered);
    expect(delta(2, 'vtep_tx_frames')).toBeGreaterThan(answered);
    // node-1 and node-2: the owners' side of the overlay took exactly those connections.
    const ownerAccepted = delta(0, 'mesh_downstream_cx_total', { path: 'overlay' }) + delta(1, 'mesh_downstream_cx_total', { path: 'overlay' });
    expect(ownerAccepted).toBeGreaterThanOrEqual(answered);
    expect(delta(0, 'tcp_passive_opens') + delta(1, 'tcp_passive_opens')).toBeGreaterThanOrEqual(answered);
    // Every node's table holds the same rows: three nodes' own rows and three tasks.
    for (const m of after) expect(m.get('mesh_table_rows')).toBe(NODES.length + TASKS.length);
  });
});
