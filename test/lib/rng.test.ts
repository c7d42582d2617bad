import { describe, expect, it } from 'vitest';
import { CryptoRng, SeededRng } from '../../src/lib/rng.js';

describe('SeededRng', () => {
  it('replays the same sequence for the same seed and differs for another', () => {
    const a = new SeededRng(42);
    const b = new SeededRng(42);
    const c = new SeededRng(43);
    const seqA = Array.from({ length: 8 }, () => a.u32());
    expect(Array.from({ length: 8 }, () => b.u32())).toEqual(seqA);
    expect(Array.from({ length: 8 }, () => c.u32())).not.toEqual(seqA);
  });

  it('spreads int(n) over the whole range', () => {
    const rng = new SeededRng(7);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[rng.int(10)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
    expect(() => rng.int(0)).toThrow(RangeError);
  });
});

describe('CryptoRng', () => {
  it('keeps giving fresh numbers across pool refills', () => {
    const rng = new CryptoRng();
    const seen = new Set(Array.from({ length: 1000 }, () => rng.u32()));
    expect(seen.size).toBeGreaterThan(990);
  });
});
