/**
 * The endpoint table: which task of which service lives where, healthy or not, replicated to
 * every node over gossip the way Swarm's NetworkDB replicates its tables (ARCHITECTURE.md,
 * "Membership and the endpoint table"):
 *
 * - each node owns the rows of its own tasks and is the only one that changes them;
 * - it versions every change with its Lamport clock (NetworkDB's `tableClock`) and broadcasts
 *   the row; every node witnesses the versions it sees, so a node's clock never runs behind
 *   what it has already been told;
 * - push/pull exchanges whole tables (NetworkDB's bulk sync) and merges them row by row,
 *   last-writer-wins by version with a deterministic tie-break (`supersedes`);
 * - a delete is a tombstone, replicated like any row and reaped after `tombstoneTtlMs`
 *   (NetworkDB's `reapEntryInterval`, 30 min), so a stale copy cannot resurrect the row;
 * - when the gossip declares a member dead (or it leaves), every row it owns is dropped at
 *   once, and further news about its rows is ignored until the gossip sees it alive again
 *   (NetworkDB deletes a failed node's entries the same way);
 * - an owner that hears a newer version of one of its own rows than it holds (its clock was
 *   reset by a restart, or the row is from a previous life) refutes it: it re-issues its own
 *   truth — or a tombstone — at a version above the one it heard, as SWIM refutes a suspicion
 *   with a higher incarnation.
 *
 * No I/O and no real time: broadcasts go out through the injected `MeshReplication`, the
 * gossip calls `notifyMsg` / `localState` / `mergeRemoteState` / `memberDead` / `memberAlive`
 * (see gossip-delegate.ts), and tombstones are reaped on the injected Clock. Bytes from peers
 * never throw out of here: malformed input is dropped and counted by reason.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { CapacityError, InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import {
  DECODE_ERRORS,
  type DecodeError,
  type EndpointRow,
  type Health,
  type VersionedRow,
  decodeMessage,
  encodeRows,
  encodeState,
  rowKey,
  rowsEqual,
  supersedes,
  validateRow,
} from './endpoint-codec.js';

/**
 * The one thing the table needs from the gossip: memberlist's user broadcast queue
 * (`Memberlist.queueBroadcast(payload, name)`). A queued broadcast with the same `name`
 * is replaced, so only the newest news about a row is retransmitted.
 */
export interface MeshReplication {
  broadcast(payload: Uint8Array, name: string): void;
}

export type TableEventType = 'added' | 'updated' | 'removed';

/**
 * Why a row was removed: `withdrawn` — its owner deleted it (a tombstone: the task stopped or is
 * draining; connections to it may finish); `member-dead` — the gossip declared its node dead (or
 * it left), so every row it owned was dropped at once: connections to it will never finish.
 */
export type RemovalReason = 'withdrawn' | 'member-dead';

/** What subscribers (balancers, the forwarding table, DNS) see: live rows appearing, changing and going. */
export interface TableEvent {
  readonly type: TableEventType;
  /** The row now (for `removed`: the row as it last was). */
  readonly row: EndpointRow;
  /** The row before, for `updated`. */
  readonly previous?: EndpointRow;
  /** For `removed`: why. */
  readonly reason?: RemovalReason;
}

export type TableListener = (event: TableEvent) => void;

export interface EndpointTableOptions {
  /** This node's gossip name: rows with this `node` are ours to change. */
  readonly nodeName: string;
  readonly clock: Clock;
  readonly replication?: MeshReplication;
  readonly logger?: Logger;
  /** Entries (rows and tombstones) kept at most. */
  readonly maxRows?: number;
  /** How long a tombstone is kept (NetworkDB: 30 minutes). */
  readonly tombstoneTtlMs?: number;
  /** Dead members remembered at most (their late news is ignored). */
  readonly maxDeadNodes?: number;
}

export const DEFAULT_MAX_ROWS = 16_384;
export const DEFAULT_TOMBSTONE_TTL_MS = 30 * 60_000;
export const DEFAULT_MAX_DEAD_NODES = 4096;

const decodeCounter = (e: DecodeError): `mesh_table_rx_dropped_${string}` => `mesh_table_rx_dropped_${e.replaceAll('-', '_')}`;

export const TABLE_COUNTERS = [
  'mesh_table_rx_messages',
  'mesh_table_rx_rows',
  /** A row no newer than ours. */
  'mesh_table_rx_stale',
  /** A row of a member the gossip declared dead. */
  'mesh_table_rx_dropped_dead_owner',
  /** A new row while the table is full of live rows. */
  'mesh_table_rx_dropped_full',
  ...DECODE_ERRORS.map(decodeCounter),
  'mesh_table_tx_broadcasts',
  'mesh_table_pushpull_sent',
  'mesh_table_pushpull_merged',
  /** We re-issued one of our rows because a peer held a newer version of it. */
  'mesh_table_refutations',
  'mesh_table_tombstones_reaped',
  /** Tombstones evicted early to make room. */
  'mesh_table_tombstones_evicted',
  /** Rows dropped because their owner died or left. */
  'mesh_table_rows_dropped_dead_member',
] as const;

