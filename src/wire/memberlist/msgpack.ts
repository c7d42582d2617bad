/**
 * The subset of msgpack that go-msgpack v0.5.5 with a zero-value `codec.MsgpackHandle{}` speaks,
 * which is what memberlist 0.2.2 and serf 0.9.4 use for every message (spec §6).
 *
 * Writing follows Go byte for byte (spec §6.1): strings AND byte slices use the "raw" str
 * family (fixstr, str16, str32 — never str8 `0xd9`, never bin), non-negative integers the
 * unsigned family, nil byte slices `0xc0`. Reading follows what Go accepts (spec §6.2): any
 * int encoding, str8 and bin for byte fields, nil as the zero value.
 *
 * Failures inside the reader are raised as `MsgpackFailure` and caught at the public decode
 * functions of this package (codec.ts, stream.ts), which return a Result: nothing here throws
 * to a caller holding untrusted bytes.
 */
import { type Result, ok, err } from '../../lib/result.js';

/** Why a msgpack read failed: ran off the end, malformed, or a value outside its Go type. */
export type MsgpackReason = 'truncated' | 'bad-msgpack' | 'bad-field';

/** Internal signal, always caught inside src/wire/memberlist before reaching a caller. */
export class MsgpackFailure extends Error {
  constructor(readonly reason: MsgpackReason) {
    super(reason);
  }
}

const fail = (reason: MsgpackReason): never => {
  throw new MsgpackFailure(reason);
};

/** Nesting bound for skip/generic decode: Go's structs here nest at most 3 deep. */
const MAX_DEPTH = 64;

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/**
 * Decodes Go string bytes: Go strings are arbitrary bytes, invalid UTF-8 becomes U+FFFD.
 * Short ASCII (every struct key, most node names) skips TextDecoder, whose per-call cost
 * dominated message decoding.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n <= 32) {
    let s = '';
    for (let i = 0; i < n; i++) {
      const c = bytes[i]!;
      if (c >= 0x80) return utf8.decode(bytes);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(bytes);
}

/**
 * A cursor over msgpack bytes. Every `read*` consumes one value and raises MsgpackFailure on
 * bytes that do not fit (caught by the package's public decoders).
 */
export class MsgpackReader {
  offset: number;

  constructor(
    readonly bytes: Uint8Array,
    offset = 0,
  ) {
    this.offset = offset;
  }

