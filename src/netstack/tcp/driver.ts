/**
 * Drives a TcpStack with a Clock: polls it when it says (pollAt), and at once when the
 * application made work. In the agent the clock is a RealClock; in simulations a ManualClock,
 * with `immediate: 'timer'` so that even "at once" is a clock event and a run replays exactly.
 */
import type { Clock, Timer } from '../../lib/clock.js';
import type { Ipv4Address } from '../../wire/address.js';
import type { TcpStack } from './stack.js';

export interface TcpDriverOptions {
  /**
   * How "poll at once" is scheduled: 'microtask' (default; lowest latency, batches a burst of
   * writes into one poll) or 'timer' (a zero-delay clock timer, for deterministic simulation).
   */
  readonly immediate?: 'microtask' | 'timer';
}

export class TcpDriver {
  readonly #stack: TcpStack;
  readonly #clock: Clock;
  readonly #immediate: 'microtask' | 'timer';
  #timer: Timer | undefined;
  #timerAt = Infinity;
  #immediatePending = false;
  #immediateTimer: Timer | undefined;
  #stopped = false;

  constructor(stack: TcpStack, clock: Clock, options: TcpDriverOptions = {}) {
    this.#stack = stack;
    this.#clock = clock;
    this.#immediate = options.immediate ?? 'microtask';
    stack.onWake = () => this.#kick();
  }

  get stack(): TcpStack {
    return this.#stack;
  }

  /** Hands a segment from the IP layer to the stack and reschedules. */
  receive(ipSrc: Ipv4Address, ipDst: Ipv4Address, segment: Uint8Array): void {
    if (this.#stopped) return;
    this.#stack.receive(ipSrc, ipDst, segment, this.#clock.now());
    this.#reschedule();
  }

  /** Cancels every timer the driver holds; the stack is no longer polled. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#immediateTimer?.cancel();
    this.#immediateTimer = undefined;
    this.#immediatePending = false;
    this.#stack.onWake = undefined;
  }

  #kick(): void {
    if (this.#stopped || this.#immediatePending) return;
    this.#immediatePending = true;
    if (this.#immediate === 'microtask') {
      queueMicrotask(() => this.#runImmediate());
    } else {
      this.#immediateTimer = this.#clock.setTimer(0, () => this.#runImmediate());
    }
  }

  #runImmediate(): void {
    this.#immediatePending = false;
    this.#immediateTimer = undefined;
    if (this.#stopped) return;
    this.#pollNow();
  }

  #pollNow(): void {
    this.#stack.poll(this.#clock.now());
    this.#reschedule();
  }

  #reschedule(): void {
    if (this.#stopped) return;
    const at = this.#stack.pollAt();
    const now = this.#clock.now();
    if (at <= now) {
      // Work is due now: poll again soon, but not re-entrantly.
      this.#kick();
      return;
    }
    // A timer already due sooner is kept: when it fires, the poll finds nothing due and the
    // next reschedule arms the later deadline. Re-arming on every ACK (each moves the RTO
    // deadline, RFC 6298 §5.3) would cost a timer cancel and create per segment.
    if (at === this.#timerAt || (at !== Infinity && this.#timerAt <= at)) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = this.#clock.setTimer(at - now, () => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pollNow();
    });
  }
}