export type TableCounter = (typeof TABLE_COUNTERS)[number];

interface Entry {
  v: VersionedRow;
  /** Local clock time at which a tombstone may be forgotten. */
  reapAt: number;
}

export class EndpointTable {
  readonly nodeName: string;
  readonly counters = new Counters<string>(TABLE_COUNTERS);
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #maxRows: number;
  readonly #tombstoneTtlMs: number;
  readonly #maxDeadNodes: number;
  #replication: MeshReplication | undefined;
  readonly #entries = new Map<string, Entry>();
  /** Live rows by service: the router asks for one service's rows on every connection. */
  readonly #live = new Map<string, Map<string, EndpointRow>>();
  readonly #dead = new Map<string, number>();
  readonly #listeners = new Set<TableListener>();
  #ltime = 0;
  #reapTimer: Timer | undefined;
  #closed = false;

  constructor(options: EndpointTableOptions) {
    if (options.nodeName === '') throw new InvalidArgumentError('An endpoint table needs its node name');
    this.nodeName = options.nodeName;
    this.#clock = options.clock;
    this.#log = (options.logger ?? silentLogger).child({ component: 'endpoint-table' });
    this.#replication = options.replication;
    this.#maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
    this.#tombstoneTtlMs = options.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS;
    this.#maxDeadNodes = options.maxDeadNodes ?? DEFAULT_MAX_DEAD_NODES;
  }

  /** Sets where broadcasts go (the gossip is usually created after the table, with the table as its delegate). */
  setReplication(replication: MeshReplication): void {
    this.#replication = replication;
  }

  /** This node's Lamport time. */
  get ltime(): number {
    return this.#ltime;
  }

  // ---- the owner's operations -------------------------------------------------------------

