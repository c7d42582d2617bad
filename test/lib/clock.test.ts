import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';

describe('ManualClock', () => {
  it('fires timers in deadline order, ties in creation order, at their deadlines', () => {
    const clock = new ManualClock(100);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push(`b@${clock.now()}`));
    clock.setTimer(10, () => fired.push(`a@${clock.now()}`));
    clock.setTimer(30, () => fired.push(`c@${clock.now()}`));
    clock.advance(29);
    expect(fired).toEqual(['a@110']);
    clock.advance(1);
    expect(fired).toEqual(['a@110', 'b@130', 'c@130']);
    expect(clock.now()).toBe(130);
  });

  it('fires a timer set by a firing timer within the same advance when due', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    clock.setTimer(5, () => clock.setTimer(5, () => fired.push(clock.now())));
    clock.advance(20);
    expect(fired).toEqual([10]);
    expect(clock.now()).toBe(20);
  });

  it('never fires a cancelled timer and stops counting it as pending', () => {
    const clock = new ManualClock();
    let fired = false;
    const t = clock.setTimer(5, () => (fired = true));
    expect(clock.pendingTimers).toBe(1);
    t.cancel();
    t.cancel();
    clock.advance(10);
    expect(fired).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    expect(clock.nextDeadline()).toBeUndefined();
  });
});
