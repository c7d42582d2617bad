/**
 * Time, injected. Everything below src/agent takes a Clock instead of calling Date.now() or
 * setTimeout, so that a simulation can run hours of protocol time in milliseconds and replay
 * it exactly (CONVENTIONS.md §5).
 *
 * `now()` is monotonic milliseconds from an arbitrary origin (fractions allowed); it is not
 * wall-clock time.
 */
export interface Clock {
  now(): number;
  /** Runs `fn` once, `delayMs` from now. Returns a handle whose cancel() is idempotent. */
  setTimer(delayMs: number, fn: () => void): Timer;
}

export interface Timer {
  cancel(): void;
}

/** Real time: performance.now() and setTimeout. Timers are unref'd: they never hold the process open. */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const handle = setTimeout(fn, Math.max(0, delayMs));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in deadline order (ties in creation
 * order) during advance(); a timer set by a firing timer fires in the same advance() if due.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: PendingTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const timer: PendingTimer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers not yet fired nor cancelled: a simulation that ends must have none it did not expect. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** The deadline of the earliest live timer, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    let best: number | undefined;
    for (const t of this.#timers) if (!t.cancelled && (best === undefined || t.at < best)) best = t.at;
    return best;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      const next = this.#popDue(target);
      if (!next) break;
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = Math.max(this.#now, target);
  }

  #popDue(target: number): PendingTimer | undefined {
    let bestIndex = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const t = this.#timers[i]!;
      if (t.cancelled || t.at > target) continue;
      const best = this.#timers[bestIndex];
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) bestIndex = i;
    }
    if (bestIndex < 0) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      return undefined;
    }
    const [timer] = this.#timers.splice(bestIndex, 1);
    return timer;
  }
}
