/**
 * The orchestrator's rules on hand-made snapshots: slots, global nodes, node failure, restart
 * policy, rolling updates and history, each as what changes in the task list.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type OrchestratorInput, type OrchestratorResult, orchestrate } from '../../src/cluster/orchestrator.js';
import type { NodeInfo } from '../../src/cluster/scheduler.js';
import { TASK_STATES } from '../../src/cluster/service-types.js';
import type { RestartPolicy, ServiceRecord, ServiceSpec, TaskRecord, TaskState, UpdateConfig, UpdateStatus } from '../../src/cluster/service-types.js';

const T0 = Date.parse('2026-11-25T12:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const S = 1e9;

function node(id: string, over: Partial<NodeInfo> = {}): NodeInfo {
  return { ID: id, Hostname: id, Role: 'worker', Availability: 'active', State: 'ready', Labels: {}, EngineLabels: {}, Platform: { OS: 'linux', Architecture: 'x86_64' }, ...over };
}

const IMAGE_V1 = { ContainerSpec: { Image: 'shoal/whoami' } };
const IMAGE_V2 = { ContainerSpec: { Image: 'shoal/whoami', Env: ['V=2'] } };

function service(over: Partial<ServiceSpec> & { restart?: RestartPolicy } = {}, status?: UpdateStatus): ServiceRecord {
  const { restart, ...spec } = over;
  return {
    ID: 'svc',
    Version: { Index: 1 },
    CreatedAt: iso(T0),
    UpdatedAt: iso(T0),
    Spec: { Name: 'web', Labels: {}, Mode: { Replicated: { Replicas: 3 } }, TaskTemplate: { ...IMAGE_V1, ...(restart ? { RestartPolicy: restart } : {}) }, ...spec },
    Endpoint: { Spec: {} },
    ...(status ? { UpdateStatus: status } : {}),
  };
}

let seq = 0;
function task(slot: number, nodeId: string, state: TaskState, over: Partial<TaskRecord> = {}): TaskRecord {
  const id = `t${++seq}`;
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: iso(T0),
    UpdatedAt: iso(T0),
    Labels: {},
    Spec: IMAGE_V1,
    ServiceID: 'svc',
    Slot: slot,
    NodeID: nodeId,
    Status: { Timestamp: iso(T0), State: state, Message: '', PortStatus: {} },
    DesiredState: 'running',
    ...over,
  };
}

function run(input: Partial<OrchestratorInput> & { services: ServiceRecord[] }): OrchestratorResult {
  let n = 0;
  return orchestrate({ tasks: [], nodes: [node('a'), node('b'), node('c')], nowMs: T0, historyLimit: 5, index: 7, newId: () => `new${++n}`, ...input });
}

const slots = (r: OrchestratorResult): number[] => r.create.map((t) => t.Slot);
const shutDown = (r: OrchestratorResult): string[] => r.updated.filter((t) => t.DesiredState === 'shutdown').map((t) => t.ID);

describe('replicated services', () => {
  it('creates slots 1..N as new tasks carrying the TaskTemplate', () => {
    const r = run({ services: [service()] });
    expect(slots(r)).toEqual([1, 2, 3]);
    expect(r.create[0]).toMatchObject({ ServiceID: 'svc', NodeID: '', DesiredState: 'running', Spec: IMAGE_V1, Status: { State: 'new' }, Version: { Index: 7 } });
  });

  it('fills only empty slots, and shuts down slots above Replicas', () => {
    const tasks = [task(1, 'a', 'running'), task(2, 'b', 'running'), task(3, 'c', 'running'), task(4, 'a', 'running'), task(5, 'b', 'running')];
    const down = run({ services: [service({ Mode: { Replicated: { Replicas: 2 } } })], tasks });
    expect(slots(down)).toEqual([]);
    expect(shutDown(down)).toEqual([tasks[2]!.ID, tasks[3]!.ID, tasks[4]!.ID]);
    const up = run({ services: [service({ Mode: { Replicated: { Replicas: 6 } } })], tasks });
    expect(slots(up)).toEqual([6]);
    expect(shutDown(up)).toEqual([]);
  });

  it('replaces the tasks of a down, drained or removed node at once, and moves nothing when it comes back', () => {
    const tasks = [task(1, 'a', 'running'), task(2, 'b', 'running'), task(3, 'c', 'running')];
    for (const nodes of [[node('a'), node('b'), node('c', { State: 'down' })], [node('a'), node('b'), node('c', { Availability: 'drain' })], [node('a'), node('b')]]) {
      const r = run({ services: [service()], tasks, nodes });
      expect(shutDown(r)).toEqual([tasks[2]!.ID]);
      expect(slots(r)).toEqual([3]);
    }
    // Back: slot 3 has its replacement (running on a), the old task stays shut down; nothing changes.
    const after = [tasks[0]!, tasks[1]!, { ...tasks[2]!, DesiredState: 'shutdown' as const }, task(3, 'a', 'running', { CreatedAt: iso(T0 + 1) })];
    const r = run({ services: [service()], tasks: after });
    expect(r.create).toEqual([]);
    expect(r.updated).toEqual([]);
  });

  it('marks a live task of a removed node orphaned', () => {
    const r = run({ services: [service({ Mode: { Replicated: { Replicas: 1 } } })], tasks: [task(1, 'gone', 'running')] });
    expect(r.updated[0]).toMatchObject({ DesiredState: 'shutdown', Status: { State: 'orphaned' } });
  });
});

describe('restart policy', () => {
  const one = { Mode: { Replicated: { Replicas: 1 } } } as const;
  it.each<[string, RestartPolicy | undefined, TaskState, boolean]>([
    ['default (any) restarts a completed task', undefined, 'complete', true],
    ['any restarts a failed task', { Condition: 'any', Delay: 0 }, 'failed', true],
    ['on-failure restarts a failed task', { Condition: 'on-failure', Delay: 0 }, 'failed', true],
    ['on-failure restarts a rejected task', { Condition: 'on-failure', Delay: 0 }, 'rejected', true],
    ['on-failure leaves a completed task', { Condition: 'on-failure', Delay: 0 }, 'complete', false],
    ['none never restarts', { Condition: 'none', Delay: 0 }, 'failed', false],
  ])('%s', (_what, restart, state, restarts) => {
    const svc = service({ ...one, ...(restart ? { restart } : {}) });
    const ended = task(1, 'a', state, { UpdatedAt: iso(T0 - 5_000), Spec: svc.Spec.TaskTemplate });
    const r = run({ services: [svc], tasks: [ended] });
    expect(slots(r)).toEqual(restarts ? [1] : []);
    expect(shutDown(r)).toEqual(restarts ? [ended.ID] : []);
  });

  it('waits out Delay after the end was learnt, and asks to be woken then', () => {
    const svc = service({ ...one, restart: { Condition: 'any', Delay: 3 * S } });
    const ended = task(1, 'a', 'failed', { UpdatedAt: iso(T0 - 1_000), Spec: svc.Spec.TaskTemplate });
    const early = run({ services: [svc], tasks: [ended] });
    expect(early.create).toEqual([]);
    expect(early.wakeAtMs).toBe(T0 + 2_000);
    expect(slots(run({ services: [svc], tasks: [ended], nowMs: T0 + 2_000 }))).toEqual([1]);
  });

  it('stops after MaxAttempts restarts of the same spec within Window', () => {
    const svc = service({ ...one, restart: { Condition: 'any', Delay: 0, MaxAttempts: 2, Window: 60 * S } });
    const Spec = svc.Spec.TaskTemplate;
    const history = [task(1, 'a', 'failed', { DesiredState: 'shutdown', UpdatedAt: iso(T0 - 3_000), Spec }), task(1, 'a', 'failed', { DesiredState: 'shutdown', UpdatedAt: iso(T0 - 2_000), Spec })];
    const latest = task(1, 'a', 'failed', { UpdatedAt: iso(T0 - 1_000), Spec });
    expect(slots(run({ services: [svc], tasks: [...history, latest] }))).toEqual([]);
    expect(slots(run({ services: [svc], tasks: [history[1]!, latest] }))).toEqual([1]);
    // Outside the window the old failures no longer count.
    expect(slots(run({ services: [svc], tasks: [...history, latest], nowMs: T0 + 120_000 }))).toEqual([1]);
  });
});

describe('global services', () => {
  const g = (): ServiceRecord => service({ Mode: { Global: {} } });
  it('runs one task per eligible node, late joiners included, none on drained or down nodes', () => {
    const r = run({ services: [g()], nodes: [node('a'), node('b'), node('c', { Availability: 'drain' }), node('d', { State: 'down' })] });
    expect(r.create.map((t) => [t.Slot, t.NodeID])).toEqual([
      [0, 'a'],
      [0, 'b'],
    ]);
    const tasks = [task(0, 'a', 'running'), task(0, 'b', 'running')];
    const joined = run({ services: [g()], tasks, nodes: [node('a'), node('b'), node('e')] });
    expect(joined.create.map((t) => t.NodeID)).toEqual(['e']);
  });

  it('shuts down the task of a node that no longer meets the constraints', () => {
    const svc = service({ Mode: { Global: {} }, TaskTemplate: { ...IMAGE_V1, Placement: { Constraints: ['node.role==worker'] } } });
    const tasks = [task(0, 'a', 'running', { Spec: svc.Spec.TaskTemplate }), task(0, 'b', 'running', { Spec: svc.Spec.TaskTemplate })];
    const r = run({ services: [svc], tasks, nodes: [node('a'), node('b', { Role: 'manager' })] });
    expect(shutDown(r)).toEqual([tasks[1]!.ID]);
    expect(r.create).toEqual([]);
  });
});

describe('rolling update', () => {
  const updating = (startMs: number): UpdateStatus => ({ State: 'updating', StartedAt: iso(startMs), Message: 'update in progress' });
  const v2 = (config: UpdateConfig, status: UpdateStatus = updating(T0)): ServiceRecord => service({ TaskTemplate: IMAGE_V2, UpdateConfig: config }, status);
  const old = (): TaskRecord[] => [task(1, 'a', 'running', { CreatedAt: iso(T0 - 9_000) }), task(2, 'b', 'running', { CreatedAt: iso(T0 - 9_000) }), task(3, 'c', 'running', { CreatedAt: iso(T0 - 9_000) })];

  it('stop-first, parallelism 1: stops one old task, then starts its replacement once it stopped', () => {
    const tasks = old();
    const r = run({ services: [v2({ Parallelism: 1 })], tasks });
    expect(shutDown(r)).toEqual([tasks[0]!.ID]);
    expect(r.create).toEqual([]);
    const stopped = { ...r.updated[0]!, Status: { ...r.updated[0]!.Status, State: 'shutdown' as const } };
    const r2 = run({ services: [v2({ Parallelism: 1 })], tasks: [stopped, tasks[1]!, tasks[2]!], nowMs: T0 + 100 });
    expect(r2.create.map((t) => [t.Slot, t.Spec])).toEqual([[1, IMAGE_V2]]);
    expect(shutDown(r2)).toEqual([]);
  });

  it('moves to the next slot only after the new task has run for Delay, then completes after Monitor', () => {
    const cfg = { Parallelism: 1, Delay: 2 * S, Monitor: 1 * S };
    const [a, b, c] = old();
    const fresh1 = task(1, 'a', 'running', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 10), UpdatedAt: iso(T0 + 500) });
    const gone = { ...a!, DesiredState: 'shutdown' as const, Status: { ...a!.Status, State: 'shutdown' as const } };
    const waiting = run({ services: [v2(cfg)], tasks: [gone, fresh1, b!, c!], nowMs: T0 + 1_000 });
    expect(shutDown(waiting)).toEqual([]);
    expect(waiting.wakeAtMs).toBe(T0 + 2_500);
    expect(waiting.updateStatus).toEqual([]);
    const next = run({ services: [v2(cfg)], tasks: [gone, fresh1, b!, c!], nowMs: T0 + 2_500 });
    expect(shutDown(next)).toEqual([b!.ID]);

    // All three new tasks run: completed only Monitor after the last one started.
    const all = [task(1, 'a', 'running', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 10), UpdatedAt: iso(T0 + 500) }), task(2, 'b', 'running', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 10), UpdatedAt: iso(T0 + 900) }), task(3, 'c', 'running', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 10), UpdatedAt: iso(T0 + 1_000) })];
    const monitoring = run({ services: [v2(cfg)], tasks: all, nowMs: T0 + 1_500 });
    expect(monitoring.updateStatus).toEqual([]);
    expect(monitoring.wakeAtMs).toBe(T0 + 2_000);
    const done = run({ services: [v2(cfg)], tasks: all, nowMs: T0 + 2_000 });
    expect(done.updateStatus).toEqual([{ serviceId: 'svc', status: { State: 'completed', StartedAt: iso(T0), CompletedAt: iso(T0 + 2_000), Message: 'update completed' } }]);
  });

  it('start-first: the new task starts beside the old, which goes once the new one runs', () => {
    const tasks = old();
    const r = run({ services: [v2({ Parallelism: 0, Order: 'start-first' })], tasks });
    expect(slots(r)).toEqual([1, 2, 3]);
    expect(shutDown(r)).toEqual([]);
    const running = task(1, 'b', 'running', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 1) });
    const r2 = run({ services: [v2({ Parallelism: 0, Order: 'start-first' })], tasks: [...tasks, running], nowMs: T0 + 10 });
    expect(shutDown(r2)).toEqual([tasks[0]!.ID]);
  });

  it('pauses on a failed new task (FailureAction pause), or asks for a rollback', () => {
    const [, b, c] = old();
    const failed = task(1, 'a', 'failed', { Spec: IMAGE_V2, CreatedAt: iso(T0 + 10) });
    const paused = run({ services: [v2({ Parallelism: 1 })], tasks: [failed, b!, c!], nowMs: T0 + 100 });
    expect(paused.updateStatus).toEqual([{ serviceId: 'svc', status: { ...updating(T0), State: 'paused', Message: `update paused due to failure or early termination of task ${failed.ID}` } }]);
    expect(shutDown(paused)).not.toContain(b!.ID);
    const rolled = run({ services: [v2({ Parallelism: 1, FailureAction: 'rollback' })], tasks: [failed, b!, c!], nowMs: T0 + 100 });
    expect(rolled.rollback).toEqual([{ serviceId: 'svc', message: `update rolled back due to failure or early termination of task ${failed.ID}` }]);
  });

  it('a paused update replaces no more old tasks', () => {
    const tasks = old();
    const r = run({ services: [v2({ Parallelism: 1 }, { State: 'paused', Message: 'x' })], tasks });
    expect(shutDown(r)).toEqual([]);
    expect(r.create).toEqual([]);
  });
});

describe('history', () => {
  it('keeps the newest TaskHistoryRetentionLimit tasks per slot and deletes older ended ones', () => {
    const history = [0, 1, 2, 3, 4, 5].map((i) => task(1, 'a', 'failed', { DesiredState: 'shutdown', CreatedAt: iso(T0 - 10_000 + i) }));
    const live = task(1, 'a', 'running', { CreatedAt: iso(T0 - 1_000) });
    const r = run({ services: [service({ Mode: { Replicated: { Replicas: 1 } } })], tasks: [...history, live], historyLimit: 3 });
    // Newest three: live, history[5], history[4]; the rest goes.
    expect(r.remove.sort()).toEqual([history[0]!.ID, history[1]!.ID, history[2]!.ID, history[3]!.ID].sort());
  });
});

describe('orchestrate (properties)', () => {
  const arbTask = fc.record({
    slot: fc.integer({ min: 1, max: 8 }),
    node: fc.constantFrom('', 'a', 'b', 'c', 'gone'),
    state: fc.constantFrom(...TASK_STATES),
    desired: fc.constantFrom<TaskState>('running', 'shutdown'),
    v2: fc.boolean(),
    ageMs: fc.integer({ min: 0, max: 60_000 }),
  });
  const arbNode = (id: string): fc.Arbitrary<NodeInfo> =>
    fc.record({ State: fc.constantFrom('ready', 'down', 'unknown'), Availability: fc.constantFrom('active', 'pause', 'drain') }).map((o) => node(id, o as Partial<NodeInfo>));

  it('never throws, fills only slots 1..N, leaves nothing live above N, no slot empty without a wake-up, and wakes only in the future', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.array(arbTask, { maxLength: 20 }),
        fc.tuple(arbNode('a'), arbNode('b'), arbNode('c')),
        fc.constantFrom<UpdateStatus | undefined>(undefined, { State: 'updating', StartedAt: iso(T0 - 30_000), Message: 'update in progress' }, { State: 'paused', Message: 'x' }),
        fc.constantFrom<UpdateConfig>({}, { Parallelism: 0, Order: 'start-first' }, { Parallelism: 2, Delay: 1 * S }),
        (replicas, raw, nodes, status, config) => {
          const svc = service({ Mode: { Replicated: { Replicas: replicas } }, TaskTemplate: IMAGE_V2, UpdateConfig: config }, status);
          const tasks = raw.map((r) => task(r.slot, r.node, r.state, { DesiredState: r.desired, Spec: r.v2 ? IMAGE_V2 : IMAGE_V1, CreatedAt: iso(T0 - r.ageMs), UpdatedAt: iso(T0 - r.ageMs / 2) }));
          const r = run({ services: [svc], tasks, nodes: [...nodes] });
          expect(r.create.every((t) => t.Slot >= 1 && t.Slot <= replicas && t.Status.State === 'new' && jsonEq(t.Spec, IMAGE_V2))).toBe(true);
          const after = new Map(tasks.map((t) => [t.ID, t]));
          for (const t of r.updated) after.set(t.ID, t);
          for (const id of r.remove) after.delete(id);
          for (const t of r.create) after.set(t.ID, t);
          for (const t of after.values()) if (t.Slot > replicas) expect(t.DesiredState).not.toBe('running');
          if (r.wakeAtMs !== undefined) expect(r.wakeAtMs).toBeGreaterThan(T0);
          // No slot is left empty without a reason to look again (a task still stopping).
          for (let slot = 1; slot <= replicas; slot++) {
            const live = [...after.values()].filter((t) => t.Slot === slot && t.DesiredState === 'running');
            if (live.length === 0) expect(r.wakeAtMs).toBeDefined();
          }
          // Nothing live, and nothing removed, is deleted as history.
          for (const id of r.remove) expect(tasks.find((t) => t.ID === id)?.DesiredState).not.toBe('running');
        },
      ),
      { numRuns: 500 },
    );
  });
});

const jsonEq = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
