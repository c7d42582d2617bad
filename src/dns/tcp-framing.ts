/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): each message is preceded by its length
 * as two bytes, network order. A stream may carry several messages back to back (pipelining,
 * RFC 7766 §6.2.1) and a message may arrive in any number of pieces.
 */

/** Collects stream bytes and yields whole messages, each in a buffer of its own. */
export class LengthPrefixedReader {
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  /** Bytes received that are not yet part of a complete message. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Adds `chunk` (copied: the caller may reuse it) to the bytes waiting to be read. */
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    // Uint8Array#slice copies; Buffer#slice would not.
    this.#chunks.push(Uint8Array.prototype.slice.call(chunk));
    this.#buffered += chunk.length;
  }

  /**
   * The next complete message, in a buffer of its own, or undefined until more bytes arrive.
   * A zero-length message is returned as an empty buffer; the caller decides what it means.
   */
  next(): Uint8Array | undefined {
    if (this.#buffered < 2) return undefined;
    const header = this.#peek(2);
    const length = (header[0]! << 8) | header[1]!;
    if (this.#buffered < 2 + length) return undefined;
    this.#take(2);
    return this.#take(length);
  }

  /** append(chunk), then every message now complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.append(chunk);
    const out: Uint8Array[] = [];
    for (let message = this.next(); message; message = this.next()) out.push(message);
    return out;
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.#gather(n, false);
  }

  #take(n: number): Uint8Array {
    return this.#gather(n, true);
  }

  #gather(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let index = 0;
    while (filled < n) {
      const chunk = this.#chunks[index]!;
      const used = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, used), filled);
      filled += used;
      if (consume) {
        if (used === chunk.length) this.#chunks.shift();
        else this.#chunks[index] = chunk.subarray(used);
      } else index++;
    }
    if (consume) this.#buffered -= n;
    return out;
  }
}

/** `message` with its two-byte length in front, ready to write. Throws RangeError above 65535 bytes. */
export function frameMessage(message: Uint8Array): Uint8Array {
  if (message.length > 0xffff) throw new RangeError(`DNS message of ${message.length} bytes cannot be framed`);
  const out = new Uint8Array(message.length + 2);
  out[0] = message.length >>> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}
