/**
 * NodeStatusTracker against a model, over random sequences of heartbeats, membership events
 * and the passing of time (ManualClock): ready exactly while a heartbeat is fresh (less than
 * three periods old and not voided by a later "down") and the membership does not say down.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GRACE_PERIOD_MULTIPLIER, NodeStatusTracker } from '../../src/cluster/status.js';
import { ManualClock } from '../../src/lib/clock.js';
import { PROPERTY_RUNS } from '../helpers/fuzz.js';

type Step = { kind: 'heartbeat' } | { kind: 'liveness'; up: boolean } | { kind: 'advance'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'heartbeat' }),
  fc.boolean().map<Step>((up) => ({ kind: 'liveness', up })),
  fc.integer({ min: 0, max: 5000 }).map<Step>((ms) => ({ kind: 'advance', ms })),
);

describe('NodeStatusTracker', () => {
  it('matches the model on random histories', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 2000 }), fc.array(step, { maxLength: 60 }), (periodMs, steps) => {
        const clock = new ManualClock();
        const changes: string[] = [];
        const tracker = new NodeStatusTracker({ clock, heartbeatPeriodMs: periodMs, onChange: (_id, s) => changes.push(s.state) });
        const grace = periodMs * GRACE_PERIOD_MULTIPLIER;
        tracker.track('n');
        // The model: when the current heartbeat expires (undefined: none fresh), what the membership says, whether anything was heard.
        let freshUntil: number | undefined;
        let livenessUp: boolean | undefined;
        let heard = false;
        let previous = 'unknown';
        for (const s of steps) {
          if (s.kind === 'heartbeat') {
            tracker.heartbeat('n');
            freshUntil = clock.now() + grace;
            heard = true;
          } else if (s.kind === 'liveness') {
            tracker.liveness('n', s.up);
            livenessUp = s.up;
            heard = true;
            if (!s.up) freshUntil = undefined;
          } else {
            clock.advance(s.ms);
          }
          const fresh = freshUntil !== undefined && clock.now() < freshUntil;
          const expected = fresh && livenessUp !== false ? 'ready' : !heard && clock.now() < grace ? 'unknown' : 'down';
          const actual = tracker.status('n').state;
          expect(actual).toBe(expected);
          if (actual !== previous && actual !== 'unknown') expect(changes.at(-1)).toBe(actual);
          previous = actual;
        }
        tracker.close();
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});
