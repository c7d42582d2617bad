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

function earlier(a: PendingTimer, b: PendingTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * A clock that moves only when told to. Timers fire in deadline order (ties in creation
 * order) during advance(); a timer set by a firing timer fires in the same advance() if due.
 * Timers live in a binary heap, so simulations of thousands of nodes stay O(log n) per timer.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #heap: PendingTimer[] = [];
  #live = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const timer: PendingTimer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, fn, cancelled: false };
    this.#push(timer);
    this.#live++;
    return {
      cancel: () => {
        if (timer.cancelled) return;
        timer.cancelled = true;
        this.#live--;
      },
    };
  }

  /** Timers not yet fired nor cancelled: a simulation that ends must have none it did not expect. */
  get pendingTimers(): number {
    return this.#live;
  }

  /** The deadline of the earliest live timer, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    this.#dropCancelled();
    return this.#heap[0]?.at;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      this.#dropCancelled();
      const next = this.#heap[0];
      if (!next || next.at > target) break;
      this.#pop();
      next.cancelled = true;
      this.#live--;
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = Math.max(this.#now, target);
  }

  #dropCancelled(): void {
    while (this.#heap[0]?.cancelled) this.#pop();
  }

  #push(timer: PendingTimer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < heap.length && earlier(heap[l]!, heap[best]!)) best = l;
      if (r < heap.length && earlier(heap[r]!, heap[best]!)) best = r;
      if (best === i) break;
      [heap[i], heap[best]] = [heap[best]!, heap[i]!];
      i = best;
    }
  }
}
