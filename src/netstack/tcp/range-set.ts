/**
 * A bounded set of disjoint half-open ranges [start, end) of non-negative offsets, kept sorted
 * and merged. Offsets are relative to a moving base (RCV.NXT for the reassembly of out-of-order
 * data, SND.UNA for the SACK scoreboard), so they never wrap; shift() moves the base.
 */
export class RangeSet {
  /** Flat [start0, end0, start1, end1, ...], sorted, disjoint, non-adjacent. */
  #r: number[] = [];

  constructor(readonly maxRanges: number) {}

  get count(): number {
    return this.#r.length / 2;
  }

  get isEmpty(): boolean {
    return this.#r.length === 0;
  }

  start(i: number): number {
    return this.#r[2 * i]!;
  }

  end(i: number): number {
    return this.#r[2 * i + 1]!;
  }

  /** One past the highest offset in the set, or 0 when empty. */
  get highest(): number {
    return this.#r.length === 0 ? 0 : this.#r[this.#r.length - 1]!;
  }

  /** Total length of all ranges. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.#r.length; i += 2) n += this.#r[i + 1]! - this.#r[i]!;
    return n;
  }

  /**
   * Adds [start, end), merging with what it touches. Returns the index of the range now holding
   * it, or -1 when the set is full and the range touches nothing (the set is unchanged).
   */
  add(start: number, end: number): number {
    if (end <= start) return this.indexOf(start);
    const r = this.#r;
    // First range whose end >= start (could merge), last range whose start <= end.
    let i = 0;
    while (i < r.length && r[i + 1]! < start) i += 2;
    let j = i;
    while (j < r.length && r[j]! <= end) j += 2;
    if (i === j) {
      if (r.length / 2 >= this.maxRanges) return -1;
      r.splice(i, 0, start, end);
      return i / 2;
    }
    const s = Math.min(start, r[i]!);
    const e = Math.max(end, r[j - 1]!);
    r.splice(i, j - i, s, e);
    return i / 2;
  }

  /** The index of the range containing `x`, or -1. */
  indexOf(x: number): number {
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) {
      if (x < r[i]!) return -1;
      if (x < r[i + 1]!) return i / 2;
    }
    return -1;
  }

  /** The start of the first range beginning at or after `x`, or Infinity. */
  nextStartAfter(x: number): number {
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) if (r[i]! >= x) return r[i]!;
    return Infinity;
  }

  /** Bytes of the set at or above `x`. */
  sizeAbove(x: number): number {
    let n = 0;
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) if (r[i + 1]! > x) n += r[i + 1]! - Math.max(r[i]!, x);
    return n;
  }

  /** Bytes of the set inside [lo, hi). */
  sizeWithin(lo: number, hi: number): number {
    let n = 0;
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) {
      const s = Math.max(r[i]!, lo);
      const e = Math.min(r[i + 1]!, hi);
      if (e > s) n += e - s;
    }
    return n;
  }

  /** Moves the base forward by `n`: offsets below n are dropped, the rest decrease by n. */
  shift(n: number): void {
    if (n <= 0) return;
    const out: number[] = [];
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) {
      const e = r[i + 1]! - n;
      if (e <= 0) continue;
      out.push(Math.max(0, r[i]! - n), e);
    }
    this.#r = out;
  }

  /** Drops every range that lies wholly inside one range of `other` (both on the same base). */
  removeCoveredBy(other: RangeSet): void {
    const out: number[] = [];
    const r = this.#r;
    for (let i = 0; i < r.length; i += 2) {
      const at = other.indexOf(r[i]!);
      if (at >= 0 && other.end(at) >= r[i + 1]!) continue;
      out.push(r[i]!, r[i + 1]!);
    }
    this.#r = out;
  }

  clear(): void {
    this.#r = [];
  }
}
