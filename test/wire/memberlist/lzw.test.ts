import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { lzwCompress, lzwDecompress } from '../../../src/wire/memberlist/lzw.js';
import { MsgpackReader } from '../../../src/wire/memberlist/msgpack.js';
import { SeededRng } from '../../../src/lib/rng.js';
import { hex, toHex } from '../../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../../helpers/fuzz.js';
import { GO_ERR_LZW, GO_ERR_PLAIN, GO_TCP_PING_LZW, GO_TCP_PING_PLAIN, loadSerfCapture } from './fixtures.js';

const CLEAR = 256;
const EOF = 257;

/**
 * An independent reading of a code stream, written from the spec's description (§5.2), not from
 * lzw.ts: codes LSB first, width 9..12, `hi` = next undefined code from 257, +1 after every code
 * but clear, widening when hi reaches 1 << width. Records, for each code, the width it was read at
 * and the value of hi before it; stops after EOF and returns the bits left in the last byte.
 */
function readCodes(bytes: Uint8Array): { codes: { code: number; width: number; hi: number }[]; paddingBits: number; paddingValue: number } {
  const codes: { code: number; width: number; hi: number }[] = [];
  let width = 9;
  let hi = 257;
  let bitPos = 0;
  for (;;) {
    if (bitPos + width > bytes.length * 8) throw new Error('ran out of bits before EOF');
    let code = 0;
    for (let b = 0; b < width; b++, bitPos++) code |= ((bytes[bitPos >> 3]! >> (bitPos & 7)) & 1) << b;
    codes.push({ code, width, hi });
    if (code === EOF) break;
    if (code === CLEAR) {
      width = 9;
      hi = 257;
      continue;
    }
    hi++;
    if (hi >= 1 << width && width < 12) width++;
  }
  const paddingBits = (8 - (bitPos & 7)) & 7;
  const paddingValue = paddingBits === 0 ? 0 : bytes[bitPos >> 3]! >> (bitPos & 7);
  expect(bytes.length).toBe(Math.ceil(bitPos / 8)); // nothing after the EOF code's byte
  return { codes, paddingBits, paddingValue };
}

/** Packs codes LSB first at the given widths: a test-side way to build hand-made streams. */
function pack(codes: [code: number, width: number][]): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let n = 0;
  for (const [code, width] of codes) {
    acc |= code << n;
    n += width;
    while (n >= 8) {
      out.push(acc & 0xff);
      acc >>>= 8;
      n -= 8;
    }
  }
  if (n > 0) out.push(acc & 0xff);
  return Uint8Array.from(out);
}

/** Bytes that compress badly: many distinct codes, so the table fills and resets. */
function noisyBytes(seed: number, n: number): Uint8Array {
  return new SeededRng(seed).fill(new Uint8Array(n));
}

