/**
 * Encoded local answers, kept for a short while so a repeated question costs a map lookup, a
 * copy and an ID patch instead of a records lookup and a response build (issue 6 benchmark).
 *
 * Correctness bounds, both enforced on every hit:
 * - the records' generation (`DnsRecords.version()`, when the records have one) must equal
 *   the one the answer was built under: any change of services, tasks or health is seen by
 *   the next query;
 * - the entry is younger than `ttlMs` (default 250 ms, well under the second within which an
 *   answer must follow a task dying or scaling), for records without a generation.
 * The key is everything that shapes the bytes: the question as sent with ASCII case folded
 * (name, type, class), the client's view and transport, the response size budget, whether the
 * query carried EDNS and its DO bit, the query flags echoed (RD, CD), and the client's address
 * (DnsRecords may scope answers by client). Never the ID: the resolver writes the asker's
 * into a copy on every hit, and the question as the asker spelled it.
 *
 * Bounded: at `maxEntries` the oldest entry is evicted (insertion order; entries are
 * replaced, never refreshed in place, so that is also least recently built).
 */
import type { Clock } from '../lib/clock.js';

export interface AnswerCacheOptions {
  readonly clock: Clock;
  /** Milliseconds an answer may be reused. Default 250. */
  readonly ttlMs?: number;
  /** Entries kept at most. Default 4096. */
  readonly maxEntries?: number;
}

/** What the resolver needs back on a hit besides the bytes: how to count it and reshuffle it. */
export interface CachedAnswer {
  /** The whole response; byte 0–1 (ID) is overwritten on every take(). Owned by the cache. */
  readonly bytes: Uint8Array;
  readonly rcode: number;
  readonly answers: number;
  /** Answer RRs to reshuffle on each hit: > 1 only for answers of fixed-size A records. */
  readonly shuffleA: number;
  /** Offset of the first answer RR (the end of the question). */
  readonly answerOffset: number;
}

interface Entry extends CachedAnswer {
  readonly generation: number;
  readonly expires: number;
}

export const DEFAULT_ANSWER_CACHE_TTL_MS = 250;
export const DEFAULT_ANSWER_CACHE_ENTRIES = 4096;

export class AnswerCache {
  readonly #clock: Clock;
  readonly #ttl: number;
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();
  #hits = 0;
  #misses = 0;

  constructor(options: AnswerCacheOptions) {
    this.#clock = options.clock;
    this.#ttl = Math.max(0, options.ttlMs ?? DEFAULT_ANSWER_CACHE_TTL_MS);
    this.#max = Math.max(1, Math.floor(options.maxEntries ?? DEFAULT_ANSWER_CACHE_ENTRIES));
  }

  get size(): number {
    return this.#entries.size;
  }

  get hits(): number {
    return this.#hits;
  }

  get misses(): number {
    return this.#misses;
  }

  /** The entry for `key` built under `generation` and not yet expired, or undefined (a stale one is dropped). */
  get(key: string, generation: number): CachedAnswer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    if (entry.generation !== generation || this.#clock.now() >= entry.expires) {
      this.#entries.delete(key);
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    return entry;
  }

  /** Keeps `answer` (the cache owns its bytes from now on). Evicts the oldest entry at the limit. */
  set(key: string, generation: number, answer: CachedAnswer): void {
    if (this.#ttl === 0) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { ...answer, generation, expires: this.#clock.now() + this.#ttl });
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** One A answer RR written with a pointer owner: pointer, TYPE, CLASS, TTL, RDLENGTH, address. */
export const POINTER_A_RR_LEN = 16;

/**
 * The cache key for a parsed query: the question bytes [12, questionEnd) with ASCII A–Z
 * folded (RFC 4343), then one code unit each for the budget, the view/transport/EDNS/DO bits
 * and the echoed flags, then the client's address. One string allocation per query.
 */
export function answerKey(source: Uint8Array, questionEnd: number, limit: number, bits: number, flags: number, client: string): string {
  const codes = KEY_CODES;
  const n = questionEnd - 12;
  codes.length = n + 3 + client.length;
  for (let i = 0; i < n; i++) {
    const b = source[12 + i]!;
    codes[i] = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
  }
  codes[n] = limit & 0xffff;
  codes[n + 1] = bits & 0xffff;
  codes[n + 2] = flags & 0xffff;
  for (let i = 0; i < client.length; i++) codes[n + 3 + i] = client.charCodeAt(i);
  return String.fromCharCode.apply(null, codes);
}
const KEY_CODES: number[] = [];
