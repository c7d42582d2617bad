/**
 * memberlist's TransmitLimitedQueue (ML queue.go): messages waiting to be piggybacked on
 * gossip and probe packets, each sent at most `RetransmitMult × ceil(log10(N+1))` times. The
 * least-transmitted message goes first (newest information spreads fastest); within a tier
 * the largest that still fits goes first, then the newest. A named broadcast replaces any
 * queued one of the same name: memberlist names its own messages after the node they are
 * about, so `alive{X, inc 3}` supersedes a queued `suspect{X, inc 2}` (ML broadcast.go:3-13).
 *
 * Bounded (CONVENTIONS.md §7): past `maxQueued` entries the most-transmitted, smallest, oldest
 * ones are dropped first (memberlist's `Prune`, ML queue.go:404-420), and counted.
 */
import { retransmitLimit } from './formulas.js';

export interface Broadcast {
  /** The complete message bytes (type byte included). Owned by the queue once queued. */
  readonly message: Uint8Array;
  /** When set, queueing this broadcast invalidates a queued one with the same name. */
  readonly name?: string;
  /** Called once when the message leaves the queue: transmit limit reached, invalidated or pruned. */
  readonly finished?: () => void;
}

interface Entry {
  transmits: number;
  readonly id: number;
  readonly b: Broadcast;
}

export interface BroadcastQueueOptions {
  readonly retransmitMult: number;
  /** The current cluster size estimate (memberlist's `NumNodes`). */
  readonly numNodes: () => number;
  /** Entries kept at most; older ones are pruned. Default 4096 (serf's MaxQueueDepth). */
  readonly maxQueued?: number;
}

export const DEFAULT_MAX_QUEUED_BROADCASTS = 4096;

export class BroadcastQueue {
  readonly #retransmitMult: number;
  readonly #numNodes: () => number;
  readonly #maxQueued: number;
  #entries: Entry[] = [];
  readonly #byName = new Map<string, Entry>();
  #nextId = 1;
  #pruned = 0;

  constructor(options: BroadcastQueueOptions) {
    this.#retransmitMult = options.retransmitMult;
    this.#numNodes = options.numNodes;
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_BROADCASTS;
  }

  /** Messages waiting. */
  get length(): number {
    return this.#entries.length;
  }

  /** Messages dropped because the queue was over its bound. */
  get pruned(): number {
    return this.#pruned;
  }

  /** Queues `b`, replacing a queued broadcast of the same name. */
  queue(b: Broadcast): void {
    if (b.name !== undefined) {
      const old = this.#byName.get(b.name);
      if (old) {
        this.#remove(old);
        old.b.finished?.();
      }
    }
    const entry: Entry = { transmits: 0, id: this.#nextId++, b };
    this.#entries.push(entry);
    if (b.name !== undefined) this.#byName.set(b.name, entry);
    if (this.#entries.length > this.#maxQueued) this.prune(this.#maxQueued);
  }

  /**
   * Takes messages for one packet: at most `limit` bytes counting `overhead` per message
   * (ML queue.go:288-380). Each one taken counts a transmission; one that reaches the limit
   * leaves the queue and its `finished` runs. Returns the messages in the order chosen, at most
   * `maxMessages` of them (a compound holds at most 127 parts, spec §3).
   */
  getBroadcasts(overhead: number, limit: number, maxMessages = Infinity): Uint8Array[] {
    if (this.#entries.length === 0) return [];
    const transmitLimit = retransmitLimit(this.#retransmitMult, this.#numNodes());
    const ordered = [...this.#entries].sort(compareEntries);
    const out: Uint8Array[] = [];
    let used = 0;
    const done: Entry[] = [];
    for (const entry of ordered) {
      if (out.length >= maxMessages) break;
      const free = limit - used - overhead;
      if (free <= 0) break;
      if (entry.b.message.length > free) continue;
      used += overhead + entry.b.message.length;
      out.push(entry.b.message);
      entry.transmits++;
      if (entry.transmits >= transmitLimit) done.push(entry);
    }
    for (const entry of done) {
      this.#remove(entry);
      entry.b.finished?.();
    }
    return out;
  }

  /** Keeps the `maxRetain` freshest messages, dropping the rest (ML queue.go:404-420). */
  prune(maxRetain: number): void {
    if (this.#entries.length <= maxRetain) return;
    const ordered = [...this.#entries].sort(compareEntries);
    for (const entry of ordered.slice(Math.max(0, maxRetain))) {
      this.#remove(entry);
      this.#pruned++;
      entry.b.finished?.();
    }
  }

  /** Drops every message, running their `finished`. */
  reset(): void {
    const entries = this.#entries;
    this.#entries = [];
    this.#byName.clear();
    for (const entry of entries) entry.b.finished?.();
  }

  #remove(entry: Entry): void {
    const i = this.#entries.indexOf(entry);
    if (i >= 0) this.#entries.splice(i, 1);
    if (entry.b.name !== undefined && this.#byName.get(entry.b.name) === entry) this.#byName.delete(entry.b.name);
  }
}

/** memberlist's btree order (ML queue.go:44-61): fewer transmits, then longer, then newer. */
function compareEntries(a: Entry, b: Entry): number {
  if (a.transmits !== b.transmits) return a.transmits - b.transmits;
  if (a.b.message.length !== b.b.message.length) return b.b.message.length - a.b.message.length;
  return b.id - a.id;
}
