/**
 * The endpoint table on the real SWIM gossip (src/gossip/memberlist.ts) over the in-memory
 * network with a ManualClock: the delegate seam as the agent will wire it
 * (`meshGossipDelegate`, `meshReplicationOf`). Joins bring whole tables by push/pull, changes
 * spread as broadcasts (also with loss), a crashed member's rows leave every table once the
 * failure detector declares it dead, and a member that leaves takes its rows at once.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { Memberlist } from '../../src/gossip/memberlist.js';
import { MemoryNetwork } from '../../src/gossip/memory-transport.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { meshGossipDelegate, meshReplicationOf } from '../../src/mesh/gossip-delegate.js';
import { row } from './table-fixtures.js';

interface Node {
  readonly name: string;
  readonly ml: Memberlist;
  readonly table: EndpointTable;
}

function cluster(seed: number, count: number, lossRate = 0): { clock: ManualClock; nodes: Node[]; run: (maxMs: number, until: () => boolean) => Promise<number | undefined> } {
  const clock = new ManualClock();
  const rng = new SeededRng(seed);
  const net = new MemoryNetwork({ clock, rng: rng.fork(), lossRate });
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const name = `n${i}`;
    const table = new EndpointTable({ nodeName: name, clock });
    const ml = Memberlist.create({
      name,
      transport: net.bind({ host: `198.18.0.${i + 1}`, port: 7946 }),
      clock,
      rng: rng.fork(),
      delegate: meshGossipDelegate(table),
      // A shorter anti-entropy period than memberlist's 30 s, so lossy runs stay short.
      config: { pushPullIntervalMs: 5000 },
    });
    table.setReplication(meshReplicationOf(ml));
    nodes.push({ name, ml, table });
  }
  const run = async (maxMs: number, until: () => boolean): Promise<number | undefined> => {
    const start = clock.now();
    for (let t = 0; t <= maxMs; t += 100) {
      if (until()) return clock.now() - start;
      clock.advance(100);
      await Promise.resolve();
    }
    return until() ? clock.now() - start : undefined;
  };
  return { clock, nodes, run };
}

const canon = (rows: EndpointRow[]): string[] => rows.map((r) => `${r.node}/${r.taskId}/${r.health}/${r.slot}`).sort();

function agree(nodes: Node[], expected: string[]): boolean {
  return nodes.every((n) => JSON.stringify(canon(n.table.endpoints())) === JSON.stringify(expected));
}

describe('endpoint table over the SWIM gossip', () => {
  it.each([1, 2, 3])('seed %i: join, change, crash and leave', async (seed) => {
    const { clock, nodes, run } = cluster(seed, 5);
    for (const n of nodes) for (let t = 0; t < 3; t++) n.table.upsertLocal(row(n.name, `${n.name}-t${t}`, { slot: t + 1 }));
    const [n0, ...rest] = nodes;
    await Promise.all([run(3000, () => false), ...rest.map((n) => n.ml.join([{ host: '198.18.0.1', port: 7946 }]))]);
    const all = () => canon(nodes.flatMap((n) => n.table.endpoints().filter((r) => r.node === n.name)));
    expect(await run(30_000, () => agree(nodes, all()))).toBeDefined();
    expect(n0!.table.size).toBe(15);

    // Changes travel as broadcasts.
    nodes[1]!.table.setHealth('web', 'n1-t0', 'unhealthy');
    nodes[2]!.table.deleteLocal('web', 'n2-t1');
    nodes[3]!.table.upsertLocal(row('n3', 'n3-new', { slot: 9 }));
    expect(await run(10_000, () => agree(nodes, all()))).toBeDefined();
    expect(n0!.table.get('web', 'n1-t0')?.health).toBe('unhealthy');

    // A crash: no leave. The failure detector declares n3 dead; its rows go from every table.
    nodes[3]!.ml.shutdown();
    const survivors = nodes.filter((n) => n.name !== 'n3');
    const took = await run(60_000, () => survivors.every((n) => n.table.endpoints().every((r) => r.node !== 'n3')));
    expect(took).toBeDefined();
    expect(agree(survivors, canon(survivors.flatMap((n) => n.table.endpoints().filter((r) => r.node === n.name))))).toBe(true);

    // A graceful leave: the rows go as soon as the leave is heard.
    const leaving = nodes[4]!;
    const left = leaving.ml.leave(5000);
    await run(5000, () => false);
    await left;
    leaving.ml.shutdown();
    const remaining = survivors.filter((n) => n !== leaving);
    expect(await run(5000, () => remaining.every((n) => n.table.endpoints().every((r) => r.node !== 'n4')))).toBeDefined();
    expect(remaining[0]!.table.size).toBe(remaining.length * 3 - (remaining.some((n) => n.name === 'n2') ? 1 : 0));

    for (const n of nodes) {
      n.ml.shutdown();
      n.table.close();
    }
    expect(clock.pendingTimers).toBe(0);
  });

  it('converges with 20 % packet loss, through retransmits and push/pull', async () => {
    const { nodes, run } = cluster(42, 4, 0.2);
    const [, ...rest] = nodes;
    await Promise.all([run(10_000, () => false), ...rest.map((n) => n.ml.join([{ host: '198.18.0.1', port: 7946 }]))]);
    for (const n of nodes) for (let t = 0; t < 20; t++) n.table.upsertLocal(row(n.name, `${n.name}-t${t}`, { health: t % 2 ? 'healthy' : 'starting' }));
    for (const n of nodes) for (let t = 0; t < 20; t += 3) n.table.setHealth('web', `${n.name}-t${t}`, 'unhealthy');
    const all = canon(nodes.flatMap((n) => n.table.endpoints().filter((r) => r.node === n.name)));
    expect(await run(60_000, () => agree(nodes, all))).toBeDefined();
    for (const n of nodes) {
      n.ml.shutdown();
      n.table.close();
    }
  });

  it('a joining node gets a big table whole in one push/pull', async () => {
    const { nodes, run } = cluster(7, 2);
    for (let t = 0; t < 3000; t++) nodes[0]!.table.upsertLocal(row('n0', `task-${t}`, { slot: t }));
    const joined = nodes[1]!.ml.join([{ host: '198.18.0.1', port: 7946 }]);
    await run(2000, () => false);
    expect(await joined).toBe(1);
    expect(nodes[1]!.table.size).toBe(3000);
    for (const n of nodes) {
      n.ml.shutdown();
      n.table.close();
    }
  });
});
