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
  /**
   * Entries by transmit count (memberlist's btree, ML queue.go:13-61, as sorted tiers): each tier
   * sorted by length descending, then id descending, so the largest message that fits a byte
   * budget is found by binary search.
   */
  readonly #tiers = new Map<number, Entry[]>();
  readonly #byName = new Map<string, Entry>();
  #length = 0;
  #nextId = 1;
  #pruned = 0;

  constructor(options: BroadcastQueueOptions) {
    this.#retransmitMult = options.retransmitMult;
    this.#numNodes = options.numNodes;
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_BROADCASTS;
  }

  /** Messages waiting. */
  get length(): number {
    return this.#length;
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
    this.#insert({ transmits: 0, id: this.#nextId++, b });
    if (this.#length > this.#maxQueued) this.prune(this.#maxQueued);
  }

  /**
   * Takes messages for one packet: at most `limit` bytes counting `overhead` per message
   * (ML queue.go:288-380). Each one taken counts a transmission; one that reaches the limit
   * leaves the queue and its `finished` runs. Returns the messages in the order chosen, at most
   * `maxMessages` of them (a compound holds at most 127 parts, spec §3).
   */
  getBroadcasts(overhead: number, limit: number, maxMessages = Infinity): Uint8Array[] {
    if (this.#length === 0) return [];
    const transmitLimit = retransmitLimit(this.#retransmitMult, this.#numNodes());
    const out: Uint8Array[] = [];
    const taken: Entry[] = [];
    let used = 0;
    // Fresher tiers first; within a tier the largest message that still fits, then the newest.
    for (const transmits of [...this.#tiers.keys()].sort((a, b) => a - b)) {
      const tier = this.#tiers.get(transmits)!;
      for (;;) {
        const free = limit - used - overhead;
        if (free <= 0 || out.length >= maxMessages) break;
        const i = firstFitting(tier, free);
        if (i >= tier.length) break;
        const [entry] = tier.splice(i, 1);
        used += overhead + entry!.b.message.length;
        out.push(entry!.b.message);
        taken.push(entry!);
      }
      if (tier.length === 0) this.#tiers.delete(transmits);
    }
    // Re-tier after the walk, so a message is never taken twice in one call (ML queue.go:366-377).
    for (const entry of taken) {
      this.#length--;
      entry.transmits++;
      if (entry.transmits >= transmitLimit) {
        if (entry.b.name !== undefined && this.#byName.get(entry.b.name) === entry) this.#byName.delete(entry.b.name);
        entry.b.finished?.();
      } else {
        this.#insert(entry);
      }
    }
    return out;
  }

  /** Keeps the `maxRetain` freshest messages, dropping the rest (ML queue.go:404-420). */
  prune(maxRetain: number): void {
    const keep = Math.max(0, maxRetain);
    for (const transmits of [...this.#tiers.keys()].sort((a, b) => b - a)) {
      const tier = this.#tiers.get(transmits)!;
      while (this.#length > keep && tier.length > 0) {
        // The stalest: most transmitted, then smallest, then oldest (the end of the tier).
        const entry = tier.pop()!;
        this.#length--;
        if (entry.b.name !== undefined && this.#byName.get(entry.b.name) === entry) this.#byName.delete(entry.b.name);
        this.#pruned++;
        entry.b.finished?.();
      }
      if (tier.length === 0) this.#tiers.delete(transmits);
      if (this.#length <= keep) return;
    }
  }

  /** Drops every message, running their `finished`. */
  reset(): void {
    const entries = [...this.#tiers.values()].flat();
    this.#tiers.clear();
    this.#byName.clear();
    this.#length = 0;
    for (const entry of entries) entry.b.finished?.();
  }

  #insert(entry: Entry): void {
    let tier = this.#tiers.get(entry.transmits);
    if (!tier) {
      tier = [];
      this.#tiers.set(entry.transmits, tier);
    }
    let lo = 0;
    let hi = tier.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(tier[mid]!, entry)) lo = mid + 1;
      else hi = mid;
    }
    tier.splice(lo, 0, entry);
    this.#length++;
    if (entry.b.name !== undefined) this.#byName.set(entry.b.name, entry);
  }

  #remove(entry: Entry): void {
    const tier = this.#tiers.get(entry.transmits);
    const i = tier ? tier.indexOf(entry) : -1;
    if (tier && i >= 0) {
      tier.splice(i, 1);
      this.#length--;
      if (tier.length === 0) this.#tiers.delete(entry.transmits);
    }
    if (entry.b.name !== undefined && this.#byName.get(entry.b.name) === entry) this.#byName.delete(entry.b.name);
  }
}

/** Order within a tier (ML queue.go:44-61): longer first, then newer. */
function before(a: Entry, b: Entry): boolean {
  const la = a.b.message.length;
  const lb = b.b.message.length;
  return la !== lb ? la > lb : a.id > b.id;
}

/** Index of the first (largest, newest) entry of `tier` no longer than `free` bytes. */
function firstFitting(tier: readonly Entry[], free: number): number {
  let lo = 0;
  let hi = tier.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tier[mid]!.b.message.length > free) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