  #need(n: number): void {
    if (this.offset + n > this.bytes.length) fail('truncated');
  }

  #u8(): number {
    this.#need(1);
    return this.bytes[this.offset++]!;
  }

  #be(n: 2 | 4): number {
    this.#need(n);
    const b = this.bytes;
    const o = this.offset;
    this.offset += n;
    return n === 2 ? (b[o]! << 8) | b[o + 1]! : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  /** A 64-bit big-endian integer as a number, or 'bad-field' beyond 2^53 (no field here needs more). */
  #be64(signed: boolean): number {
    this.#need(8);
    const hi = this.#be(4);
    const lo = this.#be(4);
    if (signed && hi & 0x8000_0000) {
      const v = (hi - 0x1_0000_0000) * 0x1_0000_0000 + lo;
      if (!Number.isSafeInteger(v)) fail('bad-field');
      return v;
    }
    if (hi > 0x1f_ffff) fail('bad-field');
    return hi * 0x1_0000_0000 + lo;
  }

  #take(n: number): Uint8Array {
    this.#need(n);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** The type byte of the next value, without consuming it. */
  peek(): number {
    this.#need(1);
    return this.bytes[this.offset]!;
  }

  /** Consumes a nil if one is next; Go decodes nil into any field as its zero value. */
  tryNil(): boolean {
    if (this.peek() === 0xc0) {
      this.offset++;
      return true;
    }
    return false;
  }

  /** A map header (fixmap, map16, map32): the number of key/value pairs. */
  readMapHeader(): number {
    const b = this.#u8();
    if ((b & 0xf0) === 0x80) return b & 0x0f;
    if (b === 0xde) return this.#be(2);
    if (b === 0xdf) return this.#be(4);
    return fail('bad-msgpack');
  }

  /** An array header (fixarray, array16, array32): the number of elements. */
  readArrayHeader(): number {
    const b = this.#u8();
    if ((b & 0xf0) === 0x90) return b & 0x0f;
    if (b === 0xdc) return this.#be(2);
    if (b === 0xdd) return this.#be(4);
    return fail('bad-msgpack');
  }

  /** A str-family value's bytes (fixstr, str8, str16, str32), as Go's `string` fields accept. */
  readStrBytes(): Uint8Array {
    const b = this.#u8();
    if ((b & 0xe0) === 0xa0) return this.#take(b & 0x1f);
    if (b === 0xd9) return this.#take(this.#u8());
    if (b === 0xda) return this.#take(this.#be(2));
    if (b === 0xdb) return this.#take(this.#be(4));
    return fail('bad-msgpack');
  }

  /** A Go `string` field: str family or nil (→ ""). bin is refused, as Go refuses it (spec §6.2). */
  readString(): string {
    if (this.tryNil()) return '';
    return decodeUtf8(this.readStrBytes());
  }

  /**
   * A Go `[]byte` field: str family, bin8/16/32, nil (→ empty) or an array of 0..255 integers
   * (spec §6.2). The result shares memory with the input unless it came from an array.
   */
  readBytes(): Uint8Array {
    const b = this.peek();
    if (b === 0xc0) {
      this.offset++;
      return new Uint8Array(0);
    }
    if (b === 0xc4 || b === 0xc5 || b === 0xc6) {
      this.offset++;
      const n = b === 0xc4 ? this.#u8() : b === 0xc5 ? this.#be(2) : this.#be(4);
      return this.#take(n);
    }
    if ((b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd) {
      const n = this.readArrayHeader();
      // Each element takes at least one byte: a bigger count is truncated input, not an allocation.
      if (n > this.bytes.length - this.offset) fail('truncated');
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = this.readUint(8);
      return out;
    }
    return this.readStrBytes();
  }

  /** Any msgpack integer as a number; 'bad-field' outside ±2^53. Floats are refused. */
  readInt(): number {
    const b = this.#u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xcc:
        return this.#u8();
      case 0xcd:
        return this.#be(2);
      case 0xce:
        return this.#be(4);
      case 0xcf:
        return this.#be64(false);
      case 0xd0: {
        const v = this.#u8();
        return v >= 0x80 ? v - 0x100 : v;
      }
      case 0xd1: {
        const v = this.#be(2);
        return v >= 0x8000 ? v - 0x10000 : v;
      }
      case 0xd2:
        return this.#be(4) | 0;
      case 0xd3:
        return this.#be64(true);
      default:
        return fail('bad-msgpack');
    }
  }

  /** A Go unsigned field of `bits` bits: nil → 0, any int encoding, 'bad-field' if negative or too big. */
  readUint(bits: 8 | 16 | 32 | 53): number {
    if (this.tryNil()) return 0;
    const v = this.readInt();
    if (v < 0 || (bits < 53 && v >= 2 ** bits)) fail('bad-field');
    return v;
  }

  /** A Go `int` field used as a count or length: nil → 0, 'bad-field' when negative. */
  readCount(): number {
    return this.readUint(53);
  }

  /** A Go `bool`: c2/c3, nil → false, or the integers 0 and 1 (spec §6.2). */
  readBool(): boolean {
    const b = this.#u8();
    if (b === 0xc2 || b === 0xc0 || b === 0x00) return false;
    if (b === 0xc3 || b === 0x01) return true;
    return fail('bad-msgpack');
  }

  /** Steps over one value of any type, as Go does for an unknown struct key. */
  skip(depth = 0): void {
    if (depth > MAX_DEPTH) fail('bad-msgpack');
    const b = this.#u8();
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    if ((b & 0xe0) === 0xa0) return void this.#take(b & 0x1f);
    if ((b & 0xf0) === 0x80) return this.#skipN((b & 0x0f) * 2, depth);
    if ((b & 0xf0) === 0x90) return this.#skipN(b & 0x0f, depth);
    switch (b) {
      case 0xc4:
      case 0xd9:
        return void this.#take(this.#u8());
      case 0xc5:
      case 0xda:
        return void this.#take(this.#be(2));
      case 0xc6:
      case 0xdb:
        return void this.#take(this.#be(4));
      case 0xc7:
        return void this.#take(this.#u8() + 1);
      case 0xc8:
        return void this.#take(this.#be(2) + 1);
      case 0xc9:
        return void this.#take(this.#be(4) + 1);
      case 0xca:
        return void this.#take(4);
      case 0xcb:
        return void this.#take(8);
      case 0xcc:
      case 0xd0:
        return void this.#take(1);
      case 0xcd:
      case 0xd1:
        return void this.#take(2);
      case 0xce:
      case 0xd2:
        return void this.#take(4);
      case 0xcf:
      case 0xd3:
        return void this.#take(8);
      case 0xd4:
        return void this.#take(2);
      case 0xd5:
        return void this.#take(3);
      case 0xd6:
        return void this.#take(5);
      case 0xd7:
        return void this.#take(9);
      case 0xd8:
        return void this.#take(17);
      case 0xdc:
        return this.#skipN(this.#be(2), depth);
      case 0xdd:
        return this.#skipN(this.#be(4), depth);
      case 0xde:
        return this.#skipN(this.#be(2) * 2, depth);
      case 0xdf:
        return this.#skipN(this.#be(4) * 2, depth);
      default:
        return void fail('bad-msgpack'); // 0xc1: never used
    }
  }

  #skipN(n: number, depth: number): void {
    for (let i = 0; i < n; i++) this.skip(depth + 1);
  }

  /** Any value, for delegate payloads (serf tags, user state): see MsgpackValue. */
  readValue(depth = 0): MsgpackValue {
    if (depth > MAX_DEPTH) fail('bad-msgpack');
    const b = this.peek();
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
      if (b === 0xcf || b === 0xd3) return this.#readBig();
      return this.readInt();
    }
    if ((b & 0xe0) === 0xa0 || (b >= 0xd9 && b <= 0xdb)) return decodeUtf8(this.readStrBytes());
    if (b >= 0xc4 && b <= 0xc6) return this.readBytes();
    if ((b & 0xf0) === 0x80 || b === 0xde || b === 0xdf) {
      const n = this.readMapHeader();
      const out = new Map<MsgpackValue, MsgpackValue>();
      for (let i = 0; i < n; i++) {
        const k = this.readValue(depth + 1);
        out.set(k, this.readValue(depth + 1));
      }
      return out;
    }
    if ((b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd) {
      const n = this.readArrayHeader();
      const out: MsgpackValue[] = [];
      for (let i = 0; i < n; i++) out.push(this.readValue(depth + 1));
      return out;
    }
    this.offset++;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca: {
        const v = this.#take(4);
        return new DataView(v.buffer, v.byteOffset, 4).getFloat32(0);
      }
      case 0xcb: {
        const v = this.#take(8);
        return new DataView(v.buffer, v.byteOffset, 8).getFloat64(0);
      }
      default:
        return fail('bad-msgpack'); // ext types: go-msgpack with WriteExt=false never writes them
    }
  }

  #readBig(): number | bigint {
    const b = this.#u8();
    const v = this.#take(8);
    const dv = new DataView(v.buffer, v.byteOffset, 8);
    const big = b === 0xcf ? dv.getBigUint64(0) : dv.getBigInt64(0);
    const n = Number(big);
    return Number.isSafeInteger(n) ? n : big;
  }
}