describe('lzw (Go compress/lzw, LSB, literal width 8)', () => {
  it('reproduces serf’s compressed TCP ping bit for bit (§17.7)', () => {
    expect(toHex(lzwCompress(GO_TCP_PING_PLAIN))).toBe(toHex(GO_TCP_PING_LZW));
    const r = lzwDecompress(GO_TCP_PING_LZW, 1 << 20);
    expect(r.ok && toHex(r.value)).toBe(toHex(GO_TCP_PING_PLAIN));
  });

  it('reproduces serf’s compressed err reply bit for bit (§17.8)', () => {
    expect(toHex(lzwCompress(GO_ERR_PLAIN))).toBe(toHex(GO_ERR_LZW));
    const r = lzwDecompress(GO_ERR_LZW, 1 << 20);
    expect(r.ok && toHex(r.value)).toBe(toHex(GO_ERR_PLAIN));
  });

  it('reproduces serf’s 35 KB push/pull, table resets included, bit for bit', () => {
    const stream = loadSerfCapture().tcp.find((t) => !t.encrypted && t.bytes.length > 30_000)!;
    // [9] {Algo: 0, Buf: <LZW>}
    const r = new MsgpackReader(stream.bytes, 1);
    r.readMapHeader();
    r.readString();
    r.readUint(8);
    r.readString();
    const buf = r.readBytes();
    const plain = lzwDecompress(buf, 1 << 24);
    expect(plain.ok && plain.value[0]).toBe(6); // a pushPull
    expect(toHex(lzwCompress(plain.ok ? plain.value : new Uint8Array(0)))).toBe(toHex(buf));
    const clears = readCodes(buf).codes.filter((c) => c.code === CLEAR).length;
    expect(clears).toBeGreaterThan(3); // the leading one and at least three resets
  });

  it('starts every stream with a clear code and ends it with EOF and zero padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (input) => {
        const { codes, paddingValue } = readCodes(lzwCompress(input));
        expect(codes[0]).toEqual({ code: CLEAR, width: 9, hi: 257 });
        expect(codes.at(-1)!.code).toBe(EOF);
        expect(codes.slice(0, -1).some((c) => c.code === EOF)).toBe(false);
        expect(paddingValue).toBe(0);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('writes clear then EOF for empty input', () => {
    // 256 and 257 at 9 bits each, LSB first: 00 03 02.
    expect(toHex(lzwCompress(new Uint8Array(0)))).toBe('000302');
    const r = lzwDecompress(hex('000302'), 10);
    expect(r.ok && r.value.length).toBe(0);
  });

  it('resets the table with a clear code at 12 bits exactly when the next code would be 4095', () => {
    const input = noisyBytes(7, 60_000);
    const { codes } = readCodes(lzwCompress(input));
    let resets = 0;
    for (let i = 1; i < codes.length; i++) {
      const c = codes[i]!;
      if (c.hi === 4095) {
        // Go's incHi: once hi reaches maxCode the writer emits clear at the current width.
        expect(c).toEqual({ code: CLEAR, width: 12, hi: 4095 });
        expect(codes[i + 1]!.width).toBe(9);
        resets++;
      } else {
        expect(c.code).not.toBe(CLEAR);
        expect(c.width).toBe(c.hi < 512 ? 9 : c.hi < 1024 ? 10 : c.hi < 2048 ? 11 : 12);
      }
    }
    expect(resets).toBeGreaterThanOrEqual(10);
    const back = lzwDecompress(lzwCompress(input), 1 << 20);
    expect(back.ok && toHex(back.value) === toHex(input)).toBe(true);
  });

  it('decodes a KwKwK code (a code equal to the next undefined one)', () => {
    // "aaa": literal 'a', then 258 = "a"+"a" before 258 is defined, then EOF.
    const stream = pack([
      [CLEAR, 9],
      [0x61, 9],
      [258, 9],
      [EOF, 9],
    ]);
    const r = lzwDecompress(stream, 100);
    expect(r.ok && new TextDecoder().decode(r.value)).toBe('aaa');
  });

  it('accepts clear codes anywhere, and a stream without a leading one (older Go)', () => {
    const stream = pack([
      [0x61, 9],
      [0x62, 9],
      [CLEAR, 9],
      [CLEAR, 9],
      [0x63, 9],
      [EOF, 9],
    ]);
    const r = lzwDecompress(stream, 100);
    expect(r.ok && new TextDecoder().decode(r.value)).toBe('abc');
  });

  it('ignores bytes after the EOF code', () => {
    const withTail = Uint8Array.of(...GO_TCP_PING_LZW, 0xde, 0xad, 0xbe, 0xef);
    const r = lzwDecompress(withTail, 1 << 20);
    expect(r.ok && toHex(r.value)).toBe(toHex(GO_TCP_PING_PLAIN));
  });

  it('refuses a stream that ends without EOF, as Go refuses it (io.ErrUnexpectedEOF)', () => {
    for (let n = 0; n < GO_TCP_PING_LZW.length; n++) {
      expect(lzwDecompress(GO_TCP_PING_LZW.subarray(0, n), 1 << 20)).toEqual({ ok: false, error: 'bad-compression' });
    }
  });

  it('refuses a code above the next undefined one', () => {
    expect(lzwDecompress(pack([[CLEAR, 9], [259, 9], [EOF, 9]]), 100)).toEqual({ ok: false, error: 'bad-compression' });
    expect(lzwDecompress(pack([[CLEAR, 9], [258, 9], [EOF, 9]]), 100)).toEqual({ ok: false, error: 'bad-compression' });
  });

  it('refuses to inflate beyond its output bound', () => {
    const big = lzwCompress(new Uint8Array(100_000));
    expect(big.length).toBeLessThan(2_000);
    expect(lzwDecompress(big, 99_999)).toEqual({ ok: false, error: 'too-large' });
    const exact = lzwDecompress(big, 100_000);
    expect(exact.ok && exact.value.length).toBe(100_000);
  });

  it('decompress(compress(x)) is x', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 5000 }), fc.string({ maxLength: 3000 }).map((s) => new TextEncoder().encode(s.repeat(3)))), (input) => {
        const r = lzwDecompress(lzwCompress(input), input.length);
        expect(r.ok && toHex(r.value)).toBe(toHex(input));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('decompress never throws on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = lzwDecompress(bytes, 4096);
        expect(r.ok || r.error === 'bad-compression' || r.error === 'too-large').toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
