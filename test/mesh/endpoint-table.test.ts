import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { CapacityError, InvalidArgumentError } from '../../src/lib/errors.js';
import { decodeMessage, encodeRows, encodeState } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable, type TableEvent } from '../../src/mesh/endpoint-table.js';
import { meshGossipDelegate } from '../../src/mesh/gossip-delegate.js';
import type { Member } from '../../src/gossip/memberlist.js';
import { row } from './table-fixtures.js';

interface Harness {
  table: EndpointTable;
  sent: { payload: Uint8Array; name: string }[];
  events: TableEvent[];
}

function make(nodeName: string, clock = new ManualClock(), options: { maxRows?: number; tombstoneTtlMs?: number } = {}): Harness {
  const sent: Harness['sent'] = [];
  const events: TableEvent[] = [];
  const table = new EndpointTable({ nodeName, clock, replication: { broadcast: (payload, name) => sent.push({ payload, name }) }, ...options });
  table.subscribe((e) => events.push(e));
  return { table, sent, events };
}

function member(name: string): Member {
  return { name, address: { host: '127.0.0.9', port: 7946 }, addr: new Uint8Array(4), meta: new Uint8Array(0), incarnation: 1, state: 'dead', stateChangeAt: 0, vsn: [] };
}

describe('EndpointTable, the owner', () => {
  it('versions each change with its Lamport clock and broadcasts it under a per-row name', () => {
    const { table, sent, events } = make('n1');
    table.upsertLocal(row('n1', 't1'));
    table.setHealth('web', 't1', 'unhealthy');
    table.deleteLocal('web', 't1');
    const decoded = sent.map((s) => decodeMessage(s.payload, 10));
    expect(decoded.map((d) => (d.ok ? d.value.rows.map((r) => [r.version, r.deleted, r.row.health]) : d.error))).toEqual([
      [[1, false, 'healthy']],
      [[2, false, 'unhealthy']],
      [[3, true, 'unhealthy']],
    ]);
    expect(new Set(sent.map((s) => s.name)).size).toBe(1);
    expect(events.map((e) => e.type)).toEqual(['added', 'updated', 'removed']);
    expect(events[2]!.reason).toBe('withdrawn');
    expect(table.endpoints()).toEqual([]);
  });

  it('does not broadcast a change that changes nothing', () => {
    const { table, sent } = make('n1');
    table.upsertLocal(row('n1', 't1'));
    table.upsertLocal(row('n1', 't1'));
    table.setHealth('web', 't1', 'healthy');
    expect(sent).toHaveLength(1);
  });

  it('refuses rows of other nodes, invalid rows, and rows beyond its bound', () => {
    const { table } = make('n1', new ManualClock(), { maxRows: 1 });
    expect(() => table.upsertLocal(row('n2', 't1'))).toThrow(InvalidArgumentError);
    expect(() => table.upsertLocal(row('n1', ''))).toThrow(InvalidArgumentError);
    table.upsertLocal(row('n1', 't1'));
    expect(() => table.upsertLocal(row('n1', 't2'))).toThrow(CapacityError);
    expect(table.setHealth('web', 'nope', 'healthy')).toBe(false);
    expect(table.deleteLocal('web', 'nope')).toBe(false);
  });
});

