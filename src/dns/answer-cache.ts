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
  /** The key, compared in full on every hit (the map is keyed by its hash). */
  readonly question: Uint8Array;
  readonly limit: number;
  readonly bits: number;
  readonly flags: number;
  readonly client: string;
  readonly generation: number;
  readonly expires: number;
}

export const DEFAULT_ANSWER_CACHE_TTL_MS = 250;
export const DEFAULT_ANSWER_CACHE_ENTRIES = 4096;

/**
 * Entries are found by a 32-bit hash of the key and then compared in full, so a query costs
 * no key string: two keys with one hash share a slot and evict each other (a miss, never a
 * wrong answer).
 */
export class AnswerCache {
  readonly #clock: Clock;
  readonly #ttl: number;
  readonly #max: number;
  readonly #entries = new Map<number, Entry>();
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

  /**
   * The answer for this key built under `generation` and not yet expired, or undefined (a
   * stale entry is dropped). The key: the question `source[12, questionEnd)` (ASCII case
   * folded), the response budget `limit`, the view/transport/EDNS/DO `bits`, the echoed query
   * `flags`, the `client` address.
   */
  get(source: Uint8Array, questionEnd: number, limit: number, bits: number, flags: number, client: string, generation: number): CachedAnswer | undefined {
    const hash = hashKey(source, questionEnd, limit, bits, flags, client);
    const entry = this.#entries.get(hash);
    if (entry === undefined || entry.limit !== limit || entry.bits !== bits || entry.flags !== flags || entry.client !== client || !sameFolded(entry.question, source, questionEnd)) {
      this.#misses++;
      return undefined;
    }
    if (entry.generation !== generation || this.#clock.now() >= entry.expires) {
      this.#entries.delete(hash);
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    return entry;
  }

  /** Keeps `answer` under this key (the cache owns its bytes from now on). Evicts the oldest entry at the limit. */
  set(source: Uint8Array, questionEnd: number, limit: number, bits: number, flags: number, client: string, generation: number, answer: CachedAnswer): void {
    if (this.#ttl === 0) return;
    const hash = hashKey(source, questionEnd, limit, bits, flags, client);
    this.#entries.delete(hash);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    const question = new Uint8Array(questionEnd - QUESTION_START);
    for (let i = 0; i < question.length; i++) question[i] = fold(source[QUESTION_START + i]!);
    this.#entries.set(hash, { ...answer, question, limit, bits, flags, client, generation, expires: this.#clock.now() + this.#ttl });
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** One A answer RR written with a pointer owner: pointer, TYPE, CLASS, TTL, RDLENGTH, address. */
export const POINTER_A_RR_LEN = 16;

const QUESTION_START = 12;

/** RFC 4343 §3: only ASCII A–Z fold. */
function fold(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

function sameFolded(question: Uint8Array, source: Uint8Array, questionEnd: number): boolean {
  if (question.length !== questionEnd - QUESTION_START) return false;
  for (let i = 0; i < question.length; i++) if (question[i] !== fold(source[QUESTION_START + i]!)) return false;
  return true;
}

/** FNV-1a (32-bit) over the folded question, then the other key parts. */
export function hashKey(source: Uint8Array, questionEnd: number, limit: number, bits: number, flags: number, client: string): number {
  let h = 0x811c9dc5;
  for (let i = QUESTION_START; i < questionEnd; i++) h = Math.imul(h ^ fold(source[i]!), 0x01000193);
  h = Math.imul(h ^ (limit & 0xffff), 0x01000193);
  h = Math.imul(h ^ (bits & 0xff), 0x01000193);
  h = Math.imul(h ^ (flags & 0xffff), 0x01000193);
  for (let i = 0; i < client.length; i++) h = Math.imul(h ^ client.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
