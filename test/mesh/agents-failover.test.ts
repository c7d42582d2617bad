/**
 * The routing mesh under failure, with real `shoal agent` processes on loopback (issue 5,
 * "Must show"): four agents on 127.0.0.63–66, whoami tasks on three of them, and load from
 * autocannon against node-4, which runs no task (every request crosses the overlay).
 *
 * - a task killed during the load costs nothing: new connections go elsewhere (passive health
 *   and connect retry), and a request already on its way to it is replayed on another task
 *   (the port is declared HTTP; relay.ts `ReplayPolicy`);
 * - an agent SIGKILLed during the load: its rows leave every surviving table within the
 *   gossip's failure-detection bound; then node-4 resets its connections to the dead node and
 *   replays their requests, so requests fail only if detection outlasts the client's timeout
 *   (how many is reported), and none after;
 * - an agent SIGTERMed during the load leaves: its rows leave every table (usually at once),
 *   only connections open to its task are reset, and the mesh serves on without it.
 *
 * The tests run in order, each on what the previous one left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAN_CONFIG } from '../../src/gossip/config.js';
import { suspicionBounds } from '../../src/gossip/formulas.js';
import { MeshCluster, httpGet, pollUntil, runLoad } from '../helpers/mesh-cluster.js';

const PUBLISHED = 18610;
const GOSSIP_PORT = 18611;
const DATA_PATH_PORT = 18612;
const NODES = [
  { name: 'node-1', address: '127.0.0.63' },
  { name: 'node-2', address: '127.0.0.64' },
  { name: 'node-3', address: '127.0.0.65' },
  { name: 'node-4', address: '127.0.0.66' },
];
const CATALOG = `
services:
  whoami:
    image: shoal/whoami
    ports:
      # Declared HTTP: a request a dying task dropped between two answers is replayed elsewhere.
      - { published: ${PUBLISHED}, target: 80, app_protocol: http }
nodes:
  node-1:
    - service: whoami
      replicas: 2
  node-2:
    - service: whoami
  node-3:
    - service: whoami
  node-4: []
`;
const TARGET = 'http://127.0.0.66:' + PUBLISHED + '/json';
const CONNECTIONS = 10;

/**
 * How long the gossip may take to declare a crashed member dead and spread it, with
 * memberlist's LAN timings (src/gossip/config.ts): until some survivor probes it (each probes
 * the others round-robin, one per interval), that probe and its indirect probes failing (one
 * interval), Lifeguard's longest suspicion (no confirmations), and the dead message's gossip.
 */
function failureDetectionBoundMs(nodes: number): number {
  const c = LAN_CONFIG;
  const { maxMs } = suspicionBounds(c.suspicionMult, c.suspicionMaxTimeoutMult, nodes, c.probeIntervalMs);
  return (nodes - 1) * c.probeIntervalMs + c.probeIntervalMs + maxMs + 5 * c.gossipIntervalMs;
}

let cluster: MeshCluster;

beforeAll(async () => {
  cluster = await MeshCluster.start({ catalog: CATALOG, nodes: NODES, gossipPort: GOSSIP_PORT, dataPathPort: DATA_PATH_PORT, publishedPort: PUBLISHED, expectedRows: 8, readyTimeoutMs: 75_000 });
}, 90_000);

afterAll(async () => {
  // Stopped agents stop their tasks; the crashed one's tasks exit on their own: nothing leaks.
  if (cluster) expect(await cluster.stop()).toEqual([]);
});

