/** The pure pieces: sequence arithmetic, the RFC 6298 estimator, range sets and the byte ring. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax } from '../../../src/netstack/tcp/seq.js';
import { RttEstimator } from '../../../src/netstack/tcp/rtt.js';
import { RangeSet } from '../../../src/netstack/tcp/range-set.js';
import { RingBuffer } from '../../../src/netstack/tcp/ring-buffer.js';
import { PROPERTY_RUNS } from '../../helpers/fuzz.js';

describe('sequence numbers (RFC 9293 §3.4)', () => {
  const table: [number, number, boolean][] = [
    [1, 2, true],
    [2, 1, false],
    [0xffff_ffff, 0, true], // wraps
    [0xffff_fff0, 0x10, true],
    [0x10, 0xffff_fff0, false],
    [5, 5, false],
  ];
  for (const [a, b, lt] of table) {
    it(`${a.toString(16)} < ${b.toString(16)} is ${lt}`, () => {
      expect(seqLt(a, b)).toBe(lt);
      expect(seqGe(a, b)).toBe(!lt);
      expect(seqLe(a, b)).toBe(lt || a === b);
      expect(seqGt(a, b)).toBe(!lt && a !== b);
    });
  }

  it('adds and subtracts modulo 2^32', () => {
    expect(seqAdd(0xffff_ffff, 2)).toBe(1);
    expect(seqAdd(0, -1)).toBe(0xffff_ffff);
    expect(seqDiff(1, 0xffff_ffff)).toBe(2);
    expect(seqMax(0xffff_ffff, 3)).toBe(3);
    expect(seqInRange(0, 0xffff_fff0, 0x10)).toBe(true);
    expect(seqInRange(0x10, 0xffff_fff0, 0x10)).toBe(false);
  });
});

describe('RTO estimator (RFC 6298)', () => {
  const bounds = { initialRtoMs: 1000, minRtoMs: 200, maxRtoMs: 60_000 };

  it('starts at the initial RTO (§2.1)', () => {
    expect(new RttEstimator(bounds).rto).toBe(1000);
  });

  it('takes the first sample as SRTT with RTTVAR = R/2 (§2.2)', () => {
    const e = new RttEstimator(bounds);
    e.sample(100);
    expect(e.srtt).toBe(100);
    expect(e.rttvar).toBe(50);
    expect(e.rto).toBe(300); // 100 + 4 × 50
  });

  it('smooths later samples with alpha 1/8 and beta 1/4 (§2.3)', () => {
    const e = new RttEstimator(bounds);
    e.sample(100);
    e.sample(200);
    expect(e.rttvar).toBeCloseTo(0.75 * 50 + 0.25 * 100);
    expect(e.srtt).toBeCloseTo(0.875 * 100 + 0.125 * 200);
    expect(e.rto).toBeCloseTo(112.5 + 4 * 62.5);
  });

  it('never goes below the minimum or above the maximum (§2.4, §2.5)', () => {
    const e = new RttEstimator(bounds);
    e.sample(1);
    expect(e.rto).toBe(200);
    for (let i = 0; i < 20; i++) e.backOff();
    expect(e.rto).toBe(60_000);
  });

  it('doubles on each timeout and forgets the backoff on a new sample (§5.5, §5.7)', () => {
    const e = new RttEstimator(bounds);
    e.backOff();
    e.backOff();
    expect(e.rto).toBe(4000);
    e.sample(100);
    expect(e.rto).toBe(300);
  });

  it('raises the RTO to 3 s after a lost SYN when no sample exists (§5.7)', () => {
    const e = new RttEstimator(bounds);
    e.resetAfterSynLoss();
    expect(e.rto).toBe(3000);
  });
});

describe('RangeSet', () => {
  it('merges touching and overlapping ranges, and shifts its base', () => {
    const r = new RangeSet(4);
    r.add(10, 20);
    r.add(30, 40);
    r.add(20, 25); // touches the first
    expect([r.count, r.start(0), r.end(0)]).toEqual([2, 10, 25]);
    r.add(24, 31); // bridges both
    expect([r.count, r.start(0), r.end(0)]).toEqual([1, 10, 40]);
    r.shift(15);
    expect([r.start(0), r.end(0), r.size]).toEqual([0, 25, 25]);
  });

  it('refuses a new disjoint range when full, and says so', () => {
    const r = new RangeSet(2);
    expect(r.add(0, 1)).toBe(0);
    expect(r.add(5, 6)).toBe(1);
    expect(r.add(10, 11)).toBe(-1);
    expect(r.count).toBe(2);
    expect(r.add(6, 7)).toBe(1); // still merges
  });

  it('agrees with a bitmap on random adds, shifts and queries', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(200), fc.nat(30), fc.nat(20)), { maxLength: 30 }), (ops) => {
        const r = new RangeSet(1000);
        let bits = new Array<boolean>(512).fill(false);
        for (const [start, len, shift] of ops) {
          r.add(start, start + len);
          for (let i = start; i < start + len; i++) bits[i] = true;
          if (shift % 4 === 0) {
            r.shift(shift);
            bits = bits.slice(shift).concat(new Array<boolean>(shift).fill(false));
          }
        }
        const held = Array.from({ length: 256 }, (_, i) => (r.indexOf(i) >= 0 ? '1' : '0')).join('');
        expect(held).toBe(bits.slice(0, 256).map((b) => (b ? '1' : '0')).join(''));
        expect(r.size).toBe(bits.filter(Boolean).length);
        expect(r.sizeAbove(50)).toBe(bits.slice(50).filter(Boolean).length);
      }),
      { numRuns: Math.min(PROPERTY_RUNS, 2_000) },
    );
  });
});

describe('RingBuffer', () => {
  it('wraps around and keeps out-of-order bytes in place across reads', () => {
    const ring = new RingBuffer(8);
    expect(ring.append(Uint8Array.of(1, 2, 3, 4, 5, 6))).toBe(6);
    expect([...ring.read(5)]).toEqual([1, 2, 3, 4, 5]);
    ring.writeAt(2, Uint8Array.of(9, 9)); // beyond the committed end, across the wrap
    expect(ring.append(Uint8Array.of(7, 8))).toBe(2);
    ring.commit(2);
    expect([...ring.read(10)]).toEqual([6, 7, 8, 9, 9]);
  });

  it('takes only what fits and throws RangeError past its capacity', () => {
    const ring = new RingBuffer(4);
    expect(ring.append(new Uint8Array(6))).toBe(4);
    expect(() => ring.writeAt(0, new Uint8Array(1))).toThrow(RangeError);
    expect(() => ring.copyOut(2, 3, new Uint8Array(3), 0)).toThrow(RangeError);
  });
});

describe('RingBuffer growth', () => {
  it('starts small, grows on demand to its capacity, and keeps every byte in order', () => {
    const ring = new RingBuffer(100_000);
    expect(ring.allocated).toBeLessThan(20_000);
    const data = Uint8Array.from({ length: 90_000 }, (_, i) => (i * 13) & 0xff);
    ring.append(data.subarray(0, 10_000));
    expect([...ring.read(5_000)]).toEqual([...data.subarray(0, 5_000)]);
    // Out-of-order bytes beyond the committed end survive growth.
    ring.writeAt(55_000, data.subarray(65_000, 90_000));
    expect(ring.append(data.subarray(10_000, 65_000))).toBe(55_000);
    ring.commit(25_000);
    expect(ring.allocated).toBeLessThanOrEqual(100_000);
    expect([...ring.read(100_000)]).toEqual([...data.subarray(5_000)]);
  });

  it('agrees with a plain array on random appends, out-of-order writes and reads', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(5000)), { maxLength: 40 }), (ops) => {
        const cap = 20_000;
        const ring = new RingBuffer(cap);
        let model: number[] = [];
        let n = 0;
        for (const [op, size] of ops) {
          if (op === 0) {
            const chunk = Uint8Array.from({ length: size }, () => n++ & 0xff);
            const took = ring.append(chunk);
            model = model.concat([...chunk.subarray(0, took)]);
          } else if (op === 1) {
            const got = ring.read(size);
            expect([...got]).toEqual(model.slice(0, got.length));
            model = model.slice(got.length);
          } else {
            // Out of order, then the gap, then commit both.
            const gap = Math.min(size % 100, ring.free);
            const rest = Math.min(size, ring.free - gap);
            const later = Uint8Array.from({ length: rest }, (_, i) => (n + gap + i) & 0xff);
            ring.writeAt(gap, later);
            const first = Uint8Array.from({ length: gap }, (_, i) => (n + i) & 0xff);
            ring.writeAt(0, first);
            ring.commit(gap + rest);
            model = model.concat([...first], [...later]);
            n += gap + rest;
          }
          expect(ring.length).toBe(model.length);
        }
        expect([...ring.read(cap)]).toEqual(model);
      }),
      { numRuns: Math.min(300, Math.max(100, PROPERTY_RUNS / 10)) },
    );
  });
});
