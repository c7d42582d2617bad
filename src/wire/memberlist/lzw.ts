/**
 * LZW as Go's `compress/lzw` does it with order LSB and literal width 8, the only compression
 * memberlist defines (`ML util.go:29,223,263`; spec §5.2). GIF-style variable width:
 *
 * - codes 0–255 are literals, 256 is clear, 257 is end-of-data (EOF), 258 the first table code;
 * - codes are packed least-significant bit first;
 * - width starts at 9 bits and grows by one each time the next code reaches 1 << width, up to
 *   12 bits.
 *
 * The writer reproduces Go 1.19's output bit for bit (spec §5.2): a leading clear code, a clear
 * code at the current width once the next code would reach 4095 (then back to 9 bits with an
 * empty table), and at close the pending code, EOF and zero padding. The reader accepts clear
 * codes anywhere and refuses a stream without EOF, as Go's reader does (`io.ErrUnexpectedEOF`).
 */
import { type Result, ok, err } from '../../lib/result.js';

const LIT_WIDTH = 8;
const CLEAR = 1 << LIT_WIDTH; // 256
const EOF = CLEAR + 1; // 257
const MAX_WIDTH = 12;
/** Go's `maxCode` = 1<<12 - 1: when the writer's next code reaches it, it emits clear. */
const MAX_CODE = (1 << MAX_WIDTH) - 1;

/** Packs codes LSB-first into a growable byte buffer. */
class BitWriter {
  #out: Uint8Array;
  #len = 0;
  #bits = 0;
  #nBits = 0;

  constructor(capacity: number) {
    this.#out = new Uint8Array(Math.max(16, capacity));
  }

  write(code: number, width: number): void {
    this.#bits |= code << this.#nBits;
    this.#nBits += width;
    while (this.#nBits >= 8) {
      this.#push(this.#bits & 0xff);
      this.#bits >>>= 8;
      this.#nBits -= 8;
    }
  }