  /**
   * Adds or changes one of our rows and broadcasts it. Throws InvalidArgumentError when the row
   * is not ours or cannot be encoded, CapacityError when the table is full.
   */
  upsertLocal(row: EndpointRow): void {
    if (row.node !== this.nodeName) throw new InvalidArgumentError(`Row ${row.service}/${row.taskId} belongs to ${row.node}, not ${this.nodeName}`);
    const problem = validateRow(row);
    if (problem) throw new InvalidArgumentError(`Invalid endpoint row ${row.service}/${row.taskId}: ${problem}`);
    const key = rowKey(row.service, row.taskId);
    const current = this.#entries.get(key);
    if (current && !current.v.deleted && current.v.row.node === this.nodeName && rowsEqual(current.v.row, row)) return;
    if (!current && !this.#makeRoom()) throw new CapacityError(`Endpoint table full (${this.#maxRows} rows): cannot add ${row.service}/${row.taskId}`);
    this.#publish(key, { row, version: this.#tick(), deleted: false });
  }

  /** Changes the health of one of our rows. Returns false when we own no such live row. */
  setHealth(service: string, taskId: string, health: Health): boolean {
    const e = this.#entries.get(rowKey(service, taskId));
    if (!e || e.v.deleted || e.v.row.node !== this.nodeName) return false;
    if (e.v.row.health !== health) this.upsertLocal({ ...e.v.row, health });
    return true;
  }

  /** Deletes one of our rows (a tombstone, broadcast). Returns false when we own no such live row. */
  deleteLocal(service: string, taskId: string): boolean {
    const key = rowKey(service, taskId);
    const e = this.#entries.get(key);
    if (!e || e.v.deleted || e.v.row.node !== this.nodeName) return false;
    this.#publish(key, { row: e.v.row, version: this.#tick(), deleted: true });
    return true;
  }

  /**
   * Broadcasts every row we own again, at its current version. For when peers may have dropped
   * them: after we refuted a claim that we were dead, say. Costs one broadcast per row.
   */
  rebroadcastLocal(): void {
    for (const [key, e] of this.#entries) if (e.v.row.node === this.nodeName) this.#broadcast(key, e.v);
  }

  // ---- queries -------------------------------------------------------------------------------

  get(service: string, taskId: string): EndpointRow | undefined {
    const e = this.#entries.get(rowKey(service, taskId));
    return e && !e.v.deleted ? e.v.row : undefined;
  }

  /** Live rows, of one service or of all; in no particular order. */
  endpoints(service?: string): EndpointRow[] {
    if (service !== undefined) return [...(this.#live.get(service)?.values() ?? [])];
    const out: EndpointRow[] = [];
    for (const rows of this.#live.values()) out.push(...rows.values());
    return out;
  }

  /** Every entry with its version, tombstones included (for tests and debugging). */
  entries(): VersionedRow[] {
    return [...this.#entries.values()].map((e) => e.v);
  }

  /** Live rows. */
  get size(): number {
    let n = 0;
    for (const rows of this.#live.values()) n += rows.size;
    return n;
  }

  /** Calls `listener` for every change of a live row from now on. Returns the unsubscribe function. */
  subscribe(listener: TableListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ---- what the gossip calls -----------------------------------------------------------------

  /** A broadcast (or any user message) arrived. Never throws. */
  notifyMsg(payload: Uint8Array): void {
    this.counters.inc('mesh_table_rx_messages');
    const decoded = decodeMessage(payload, this.#maxRows);
    if (!decoded.ok) {
      this.counters.inc(decodeCounter(decoded.error));
      return;
    }
    for (const r of decoded.value.rows) this.#merge(r);
  }

  /** Our whole table for a push/pull: every row and tombstone, and our Lamport time. */
  localState(_join: boolean): Uint8Array {
    this.counters.inc('mesh_table_pushpull_sent');
    return encodeState(this.#ltime, [...this.#entries.values()].map((e) => e.v));
  }

  /** A peer's whole table from a push/pull. Never throws; a malformed state is refused whole. */
  mergeRemoteState(state: Uint8Array, _join: boolean): void {
    const decoded = decodeMessage(state, this.#maxRows);
    if (!decoded.ok) {
      this.counters.inc(decodeCounter(decoded.error));
      return;
    }
    if (decoded.value.kind === 'state') this.#witness(decoded.value.ltime);
    for (const r of decoded.value.rows) this.#merge(r);
    this.counters.inc('mesh_table_pushpull_merged');
  }

  /**
   * The gossip declared `node` dead, or it left: drop every row it owns now, and ignore news
   * about its rows until memberAlive(node).
   */
  memberDead(node: string): void {
    if (node === this.nodeName) return;
    this.#dead.delete(node);
    this.#dead.set(node, this.#clock.now());
    while (this.#dead.size > this.#maxDeadNodes) this.#dead.delete(this.#dead.keys().next().value!);
    let dropped = 0;
    for (const [key, e] of [...this.#entries]) {
      if (e.v.row.node !== node) continue;
      this.#forget(key);
      if (!e.v.deleted) {
        dropped++;
        this.#emit({ type: 'removed', row: e.v.row, reason: 'member-dead' });
      }
    }
    this.counters.inc('mesh_table_rows_dropped_dead_member', dropped);
    if (dropped > 0) this.#log.info({ node, rows: dropped }, 'Dropped the rows of a dead member');
  }

  /** The gossip sees `node` alive (joined, or back): accept its rows again. */
  memberAlive(node: string): void {
    this.#dead.delete(node);
  }

  /** Stops the reap timer and forgets subscribers. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#reapTimer?.cancel();
    this.#reapTimer = undefined;
    this.#listeners.clear();
  }

  // ---- internals -----------------------------------------------------------------------------

  #tick(): number {
    this.#ltime += 1;
    return this.#ltime;
  }

  #witness(version: number): void {
    if (version > this.#ltime) this.#ltime = version;
  }

  /** Stores one of our own new versions, tells subscribers and broadcasts it. */
  #publish(key: string, v: VersionedRow): void {
    const before = this.#entries.get(key);
    this.#store(key, v);
    this.#notifyChange(before?.v, v);
    this.#broadcast(key, v);
  }

  #broadcast(key: string, v: VersionedRow): void {
    if (!this.#replication) return;
    this.counters.inc('mesh_table_tx_broadcasts');
    this.#replication.broadcast(encodeRows([v]), `mesh:${key}`);
  }

  #store(key: string, v: VersionedRow): void {
    const reapAt = v.deleted ? this.#clock.now() + this.#tombstoneTtlMs : Infinity;
    this.#entries.set(key, { v, reapAt });
    this.#index(key, v);
    if (v.deleted) this.#scheduleReap();
  }

  #index(key: string, v: VersionedRow | undefined, service = v?.row.service): void {
    if (service === undefined) return;
    let rows = this.#live.get(service);
    if (v && !v.deleted) {
      if (!rows) this.#live.set(service, (rows = new Map()));
      rows.set(key, v.row);
    } else if (rows) {
      rows.delete(key);
      if (rows.size === 0) this.#live.delete(service);
    }
  }

  #forget(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#entries.delete(key);
    this.#index(key, undefined, e.v.row.service);
  }

  #merge(incoming: VersionedRow): void {
    this.counters.inc('mesh_table_rx_rows');
    const row = incoming.row;
    const key = rowKey(row.service, row.taskId);
    this.#witness(incoming.version);
    if (row.node !== this.nodeName && this.#dead.has(row.node)) {
      this.counters.inc('mesh_table_rx_dropped_dead_owner');
      return;
    }
    const current = this.#entries.get(key);
    if (row.node === this.nodeName) {
      this.#mergeAboutSelf(key, incoming, current);
      return;
    }
    if (current && !supersedes(incoming, current.v)) {
      this.counters.inc('mesh_table_rx_stale');
      return;
    }
    if (current && incoming.deleted && !current.v.deleted && current.v.row.node === this.nodeName) {
      // Another node deleted its old claim on a task key we now run (a task moved here): its
      // delete is about its row, not ours. Re-issue ours above it. Only deletes are refuted
      // this way: two live claims on one key are settled by last-writer-wins, or two nodes
      // running the same task id by mistake would refute each other forever.
      this.counters.inc('mesh_table_refutations');
      this.#publish(key, { row: current.v.row, version: this.#tick(), deleted: false });
      return;
    }
    // A tombstone we have never seen the row of needs no room unless there is some: it only
    // guards against a stale copy arriving later.
    if (!current && !this.#makeRoom()) {
      this.counters.inc('mesh_table_rx_dropped_full');
      return;
    }
    this.#store(key, incoming);
    this.#notifyChange(current?.v, incoming);
  }

  /** A peer told us about a row that says it is ours: our own word is the truth; refute anything newer. */
  #mergeAboutSelf(key: string, incoming: VersionedRow, current: Entry | undefined): void {
    const ours = current && current.v.row.node === this.nodeName ? current.v : undefined;
    if (ours && incoming.version < ours.version) {
      this.counters.inc('mesh_table_rx_stale');
      return;
    }
    if (ours && incoming.version === ours.version && incoming.deleted === ours.deleted && rowsEqual(incoming.row, ours.row)) {
      this.counters.inc('mesh_table_rx_stale');
      return;
    }
    if (!ours && current && !supersedes(incoming, current.v)) {
      // An old claim of ours on a key another node holds a newer row for: nothing to refute.
      this.counters.inc('mesh_table_rx_stale');
      return;
    }
    if (!ours && incoming.deleted) {
      // A tombstone of ours from a previous life: harmless, keep it as a guard like any other.
      if (!current && !this.#makeRoom()) return;
      this.#store(key, incoming);
      this.#notifyChange(current?.v, incoming);
      return;
    }
    // Either a newer version of a row we hold (our clock went backwards: a restart), or a live
    // row we do not have (a previous life's task). Re-issue our truth above what we heard.
    this.counters.inc('mesh_table_refutations');
    this.#log.debug({ service: incoming.row.service, task: incoming.row.taskId, heard: incoming.version }, 'Refuting a newer version of our own row');
    const truth: VersionedRow = ours ? { row: ours.row, version: this.#tick(), deleted: ours.deleted } : { row: incoming.row, version: this.#tick(), deleted: true };
    this.#publish(key, truth);
  }

  /** Makes room for one new entry: true when there is (evicting the oldest tombstone if it must). */
  #makeRoom(): boolean {
    if (this.#entries.size < this.#maxRows) return true;
    let oldestKey: string | undefined;
    let oldestAt = Infinity;
    for (const [key, e] of this.#entries) {
      if (e.v.deleted && e.reapAt < oldestAt) {
        oldestAt = e.reapAt;
        oldestKey = key;
      }
    }
    if (oldestKey === undefined) return false;
    this.#forget(oldestKey);
    this.counters.inc('mesh_table_tombstones_evicted');
    return true;
  }

  #notifyChange(before: VersionedRow | undefined, after: VersionedRow): void {
    const wasLive = before !== undefined && !before.deleted;
    if (after.deleted) {
      if (wasLive) this.#emit({ type: 'removed', row: before.row, reason: 'withdrawn' });
    } else if (!wasLive) {
      this.#emit({ type: 'added', row: after.row });
    } else if (!rowsEqual(before.row, after.row)) {
      this.#emit({ type: 'updated', row: after.row, previous: before.row });
    }
  }

  #emit(event: TableEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch (error) {
        // A subscriber's bug must not stop replication or the other subscribers.
        this.#log.error({ err: error }, 'Endpoint table subscriber threw');
      }
    }
  }

  #scheduleReap(): void {
    if (this.#reapTimer || this.#closed) return;
    let next = Infinity;
    for (const e of this.#entries.values()) if (e.reapAt < next) next = e.reapAt;
    if (next === Infinity) return;
    this.#reapTimer = this.#clock.setTimer(next - this.#clock.now(), () => {
      this.#reapTimer = undefined;
      const now = this.#clock.now();
      for (const [key, e] of [...this.#entries]) {
        if (e.v.deleted && e.reapAt <= now) {
          this.#forget(key);
          this.counters.inc('mesh_table_tombstones_reaped');
        }
      }
      this.#scheduleReap();
    });
  }
}
