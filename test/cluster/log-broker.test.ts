import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LogBroker, type LogEntry } from '../../src/cluster/log-broker.js';
import type { TaskLogLine } from '../../src/cluster/service-types.js';
import { CapacityError } from '../../src/lib/errors.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';

const SERVICES: Record<string, string> = { t1: 'svcA', t2: 'svcA', t3: 'svcB' };
const serviceOf = (taskId: string): string | undefined => SERVICES[taskId];

function line(taskId: string, second: number, text: string, over: Partial<TaskLogLine> = {}): TaskLogLine {
  return { TaskID: taskId, Stream: 'stdout', Timestamp: `2026-01-01T00:00:${String(second).padStart(2, '0')}.000000000Z`, Line: text, ...over };
}

const texts = (entries: readonly LogEntry[]): string[] => entries.map((e) => e.Line);

describe('LogBroker', () => {
  it('keeps lines with their node and service, and reads a service’s tasks merged by time', () => {
    const b = new LogBroker();
    b.append('node1', serviceOf, [line('t1', 1, 'a1'), line('t1', 4, 'a4')]);
    b.append('node2', serviceOf, [line('t2', 2, 'b2'), line('t2', 3, 'b3', { Stream: 'stderr' }), line('t3', 0, 'other')]);
    const all = b.read(new Set(['t1', 't2']));
    expect(texts(all)).toEqual(['a1', 'b2', 'b3', 'a4']);
    expect(all[2]).toEqual({ NodeID: 'node2', ServiceID: 'svcA', TaskID: 't2', Stream: 'stderr', Timestamp: '2026-01-01T00:00:03.000000000Z', Line: 'b3' });
  });

  it('orders by the instant, not the text: nanoseconds and time zones', () => {
    const b = new LogBroker();
    b.append('n', serviceOf, [
      line('t1', 0, 'late', { Timestamp: '2026-01-01T01:00:00.000000002+01:00' }),
      line('t1', 0, 'early', { Timestamp: '2026-01-01T00:00:00.000000001Z' }),
      line('t1', 0, 'ms', { Timestamp: '2026-01-01T00:00:00.001Z' }),
      line('t1', 0, 'whole', { Timestamp: '2025-12-31T23:59:59Z' }),
    ]);
    expect(texts(b.read(new Set(['t1'])))).toEqual(['whole', 'early', 'late', 'ms']);
  });

  it('equal timestamps keep arrival order', () => {
    const b = new LogBroker();
    b.append('n', serviceOf, [line('t1', 5, 'x'), line('t2', 5, 'y'), line('t1', 5, 'z')]);
    expect(texts(b.read(new Set(['t1', 't2'])))).toEqual(['x', 'y', 'z']);
  });

  it('tail counts over the whole selection, like docker service logs --tail', () => {
    const b = new LogBroker();
    b.append('n', serviceOf, [line('t1', 1, '1'), line('t2', 2, '2'), line('t1', 3, '3'), line('t2', 4, '4')]);
    const both = new Set(['t1', 't2']);
    expect(texts(b.read(both, { tail: 3 }))).toEqual(['2', '3', '4']);
    expect(texts(b.read(both, { tail: 0 }))).toEqual([]);
    expect(texts(b.read(both, { tail: -1 }))).toEqual(['1', '2', '3', '4']);
    expect(texts(b.read(both, { tail: 99 }))).toEqual(['1', '2', '3', '4']);
  });

  it('since keeps lines at or after the instant', () => {
    const b = new LogBroker();
    b.append('n', serviceOf, [line('t1', 1, '1'), line('t1', 2, '2'), line('t1', 3, '3')]);
    expect(texts(b.read(new Set(['t1']), { sinceMs: Date.parse('2026-01-01T00:00:02Z') }))).toEqual(['2', '3']);
    expect(texts(b.read(new Set(['t1']), { sinceMs: Date.parse('2026-01-01T00:00:02Z'), tail: 1 }))).toEqual(['3']);
  });

  it('drops and counts lines of unknown tasks and malformed lines', () => {
    const b = new LogBroker();
    const junk: unknown[] = [
      line('nosuch', 1, 'x'),
      null,
      'text',
      { TaskID: 't1', Stream: 'stdin', Timestamp: '2026-01-01T00:00:00Z', Line: 'x' },
      { TaskID: 't1', Stream: 'stdout', Timestamp: 'yesterday', Line: 'x' },
      { TaskID: 't1', Stream: 'stdout', Timestamp: '2026-13-45T99:00:00Z', Line: 'x' },
      { TaskID: 't1', Stream: 'stdout', Timestamp: '2026-01-01T00:00:00Z', Line: 5 },
    ];
    b.append('n', serviceOf, junk as TaskLogLine[]);
    b.append('n', serviceOf, 'nope' as unknown as TaskLogLine[]);
    expect(b.counters.get('logs_lines_dropped_unknown_task')).toBe(1);
    expect(b.counters.get('logs_lines_dropped_malformed')).toBe(7);
    expect(b.counters.get('logs_lines_appended')).toBe(0);
    expect(b.read(new Set(['t1', 'nosuch']))).toEqual([]);
  });

  it('keeps the last maxLinesPerTask lines of a task and counts the rest', () => {
    const b = new LogBroker({ maxLinesPerTask: 3 });
    b.append('n', serviceOf, [1, 2, 3, 4, 5].map((s) => line('t1', s, String(s))));
    expect(texts(b.read(new Set(['t1'])))).toEqual(['3', '4', '5']);
    expect(b.counters.get('logs_lines_evicted')).toBe(2);
  });

  it('keeps at most maxTasks tasks, forgetting the one that logged least recently', () => {
    const b = new LogBroker({ maxTasks: 2 });
    b.append('n', serviceOf, [line('t1', 1, 'a')]);
    b.append('n', serviceOf, [line('t2', 2, 'b')]);
    b.append('n', serviceOf, [line('t1', 3, 'c')]);
    b.append('n', serviceOf, [line('t3', 4, 'd')]);
    expect(texts(b.read(new Set(['t1', 't2', 't3'])))).toEqual(['a', 'c', 'd']);
    expect(b.counters.get('logs_tasks_evicted')).toBe(1);
  });

  it('cuts long lines at maxLineBytes, never inside a character', () => {
    const b = new LogBroker({ maxLineBytes: 10 });
    b.append('n', serviceOf, [line('t1', 1, 'x'.repeat(50)), line('t1', 2, 'ééééééé'), line('t1', 3, 'short')]);
    expect(texts(b.read(new Set(['t1'])))).toEqual(['x'.repeat(10), 'ééééé', 'short']);
    expect(b.counters.get('logs_lines_truncated')).toBe(2);
  });

  it('keeps the total bytes under maxBytes, taking from the least recently logging task', () => {
    const b = new LogBroker({ maxBytes: 30 });
    b.append('n', serviceOf, [line('t1', 1, 'a'.repeat(10)), line('t1', 2, 'b'.repeat(10))]);
    b.append('n', serviceOf, [line('t2', 3, 'c'.repeat(10)), line('t2', 4, 'd'.repeat(10))]);
    expect(b.bytes).toBeLessThanOrEqual(30);
    expect(texts(b.read(new Set(['t1', 't2'])))).toEqual(['b'.repeat(10), 'c'.repeat(10), 'd'.repeat(10)]);
  });

  it('forget drops a task’s lines', () => {
    const b = new LogBroker();
    b.append('n', serviceOf, [line('t1', 1, 'a'), line('t2', 1, 'b')]);
    b.forget('t1');
    b.forget('never');
    expect(texts(b.read(new Set(['t1', 't2'])))).toEqual(['b']);
    expect(b.bytes).toBe(1);
  });

  it('followers get new lines of their tasks only, until they unsubscribe; a throwing listener is counted', () => {
    const b = new LogBroker();
    const seen: string[] = [];
    const off = b.subscribe(new Set(['t1']), (e) => seen.push(e.Line));
    b.subscribe(new Set(['t1']), () => {
      throw new Error('broken follower');
    });
    b.append('n', serviceOf, [line('t1', 1, 'a'), line('t2', 1, 'b'), line('nosuch', 1, 'c')]);
    off();
    b.append('n', serviceOf, [line('t1', 2, 'd')]);
    expect(seen).toEqual(['a']);
    expect(b.counters.get('logs_listener_errors')).toBe(2);
  });

  it('refuses followers beyond maxSubscribers', () => {
    const b = new LogBroker({ maxSubscribers: 2 });
    b.subscribe(new Set(), () => undefined);
    const off = b.subscribe(new Set(), () => undefined);
    expect(() => b.subscribe(new Set(), () => undefined)).toThrow(CapacityError);
    off();
    expect(() => b.subscribe(new Set(), () => undefined)).not.toThrow();
  });

  it('property: whatever arrives, every bound holds and reads come out ordered', () => {
    const arbLine = fc.record({
      TaskID: fc.constantFrom('t1', 't2', 't3', 'x'),
      Stream: fc.constantFrom('stdout', 'stderr', 'bad'),
      Timestamp: fc.oneof(
        fc.integer({ min: 0, max: 59 }).map((s) => `2026-01-01T00:00:${String(s).padStart(2, '0')}Z`),
        fc.string({ maxLength: 30 }),
      ),
      Line: fc.string({ maxLength: 40 }),
    });
    fc.assert(
      fc.property(fc.array(fc.array(arbLine, { maxLength: 20 }), { maxLength: 10 }), (batches) => {
        const b = new LogBroker({ maxLinesPerTask: 5, maxTasks: 2, maxLineBytes: 16, maxBytes: 60 });
        for (const batch of batches) b.append('n', serviceOf, batch as TaskLogLine[]);
        expect(b.bytes).toBeLessThanOrEqual(60);
        const out = b.read(new Set(['t1', 't2', 't3']));
        expect(new Set(out.map((e) => e.TaskID)).size).toBeLessThanOrEqual(2);
        for (const e of out) expect(new TextEncoder().encode(e.Line).length).toBeLessThanOrEqual(16);
        for (let i = 1; i < out.length; i++) expect(Date.parse(out[i - 1]!.Timestamp)).toBeLessThanOrEqual(Date.parse(out[i]!.Timestamp));
      }),
      { numRuns: Math.min(FUZZ_RUNS, 2_000) },
    );
  });
});
