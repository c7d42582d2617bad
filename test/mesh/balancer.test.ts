import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { type Rng, SeededRng } from '../../src/lib/rng.js';
import { Balancer, chooseP2C, ejectionDurationMs } from '../../src/mesh/balancer.js';

/** An Rng whose int() answers from a script, to pin which two endpoints are drawn. */
function scripted(...ints: number[]): Rng {
  const rest = [...ints];
  return {
    u32: () => 0,
    float: () => 0,
    int: (n) => {
      const v = rest.shift();
      if (v === undefined || v >= n) throw new Error(`script exhausted or out of range for int(${n})`);
      return v;
    },
    fill: (out) => out,
  };
}

const A = { key: 'a', local: false };
const B = { key: 'b', local: false };
const L = { key: 'l', local: true };

describe('chooseP2C', () => {
  it.each([
    ['no candidates', [], {}, [], undefined],
    ['one candidate, no draw', [A], { a: 9 }, [], 'a'],
    ['the less loaded of the two drawn', [A, B], { a: 3, b: 1 }, [0, 0], 'b'],
    ['the less loaded even when it is remote', [A, L], { a: 0, l: 1 }, [1, 0], 'a'],
    ['the local one on a tie', [A, L], { a: 2, l: 2 }, [0, 0], 'l'],
    ['the first drawn on a full tie', [A, B], { a: 1, b: 1 }, [1, 0], 'b'],
    ['two distinct draws: the second skips the first', [A, B, L], { a: 5, b: 5, l: 0 }, [1, 1], 'l'],
  ] as const)('%s', (_what, candidates, loads, ints, expected) => {
    const load = (e: { key: string }): number => (loads as Record<string, number>)[e.key] ?? 0;
    expect(chooseP2C(candidates, load, scripted(...ints))?.key).toBe(expected);
  });

  it('never picks the most loaded of three (it can never win a draw)', () => {
    const rng = new SeededRng(1);
    const loads: Record<string, number> = { a: 0, b: 1, l: 5 };
    for (let i = 0; i < 1000; i++) expect(chooseP2C([A, B, L], (e) => loads[e.key]!, rng)?.key).not.toBe('l');
  });
});

describe('ejectionDurationMs', () => {
  it.each([
    [0, 0],
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [5, 16000],
    [6, 30000],
    [100, 30000],
  ])('ejection %i lasts %i ms', (n, ms) => {
    expect(ejectionDurationMs(n, 1000, 30_000)).toBe(ms);
  });
});

describe('Balancer', () => {
  it('spreads connections evenly when every endpoint holds on to them', () => {
    const b = new Balancer({ clock: new ManualClock(), rng: new SeededRng(3) });
    const eps = [A, B, L, { key: 'c', local: false }];
    for (let i = 0; i < 400; i++) b.acquire(b.choose(eps)!.key);
    for (const e of eps) expect(b.outstanding(e.key)).toBeGreaterThanOrEqual(95);
  });

  it('ejects a failing endpoint with exponential backoff and takes it back after', () => {
    const clock = new ManualClock();
    const b = new Balancer({ clock, rng: new SeededRng(4), baseEjectionMs: 100, maxEjectionMs: 1000 });
    expect(b.reportFailure('a')).toBe(100);
    for (let i = 0; i < 20; i++) expect(b.choose([A, B])?.key).toBe('b');
    clock.advance(100);
    expect(b.isEjected('a')).toBe(false);
    expect(b.reportFailure('a')).toBe(200);
    clock.advance(199);
    expect(b.choose([A])).toBeUndefined();
    clock.advance(1);
    expect(b.choose([A])?.key).toBe('a');
    b.reportSuccess('a');
    expect(b.reportFailure('a')).toBe(100);
  });

  it('skips endpoints already tried for this connection', () => {
    const b = new Balancer({ clock: new ManualClock(), rng: new SeededRng(5) });
    expect(b.choose([A, B], new Set(['a', 'b']))).toBeUndefined();
    for (let i = 0; i < 10; i++) expect(b.choose([A, B], new Set(['a']))?.key).toBe('b');
  });

  it('keeps its state bounded, forgetting idle endpoints first', () => {
    const b = new Balancer({ clock: new ManualClock(), rng: new SeededRng(6), maxTracked: 2 });
    b.acquire('busy');
    b.reportFailure('x');
    b.reportFailure('y');
    expect(b.outstanding('busy')).toBe(1);
    expect(b.isEjected('x')).toBe(false);
    expect(b.isEjected('y')).toBe(true);
    b.release('busy');
    expect(b.outstanding('busy')).toBe(0);
  });
});
