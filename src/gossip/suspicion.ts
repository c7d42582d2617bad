/**
 * One suspicion timer with Lifeguard's confirmations (Lifeguard §IV-B; ML suspicion.go): it
 * starts at the max timeout and each independent confirmation ("I suspect it too", from a new
 * accuser) pulls the deadline toward the min along a log curve, so a node that many peers
 * cannot reach is declared dead sooner, while a lone accuser (possibly the sick one) waits long.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { initialSuspicionTimeout, remainingSuspicionTime, type SuspicionBounds } from './formulas.js';

export class Suspicion {
  readonly #clock: Clock;
  readonly #bounds: SuspicionBounds;
  readonly #onTimeout: (confirmations: number) => void;
  readonly #confirmedBy = new Set<string>();
  readonly #start: number;
  #confirmations = 0;
  #timer: Timer;
  #done = false;

  /**
   * Starts the timer. `from` (the first accuser) is pre-counted so that our own suspicion
   * gossiped back to us does not confirm itself (ML suspicion.go:50-62). `onTimeout` runs once,
   * from a clock timer, never synchronously inside `confirm`.
   */
  constructor(clock: Clock, from: string, bounds: SuspicionBounds, onTimeout: (confirmations: number) => void) {
    this.#clock = clock;
    this.#bounds = bounds;
    this.#onTimeout = onTimeout;
    this.#confirmedBy.add(from);
    this.#start = clock.now();
    this.#timer = clock.setTimer(initialSuspicionTimeout(bounds), () => this.#fire());
  }

  get confirmations(): number {
    return this.#confirmations;
  }

  /** The clock time at which the timer will fire, given the confirmations so far. */
  get deadline(): number {
    if (this.#bounds.k < 1) return this.#start + this.#bounds.minMs;
    if (this.#confirmations === 0) return this.#start + this.#bounds.maxMs;
    return this.#start + remainingSuspicionTime(this.#confirmations, this.#bounds.k, 0, this.#bounds.minMs, this.#bounds.maxMs);
  }

  /**
   * Counts `from` as a confirmation. Returns true when that was new information (a new accuser
   * while fewer than k have confirmed), which the caller re-gossips (ML suspicion.go:105-130).
   */
  confirm(from: string): boolean {
    if (this.#done || this.#confirmations >= this.#bounds.k) return false;
    if (this.#confirmedBy.has(from)) return false;
    this.#confirmedBy.add(from);
    this.#confirmations++;
    const elapsed = this.#clock.now() - this.#start;
    const remaining = remainingSuspicionTime(this.#confirmations, this.#bounds.k, elapsed, this.#bounds.minMs, this.#bounds.maxMs);
    this.#timer.cancel();
    this.#timer = this.#clock.setTimer(Math.max(0, remaining), () => this.#fire());
    return true;
  }

  /** Stops the timer (the node refuted, or was declared dead by other means). Idempotent. */
  cancel(): void {
    this.#done = true;
    this.#timer.cancel();
  }

  #fire(): void {
    if (this.#done) return;
    this.#done = true;
    this.#onTimeout(this.#confirmations);
  }
}
