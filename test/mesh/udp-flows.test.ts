import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { UdpFlowTable } from '../../src/mesh/udp-flows.js';

describe('UdpFlowTable', () => {
  it('expires a flow after its idle time, counted from its last use', () => {
    const clock = new ManualClock();
    const t = new UdpFlowTable<string>({ clock, idleTimeoutMs: 1000 });
    const expired: string[] = [];
    t.add('c1', 'e1', () => expired.push('c1'));
    t.add('c2', 'e2', () => expired.push('c2'));
    clock.advance(700);
    expect(t.get('c1')).toBe('e1');
    clock.advance(300);
    expect(expired).toEqual(['c2']);
    clock.advance(699);
    expect(expired).toEqual(['c2']);
    clock.advance(1);
    expect(expired).toEqual(['c2', 'c1']);
    expect(t.size).toBe(0);
    expect(t.counters.get('mesh_udp_flows_expired')).toBe(2);
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses new clients when full and keeps the existing flows', () => {
    const clock = new ManualClock();
    const t = new UdpFlowTable<number>({ clock, maxFlows: 2 });
    expect(t.add('a', 1, () => undefined)).toBe(true);
    expect(t.add('b', 2, () => undefined)).toBe(true);
    expect(t.add('c', 3, () => undefined)).toBe(false);
    expect(t.get('a')).toBe(1);
    expect(t.counters.get('mesh_udp_dropped_flows_full')).toBe(1);
    let closed = 0;
    t.delete('a');
    expect(t.add('c', 3, () => closed++)).toBe(true);
    t.close();
    expect(closed).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });
});
