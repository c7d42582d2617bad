import { describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_GRACE_MS, Dispatcher, MAX_STATUS_TEXT, applyStatusUpdates } from '../../src/cluster/dispatcher.js';
import { createNetworkIn, ingressNetworkRecord, resolveNetworkIn } from '../../src/cluster/networks.js';
import type { AssignmentSet, NetworkRecord, TaskRecord, TaskState, TaskStatusUpdate } from '../../src/cluster/service-types.js';
import { ManualClock } from '../../src/lib/clock.js';
import { CapacityError, ClosedError } from '../../src/lib/errors.js';
import { MemoryStore } from '../../src/cluster/store.js';
import { FakeTx } from '../helpers/fake-store.js';
import { T0, serviceRecord, taskRecord } from '../helpers/service-records.js';

const INGRESS_ID = 'ingress0000000000000000000';
const T1 = '2026-01-01T00:00:05.000Z';
const PORTS = [{ Protocol: 'tcp' as const, TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' as const }];

function world(): { store: FakeTx; clock: ManualClock; ingress: NetworkRecord; sessions: string[]; d: Dispatcher } {
  const store = new FakeTx();
  const ingress = ingressNetworkRecord(INGRESS_ID, T0);
  store.put('network', INGRESS_ID, ingress);
  store.put(
    'service',
    'svc1',
    serviceRecord('svc1', 'web', { Endpoint: { Spec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] }, Ports: PORTS, VirtualIPs: [{ NetworkID: INGRESS_ID, Addr: '100.64.0.128/24' }] } }),
  );
  const clock = new ManualClock();
  const sessions: string[] = [];
  const d = new Dispatcher({ clock, reader: store, onSession: (node, open) => sessions.push(`${node}:${open ? 'open' : 'closed'}`) });
  return { store, clock, ingress, sessions, d };
}

function putTask(store: FakeTx, id: string, o: { node?: string; state?: TaskState; desired?: TaskState; addr?: string; slot?: number } = {}): void {
  const ingress = store.get<NetworkRecord>('network', INGRESS_ID)!;
  store.put(
    'task',
    id,
    taskRecord(id, { nodeId: o.node ?? 'node1', serviceId: 'svc1', slot: o.slot ?? 1, state: o.state ?? 'assigned', desired: o.desired ?? 'running', attach: { network: ingress, addr: o.addr ?? '100.64.0.129/24' } }),
  );
}