  #push(b: number): void {
    if (this.#len === this.#out.length) {
      const next = new Uint8Array(this.#out.length * 2);
      next.set(this.#out);
      this.#out = next;
    }
    this.#out[this.#len++] = b;
  }

  /** Pads the last partial byte with zero bits and returns the bytes. */
  finish(): Uint8Array {
    if (this.#nBits > 0) this.#push(this.#bits & 0xff);
    this.#nBits = 0;
    return this.#out.slice(0, this.#len);
  }
}

/**
 * The writer's dictionary, shared by every call (JavaScript runs one call at a time and
 * lzwCompress never re-enters): open addressing over `(prefix code << 8 | byte) → code`, sized
 * as Go's (4 × 4096 slots). A slot counts only when its generation is the current one, so a
 * table reset is one increment instead of clearing 16384 slots.
 */
const TABLE_SIZE = 4 << MAX_WIDTH;
const TABLE_MASK = TABLE_SIZE - 1;
const tableKeys = new Int32Array(TABLE_SIZE);
const tableCodes = new Uint16Array(TABLE_SIZE);
const tableGen = new Uint32Array(TABLE_SIZE);
let generation = 0;

function resetTable(): void {
  generation++;
  if (generation === 0xffff_ffff) {
    tableGen.fill(0);
    generation = 1;
  }
}

/** Compresses `input` into a Go-identical LZW stream (LSB, literal width 8). Never throws. */
export function lzwCompress(input: Uint8Array): Uint8Array {
  const w = new BitWriter((input.length >> 1) + 16);
  let width = LIT_WIDTH + 1;
  let hi = EOF; // the last code assigned; the next entry gets hi + 1
  let overflow = 1 << width;
  resetTable();

  // Go's incHi (compress/lzw writer.go): returns false when it ran out of codes and reset.
  const incHi = (): boolean => {
    hi++;
    if (hi === overflow) {
      width++;
      overflow <<= 1;
    }
    if (hi === MAX_CODE) {
      w.write(CLEAR, width);
      width = LIT_WIDTH + 1;
      hi = EOF;
      overflow = 1 << width;
      resetTable();
      return false;
    }
    return true;
  };

  // Go's first Write sends a clear code (GIF89a Appendix F), and Close sends one when nothing
  // was written, so every stream starts with clear.
  w.write(CLEAR, width);
  if (input.length > 0) {
    let code = input[0]!;
    outer: for (let i = 1; i < input.length; i++) {
      const literal = input[i]!;
      const key = (code << 8) | literal;
      let h = ((key >>> 12) ^ key) & TABLE_MASK;
      while (tableGen[h] === generation) {
        if (tableKeys[h] === key) {
          code = tableCodes[h]!;
          continue outer;
        }
        h = (h + 1) & TABLE_MASK;
      }
      w.write(code, width);
      code = literal;
      if (incHi()) {
        // `h` is the free slot the probe above stopped at; incHi did not reset the table.
        tableGen[h] = generation;
        tableKeys[h] = key;
        tableCodes[h] = hi;
      }
    }
    w.write(code, width);
    incHi();
  }
  w.write(EOF, width);
  return w.finish();
}

/** The reader's tables, shared by every call (see the writer's). */
const decodePrefix = new Uint16Array(1 << MAX_WIDTH);
const decodeSuffix = new Uint8Array(1 << MAX_WIDTH);
/** One string is at most 4096 bytes long; it is assembled backwards here. */
const decodeStack = new Uint8Array(1 << MAX_WIDTH);

/** Why a stream did not decompress. */
export type LzwError = 'bad-compression' | 'too-large';

/**
 * Decompresses a Go LZW stream (LSB, literal width 8). Stops at the EOF code and ignores the
 * bytes after it. Refuses a stream that ends without EOF or holds a code above the next
 * undefined one ('bad-compression'), and output beyond `maxOutput` bytes ('too-large', so a
 * small hostile input cannot expand without bound). Never throws.
 */
export function lzwDecompress(input: Uint8Array, maxOutput: number): Result<Uint8Array, LzwError> {
  // Entries are always written before they are read (a code above `hi` is refused), so the
  // shared tables need no clearing between calls, which never overlap.
  const prefix = decodePrefix;
  const suffix = decodeSuffix;
  const stack = decodeStack;
  let out = new Uint8Array(Math.min(maxOutput, Math.max(64, input.length * 3)));
  let o = 0;
  let width = LIT_WIDTH + 1;
  let hi = EOF;
  let overflow = 1 << width;
  let last = -1; // no previous code (start, or after clear)
  let bits = 0;
  let nBits = 0;
  let pos = 0;

  const emit = (from: number): boolean => {
    const n = stack.length - from;
    if (o + n > maxOutput) return false;
    if (o + n > out.length) {
      let cap = out.length * 2;
      while (cap < o + n) cap *= 2;
      const next = new Uint8Array(Math.min(cap, maxOutput));
      next.set(out.subarray(0, o));
      out = next;
    }
    // A byte loop: most strings are a few bytes, where subarray() + set() cost more than the copy.
    for (let k = from; k < stack.length; k++) out[o++] = stack[k]!;
    return true;
  };

  for (;;) {
    while (nBits < width) {
      if (pos >= input.length) return err('bad-compression'); // no EOF code: Go's ErrUnexpectedEOF
      bits |= input[pos++]! << nBits;
      nBits += 8;
    }
    const code = bits & ((1 << width) - 1);
    bits >>>= width;
    nBits -= width;

    if (code === CLEAR) {
      width = LIT_WIDTH + 1;
      hi = EOF;
      overflow = 1 << width;
      last = -1;
      continue;
    }
    if (code === EOF) return ok(out.subarray(0, o));
    // A code above the next undefined one cannot be decoded. (code === hi with no previous
    // code happens only with a full table, where entry 4095 is defined; after a clear, hi is EOF.)
    if (code > hi) return err('bad-compression');

    let i = stack.length;
    let c = code;
    if (code === hi && last >= 0) {
      // KwKwK: the previous string followed by its own first byte.
      let head = last;
      while (head >= CLEAR) head = prefix[head]!;
      stack[--i] = head;
      c = last;
    }
    while (c >= CLEAR) {
      stack[--i] = suffix[c]!;
      c = prefix[c]!;
    }
    stack[--i] = c;
    if (!emit(i)) return err('too-large');
    if (last >= 0 && hi < 1 << MAX_WIDTH) {
      // The entry for `hi` is the previous string plus this string's first byte.
      suffix[hi] = c;
      prefix[hi] = last;
    }
    last = code;
    hi++;
    if (hi >= overflow) {
      if (width === MAX_WIDTH) {
        // Table full: stop adding entries until a clear code (Go reader.go).
        last = -1;
        hi--;
      } else {
        width++;
        overflow <<= 1;
      }
    }
  }
}