/** Waits until every running node's table holds `rows` live rows; resolves with how long that took. */
async function rowsEverywhere(rows: number, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  let last: number[] = [];
  await pollUntil(
    async () => {
      last = await Promise.all(cluster.running().map((n) => cluster.tableRows(n.name)));
      return last.every((r) => r === rows);
    },
    timeoutMs,
    what,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: rows on ${cluster.running().map((n, i) => `${n.name}=${last[i]}`).join(' ')}`, { cause: error });
  });
  return performance.now() - t0;
}

/** Tasks that answer through node-4 over `n` fresh connections. */
async function tasksThroughNode4(n: number): Promise<Set<string>> {
  const tasks = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await httpGet('127.0.0.66', PUBLISHED);
    tasks.add((JSON.parse(r.body) as { task: string }).task);
  }
  return tasks;
}

describe('four agents under load through node-4 (no task of its own)', () => {
  it('a task killed during the load costs nothing: not a new connection, not a request already on its way to it', async () => {
    const victim = (await cluster.tasks('node-1')).find((t) => t.task === 'whoami.1');
    expect(victim).toBeDefined();
    const replaysBefore = (await cluster.metrics('node-4')).get('mesh_upstream_rq_replay', { path: 'ingress' });
    const result = await runLoad({ url: TARGET, connections: CONNECTIONS, duration: 5 }, async () => {
      await new Promise((r) => setTimeout(r, 1500));
      process.kill(victim!.pid, 'SIGKILL');
    });
    const replays = (await cluster.metrics('node-4')).get('mesh_upstream_rq_replay', { path: 'ingress' }) - replaysBefore;
    console.log(
      `task killed under load: ${result.requests} requests, ${result.failed} failed (${result.non2xx} non-2xx, ${result.errors} errors [${result.errorKinds.join(', ')}], ${result.timeouts} timeouts); ` +
        `${replays} request(s) replayed on another task by node-4`,
    );
    expect(result.ok).toBeGreaterThan(0);
    // New connections never fail (passive health, connect retry), and a request already on its
    // way to the task when it dies is replayed on another task by node-4's relay: the task's
    // connection closed before answering it, and the port is declared HTTP.
    expect(result.failed).toBe(0);
    // The supervisor restarts it, and it answers through node-4 again.
    await pollUntil(async () => (await cluster.tasks('node-1')).some((t) => t.task === 'whoami.1' && t.pid !== victim!.pid), 15_000, 'whoami.1 to be restarted');
    await pollUntil(async () => (await tasksThroughNode4(20)).has('whoami.1'), 15_000, 'whoami.1 to answer again');
  });

  it('an agent SIGKILLed during the load: its rows leave every table within the failure-detection bound; failures only until then', async () => {
    const bound = failureDetectionBoundMs(NODES.length);
    let killedAt = 0;
    let detectedAt = 0;
    // Longer than the usual detection time (5–7 s here): a request stuck on a connection to the
    // dead node waits for its rows to go, then that connection is reset by node-4's router and
    // the request replayed on a live task; only detection slower than this times out.
    const timeoutS = 10;
    const during = await runLoad({ url: TARGET, connections: CONNECTIONS, duration: 12, timeout: timeoutS }, async (elapsed) => {
      await new Promise((r) => setTimeout(r, 1000));
      killedAt = elapsed();
      await cluster.kill('node-1', 'SIGKILL');
      // node-1's own row and its two tasks' rows go: 4 nodes' rows + 4 tasks → 3 + 2.
      await rowsEverywhere(5, bound + 10_000, "node-1's rows to leave every surviving table");
      detectedAt = elapsed();
    });
    const detectionMs = detectedAt - killedAt;
    const m4 = await cluster.metrics('node-4');
    const resets = m4.get('mesh_upstream_cx_destroy_member_dead', { path: 'ingress' });
    const replays = m4.get('mesh_upstream_rq_replay', { path: 'ingress' });
    const late = during.failureTimesMs.filter((t) => t > detectedAt + timeoutS * 1000 + 500);
    console.log(
      `agent SIGKILLed under load: rows gone from every table ${Math.round(detectionMs)} ms after the kill (bound ${bound} ms); ` +
        `${during.requests} requests, ${during.failed} failed (${during.non2xx} non-2xx, ${during.errors} errors, ${during.timeouts} timeouts), ` +
        `failures seen at ${during.failureTimesMs.map((t) => Math.round(t - killedAt)).join(', ') || '-'} ms after the kill; ` +
        `node-4 reset ${resets} connection(s) to the dead node when its rows went (${replays} replays so far)`,
    );
    expect(detectionMs).toBeLessThanOrEqual(bound);
    // A failure is a request sent before the rows went: seen by then, or at most a client timeout later.
    expect(late).toEqual([]);
    expect(during.ok).toBeGreaterThan(0);
    if (detectionMs < (timeoutS - 1) * 1000) {
      // Nothing hung until the client gave up: connections to the dead node were reset when its
      // rows went, and their requests replayed. (A reset can still reach a client whose answer
      // was cut halfway: at most one per connection.)
      expect(during.timeouts).toBe(0);
      expect(during.errors).toBeLessThanOrEqual(CONNECTIONS);
    }

    const after = await runLoad({ url: TARGET, connections: CONNECTIONS, duration: 3 });
    console.log(`after the window: ${after.requests} requests, ${after.failed} failed`);
    expect(after.ok).toBeGreaterThan(0);
    expect(after.failed).toBe(0);
    expect([...(await tasksThroughNode4(20))].sort()).toEqual(['whoami.3', 'whoami.4']);
  });

  it('an agent SIGTERMed during the load leaves: its rows leave every surviving table, and the mesh serves on without it', async () => {
    let exitedMs = 0;
    let rowsGoneMs = 0;
    const during = await runLoad({ url: TARGET, connections: CONNECTIONS, duration: 5 }, async (elapsed) => {
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = elapsed();
      await cluster.kill('node-2', 'SIGTERM');
      exitedMs = elapsed() - t0;
      // node-2's own row and its task's: 3 + 2 → 2 + 1.
      await rowsEverywhere(3, 15_000, "node-2's rows to leave every surviving table");
      rowsGoneMs = elapsed() - t0;
    });
    const after = await runLoad({ url: TARGET, connections: CONNECTIONS, duration: 2 });
    console.log(
      `agent SIGTERMed under load: exited ${Math.round(exitedMs)} ms after the signal, its rows gone everywhere by ${Math.round(rowsGoneMs)} ms; ` +
        `${during.requests} requests, ${during.failed} failed (${during.non2xx} non-2xx, ${during.errors} errors [${during.errorKinds.join(', ')}], ${during.timeouts} timeouts); ` +
        `after the leave: ${after.requests} requests, ${after.failed} failed`,
    );
    // The leave withdraws them before the agent exits: tombstones by gossip and by a TCP
    // push/pull with every member (a survivor that missed the UDP gossip once kept them ~13 s,
    // until its own failure detection); the failure-detection bound is what must always hold.
    expect(rowsGoneMs).toBeLessThan(exitedMs + failureDetectionBoundMs(NODES.length));
    expect(during.ok).toBeGreaterThan(0);
    // Only connections open to the leaving node's task may be reset (its task is stopped before
    // its rows are withdrawn, and whoami's SIGTERM cuts open connections): no error status, no timeout.
    expect(during.non2xx).toBe(0);
    expect(during.timeouts).toBe(0);
    expect(during.errors).toBeLessThanOrEqual(CONNECTIONS);
    expect(after.ok).toBeGreaterThan(0);
    expect(after.failed).toBe(0);
    expect([...(await tasksThroughNode4(10))]).toEqual(['whoami.4']);
  });
});
