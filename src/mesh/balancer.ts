/**
 * Choosing an upstream endpoint for a new downstream connection, and passive health.
 *
 * - Choice: power-of-two-choices over outstanding connections (Envoy's LEAST_REQUEST with
 *   `choice_count: 2`; Mitzenmacher's "power of two choices"): pick two distinct endpoints at
 *   random among the usable ones and take the one with fewer connections in flight. Nearly as
 *   good as least-connections without its herd behaviour when several balancers (one per
 *   agent) see stale counts. A local endpoint wins only a tie (ARCHITECTURE.md): preferring it
 *   always would pile every connection arriving on a node onto that node's tasks.
 * - Passive health (Envoy's outlier detection, `consecutive_local_origin_failure: 1`): a
 *   connect failure or a reset ejects the endpoint for `base × 2^(n−1)` (capped), n being its
 *   consecutive ejections; a successful connect resets n. Ejection lapses by time alone: the
 *   next connection after it simply tries the endpoint again.
 *
 * Pure choice functions take the Rng; the Balancer keeps per-endpoint state on an injected
 * Clock. Endpoints are identified by a string key (the endpoint table's service/task key).
 */
import type { Clock } from '../lib/clock.js';
import type { Rng } from '../lib/rng.js';

/** What the balancer needs to know of an endpoint. */
export interface BalancerEndpoint {
  readonly key: string;
  /** Runs on this node (reached over kernel TCP on loopback, no overlay). */
  readonly local: boolean;
}

/**
 * Power-of-two-choices. `load(e)` is the endpoint's outstanding connections. Returns undefined
 * when `candidates` is empty. With one candidate, returns it; otherwise draws two distinct
 * candidates and returns the less loaded; on a tie the local one; on a full tie the first drawn.
 */
export function chooseP2C<E extends BalancerEndpoint>(candidates: readonly E[], load: (e: E) => number, rng: Rng): E | undefined {
  if (candidates.length <= 1) return candidates[0];
  const i = rng.int(candidates.length);
  let j = rng.int(candidates.length - 1);
  if (j >= i) j++;
  const a = candidates[i]!;
  const b = candidates[j]!;
  const la = load(a);
  const lb = load(b);
  if (la !== lb) return la < lb ? a : b;
  if (a.local !== b.local) return a.local ? a : b;
  return a;
}

/** Envoy's ejection time: `base × 2^(n−1)` for the n-th consecutive ejection (n ≥ 1), at most `max`. */
export function ejectionDurationMs(consecutiveEjections: number, baseMs: number, maxMs: number): number {
  if (consecutiveEjections <= 0) return 0;
  const exp = Math.min(consecutiveEjections - 1, 30);
  return Math.min(maxMs, baseMs * 2 ** exp);
}

export interface BalancerOptions {
  readonly clock: Clock;
  readonly rng: Rng;
  /** First ejection (Envoy's `base_ejection_time` is 30 s; a mesh wants a failed task back sooner). */
  readonly baseEjectionMs?: number;
  readonly maxEjectionMs?: number;
  /** Endpoint states kept at most; the least recently used idle ones are forgotten first. */
  readonly maxTracked?: number;
}

export const DEFAULT_BASE_EJECTION_MS = 1_000;
export const DEFAULT_MAX_EJECTION_MS = 30_000;
export const DEFAULT_MAX_TRACKED = 65_536;

interface EndpointState {
  outstanding: number;
  consecutiveEjections: number;
  ejectedUntil: number;
}

/**
 * One balancer per service (or one for all: keys are unique across services). Tracks
 * outstanding connections and ejections; `choose` filters out ejected endpoints and `exclude`d
 * ones (those already tried for this connection) and runs power-of-two-choices on the rest.
 */
export class Balancer {
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #maxTracked: number;
  readonly #state = new Map<string, EndpointState>();

  constructor(options: BalancerOptions) {
    this.#clock = options.clock;
    this.#rng = options.rng;
    this.#baseMs = options.baseEjectionMs ?? DEFAULT_BASE_EJECTION_MS;
    this.#maxMs = options.maxEjectionMs ?? DEFAULT_MAX_EJECTION_MS;
    this.#maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
  }

  /** Chooses among `endpoints` (already filtered to healthy ones), skipping ejected and excluded keys. */
  choose<E extends BalancerEndpoint>(endpoints: readonly E[], exclude?: ReadonlySet<string>): E | undefined {
    const candidates = endpoints.filter((e) => !exclude?.has(e.key) && !this.isEjected(e.key));
    return chooseP2C(candidates, (e) => this.outstanding(e.key), this.#rng);
  }

  isEjected(key: string): boolean {
    const s = this.#state.get(key);
    return s !== undefined && s.ejectedUntil > this.#clock.now();
  }

  outstanding(key: string): number {
    return this.#state.get(key)?.outstanding ?? 0;
  }

  /** A connection to `key` starts (connect attempt included). Pair with release(). */
  acquire(key: string): void {
    this.#get(key).outstanding++;
  }

  release(key: string): void {
    const s = this.#state.get(key);
    if (s && s.outstanding > 0) s.outstanding--;
  }

  /** A connect to `key` succeeded: it is fine again, ejections start over from the base time. */
  reportSuccess(key: string): void {
    const s = this.#state.get(key);
    if (s) s.consecutiveEjections = 0;
  }

  /** A connect to `key` failed, or the upstream reset: eject it with exponential backoff. Returns the ejection time. */
  reportFailure(key: string): number {
    const s = this.#get(key);
    s.consecutiveEjections++;
    const ms = ejectionDurationMs(s.consecutiveEjections, this.#baseMs, this.#maxMs);
    s.ejectedUntil = this.#clock.now() + ms;
    return ms;
  }

  /** Forgets an endpoint that left the table. */
  forget(key: string): void {
    this.#state.delete(key);
  }

  #get(key: string): EndpointState {
    let s = this.#state.get(key);
    if (s) {
      // Map order doubles as recency: re-insert on use.
      this.#state.delete(key);
      this.#state.set(key, s);
      return s;
    }
    s = { outstanding: 0, consecutiveEjections: 0, ejectedUntil: 0 };
    this.#state.set(key, s);
    if (this.#state.size > this.#maxTracked) {
      for (const [k, v] of this.#state) {
        if (this.#state.size <= this.#maxTracked) break;
        if (v.outstanding === 0 && k !== key) this.#state.delete(k);
      }
    }
    return s;
  }
}
