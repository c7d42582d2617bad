/**
 * A fixed-capacity byte ring: the send buffer (bytes from SND.UNA on) and the receive buffer
 * (bytes from the application's read point to RCV.NXT, with out-of-order data written beyond
 * the committed end, where only the assembler knows what is filled). Allocated once; every
 * operation copies bytes in or out and never allocates except read().
 */
export class RingBuffer {
  readonly #buf: Uint8Array;
  #head = 0;
  #length = 0;

  constructor(readonly capacity: number) {
    this.#buf = new Uint8Array(capacity);
  }

  /** Committed bytes, readable from offset 0. */
  get length(): number {
    return this.#length;
  }

  /** Room after the committed bytes. */
  get free(): number {
    return this.capacity - this.#length;
  }

  /** Appends as much of `src` as fits and commits it. Returns the number of bytes taken. */
  append(src: Uint8Array): number {
    const n = Math.min(src.length, this.free);
    this.writeAt(0, src.subarray(0, n));
    this.#length += n;
    return n;
  }

  /**
   * Writes `src` at `offset` past the committed end without committing it (out-of-order data).
   * The caller keeps `offset + src.length <= free`. Throws RangeError otherwise.
   */
  writeAt(offset: number, src: Uint8Array): void {
    if (offset < 0 || offset + src.length > this.free) throw new RangeError('Ring write beyond capacity');
    let pos = (this.#head + this.#length + offset) % this.capacity;
    let from = 0;
    while (from < src.length) {
      const n = Math.min(src.length - from, this.capacity - pos);
      this.#buf.set(src.subarray(from, from + n), pos);
      from += n;
      pos = 0;
    }
  }

  /** Makes `n` bytes written by writeAt (at offset 0 on) part of the committed data. */
  commit(n: number): void {
    if (n < 0 || n > this.free) throw new RangeError('Ring commit beyond capacity');
    this.#length += n;
  }

  /** Copies `len` committed bytes from `offset` into `out` at `outOffset`. Throws RangeError past the end. */
  copyOut(offset: number, len: number, out: Uint8Array, outOffset: number): void {
    if (offset < 0 || len < 0 || offset + len > this.#length) throw new RangeError('Ring read beyond data');
    let pos = (this.#head + offset) % this.capacity;
    let done = 0;
    while (done < len) {
      const n = Math.min(len - done, this.capacity - pos);
      out.set(this.#buf.subarray(pos, pos + n), outOffset + done);
      done += n;
      pos = 0;
    }
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    if (n < 0 || n > this.#length) throw new RangeError('Ring consume beyond data');
    // The head only moves forward, never back to 0 when empty: bytes written past the committed
    // end (out-of-order data) keep their place.
    this.#length -= n;
    this.#head = (this.#head + n) % this.capacity;
  }

  /** Removes up to `max` bytes from the front into a new buffer the caller owns. */
  read(max: number): Uint8Array {
    const n = Math.min(max, this.#length);
    // Every byte is overwritten at once: no need for a zero-filled allocation.
    const out = Buffer.allocUnsafe(n);
    this.copyOut(0, n, out, 0);
    this.consume(n);
    return out;
  }
}
