import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MsgpackReader, MsgpackWriter, decodeMsgpack, encodeMsgpack, MsgpackFailure, type MsgpackValue } from '../../../src/wire/memberlist/msgpack.js';
import { hex, toHex } from '../../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../../helpers/fuzz.js';
import { TS1_META } from './fixtures.js';

const write = (fn: (w: MsgpackWriter) => void): string => {
  const w = new MsgpackWriter(4);
  fn(w);
  return toHex(w.finish());
};

/** Runs a reader method and reports the failure reason instead of raising it. */
const read = <T>(bytes: string, fn: (r: MsgpackReader) => T): T | string => {
  try {
    return fn(new MsgpackReader(hex(bytes)));
  } catch (e) {
    if (e instanceof MsgpackFailure) return e.reason;
    throw e;
  }
};

describe('msgpack writer (go-msgpack v0.5.5 output, spec §6.1)', () => {
  it('writes strings and byte slices in the str family, never str8 or bin', () => {
    expect(write((w) => w.str(''))).toBe('a0');
    expect(write((w) => w.str('s1'))).toBe('a27331');
    expect(write((w) => w.str('x'.repeat(31)))).toBe(`bf${'78'.repeat(31)}`);
    // 32..255 bytes: Go writes str16 (0xda) where msgpack's newer spec would use str8.
    expect(write((w) => w.str('x'.repeat(32))).slice(0, 6)).toBe('da0020');
    expect(write((w) => w.strBytes(new Uint8Array(200))).slice(0, 6)).toBe('da00c8');
    expect(write((w) => w.strBytes(new Uint8Array(65535))).slice(0, 6)).toBe('daffff');
    expect(write((w) => w.strBytes(new Uint8Array(65536))).slice(0, 10)).toBe('db00010000');
  });

  it('writes an empty byte slice as nil, as Go writes a nil slice', () => {
    expect(write((w) => w.bytes(new Uint8Array(0)))).toBe('c0');
    expect(write((w) => w.bytes(Uint8Array.of(1, 5, 2, 2, 5, 5)))).toBe('a6010502020505');
  });

  it('writes non-negative integers in the unsigned family at the smallest width', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [127, '7f'],
      [128, 'cc80'], // spec §6.1: SeqNo 128 went out as cc 80
      [255, 'ccff'],
      [256, 'cd0100'],
      [7946, 'cd1f0a'],
      [65535, 'cdffff'],
      [65536, 'ce00010000'],
      [0xffff_ffff, 'ceffffffff'],
      [0x1_0000_0000, 'cf0000000100000000'],
      [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    ];
    for (const [v, want] of cases) expect(write((w) => w.uint(v))).toBe(want);
  });

  it('writes negative integers in the smallest signed form', () => {
    const cases: [number, string][] = [
      [-1, 'ff'],
      [-32, 'e0'],
      [-33, 'd0df'],
      [-128, 'd080'],
      [-129, 'd1ff7f'],
      [-32768, 'd18000'],
      [-32769, 'd2ffff7fff'],
      [-(2 ** 31), 'd280000000'],
      [-(2 ** 31) - 1, 'd3ffffffff7fffffff'],
    ];
    for (const [v, want] of cases) expect(write((w) => w.int(v))).toBe(want);
  });

  it('writes map and array headers at the smallest width', () => {
    expect(write((w) => w.mapHeader(15))).toBe('8f');
    expect(write((w) => w.mapHeader(16))).toBe('de0010');
    expect(write((w) => w.mapHeader(70000))).toBe('df00011170');
    expect(write((w) => w.arrayHeader(15))).toBe('9f');
    expect(write((w) => w.arrayHeader(512))).toBe('dc0200'); // serf's Events array, spec §14.4
    expect(write((w) => w.arrayHeader(70000))).toBe('dd00011170');
  });

  it('refuses numbers Go could not have written', () => {
    expect(() => new MsgpackWriter().uint(-1)).toThrow(RangeError);
    expect(() => new MsgpackWriter().uint(1.5)).toThrow(RangeError);
    expect(() => new MsgpackWriter().int(2 ** 60)).toThrow(RangeError);
  });

  it('encodes serf tags as the meta serf displays (spec §14.1)', () => {
    const tags = new Map<MsgpackValue, MsgpackValue>([
      ['role', 'ts'],
      ['lang', 'typescript'],
    ]);
    expect(toHex(Uint8Array.of(0xff, ...encodeMsgpack(tags)))).toBe(toHex(TS1_META));
    expect(toHex(encodeMsgpack(new Map()))).toBe('80'); // "No tags: ff 80"
  });
});

