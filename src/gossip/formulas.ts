/**
 * The pure maths of SWIM and Lifeguard as memberlist v0.2.2 computes it (ML util.go:64-97,
 * ML suspicion.go:85-99, ML awareness.go:64-69), as free functions so that they are table-tested
 * on their own (CONVENTIONS.md §6). Durations are milliseconds (fractions allowed).
 */

/**
 * Above this many nodes the push/pull interval grows with log2 of the cluster size
 * (`pushPullScaleThreshold`, ML util.go:25).
 */
export const PUSH_PULL_SCALE_THRESHOLD = 32;

/**
 * The minimum suspicion timeout (ML util.go:64-69): `mult × max(1, log10(max(1, n))) × interval`.
 * Go computes the node scale with millisecond precision (`Duration(nodeScale*1000)` truncates),
 * which the floor reproduces, so a 3-node LAN cluster gets exactly 4000 ms (spec §12.2, verified
 * against serf).
 */
export function suspicionTimeout(suspicionMult: number, n: number, intervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return (suspicionMult * Math.floor(nodeScale * 1000) * intervalMs) / 1000;
}

/** The bounds a new suspicion starts with (ML state.go:1187-1217, spec §12.2). */
export interface SuspicionBounds {
  /** Confirmations wanted to drive the timer down to `minMs`; 0 when the cluster is too small. */
  readonly k: number;
  readonly minMs: number;
  readonly maxMs: number;
}

/**
 * Lifeguard's suspicion bounds for a cluster of `n` nodes (self and unreaped dead included):
 * k = SuspicionMult − 2, dropped to 0 when n − 2 < k (not enough other nodes to confirm);
 * min from `suspicionTimeout`; max = SuspicionMaxTimeoutMult × min.
 */
export function suspicionBounds(suspicionMult: number, suspicionMaxTimeoutMult: number, n: number, probeIntervalMs: number): SuspicionBounds {
  let k = suspicionMult - 2;
  if (n - 2 < k) k = 0;
  const minMs = suspicionTimeout(suspicionMult, n, probeIntervalMs);
  return { k: Math.max(0, k), minMs, maxMs: suspicionMaxTimeoutMult * minMs };
}

/** The first deadline of a suspicion timer: max, or min when no confirmations are expected (ML suspicion.go:64-70). */
export function initialSuspicionTimeout(bounds: SuspicionBounds): number {
  return bounds.k < 1 ? bounds.minMs : bounds.maxMs;
}

/**
 * Time left on a suspicion timer after `confirmations` independent confirmations out of `k`
 * wanted, `elapsedMs` after it started (ML suspicion.go:85-99, Lifeguard §IV-B):
 * total = max − (ln(c+1) / ln(k+1)) × (max − min), floored to whole ms, never below min; the
 * result is total − elapsed and may be negative (the timer is then already due).
 * Throws RangeError when k < 1: with no confirmations wanted there is nothing to accelerate.
 */
export function remainingSuspicionTime(confirmations: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  if (k < 1) throw new RangeError(`remainingSuspicionTime needs k >= 1, got ${k}`);
  const frac = Math.log(confirmations + 1) / Math.log(k + 1);
  const raw = maxMs / 1000 - frac * ((maxMs - minMs) / 1000);
  let timeout = Math.floor(1000 * raw);
  if (timeout < minMs) timeout = minMs;
  return timeout - elapsedMs;
}

/** How many times a broadcast is sent: `mult × ceil(log10(n + 1))` (ML util.go:72-76). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/**
 * The push/pull period for `n` nodes (ML util.go:89-97): the base interval up to 32 nodes,
 * then `(ceil(log2 n − log2 32) + 1) × interval`, so that full-state syncs do not saturate a
 * large cluster.
 */
export function pushPullScale(intervalMs: number, n: number): number {
  if (n <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(n) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return multiplier * intervalMs;
}

/**
 * Lifeguard local health awareness: a timeout scaled by the health score, `timeout × (score + 1)`
 * (ML awareness.go:64-69). Only the probe deadline is scaled this way (spec §12.1).
 */
export function scaleTimeout(timeoutMs: number, score: number): number {
  return timeoutMs * (score + 1);
}

/** Clamps an awareness score to [0, max − 1] (ML awareness.go:37-52). */
export function clampAwareness(score: number, awarenessMaxMultiplier: number): number {
  return Math.min(Math.max(score, 0), awarenessMaxMultiplier - 1);
}

/**
 * The awareness penalty of a failed probe (ML state.go:479-491): when some relays were asked
 * for nacks, one point per missing nack (relays that answered "no ack from the target" vouch
 * for our own health); with no nack-capable relay, a flat +1.
 */
export function failedProbeAwarenessDelta(expectedNacks: number, nacksReceived: number): number {
  if (expectedNacks > 0) return Math.max(0, expectedNacks - nacksReceived);
  return 1;
}