/**
 * A decoded msgpack value: str → string, bin → Uint8Array, integers → number (bigint beyond
 * 2^53), floats → number, map → Map, array → array, nil → null.
 */
export type MsgpackValue = null | boolean | number | bigint | string | Uint8Array | MsgpackValue[] | Map<MsgpackValue, MsgpackValue>;

/** Decodes one msgpack value from the start of `bytes` (trailing bytes are ignored, as Go's decoder does). */
export function decodeMsgpack(bytes: Uint8Array): Result<MsgpackValue, MsgpackReason> {
  try {
    return ok(new MsgpackReader(bytes).readValue());
  } catch (e) {
    if (e instanceof MsgpackFailure) return err(e.reason);
    throw e;
  }
}

/**
 * A growable msgpack writer producing go-msgpack's exact bytes (spec §6.1). Throws RangeError
 * on values Go could not have produced (a negative length, a non-integer where a uint goes).
 */
export class MsgpackWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
  }

  get length(): number {
    return this.#len;
  }

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  byte(b: number): this {
    this.#ensure(1);
    this.#buf[this.#len++] = b;
    return this;
  }

  #be16(v: number): void {
    this.#ensure(2);
    this.#buf[this.#len++] = v >>> 8;
    this.#buf[this.#len++] = v & 0xff;
  }

  #be32(v: number): void {
    this.#ensure(4);
    this.#buf[this.#len++] = v >>> 24;
    this.#buf[this.#len++] = (v >>> 16) & 0xff;
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
    this.#buf[this.#len++] = v & 0xff;
  }

  /** Appends bytes verbatim (raw user state after a push/pull, say). */
  raw(bytes: Uint8Array): this {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  mapHeader(n: number): this {
    if (n < 16) return this.byte(0x80 | n);
    if (n < 0x10000) {
      this.byte(0xde);
      this.#be16(n);
      return this;
    }
    this.byte(0xdf);
    this.#be32(n);
    return this;
  }

  arrayHeader(n: number): this {
    if (n < 16) return this.byte(0x90 | n);
    if (n < 0x10000) {
      this.byte(0xdc);
      this.#be16(n);
      return this;
    }
    this.byte(0xdd);
    this.#be32(n);
    return this;
  }

  nil(): this {
    return this.byte(0xc0);
  }

  bool(v: boolean): this {
    return this.byte(v ? 0xc3 : 0xc2);
  }

  /** Go's "raw" header: fixstr, str16, str32 — never str8 (`MP msgpack.go:211-250`). */
  #rawHeader(n: number): void {
    if (n < 32) this.byte(0xa0 | n);
    else if (n < 0x10000) {
      this.byte(0xda);
      this.#be16(n);
    } else {
      this.byte(0xdb);
      this.#be32(n);
    }
  }

  /** A Go `string`. */
  str(s: string): this {
    return this.strBytes(utf8Encoder.encode(s));
  }

  /** A str-family value from bytes: how Go writes both `string` and `[]byte`. */
  strBytes(bytes: Uint8Array): this {
    this.#rawHeader(bytes.length);
    return this.raw(bytes);
  }

  /** A Go `[]byte` field: empty is written as nil `0xc0`, as Go writes a nil slice (spec §6.1). */
  bytes(bytes: Uint8Array): this {
    return bytes.length === 0 ? this.nil() : this.strBytes(bytes);
  }

  /** A non-negative integer in Go's unsigned family (`MP msgpack.go:120-157`). */
  uint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Not an unsigned integer: ${v}`);
    if (v <= 0x7f) return this.byte(v);
    if (v <= 0xff) return this.byte(0xcc).byte(v);
    if (v <= 0xffff) {
      this.byte(0xcd);
      this.#be16(v);
      return this;
    }
    if (v <= 0xffff_ffff) {
      this.byte(0xce);
      this.#be32(v);
      return this;
    }
    this.byte(0xcf);
    this.#be32(Math.floor(v / 0x1_0000_0000));
    this.#be32(v >>> 0);
    return this;
  }

  /** Any integer: the unsigned family when ≥ 0, else the smallest signed form, as Go writes. */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`Not an integer: ${v}`);
    if (v >= 0) return this.uint(v);
    if (v >= -32) return this.byte(v & 0xff);
    if (v >= -0x80) return this.byte(0xd0).byte(v & 0xff);
    if (v >= -0x8000) {
      this.byte(0xd1);
      this.#be16(v & 0xffff);
      return this;
    }
    if (v >= -0x8000_0000) {
      this.byte(0xd2);
      this.#be32(v >>> 0);
      return this;
    }
    this.byte(0xd3);
    const big = BigInt.asUintN(64, BigInt(v));
    this.#be32(Number(big >> 32n));
    this.#be32(Number(big & 0xffff_ffffn));
    return this;
  }

  float64(v: number): this {
    this.#ensure(9);
    this.#buf[this.#len++] = 0xcb;
    new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#len, 8).setFloat64(0, v);
    this.#len += 8;
    return this;
  }

  /**
   * Any MsgpackValue, for delegate payloads. Map keys that are all strings are written sorted
   * so output is deterministic (Go's map order is random, so any order is as Go-like).
   */
  value(v: MsgpackValue, depth = 0): this {
    if (depth > MAX_DEPTH) throw new RangeError('Value nests too deeply for msgpack');
    if (v === null) return this.nil();
    if (typeof v === 'boolean') return this.bool(v);
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'bigint') {
      if (v >= 0n) {
        this.byte(0xcf);
        this.#be32(Number((v >> 32n) & 0xffff_ffffn));
        this.#be32(Number(v & 0xffff_ffffn));
      } else {
        const u = BigInt.asUintN(64, v);
        this.byte(0xd3);
        this.#be32(Number(u >> 32n));
        this.#be32(Number(u & 0xffff_ffffn));
      }
      return this;
    }
    if (typeof v === 'number') return Number.isSafeInteger(v) ? this.int(v) : this.float64(v);
    if (v instanceof Uint8Array) return this.strBytes(v);
    if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const e of v) this.value(e, depth + 1);
      return this;
    }
    const entries = [...v.entries()];
    if (entries.every(([k]) => typeof k === 'string')) entries.sort(([a], [b]) => compareKeys(a as string, b as string));
    this.mapHeader(entries.length);
    for (const [k, val] of entries) this.value(k, depth + 1).value(val, depth + 1);
    return this;
  }

  /** The bytes written so far, copied out (the writer may be reused or dropped). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Byte-wise string order, as Go's sort.Strings on struct field names (`MP helper.go:350-362`). */
function compareKeys(a: string, b: string): number {
  const x = utf8Encoder.encode(a);
  const y = utf8Encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** Encodes one value as go-msgpack would (see MsgpackWriter.value). */
export function encodeMsgpack(v: MsgpackValue): Uint8Array {
  return new MsgpackWriter().value(v).finish();
}
