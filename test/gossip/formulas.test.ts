import { describe, expect, it } from 'vitest';
import {
  failedProbeAwarenessDelta,
  initialSuspicionTimeout,
  pushPullScale,
  remainingSuspicionTime,
  retransmitLimit,
  scaleTimeout,
  suspicionBounds,
  suspicionTimeout,
} from '../../src/gossip/formulas.js';
import { Awareness } from '../../src/gossip/awareness.js';

describe('suspicionTimeout (ML util.go:64-69)', () => {
  // SuspicionMult 3, ProbeInterval 1 s, divided by 3: the node-scale factor in ms, as
  // memberlist's own table has it; plus the LAN values a shoal cluster runs with.
  it.each([
    [5, 1000],
    [10, 1000],
    [50, 1698],
    [100, 2000],
    [500, 2698],
    [1000, 3000],
  ])('n=%i scales to %i ms per unit of SuspicionMult', (n, perMult) => {
    expect(suspicionTimeout(3, n, 1000) / 3).toBe(perMult);
  });

  it.each([
    [0, 4000],
    [1, 4000],
    [3, 4000], // the verified serf case: 3 nodes, suspected → failed in 4 s (spec §12.2)
    [50, 6792],
    [1000, 12000],
  ])('LAN (mult 4, 1 s): n=%i gives %i ms', (n, ms) => {
    expect(suspicionTimeout(4, n, 1000)).toBe(ms);
  });
});

describe('suspicionBounds (ML state.go:1187-1217)', () => {
  it.each([
    // n, k, min, max
    [2, 0, 4000, 24000],
    [3, 0, 4000, 24000], // n − 2 = 1 < k = 2: nobody left to confirm
    [4, 2, 4000, 24000],
    [50, 2, 6792, 40752],
  ])('LAN n=%i: k=%i min=%i max=%i', (n, k, min, max) => {
    const b = suspicionBounds(4, 6, n, 1000);
    expect(b).toEqual({ k, minMs: min, maxMs: max });
  });

  it('starts at min when no confirmations are expected, else at max', () => {
    expect(initialSuspicionTimeout({ k: 0, minMs: 4000, maxMs: 24000 })).toBe(4000);
    expect(initialSuspicionTimeout({ k: 2, minMs: 4000, maxMs: 24000 })).toBe(24000);
  });
});

describe('remainingSuspicionTime (ML suspicion.go:85-99)', () => {
  it.each([
    // confirmations, k, elapsed, min, max, expected (memberlist's own table)
    [0, 3, 0, 2000, 30000, 30000],
    [1, 3, 2000, 2000, 30000, 14000],
    [2, 3, 3000, 2000, 30000, 4810],
    [3, 3, 4000, 2000, 30000, -2000],
    [4, 3, 5000, 2000, 30000, -3000],
    [5, 3, 10000, 2000, 30000, -8000],
  ])('c=%i k=%i elapsed=%i [%i, %i] → %i', (c, k, elapsed, min, max, expected) => {
    expect(remainingSuspicionTime(c, k, elapsed, min, max)).toBe(expected);
  });

  it('refuses k < 1', () => {
    expect(() => remainingSuspicionTime(1, 0, 0, 1, 2)).toThrow(RangeError);
  });
});

describe('retransmitLimit (ML util.go:72-76)', () => {
  it.each([
    [3, 0, 0],
    [3, 1, 3],
    [3, 99, 6],
    [4, 3, 4],
    [4, 9, 4],
    [4, 10, 8],
    [4, 50, 8],
    [4, 1000, 16],
  ])('mult %i, n=%i → %i', (mult, n, limit) => {
    expect(retransmitLimit(mult, n)).toBe(limit);
  });
});

describe('pushPullScale (ML util.go:89-97)', () => {
  it.each([
    [0, 1],
    [32, 1],
    [33, 2],
    [64, 2],
    [65, 3],
    [128, 3],
    [129, 4],
    [1000, 6],
  ])('n=%i multiplies the interval by %i', (n, mult) => {
    expect(pushPullScale(30_000, n)).toBe(30_000 * mult);
  });
});

describe('awareness (ML awareness.go, Lifeguard §IV-A)', () => {
  it.each([
    [0, 500],
    [1, 1000],
    [7, 4000],
  ])('score %i scales a 500 ms timeout to %i ms', (score, ms) => {
    expect(scaleTimeout(500, score)).toBe(ms);
  });

  it.each([
    // expected nacks, received, delta
    [0, 0, 1],
    [3, 0, 3],
    [3, 1, 2],
    [3, 3, 0],
    [2, 3, 0],
  ])('failed probe with %i nacks expected and %i received costs %i', (expected, received, delta) => {
    expect(failedProbeAwarenessDelta(expected, received)).toBe(delta);
  });

  it('keeps the score within [0, max − 1] and reports changes', () => {
    const a = new Awareness(8);
    expect(a.applyDelta(-1)).toBe(false);
    expect(a.score).toBe(0);
    expect(a.applyDelta(3)).toBe(true);
    expect(a.scaleTimeout(1000)).toBe(4000);
    a.applyDelta(100);
    expect(a.score).toBe(7);
    expect(a.scaleTimeout(1000)).toBe(8000);
    expect(a.applyDelta(1)).toBe(false);
    a.applyDelta(-2);
    expect(a.score).toBe(5);
  });
});
