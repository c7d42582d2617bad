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
  /**
   * The owner calls endReceiveBatch() after every run of receive() calls that its link delivered
   * together (OverlayInterface.batchedReceive): the stack then answers the run once at its end
   * (one ACK, one delivery to the reader, one burst of data) instead of segment by segment.
   * Off by default: each segment is answered at once.
   */
  readonly batchedReceive?: boolean;
}

export class TcpDriver {
  readonly #stack: TcpStack;
  readonly #clock: Clock;
  readonly #immediate: 'microtask' | 'timer';
  readonly #batched: boolean;
  /** A run of received segments is under way: its end polls, so kicks wait for it. */
  #inBatch = false;
  #timer: Timer | undefined;
  #timerAt = Infinity;
  #immediatePending = false;
  #immediateTimer: Timer | undefined;
  #stopped = false;

  constructor(stack: TcpStack, clock: Clock, options: TcpDriverOptions = {}) {
    this.#stack = stack;
    this.#clock = clock;
    this.#immediate = options.immediate ?? 'microtask';
    this.#batched = options.batchedReceive ?? false;
    stack.onWake = () => this.#kick();
  }

  get stack(): TcpStack {
    return this.#stack;
  }

  /** Hands a segment from the IP layer to the stack and reschedules (with batchedReceive, at the run's end). */
  receive(ipSrc: Ipv4Address, ipDst: Ipv4Address, segment: Uint8Array): void {
    if (this.#stopped) return;
    if (this.#batched) {
      this.#inBatch = true;
      this.#stack.receive(ipSrc, ipDst, segment, this.#clock.now(), true);
      return;
    }
    this.#stack.receive(ipSrc, ipDst, segment, this.#clock.now());
    this.#reschedule();
  }

  /** The link's run of segments is over (batchedReceive): everything they called for goes now. */
  endReceiveBatch(): void {
    if (!this.#inBatch) return;
    this.#inBatch = false;
    if (this.#stopped) return;
    this.#pollNow();
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
    // Within a run, the poll at its end comes sooner than any other (the same event-loop turn).
    if (this.#stopped || this.#immediatePending || this.#inBatch) return;
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
