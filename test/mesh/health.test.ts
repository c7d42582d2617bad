import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import type { Health } from '../../src/mesh/endpoint-codec.js';
import { HealthChecker, type HealthCheckSpec, type ProbeTarget } from '../../src/mesh/health.js';

/** Lets promise callbacks run (the probe results) between clock steps. */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

type Outcome = 'pass' | 'fail' | 'hang';

function harness(script: Outcome[]): { checker: HealthChecker; clock: ManualClock; reports: Health[]; probes: ProbeTarget[]; aborted: number[] } {
  const clock = new ManualClock();
  const reports: Health[] = [];
  const probes: ProbeTarget[] = [];
  const aborted: number[] = [];
  const checker = new HealthChecker({
    clock,
    report: (_s, _t, h) => reports.push(h),
    probe: (target, signal) => {
      const n = probes.push(target);
      signal.addEventListener('abort', () => aborted.push(n));
      const outcome = script.shift() ?? 'pass';
      if (outcome === 'pass') return Promise.resolve();
      if (outcome === 'fail') return Promise.reject(new Error('ECONNREFUSED'));
      return new Promise(() => undefined);
    },
  });
  return { checker, clock, reports, probes, aborted };
}

const SPEC: HealthCheckSpec = { kind: 'http', path: '/health', intervalMs: 1000, timeoutMs: 300, retries: 3 };

async function step(clock: ManualClock, ms: number): Promise<void> {
  await flush();
  clock.advance(ms);
  await flush();
}

describe('HealthChecker', () => {
  it('probes at once and reports healthy on the first pass, then keeps probing every interval', async () => {
    const h = harness(['pass', 'pass', 'pass']);
    h.checker.add('web', 't1', { host: '127.0.0.1', port: 18001 }, SPEC);
    await step(h.clock, 0);
    expect(h.reports).toEqual(['healthy']);
    expect(h.probes[0]).toEqual({ kind: 'http', host: '127.0.0.1', port: 18001, path: '/health' });
    await step(h.clock, 1000);
    await step(h.clock, 1000);
    expect(h.probes).toHaveLength(3);
    expect(h.reports).toEqual(['healthy']);
    h.checker.close();
    expect(h.clock.pendingTimers).toBe(0);
  });

  it('turns unhealthy only after `retries` consecutive failures, and healthy again after one pass', async () => {
    const h = harness(['pass', 'fail', 'fail', 'pass', 'fail', 'fail', 'fail', 'pass']);
    h.checker.add('web', 't1', { host: '127.0.0.1', port: 18001 }, SPEC);
    const seen: (Health | undefined)[] = [];
    for (let i = 0; i < 8; i++) {
      await step(h.clock, i === 0 ? 0 : 1000);
      seen.push(h.checker.health('web', 't1'));
    }
    expect(seen).toEqual(['healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'unhealthy', 'healthy']);
    expect(h.reports).toEqual(['healthy', 'unhealthy', 'healthy']);
    h.checker.close();
  });

  it('counts a probe that hangs past the timeout as failed and aborts it', async () => {
    const h = harness(['hang', 'hang', 'hang']);
    h.checker.add('web', 't1', { host: '127.0.0.1', port: 18001 }, SPEC);
    for (let i = 0; i < 3; i++) await step(h.clock, i === 0 ? 300 : 1300);
    expect(h.reports).toEqual(['unhealthy']);
    expect(h.aborted).toEqual([1, 2, 3]);
    expect(h.checker.counters.get('health_probes_timed_out')).toBe(3);
    h.checker.close();
  });

  it('does not count failures inside the start period', async () => {
    const h = harness(['fail', 'fail', 'fail', 'fail', 'pass']);
    h.checker.add('web', 't1', { host: '127.0.0.1', port: 18001 }, { ...SPEC, startPeriodMs: 2500 });
    for (let i = 0; i < 5; i++) await step(h.clock, i === 0 ? 0 : 1000);
    expect(h.reports).toEqual(['healthy']);
    h.checker.close();
  });

  it('stops probing a removed task, and aborts its probe in flight', async () => {
    const h = harness(['hang']);
    h.checker.add('web', 't1', { host: '127.0.0.1', port: 18001 }, SPEC);
    h.checker.remove('web', 't1');
    await step(h.clock, 10_000);
    expect(h.probes).toHaveLength(1);
    expect(h.aborted).toEqual([1]);
    expect(h.clock.pendingTimers).toBe(0);
    expect(h.checker.health('web', 't1')).toBeUndefined();
  });

  it('refuses a spec that cannot run', () => {
    const h = harness([]);
    expect(() => h.checker.add('web', 't1', { host: '127.0.0.1', port: 1 }, { ...SPEC, retries: 0 })).toThrow(/retries/);
  });
});
