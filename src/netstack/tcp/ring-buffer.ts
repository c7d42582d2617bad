/**
 * A byte ring with a fixed capacity: the send buffer (bytes from SND.UNA on) and the receive
 * buffer (bytes from the application's read point to RCV.NXT, with out-of-order data written
 * beyond the committed end, where only the assembler knows what is filled).
 *
 * The memory behind it starts small and doubles on demand up to the capacity, so an idle
 * connection costs a few kilobytes, not its full window (the mesh holds thousands of them).
 * Copies in and out; allocates only when growing and in read().
 */
const INITIAL_BYTES = 16 * 1024;

export class RingBuffer {
  #buf: Uint8Array;
  #head = 0;
  #length = 0;

  constructor(readonly capacity: number) {
    this.#buf = new Uint8Array(Math.min(capacity, INITIAL_BYTES));
  }

  /** Committed bytes, readable from offset 0. */
  get length(): number {
    return this.#length;
  }

  /** Room after the committed bytes. */
  get free(): number {
    return this.capacity - this.#length;
  }

  /** Bytes of memory held now (at most the capacity). */
  get allocated(): number {
    return this.#buf.length;
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
    this.#reserve(this.#length + offset + src.length);
    const size = this.#buf.length;
    let pos = (this.#head + this.#length + offset) % size;
    let from = 0;
    while (from < src.length) {
      const n = Math.min(src.length - from, size - pos);
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
    const size = this.#buf.length;
    let pos = (this.#head + offset) % size;
    let done = 0;
    while (done < len) {
      const n = Math.min(len - done, size - pos);
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
    this.#head = (this.#head + n) % this.#buf.length;
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

  /** Grows the memory (doubling, up to the capacity) to hold `bytes` from the head, in order. */
  #reserve(bytes: number): void {
    const old = this.#buf;
    if (bytes <= old.length) return;
    let size = old.length;
    while (size < bytes) size *= 2;
    const next = new Uint8Array(Math.min(size, this.capacity));
    // Everything from the head on keeps its logical place, uncommitted out-of-order bytes too.
    const tail = old.length - this.#head;
    next.set(old.subarray(this.#head), 0);
    next.set(old.subarray(0, this.#head), tail);
    this.#buf = next;
    this.#head = 0;
  }
}