/** Lets resolved promises' callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('Dispatcher.assignments', () => {
  it('gives a node its tasks with service name, ports and overlay address, every route and the ingress', () => {
    const { store, d } = world();
    putTask(store, 't1', { addr: '100.64.0.129/24', slot: 2 });
    putTask(store, 't2', { node: 'node2', addr: '100.64.0.130/24' });
    const set = d.assignments('node1');
    expect(set.Tasks).toEqual([
      { TaskID: 't1', ServiceID: 'svc1', ServiceName: 'web', Slot: 2, DesiredState: 'running', Spec: { ContainerSpec: { Image: 'shoal/whoami' } }, Ports: PORTS, OverlayAddress: '100.64.0.129' },
    ]);
    expect(set.Services).toEqual([{ ID: 'svc1', Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.0.128', Ports: PORTS, Labels: {} }]);
    expect(set.Ingress).toEqual({ Vni: 4096, Subnet: '100.64.0.0/24' });
  });

  it('in dnsrr mode a route has no VIP', () => {
    const { store, d } = world();
    const s = serviceRecord('svc2', 'db', { Endpoint: { Spec: { Mode: 'dnsrr' } } });
    store.put('service', 'svc2', { ...s, Spec: { ...s.Spec, EndpointSpec: { Mode: 'dnsrr' } } });
    expect(d.assignments('node1').Services.find((r) => r.ID === 'svc2')).toEqual({ ID: 'svc2', Name: 'db', EndpointMode: 'dnsrr', Ports: [], Labels: {} });
  });

  it.each<[TaskState, TaskState, boolean]>([
    ['assigned', 'running', true],
    ['running', 'running', true],
    ['running', 'shutdown', true],
    ['starting', 'remove', true],
    ['assigned', 'ready', false],
    ['failed', 'running', false],
    ['shutdown', 'shutdown', false],
    ['complete', 'shutdown', false],
  ])('a task observed %s, desired %s, is in the set: %s', (state, desired, present) => {
    const { store, d } = world();
    putTask(store, 't1', { state, desired });
    expect(d.assignments('node1').Tasks.map((t) => t.TaskID)).toEqual(present ? ['t1'] : []);
  });

  it('without an ingress record, still tells the agents the built-in overlay', () => {
    const store = new FakeTx();
    const d = new Dispatcher({ clock: new ManualClock(), reader: store });
    expect(d.assignments('n').Ingress).toEqual({ Vni: 4096, Subnet: '100.64.0.0/24' });
  });

  it('keeps Index while the node’s content stays, even when other nodes’ tasks change', () => {
    const { store, d } = world();
    putTask(store, 't1');
    const a = d.assignments('node1');
    expect(d.assignments('node1').Index).toBe(a.Index);
    putTask(store, 't2', { node: 'node2' });
    d.changed();
    expect(d.assignments('node1').Index).toBe(a.Index);
    putTask(store, 't1', { state: 'running' });
    // The observed state is not part of an assignment: no change for the agent either.
    expect(d.assignments('node1').Index).toBe(a.Index);
    putTask(store, 't1', { state: 'running', desired: 'shutdown' });
    const b = d.assignments('node1');
    expect(b.Index).toBeGreaterThan(a.Index);
    expect(b.Tasks[0]!.DesiredState).toBe('shutdown');
  });

  it('a change of any service’s route moves every node’s Index', () => {
    const { store, d } = world();
    const a = d.assignments('node1');
    store.put('service', 'svc9', serviceRecord('svc9', 'other'));
    expect(d.assignments('node1').Index).not.toBe(a.Index);
  });

  it('reads the store again only when its index moved or changed() was called', () => {
    const { store, d } = world();
    let reads = 0;
    const counting = { get: store.get.bind(store), list: <T>(k: Parameters<FakeTx['list']>[0]): T[] => (reads++, store.list<T>(k)), index: 0 };
    const cached = new Dispatcher({ clock: new ManualClock(), reader: counting });
    cached.assignments('node1');
    const perSnapshot = reads;
    cached.assignments('node1');
    cached.assignments('node2');
    expect(reads).toBe(perSnapshot);
    putTask(store, 't1');
    expect(cached.assignments('node1').Tasks).toEqual([]); // same index: the snapshot stands
    counting.index = 1;
    expect(cached.assignments('node1').Tasks.map((t) => t.TaskID)).toEqual(['t1']);
    store.delete('task', 't1');
    cached.changed();
    expect(cached.assignments('node1').Tasks).toEqual([]);
    expect(d.assignments('node1').Tasks).toEqual([]);
  });

  it('starts from firstIndex', () => {
    const d = new Dispatcher({ clock: new ManualClock(), reader: new FakeTx(), firstIndex: 1_700_000_000_000 });
    expect(d.assignments('n').Index).toBe(1_700_000_000_000);
  });
});

describe('Dispatcher.wait', () => {
  it('answers at once when the agent’s Index is stale', async () => {
    const { d } = world();
    const set = await d.wait('node1', -1, 30_000);
    expect(set.Index).toBe(d.assignments('node1').Index);
  });

  it('holds until the node’s set changes, not on unrelated writes', async () => {
    const { store, d } = world();
    const since = d.assignments('node1').Index;
    let got: AssignmentSet | undefined;
    void d.wait('node1', since, 30_000).then((s) => (got = s));
    putTask(store, 'other', { node: 'node2' });
    d.changed();
    await settle();
    expect(got).toBeUndefined();
    putTask(store, 't1');
    d.changed();
    await settle();
    expect(got?.Tasks.map((t) => t.TaskID)).toEqual(['t1']);
    expect(got?.Index).not.toBe(since);
  });

  it('answers with the unchanged set after the timeout', async () => {
    const { clock, d } = world();
    const since = d.assignments('node1').Index;
    let got: AssignmentSet | undefined;
    void d.wait('node1', since, 30_000).then((s) => (got = s));
    clock.advance(29_999);
    await settle();
    expect(got).toBeUndefined();
    clock.advance(1);
    await settle();
    expect(got?.Index).toBe(since);
  });

  it('refuses more than four outstanding polls per node with CapacityError', async () => {
    const { d } = world();
    const since = d.assignments('node1').Index;
    for (let i = 0; i < 4; i++) void d.wait('node1', since, 30_000);
    await expect(d.wait('node1', since, 30_000)).rejects.toBeInstanceOf(CapacityError);
    // Another node is not affected.
    void d.wait('node2', d.assignments('node2').Index, 30_000);
    expect(d.hasSession('node2')).toBe(true);
  });

  it('close() rejects outstanding and later polls with ClosedError and leaves no timer', async () => {
    const { clock, d } = world();
    const since = d.assignments('node1').Index;
    const pending = d.wait('node1', since, 30_000);
    d.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(d.wait('node1', since, 30_000)).rejects.toBeInstanceOf(ClosedError);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('Dispatcher over a real store', () => {
  it('a poll held across commits wakes on the commit that concerns its node', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock();
    const d = new Dispatcher({ clock, reader: store });
    await store.update((tx) => tx.put('network', INGRESS_ID, ingressNetworkRecord(INGRESS_ID, T0)));
    await store.update((tx) => tx.put('service', 'svc1', serviceRecord('svc1', 'web')));
    const since = d.assignments('node1').Index;
    let got: AssignmentSet | undefined;
    void d.wait('node1', since, 30_000).then((s) => (got = s));
    await store.update((tx) => tx.put('task', 'x', taskRecord('x', { nodeId: 'node2', serviceId: 'svc1' })));
    d.changed();
    await settle();
    expect(got).toBeUndefined();
    await store.update((tx) => tx.put('task', 't1', taskRecord('t1', { nodeId: 'node1', serviceId: 'svc1' })));
    // Even without changed(), a later read sees the new index…
    expect(d.assignments('node1').Tasks.map((t) => t.TaskID)).toEqual(['t1']);
    // …and changed() answers the held poll.
    d.changed();
    await settle();
    expect(got?.Tasks.map((t) => t.TaskID)).toEqual(['t1']);
    d.close();
  });
});

describe('Dispatcher sessions', () => {
  it('a session opens with the first poll and survives the agent’s immediate re-poll', async () => {
    const { clock, d, sessions } = world();
    expect(d.hasSession('node1')).toBe(false);
    let set = await d.wait('node1', -1, 30_000);
    expect(sessions).toEqual(['node1:open']);
    clock.advance(200);
    const next = d.wait('node1', set.Index, 30_000);
    clock.advance(30_000);
    set = await next;
    expect(d.hasSession('node1')).toBe(true);
    expect(sessions).toEqual(['node1:open']);
  });

  it('ends one grace after the last poll when no new poll comes', async () => {
    const { clock, d, sessions } = world();
    await d.wait('node1', -1, 30_000);
    clock.advance(DEFAULT_SESSION_GRACE_MS - 1);
    expect(d.hasSession('node1')).toBe(true);
    clock.advance(1);
    expect(d.hasSession('node1')).toBe(false);
    expect(sessions).toEqual(['node1:open', 'node1:closed']);
    await d.wait('node1', -1, 30_000);
    expect(sessions).toEqual(['node1:open', 'node1:closed', 'node1:open']);
  });

  it('an aborted poll (the agent’s connection closed) ends the session after the grace', async () => {
    const { clock, d, sessions } = world();
    const since = d.assignments('node1').Index;
    const abort = new AbortController();
    const pending = d.wait('node1', since, 30_000, abort.signal);
    clock.advance(10_000);
    expect(d.hasSession('node1')).toBe(true);
    abort.abort();
    expect((await pending).Index).toBe(since);
    clock.advance(DEFAULT_SESSION_GRACE_MS);
    expect(d.hasSession('node1')).toBe(false);
    expect(sessions).toEqual(['node1:open', 'node1:closed']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a custom grace is honoured', async () => {
    const clock = new ManualClock();
    const d = new Dispatcher({ clock, reader: new FakeTx(), sessionGraceMs: 250 });
    await d.wait('n', -1, 1_000);
    clock.advance(249);
    expect(d.hasSession('n')).toBe(true);
    clock.advance(1);
    expect(d.hasSession('n')).toBe(false);
  });
});

describe('applyStatusUpdates', () => {
  function u(over: Partial<TaskStatusUpdate> & { State: TaskState }): TaskStatusUpdate {
    return { TaskID: 't1', Message: '', Timestamp: T1, ...over };
  }

  function withTask(state: TaskState = 'assigned'): FakeTx {
    const tx = new FakeTx();
    tx.put('network', INGRESS_ID, ingressNetworkRecord(INGRESS_ID, T0));
    putTask(tx, 't1', { state });
    // A transaction's index is fixed while it runs; the fake moves it on each write.
    tx.index = 7;
    return tx;
  }

  it('moves a task forward and records the executor’s status', () => {
    const tx = withTask();
    expect(applyStatusUpdates(tx, 'node1', [u({ State: 'running', Message: 'started', PID: 42 })], 'NOW')).toBe(1);
    const t = tx.get<TaskRecord>('task', 't1')!;
    expect(t.Status).toEqual({ Timestamp: T1, State: 'running', Message: 'started', ContainerStatus: { PID: 42, ExitCode: 0 }, PortStatus: {} });
    expect(t.Version).toEqual({ Index: 7 });
    expect(t.UpdatedAt).toBe('NOW');
  });

  it('records a failure with its error and exit code', () => {
    const tx = withTask('running');
    expect(applyStatusUpdates(tx, 'node1', [u({ State: 'failed', Message: 'exited', Err: 'task: non-zero exit (3)', ExitCode: 3 })], 'NOW')).toBe(1);
    expect(tx.get<TaskRecord>('task', 't1')!.Status).toMatchObject({ State: 'failed', Err: 'task: non-zero exit (3)', ContainerStatus: { ExitCode: 3 } });
  });

  it.each<[string, TaskState, string, TaskStatusUpdate]>([
    ['a backwards state', 'running', 'node1', u({ State: 'starting' })],
    ['a change to a finished task', 'failed', 'node1', u({ State: 'running' })],
    ['another node’s task', 'assigned', 'node2', u({ State: 'running' })],
    ['an unknown task', 'assigned', 'node1', u({ TaskID: 'nosuch', State: 'running' })],
    ['an unknown state', 'assigned', 'node1', u({ State: 'flying' as TaskState })],
  ])('ignores %s', (_name, state, node, update) => {
    const tx = withTask(state);
    const before = tx.get<TaskRecord>('task', 't1');
    expect(applyStatusUpdates(tx, node, [update], 'NOW')).toBe(0);
    expect(tx.get<TaskRecord>('task', 't1')).toEqual(before);
  });

  it('a repeated report is not a change (no Version bump)', () => {
    const tx = withTask();
    expect(applyStatusUpdates(tx, 'node1', [u({ State: 'running', Message: 'started', PID: 42 })], 'NOW')).toBe(1);
    const before = tx.get<TaskRecord>('task', 't1');
    tx.index = 8;
    expect(applyStatusUpdates(tx, 'node1', [u({ State: 'running', Message: 'started', PID: 42, Timestamp: '2026-01-01T00:01:00Z' })], 'LATER')).toBe(0);
    expect(tx.get<TaskRecord>('task', 't1')).toEqual(before);
  });

  it('applies several updates to one task in order, and counts only those that applied', () => {
    const tx = withTask();
    const n = applyStatusUpdates(tx, 'node1', [u({ State: 'starting' }), u({ State: 'running' }), u({ State: 'starting' }), u({ State: 'complete' })], 'NOW');
    expect(n).toBe(3);
    expect(tx.get<TaskRecord>('task', 't1')!.Status.State).toBe('complete');
  });

  it('uses the manager’s time when the agent’s timestamp is not RFC 3339, and cuts long text', () => {
    const tx = withTask();
    applyStatusUpdates(tx, 'node1', [u({ State: 'running', Timestamp: 'yesterday', Message: 'x'.repeat(MAX_STATUS_TEXT + 10) })], '2026-01-01T00:00:09Z');
    const s = tx.get<TaskRecord>('task', 't1')!.Status;
    expect(s.Timestamp).toBe('2026-01-01T00:00:09Z');
    expect(s.Message).toHaveLength(MAX_STATUS_TEXT);
  });

  it('never throws on hostile input and skips every malformed entry', () => {
    const tx = withTask();
    const junk: unknown[] = [
      null,
      42,
      'running',
      [],
      {},
      { TaskID: 't1' },
      { TaskID: 7, State: 'running' },
      { TaskID: 't1', State: 'running', PID: '42' },
      { TaskID: 't1', State: 'running', ExitCode: 1.5 },
      { TaskID: 't1', State: 'running', Message: { a: 1 } },
      { TaskID: 't1', State: 'running', Err: 3 },
      { TaskID: 't1', State: '__proto__' },
      { TaskID: '__proto__', State: 'running' },
    ];
    expect(applyStatusUpdates(tx, 'node1', junk as TaskStatusUpdate[], 'NOW')).toBe(0);
    expect(applyStatusUpdates(tx, 'node1', 'not an array' as unknown as TaskStatusUpdate[], 'NOW')).toBe(0);
    expect(applyStatusUpdates(tx, 'node1', null as unknown as TaskStatusUpdate[], 'NOW')).toBe(0);
    expect(tx.get<TaskRecord>('task', 't1')!.Status.State).toBe('assigned');
  });

  it('a status change reaches the agent only if it changes the assignment', () => {
    const tx = withTask();
    tx.put('service', 'svc1', serviceRecord('svc1', 'web'));
    const d = new Dispatcher({ clock: new ManualClock(), reader: tx });
    const before = d.assignments('node1').Index;
    applyStatusUpdates(tx, 'node1', [u({ State: 'running' })], 'NOW');
    expect(d.assignments('node1').Index).toBe(before);
    applyStatusUpdates(tx, 'node1', [u({ State: 'failed' })], 'NOW');
    expect(d.assignments('node1').Tasks).toEqual([]);
  });
});

describe('networks in the set', () => {
  it('a task attached to another network too takes its ingress address', () => {
    const { store, d } = world();
    createNetworkIn(store, { Name: 'back' }, { newId: () => 'back000000000000000000000', now: T0 });
    const back = resolveNetworkIn(store, 'back');
    const t = taskRecord('t1', { nodeId: 'node1', serviceId: 'svc1' });
    store.put('task', 't1', {
      ...t,
      NetworksAttachments: [
        { Network: back, Addresses: ['100.64.1.2/24'] },
        { Network: store.get('network', INGRESS_ID), Addresses: ['100.64.0.140/24'] },
      ],
    });
    expect(d.assignments('node1').Tasks[0]!.OverlayAddress).toBe('100.64.0.140');
  });
});