describe('EndpointTable, replicas', () => {
  it('applies a newer row, ignores an older one, and witnesses the versions it sees', () => {
    const a = make('n1');
    const b = make('n2');
    a.table.upsertLocal(row('n1', 't1'));
    a.table.setHealth('web', 't1', 'unhealthy');
    b.table.notifyMsg(a.sent[1]!.payload);
    b.table.notifyMsg(a.sent[0]!.payload); // late, stale
    expect(b.table.get('web', 't1')?.health).toBe('unhealthy');
    expect(b.table.counters.get('mesh_table_rx_stale')).toBe(1);
    expect(b.table.ltime).toBe(2);
    b.table.upsertLocal(row('n2', 'u1'));
    expect(b.table.entries().find((v) => v.row.taskId === 'u1')?.version).toBe(3);
  });

  it('keeps a tombstone that beats a stale copy, then reaps it after its time', () => {
    const clock = new ManualClock();
    const a = make('n1', clock);
    const b = make('n2', clock, { tombstoneTtlMs: 60_000 });
    a.table.upsertLocal(row('n1', 't1'));
    a.table.deleteLocal('web', 't1');
    b.table.notifyMsg(a.sent[1]!.payload);
    b.table.notifyMsg(a.sent[0]!.payload);
    expect(b.table.get('web', 't1')).toBeUndefined();
    expect(b.events).toEqual([]);
    clock.advance(60_000);
    expect(b.table.entries()).toEqual([]);
    expect(b.table.counters.get('mesh_table_tombstones_reaped')).toBe(1);
    expect(clock.pendingTimers).toBe(1); // a's own tombstone, 30 min by default
    a.table.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('drops every row of a dead member at once and ignores its late news until it is alive again', () => {
    const a = make('n1');
    const b = make('n2');
    a.table.upsertLocal(row('n1', 't1'));
    a.table.upsertLocal(row('n1', 't2'));
    a.table.upsertLocal(row('n1', 't3', { health: 'unhealthy' }));
    for (const s of a.sent.slice(0, 2)) b.table.notifyMsg(s.payload);
    b.table.upsertLocal(row('n2', 'u1'));
    const delegate = meshGossipDelegate(b.table);
    delegate.notifyEvent({ type: 'dead', member: member('n1') });
    expect(b.table.endpoints().map((r) => r.taskId)).toEqual(['u1']);
    expect(b.events.filter((e) => e.type === 'removed').map((e) => e.row.taskId).sort()).toEqual(['t1', 't2']);
    // The reason tells routers to reset connections to it (a withdrawn row drains instead).
    expect(new Set(b.events.filter((e) => e.type === 'removed').map((e) => e.reason))).toEqual(new Set(['member-dead']));
    b.table.notifyMsg(a.sent[2]!.payload);
    expect(b.table.get('web', 't3')).toBeUndefined();
    expect(b.table.counters.get('mesh_table_rx_dropped_dead_owner')).toBe(1);
    delegate.notifyEvent({ type: 'join', member: member('n1') });
    delegate.mergeRemoteState(a.table.localState(false), false);
    expect(b.table.endpoints().map((r) => r.taskId).sort()).toEqual(['t1', 't2', 't3', 'u1']);
  });

  it('push/pull in both directions makes two tables equal', () => {
    const a = make('n1');
    const b = make('n2');
    a.table.upsertLocal(row('n1', 't1'));
    a.table.upsertLocal(row('n1', 't2'));
    a.table.deleteLocal('web', 't2');
    b.table.upsertLocal(row('n2', 'u1'));
    b.table.mergeRemoteState(a.table.localState(false), false);
    a.table.mergeRemoteState(b.table.localState(false), false);
    const sorted = (t: EndpointTable): unknown[] => t.entries().sort((x, y) => x.row.taskId.localeCompare(y.row.taskId));
    expect(sorted(a.table)).toEqual(sorted(b.table));
    expect(a.table.endpoints().map((r) => r.taskId).sort()).toEqual(['t1', 'u1']);
  });

  it('counts hostile input by reason and changes nothing', () => {
    const { table } = make('n1');
    table.notifyMsg(new Uint8Array([0x02, 0x81]));
    table.notifyMsg(new Uint8Array([0x6d, 0x01, 0x01, 0x01, 0x00]));
    table.mergeRemoteState(new Uint8Array([0x6d, 0x09, 0x02]), true);
    expect(table.counters.snapshot()).toMatchObject({
      mesh_table_rx_dropped_bad_magic: 1,
      mesh_table_rx_dropped_truncated: 1,
      mesh_table_rx_dropped_unsupported_version: 1,
    });
    expect(table.entries()).toEqual([]);
  });

  it('refuses new remote rows beyond its bound, evicting the oldest tombstone first', () => {
    const b = make('n2', new ManualClock(), { maxRows: 2 });
    b.table.notifyMsg(encodeRows([{ row: row('n1', 't1'), version: 1, deleted: true }]));
    b.table.notifyMsg(encodeRows([{ row: row('n1', 't2'), version: 2, deleted: false }]));
    b.table.notifyMsg(encodeRows([{ row: row('n1', 't3'), version: 3, deleted: false }]));
    b.table.notifyMsg(encodeRows([{ row: row('n1', 't4'), version: 4, deleted: false }]));
    expect(b.table.endpoints().map((r) => r.taskId).sort()).toEqual(['t2', 't3']);
    expect(b.table.counters.get('mesh_table_tombstones_evicted')).toBe(1);
    expect(b.table.counters.get('mesh_table_rx_dropped_full')).toBe(1);
  });
});

describe('EndpointTable, refutation', () => {
  it('an owner restarted with a fresh clock re-issues its rows above the versions peers hold', () => {
    const a1 = make('n1');
    const b = make('n2');
    for (let i = 0; i < 5; i++) a1.table.upsertLocal(row('n1', 't1', { slot: i + 1 }));
    a1.table.upsertLocal(row('n1', 'gone'));
    for (const s of a1.sent) b.table.notifyMsg(s.payload);
    // n1 restarts before the gossip noticed: ltime 0, t1 is back with new content, 'gone' is not.
    const a2 = make('n1');
    a2.table.upsertLocal(row('n1', 't1', { slot: 9 }));
    b.table.notifyMsg(a2.sent[0]!.payload); // stale to b: version 1 < 5
    expect(b.table.get('web', 't1')?.slot).toBe(5);
    // The join push/pull tells n1 what b holds; n1 refutes both rows.
    a2.table.mergeRemoteState(b.table.localState(true), true);
    expect(a2.table.counters.get('mesh_table_refutations')).toBe(2);
    for (const s of a2.sent.slice(1)) b.table.notifyMsg(s.payload);
    expect(b.table.endpoints().map((r) => [r.taskId, r.slot])).toEqual([['t1', 9]]);
    expect(a2.table.endpoints().map((r) => [r.taskId, r.slot])).toEqual([['t1', 9]]);
  });
});

describe('a task that moves to another node', () => {
  it('keeps the new owner’s row when the old owner deletes its own, in any order of arrival', () => {
    for (const order of [0, 1]) {
      const a = make('a');
      const b = make('b');
      const c = make('c');
      a.table.upsertLocal(row('a', 'web.1'));
      for (const t of [b, c]) t.table.notifyMsg(a.sent[0]!.payload);
      // The catalog moves web.1 to b: b starts it, a stops it (a's clock is ahead of b's).
      for (let i = 0; i < 5; i++) a.table.upsertLocal(row('a', 'other', { slot: i }));
      b.table.upsertLocal(row('b', 'web.1'));
      a.table.deleteLocal('web', 'web.1');
      const fromA = a.sent.at(-1)!.payload;
      const fromB = b.sent.at(-1)!.payload;
      const toC = order === 0 ? [fromA, fromB] : [fromB, fromA];
      for (const p of toC) c.table.notifyMsg(p);
      b.table.notifyMsg(fromA);
      // b refuted a's delete; everyone hears it.
      for (const s of b.sent.slice(1)) {
        a.table.notifyMsg(s.payload);
        c.table.notifyMsg(s.payload);
      }
      for (const t of [a, b, c]) expect(t.table.get('web', 'web.1')?.node, `order ${order}`).toBe('b');
    }
  });
});

describe('encodeState of a big table', () => {
  it('fits every row', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ row: row('n1', `t${i}`), version: i + 1, deleted: false }));
    const d = decodeMessage(encodeState(1000, rows), 1000);
    expect(d.ok && d.value.rows.length).toBe(1000);
  });
});
