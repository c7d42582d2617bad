/**
 * The retransmission timer's estimator, RFC 6298 §2: SRTT and RTTVAR from RTT samples, the RTO
 * from them, exponential backoff on expiry (§5.5), and Karn's rule left to the caller (only
 * samples from segments never retransmitted, or from timestamps, RFC 7323 §4, are fed in).
 */
export interface RtoBounds {
  /** RFC 6298 §2.1: 1 s; smaller values are allowed by §2.4 ("MAY"); Linux uses 200 ms. */
  readonly initialRtoMs: number;
  readonly minRtoMs: number;
  /** RFC 6298 §2.5: at least 60 s. */
  readonly maxRtoMs: number;
}

/** RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4; G, the clock granularity, is 1 ms here. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;
const G = 1;

export class RttEstimator {
  #srtt: number | undefined;
  #rttvar = 0;
  #rto: number;
  #backoff = 0;
  readonly #bounds: RtoBounds;

  constructor(bounds: RtoBounds) {
    this.#bounds = bounds;
    this.#rto = bounds.initialRtoMs;
  }

  /** The smoothed RTT, undefined before the first sample. */
  get srtt(): number | undefined {
    return this.#srtt;
  }

  get rttvar(): number {
    return this.#rttvar;
  }

  /** The current timeout including backoff, clamped to [minRtoMs, maxRtoMs]. */
  get rto(): number {
    return Math.min(this.#bounds.maxRtoMs, this.#rto * 2 ** this.#backoff);
  }

  /** How many times the timer has backed off since the last sample. */
  get backoffCount(): number {
    return this.#backoff;
  }

  /** Feeds one RTT measurement (ms). RFC 6298 §2.2 for the first, §2.3 after; clears backoff (§5.7 note). */
  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    if (this.#srtt === undefined) {
      this.#srtt = r;
      this.#rttvar = r / 2;
    } else {
      this.#rttvar = (1 - BETA) * this.#rttvar + BETA * Math.abs(this.#srtt - r);
      this.#srtt = (1 - ALPHA) * this.#srtt + ALPHA * r;
    }
    const rto = this.#srtt + Math.max(G, K * this.#rttvar);
    this.#rto = Math.min(this.#bounds.maxRtoMs, Math.max(this.#bounds.minRtoMs, rto));
    this.#backoff = 0;
  }

  /** RFC 6298 §5.5: the timer expired; double the timeout (up to the maximum). */
  backOff(): void {
    if (this.rto < this.#bounds.maxRtoMs) this.#backoff++;
  }

  /**
   * RFC 6298 §5.7: when the SYN (or SYN-ACK) was retransmitted and no sample was taken, the RTO
   * must be at least 3 s once data transfer begins.
   */
  resetAfterSynLoss(): void {
    if (this.#srtt === undefined) {
      this.#rto = Math.max(this.#rto, Math.min(3000, this.#bounds.maxRtoMs));
      this.#backoff = 0;
    }
  }
}
