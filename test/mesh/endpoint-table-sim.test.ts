/**
 * Several endpoint tables on a lossy in-memory gossip, driven by a ManualClock and a SeededRng:
 * owners change their rows at random, broadcasts are lost, delayed and reordered, members die,
 * and periodic push/pulls (memberlist's anti-entropy) must still bring every live replica to
 * exactly the owners' truth. A failing seed replays exactly.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow, Health } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { row } from './table-fixtures.js';

interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly loss: number;
  readonly ops: number;
  readonly kills: number;
}

/** Field order fixed, so equal rows give equal text whoever built them. */
function canon(r: EndpointRow): string {
  return JSON.stringify([r.service, r.taskId, r.slot, r.node, r.overlayAddress, r.vni, r.vtepAddress, r.vtepPort, r.hostAddress, r.health, r.ports.map((p) => [p.protocol, p.target, p.hostPort])]);
}

const HEALTHS: readonly Health[] = ['none', 'starting', 'healthy', 'unhealthy'];

function runSim(o: SimOptions): { tables: Map<string, EndpointTable>; alive: Set<string>; clock: ManualClock } {
  const clock = new ManualClock();
  const rng = new SeededRng(o.seed);
  const names = Array.from({ length: o.nodes }, (_, i) => `n${i}`);
  const alive = new Set(names);
  const tables = new Map<string, EndpointTable>();
  for (const name of names) {
    const table = new EndpointTable({
      nodeName: name,
      clock,
      tombstoneTtlMs: 600_000,
      replication: {
        broadcast: (payload) => {
          // memberlist retransmits a broadcast a few times to random members; model that as
          // one lossy, delayed copy per member and let push/pull repair the rest.
          for (const peer of names) {
            if (peer === name || rng.float() < o.loss) continue;
            const copy = payload.slice();
            clock.setTimer(rng.int(300), () => {
              if (alive.has(peer) && alive.has(name)) tables.get(peer)!.notifyMsg(copy);
            });
          }
        },
      },
    });
    tables.set(name, table);
  }
  const pushPull = (): void => {
    for (const a of alive) {
      const peers = [...alive].filter((p) => p !== a);
      if (peers.length === 0) continue;
      const b = peers[rng.int(peers.length)]!;
      const ta = tables.get(a)!;
      const tb = tables.get(b)!;
      const stateA = ta.localState(false);
      const stateB = tb.localState(false);
      tb.mergeRemoteState(stateA, false);
      ta.mergeRemoteState(stateB, false);
    }
  };
  let killsLeft = o.kills;
  for (let i = 0; i < o.ops; i++) {
    clock.advance(rng.int(50));
    const owners = [...alive];
    const owner = owners[rng.int(owners.length)]!;
    const t = tables.get(owner)!;
    const taskId = `${owner}-t${rng.int(6)}`;
    const op = rng.int(12);
    if (op < 5) t.upsertLocal(row(owner, taskId, { slot: rng.int(100), health: HEALTHS[rng.int(4)]! }));
    else if (op < 8) t.setHealth('web', taskId, HEALTHS[rng.int(4)]!);
    else if (op < 10) t.deleteLocal('web', taskId);
    else {
      // A task moves between nodes, as a catalog change does: the new owner starts it (it may
      // not have heard of the old owner's row yet), the old owner stops it.
      const shared = `moved-${rng.int(3)}`;
      const from = [...alive].find((n) => tables.get(n)!.get('web', shared)?.node === n);
      t.upsertLocal(row(owner, shared, { slot: rng.int(100) }));
      if (from && from !== owner) tables.get(from)!.deleteLocal('web', shared);
    }
    if (killsLeft > 0 && i % Math.floor(o.ops / (o.kills + 1)) === 0 && i > 0 && alive.size > 2) {
      killsLeft--;
      const victim = owners[rng.int(owners.length)]!;
      alive.delete(victim);
      // The gossip's failure detector tells every survivor, a little apart.
      for (const s of alive) clock.setTimer(rng.int(2000), () => tables.get(s)!.memberDead(victim));
    }
    if (i % 40 === 0) pushPull();
  }
  // Quiet period: deliveries land, failure detection completes, push/pull keeps running.
  for (let round = 0; round < 10; round++) {
    clock.advance(1000);
    pushPull();
  }
  return { tables, alive, clock };
}

/** What every replica must show: each alive owner's live rows, as it sees them itself. */
function truth(tables: Map<string, EndpointTable>, alive: Set<string>): string[] {
  return [...alive].flatMap((n) => tables.get(n)!.endpoints().filter((r) => r.node === n)).map(canon).sort();
}

describe('endpoint table simulation', () => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('seed %i: lossy broadcasts, deaths and push/pull converge', (seed) => {
    const { tables, alive, clock } = runSim({ seed, nodes: 5, loss: 0.3, ops: 400, kills: 1 });
    const expected = truth(tables, alive);
    expect(expected.length).toBeGreaterThan(0);
    expect(alive.size).toBe(4);
    for (const n of alive) {
      expect(tables.get(n)!.endpoints().map(canon).sort(), `replica ${n}`).toEqual(expected);
    }
    for (const t of tables.values()) t.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('with no loss, broadcasts alone converge (no push/pull needed)', () => {
    const { tables, alive } = runSim({ seed: 99, nodes: 4, loss: 0, ops: 200, kills: 0 });
    const expected = truth(tables, alive);
    for (const n of alive) expect(tables.get(n)!.endpoints().map(canon).sort()).toEqual(expected);
    for (const t of tables.values()) t.close();
  });

  it('a restarted owner converges everyone to its new truth through push/pull', () => {
    const clock = new ManualClock();
    const rng = new SeededRng(7);
    const nodes = ['a', 'b', 'c'];
    const tables = new Map<string, EndpointTable>();
    const make = (name: string): EndpointTable =>
      new EndpointTable({
        nodeName: name,
        clock,
        replication: {
          broadcast: (payload) => {
            for (const peer of nodes) if (peer !== name) tables.get(peer)!.notifyMsg(payload);
          },
        },
      });
    for (const n of nodes) tables.set(n, make(n));
    for (let i = 0; i < 20; i++) tables.get('a')!.upsertLocal(row('a', `t${rng.int(4)}`, { slot: i }));
    // a crashes and comes back at once, with a clock at 0 and only task t0.
    tables.get('a')!.close();
    tables.set('a', make('a'));
    tables.get('a')!.upsertLocal(row('a', 't0', { slot: 1000 }));
    // Its join push/pull with b, then a periodic one between b and c.
    tables.get('a')!.mergeRemoteState(tables.get('b')!.localState(true), true);
    tables.get('b')!.mergeRemoteState(tables.get('a')!.localState(true), true);
    tables.get('c')!.mergeRemoteState(tables.get('b')!.localState(false), false);
    for (const n of nodes) expect(tables.get(n)!.endpoints().map((r) => [r.taskId, r.slot]), n).toEqual([['t0', 1000]]);
    for (const t of tables.values()) t.close();
  });
});
