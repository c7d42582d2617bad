import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { Suspicion } from '../../src/gossip/suspicion.js';

const BOUNDS = { k: 3, minMs: 500, maxMs: 2000 };

/** When the timer fires, given confirmations from `froms` at time 0, started by `from`. */
function firesAt(from: string, froms: readonly string[], bounds = BOUNDS): { at: number | undefined; fresh: boolean[] } {
  const clock = new ManualClock();
  let at: number | undefined;
  const s = new Suspicion(clock, from, bounds, () => {
    at = clock.now();
  });
  const fresh = froms.map((f) => s.confirm(f));
  clock.advance(60_000);
  return { at, fresh };
}

describe('Suspicion timer (ML suspicion.go, Lifeguard §IV-B)', () => {
  // memberlist's own cases (ML suspicion_test.go): k 3, min 500 ms, max 2 s. Its "810 ms" is
  // a wall-clock approximation; the formula gives floor(1000 × (2 − ln3/ln4 × 1.5)) = 811.
  it.each([
    ['no confirmations: the max', 'me', [], [], 2000],
    ['the accuser cannot confirm itself', 'me', ['me', 'foo'], [false, true], 1250],
    ['duplicates count once', 'me', ['me', 'foo', 'foo', 'foo'], [false, true, false, false], 1250],
    ['two confirmations', 'me', ['me', 'foo', 'bar'], [false, true, true], 811],
    ['k confirmations reach the min', 'me', ['me', 'foo', 'bar', 'baz'], [false, true, true, true], 500],
    ['more than k are not new information', 'me', ['me', 'foo', 'bar', 'baz', 'zoo'], [false, true, true, true, false], 500],
  ])('%s', (_name, from, froms, fresh, at) => {
    const r = firesAt(from, froms);
    expect(r.fresh).toEqual(fresh);
    expect(r.at).toBe(at);
  });

  it('starts at the min when no confirmations are wanted', () => {
    expect(firesAt('me', ['foo'], { k: 0, minMs: 4000, maxMs: 24000 })).toEqual({ at: 4000, fresh: [false] });
  });

  it('a confirmation past the new deadline fires on the next tick, not inside confirm()', () => {
    const clock = new ManualClock();
    let fired = 0;
    const s = new Suspicion(clock, 'me', BOUNDS, () => fired++);
    clock.advance(1900);
    for (const f of ['a', 'b', 'c']) s.confirm(f);
    expect(fired).toBe(0);
    clock.advance(0);
    expect(fired).toBe(1);
    clock.advance(10_000);
    expect(fired).toBe(1);
  });

  it('cancel() stops it for good', () => {
    const clock = new ManualClock();
    let fired = 0;
    const s = new Suspicion(clock, 'me', BOUNDS, () => fired++);
    s.cancel();
    expect(s.confirm('x')).toBe(false);
    clock.advance(10_000);
    expect(fired).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});