describe('msgpack reader (what go-msgpack accepts, spec §6.2)', () => {
  it('reads any integer encoding into an unsigned field', () => {
    for (const b of ['05', 'cc05', 'cd0005', 'ce00000005', 'cf0000000000000005', 'd005', 'd10005', 'd200000005', 'd30000000000000005']) {
      expect(read(b, (r) => r.readUint(32))).toBe(5);
    }
  });

  it('refuses a negative or oversized value for an unsigned field', () => {
    expect(read('ff', (r) => r.readUint(32))).toBe('bad-field');
    expect(read('d0ff', (r) => r.readUint(8))).toBe('bad-field');
    expect(read('cd0100', (r) => r.readUint(8))).toBe('bad-field');
    expect(read('ce00010000', (r) => r.readUint(16))).toBe('bad-field');
    expect(read('cf0000000100000000', (r) => r.readUint(32))).toBe('bad-field');
    expect(read('cfffffffffffffffff', (r) => r.readCount())).toBe('bad-field');
  });

  it('reads nil as the zero value of any field', () => {
    expect(read('c0', (r) => r.readUint(32))).toBe(0);
    expect(read('c0', (r) => r.readString())).toBe('');
    expect(read('c0', (r) => toHex(r.readBytes()))).toBe('');
    expect(read('c0', (r) => r.readBool())).toBe(false);
  });

  it('reads byte fields from str8, str16, bin8/16/32 and arrays of small integers', () => {
    for (const b of ['a47f000001', 'd9047f000001', 'da00047f000001', 'db000000047f000001', 'c4047f000001', 'c500047f000001', 'c6000000047f000001', '947f000001']) {
      expect(read(b, (r) => toHex(r.readBytes()))).toBe('7f000001');
    }
    expect(read('92cd0100', (r) => r.readBytes())).toBe('bad-field');
  });

  it('refuses bin for a string field, as Go does', () => {
    expect(read('c4027331', (r) => r.readString())).toBe('bad-msgpack');
    expect(read('d9027331', (r) => r.readString())).toBe('s1');
  });

  it('reads bools from c2/c3 and the integers 0 and 1', () => {
    expect(read('c3', (r) => r.readBool())).toBe(true);
    expect(read('01', (r) => r.readBool())).toBe(true);
    expect(read('00', (r) => r.readBool())).toBe(false);
    expect(read('02', (r) => r.readBool())).toBe('bad-msgpack');
  });

  it('reports truncation at every cut of a value', () => {
    const full = '85a3616161cd1f0aa362626292c3c0a3636363da0003414243a364646481a165cb3ff8000000000000a3656565c40101';
    for (let n = 0; n < full.length / 2; n++) {
      expect(read(full.slice(0, n * 2), (r) => r.skip())).toBe('truncated');
    }
    expect(read(full, (r) => (r.skip(), r.offset))).toBe(full.length / 2);
  });

  it('skips every msgpack type, ext included', () => {
    const values = ['c0', 'c2', '7f', 'e0', 'cc01', 'cd0102', 'ce01020304', 'cf0102030405060708', 'd001', 'd10102', 'd201020304', 'd30102030405060708', 'ca00000000', 'cb0000000000000000', 'a161', 'd90161', 'da000161', 'db0000000161', 'c40161', 'c5000161', 'c60000000161', 'd40100', 'd5010000', 'd601' + '00'.repeat(4), 'd701' + '00'.repeat(8), 'd801' + '00'.repeat(16), 'c70101ff', 'c8000101ff', 'c900000001' + '01ff', '9100', 'dc000100', 'dd0000000100', '810000', 'de00010000', 'df000000010000'];
    for (const v of values) expect(read(`${v}2a`, (r) => (r.skip(), r.readUint(8)))).toBe(42);
    expect(read('c1', (r) => r.skip())).toBe('bad-msgpack');
  });

  it('refuses nesting deeper than its bound instead of overflowing the stack', () => {
    expect(read('91'.repeat(100_000), (r) => r.skip())).toBe('bad-msgpack');
    expect(decodeMsgpack(hex('81a0'.repeat(1000)))).toEqual({ ok: false, error: 'bad-msgpack' });
  });

  it('does not allocate for an array count the bytes cannot hold', () => {
    expect(read('ddffffffff01', (r) => r.readBytes())).toBe('truncated');
    expect(decodeMsgpack(hex('ddffffffff01'))).toEqual({ ok: false, error: 'truncated' });
  });
});

const arbValue: fc.Arbitrary<MsgpackValue> = fc.letrec<{ v: MsgpackValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true }).filter((d) => !Number.isSafeInteger(d) && !Object.is(d, -0)),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.array(fc.tuple(fc.string({ maxLength: 8 }), tie('v')), { maxLength: 5 }).map((entries) => new Map<MsgpackValue, MsgpackValue>(entries)),
  ),
})).v;

describe('msgpack properties', () => {
  it('decode(encode(v)) is v for any value', () => {
    fc.assert(
      fc.property(arbValue, (v) => {
        expect(decodeMsgpack(encodeMsgpack(v))).toEqual({ ok: true, value: v });
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('decode never throws on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodeMsgpack(bytes);
        expect(r.ok || ['truncated', 'bad-msgpack', 'bad-field'].includes(r.error)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
