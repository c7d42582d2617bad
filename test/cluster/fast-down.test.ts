/**
 * Fast node-down detection (issue 8): the gossip's suspicion and the end of the node's
 * dispatcher session, together, make a node down at once; either alone changes nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MembershipLiveness } from '../../src/agent/cluster-liveness.js';
import { DEFAULT_SESSION_GRACE_MS, Dispatcher } from '../../src/cluster/dispatcher.js';
import { type LivenessEvent, ManualLiveness } from '../../src/cluster/liveness.js';
import { NodeStatusTracker, UNREACHABLE_MESSAGE } from '../../src/cluster/status.js';
import type { MemberEvent } from '../../src/gossip/memberlist.js';
import { ManualClock } from '../../src/lib/clock.js';
import { FakeTx } from '../helpers/fake-store.js';
import { PROPERTY_RUNS } from '../helpers/fuzz.js';

const PERIOD_MS = 5_000;

function tracker(): { clock: ManualClock; t: NodeStatusTracker; changes: string[] } {
  const clock = new ManualClock();
  const changes: string[] = [];
  const t = new NodeStatusTracker({ clock, heartbeatPeriodMs: PERIOD_MS, onChange: (id, s) => changes.push(`${id}:${s.state}`) });
  return { clock, t, changes };
}

describe('NodeStatusTracker: suspicion and sessions', () => {
  it('a suspected node whose session is gone is down at once, with the reason', () => {
    const { t, changes } = tracker();
    t.heartbeat('n');
    t.session('n', true);
    t.suspect('n');
    expect(t.status('n').state).toBe('ready');
    t.session('n', false);
    expect(t.status('n')).toEqual({ state: 'down', message: UNREACHABLE_MESSAGE });
    expect(changes).toEqual(['n:ready', 'n:down']);
  });

  it('in either order', () => {
    const { t } = tracker();
    t.heartbeat('n');
    t.session('n', true);
    t.session('n', false);
    expect(t.status('n').state).toBe('ready');
    t.membership('n', 'suspect');
    expect(t.status('n').state).toBe('down');
  });

  it.each<[string, (t: NodeStatusTracker) => void]>([
    ['the gossip says it is alive', (t) => t.membership('n', 'up')],
    ['a new session opens', (t) => t.session('n', true)],
    ['a heartbeat arrives', (t) => t.heartbeat('n')],
  ])('is ready again when %s', (_name, clear) => {
    const { t } = tracker();
    t.heartbeat('n');
    t.session('n', true);
    t.session('n', false);
    t.suspect('n');
    expect(t.status('n').state).toBe('down');
    clear(t);
    expect(t.status('n').state).toBe('ready');
  });

  it('suspicion does not count for a node that never had a session (no second detector)', () => {
    const { t } = tracker();
    t.heartbeat('n');
    t.suspect('n');
    expect(t.status('n').state).toBe('ready');
  });

  it('the gossip declaring the node dead still wins over an open session', () => {
    const { t } = tracker();
    t.heartbeat('n');
    t.session('n', true);
    t.membership('n', 'down');
    expect(t.status('n').state).toBe('down');
  });

  it('with the Dispatcher: an agent killed mid-poll is down one session grace after its connection closes, once suspected', async () => {
    const { clock, t } = tracker();
    const d = new Dispatcher({ clock, reader: new FakeTx(), onSession: (id, open) => t.session(id, open) });
    t.heartbeat('w');
    const first = await d.wait('w', -1, 30_000);
    const abort = new AbortController();
    void d.wait('w', first.Index, 30_000, abort.signal);
    clock.advance(2_000);
    abort.abort(); // kill -9: the agent's TCP connection closes
    clock.advance(DEFAULT_SESSION_GRACE_MS / 2);
    t.suspect('w'); // SWIM: the probe and the indirect probes went unanswered
    expect(t.status('w').state).toBe('ready');
    clock.advance(DEFAULT_SESSION_GRACE_MS / 2);
    expect(t.status('w')).toEqual({ state: 'down', message: UNREACHABLE_MESSAGE });
    d.close();
    t.close();
  });

  it('property: down while suspected without a session once had one; otherwise the heartbeat rules', () => {
    type Step = 'heartbeat' | 'up' | 'down' | 'suspect' | 'open' | 'close' | { advance: number };
    const arbStep = fc.oneof(
      fc.constantFrom<Step>('heartbeat', 'up', 'down', 'suspect', 'open', 'close'),
      fc.integer({ min: 0, max: 8_000 }).map<Step>((ms) => ({ advance: ms })),
    );
    fc.assert(
      fc.property(fc.array(arbStep, { maxLength: 60 }), (steps) => {
        const { clock, t } = tracker();
        const grace = PERIOD_MS * 3;
        t.track('n');
        let freshUntil: number | undefined;
        let livenessUp: boolean | undefined;
        let heard = false;
        let suspected = false;
        let session = false;
        let hadSession = false;
        for (const s of steps) {
          if (s === 'heartbeat') {
            t.heartbeat('n');
            freshUntil = clock.now() + grace;
            heard = true;
            suspected = false;
          } else if (s === 'up' || s === 'down') {
            t.membership('n', s);
            livenessUp = s === 'up';
            heard = true;
            if (s === 'up') suspected = false;
            else freshUntil = undefined;
          } else if (s === 'suspect') {
            t.membership('n', 'suspect');
            suspected = true;
          } else if (s === 'open' || s === 'close') {
            t.session('n', s === 'open');
            session = s === 'open';
            if (session) {
              hadSession = true;
              suspected = false;
            }
          } else {
            clock.advance(s.advance);
          }
          const fresh = freshUntil !== undefined && clock.now() < freshUntil;
          const unreachable = suspected && hadSession && !session;
          const expected = unreachable ? 'down' : fresh && livenessUp !== false ? 'ready' : !heard && clock.now() < grace ? 'unknown' : 'down';
          expect(t.status('n').state).toBe(expected);
        }
        t.close();
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});

describe('MembershipLiveness: suspect events', () => {
  function event(type: MemberEvent['type']): MemberEvent {
    return { type, member: { name: 'w', address: { host: '127.0.0.2', port: 7946 } } } as unknown as MemberEvent;
  }

  it('reach only listeners that ask for them; up and down reach every listener', () => {
    const liveness = new MembershipLiveness();
    const plain: LivenessEvent[] = [];
    const aware: LivenessEvent[] = [];
    liveness.subscribe((e) => plain.push(e));
    const off = liveness.subscribe((e) => aware.push(e), { suspect: true });
    for (const type of ['suspect', 'alive', 'suspect', 'dead', 'join', 'update', 'leave'] as const) liveness.notifyEvent(event(type));
    expect(plain.map((e) => e.state)).toEqual(['up', 'down', 'up', 'up', 'down']);
    expect(aware.map((e) => e.state)).toEqual(['suspect', 'up', 'suspect', 'down', 'up', 'up', 'down']);
    expect(aware[0]).toEqual({ addr: '127.0.0.2', name: 'w', state: 'suspect' });
    off();
    liveness.notifyEvent(event('suspect'));
    expect(aware).toHaveLength(7);
  });

  it('ManualLiveness filters the same way', () => {
    const liveness = new ManualLiveness();
    const plain: string[] = [];
    const aware: string[] = [];
    liveness.subscribe((e) => plain.push(e.state));
    liveness.subscribe((e) => aware.push(e.state), { suspect: true });
    liveness.emit({ addr: 'a', state: 'suspect' });
    liveness.emit({ addr: 'a', state: 'down' });
    expect(plain).toEqual(['down']);
    expect(aware).toEqual(['suspect', 'down']);
  });
});
