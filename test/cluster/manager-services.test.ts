/**
 * Services end to end on one Manager (MemoryStore, ManualClock, SeededRng): agents are
 * simulated by heartbeats and task status reports, and every assertion is what `docker
 * service ls/ps/inspect` would show.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateNodeKey } from '../../src/cluster/ca.js';
import { ManualLiveness } from '../../src/cluster/liveness.js';
import { Manager, type NodeSelf } from '../../src/cluster/manager.js';
import { LogStore } from '../../src/cluster/node-log-store.js';
import type { ServiceView, TaskRecord, TaskState } from '../../src/cluster/service-types.js';
import { MemoryStore, type Store } from '../../src/cluster/store.js';
import type { NodeDescription } from '../../src/cluster/types.js';
import { ManualClock } from '../../src/lib/clock.js';
import { ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, OutOfSequenceError } from '../../src/lib/errors.js';
import { SeededRng } from '../../src/lib/rng.js';

const WALL = Date.parse('2026-11-25T12:00:00Z');
const key = generateNodeKey();
const S = 1e9;

function self(name: string, n: number, labels: Record<string, string> = {}): NodeSelf {
  const description: NodeDescription = {
    Hostname: name,
    Platform: { Architecture: 'x86_64', OS: 'linux' },
    Resources: { NanoCPUs: 2e9, MemoryBytes: 1 << 30 },
    Engine: { EngineVersion: '0.1.0', Labels: labels, Plugins: [] },
  };
  return { hostname: name, addr: `127.0.0.${n}`, managerAddr: `127.0.0.${n}:2377`, description };
}

const web = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  Name: 'web',
  TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } },
  Mode: { Replicated: { Replicas: 3 } },
  EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] },
  ...over,
});

describe('Manager services', () => {
  let clock: ManualClock;
  let store: Store;
  let manager: Manager;
  let leader: string;
  /** Nodes whose "agent" heartbeats while time passes. */
  const alive = new Set<string>();
  const ids = new Map<string, string>();

  const make = (s: Store): Manager => new Manager({ store: s, clock, wallClock: () => WALL + clock.now(), rng: new SeededRng(11) });
  const joinNode = async (name: string, n: number, labels: Record<string, string> = {}): Promise<string> => {
    const id = (await manager.join({ token: manager.swarm().JoinTokens.Worker, publicKeyPem: key.publicKeyPem, self: self(name, n, labels) })).nodeId;
    alive.add(id);
    ids.set(name, id);
    await manager.settled();
    return id;
  };
  /** Advances simulated time in 500 ms steps; live nodes heartbeat at each (1 s period, down after 3 s of silence). */
  const advance = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 500) {
      for (const id of alive) manager.heartbeat({ nodeId: id, role: 'worker', clusterId: manager.clusterId });
      clock.advance(Math.min(500, ms - t));
      await manager.settled();
    }
  };
  const tasksOf = (service: string, desired: TaskState | 'any' = 'running'): TaskRecord[] =>
    manager.listTasks({ service: [service], ...(desired !== 'any' ? { 'desired-state': [desired] } : {}) });
  /** What each node's agent would do: report every assigned task of theirs as running (or `state`). */
  const report = async (tasks: readonly TaskRecord[], state: TaskState, message: string = state): Promise<void> => {
    for (const t of tasks) await manager.reportTaskStatus(t.NodeID, [{ TaskID: t.ID, State: state, Message: message, Timestamp: new Date(WALL + clock.now()).toISOString() }]);
    await manager.settled();
  };
  const runAll = async (service: string): Promise<void> => report(tasksOf(service).filter((t) => t.Status.State === 'assigned'), 'running', 'started');
  const nodeName = (id: string): string => [...ids.entries(), ['lead', leader] as const].find(([, v]) => v === id)?.[0] ?? id;
  const spread = (service: string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const t of tasksOf(service)) out[nodeName(t.NodeID)] = (out[nodeName(t.NodeID)] ?? 0) + 1;
    return out;
  };
  const status = (name: string): ServiceView['ServiceStatus'] => manager.listServices({ name: [name] }, { status: true })[0]?.ServiceStatus;

  beforeEach(async () => {
    clock = new ManualClock();
    store = new MemoryStore();
    manager = make(store);
    alive.clear();
    ids.clear();
    leader = (await manager.init({ self: self('lead', 1), publicKeyPem: key.publicKeyPem, spec: { Dispatcher: { HeartbeatPeriod: 1 * S } } })).nodeId;
    await joinNode('w1', 2);
    await joinNode('w2', 3);
  });

  afterEach(() => manager.close());

  it('creates 3 replicas spread 1/1/1, assigned with ingress addresses, and counts them once running', async () => {
    const { ID, Warnings } = await manager.createService(web());
    expect(Warnings).toBeNull();
    const service = manager.getService('web', { insertDefaults: false });
    expect(service.ID).toBe(ID);
    expect(service.Endpoint.Ports).toEqual([{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }]);
    expect(service.Endpoint.VirtualIPs).toEqual([{ NetworkID: manager.getNetwork('ingress').Id, Addr: '100.64.0.128/24' }]);
    const tasks = tasksOf('web');
    expect(tasks.map((t) => [t.Slot, t.Status.State, t.DesiredState])).toEqual([
      [1, 'assigned', 'running'],
      [2, 'assigned', 'running'],
      [3, 'assigned', 'running'],
    ]);
    expect(spread('web')).toEqual({ lead: 1, w1: 1, w2: 1 });
    const addresses = tasks.map((t) => t.NetworksAttachments?.[0]?.Addresses[0]);
    expect(new Set(addresses).size).toBe(3);
    // Tasks take the upper half of ingress (the nodes have the lower), after the VIP.
    for (const a of addresses) expect(Number(/^100\.64\.0\.(\d+)\/24$/.exec(a ?? '')?.[1])).toBeGreaterThan(128);
    expect(status('web')).toEqual({ RunningTasks: 0, DesiredTasks: 3, CompletedTasks: 0 });

    // The agents see their task in their assignments and report it running.
    const mine = manager.assignments(ids.get('w1')!);
    expect(mine.Tasks.map((t) => [t.ServiceName, t.DesiredState, t.Ports.length])).toEqual([['web', 'running', 1]]);
    expect(mine.Services).toEqual([{ ID, Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.0.128', Ports: service.Endpoint.Ports, Labels: {} }]);
    await runAll('web');
    expect(status('web')).toEqual({ RunningTasks: 3, DesiredTasks: 3, CompletedTasks: 0 });
    expect(manager.getService(ID, { insertDefaults: false }).UpdateStatus ?? null).toBeNull();
  });
  it('carves created networks from the pool and size given at init', async () => {
    const other = new Manager({ store: new MemoryStore(), clock, wallClock: () => WALL + clock.now(), rng: new SeededRng(12) });
    await other.init({ self: self('lead', 1), publicKeyPem: key.publicKeyPem, addressPool: { pools: ['100.80.0.0/12'], subnetSize: 26 } });
    expect(other.swarm()).toMatchObject({ DefaultAddrPool: ['100.80.0.0/12'], SubnetSize: 26 });
    await other.createNetwork({ Name: 'net1', Driver: 'overlay' });
    expect(other.getNetwork('net1').IPAM.Config[0]?.Subnet).toBe('100.80.0.0/26');
    await expect(other.createNetwork({ Name: 'net2', Driver: 'overlay', IPAM: { Config: [{ Subnet: '100.64.8.0/24' }] } })).rejects.toThrow(/outside the overlay address pool 100\.80\.0\.0\/12/);
    other.close();
  });

  it('keeps the leader ready while its own agent long-polls in process (it sends no heartbeats, and was counted down with \'heartbeat failure\')', async () => {
    await manager.createService(web({ Mode: { Replicated: { Replicas: 3 } } }));
    await manager.settled();
    const leaderTask = tasksOf('web').find((t) => t.NodeID === leader);
    expect(leaderTask).toBeDefined();
    const poll = manager.waitAssignments(leader, manager.assignments(leader).Index, 60_000);
    await advance(20_000);
    expect(manager.getNode(leader).Status.State).toBe('ready');
    expect(manager.counters.get('cluster_nodes_down')).toBe(0);
    expect(tasksOf('web').find((t) => t.ID === leaderTask!.ID)?.DesiredState).toBe('running');
    clock.advance(60_000);
    await poll;
  });

  it('scales 3 → 5 → 2: new slots spread, extra slots shut down, no update status', async () => {
    await manager.createService(web());
    await runAll('web');
    const scale = async (replicas: number): Promise<void> => {
      const s = manager.getService('web', { insertDefaults: false });
      await manager.updateService('web', s.Version.Index, { ...s.Spec, Mode: { Replicated: { Replicas: replicas } } }, { rollback: false });
    };
    await scale(5);
    expect(tasksOf('web').map((t) => t.Slot)).toEqual([1, 2, 3, 4, 5]);
    expect(Object.values(spread('web')).sort()).toEqual([1, 2, 2]);
    await runAll('web');
    expect(status('web')).toEqual({ RunningTasks: 5, DesiredTasks: 5, CompletedTasks: 0 });
    await scale(2);
    expect(tasksOf('web').map((t) => t.Slot)).toEqual([1, 2]);
    expect(tasksOf('web', 'shutdown').map((t) => t.Slot)).toEqual([3, 4, 5]);
    expect(status('web')).toEqual({ RunningTasks: 2, DesiredTasks: 2, CompletedTasks: 0 });
    expect(manager.getService('web', { insertDefaults: false }).UpdateStatus ?? null).toBeNull();
    // The agents stop what they no longer should run.
    const w = manager.assignments(ids.get('w1')!).Tasks.concat(manager.assignments(ids.get('w2')!).Tasks, manager.assignments(leader).Tasks);
    expect(w.filter((t) => t.DesiredState === 'shutdown')).toHaveLength(3);
  });

  it('runs a global service on every node, and on a node that joins later', async () => {
    await manager.createService({ Name: 'g', TaskTemplate: { ContainerSpec: { Image: 'shoal/ping', Args: ['127.0.0.1'] } }, Mode: { Global: {} } });
    expect(tasksOf('g').map((t) => [t.Slot, nodeName(t.NodeID), t.Status.State]).sort()).toEqual([
      [0, 'lead', 'assigned'],
      [0, 'w1', 'assigned'],
      [0, 'w2', 'assigned'],
    ]);
    await joinNode('w3', 4);
    expect(tasksOf('g').map((t) => nodeName(t.NodeID)).sort()).toEqual(['lead', 'w1', 'w2', 'w3']);
    expect(status('g')?.DesiredTasks).toBe(4);
  });

  it('replaces the tasks of a node that goes down at once, and moves nothing back when it returns', async () => {
    await manager.createService(web());
    await runAll('web');
    const w2 = ids.get('w2')!;
    const lost = tasksOf('web').find((t) => t.NodeID === w2)!;
    alive.delete(w2);
    await advance(3_500); // three missed 1 s heartbeats: down
    expect(manager.getNode(w2).Status.State).toBe('down');
    const now = tasksOf('web');
    expect(now.map((t) => t.Slot)).toEqual([1, 2, 3]);
    expect(now.every((t) => t.NodeID !== w2)).toBe(true);
    expect(manager.getTask(lost.ID).DesiredState).toBe('shutdown');
    expect(status('web')?.RunningTasks).toBe(2);
    await runAll('web');
    expect(status('web')?.RunningTasks).toBe(3);

    alive.add(w2);
    await advance(2_000);
    expect(manager.getNode(w2).Status.State).toBe('ready');
    expect(tasksOf('web').every((t) => t.NodeID !== w2)).toBe(true);
    expect(manager.assignments(w2).Tasks.map((t) => [t.TaskID, t.DesiredState])).toEqual([[lost.ID, 'shutdown']]);
  });

  it('replaces at once the tasks of a node the gossip declares dead, and of a removed node', async () => {
    const liveness = new ManualLiveness();
    manager.attachLiveness(liveness);
    await manager.createService(web({ Mode: { Global: {} }, EndpointSpec: {} }));
    await manager.createService(web({ Name: 'api', EndpointSpec: {} }));
    await runAll('web');
    await runAll('api');
    const w1 = ids.get('w1')!;
    alive.delete(w1);
    liveness.emit({ addr: '127.0.0.2', name: 'w1', state: 'down' });
    await manager.settled();
    // No time has passed: the gossip alone made it down and the replica moved.
    expect(manager.getNode(w1).Status.State).toBe('down');
    expect(tasksOf('api').map((t) => t.NodeID)).not.toContain(w1);
    expect(tasksOf('api')).toHaveLength(3);
    expect(tasksOf('web').map((t) => t.NodeID)).not.toContain(w1);
    expect(status('web')?.DesiredTasks).toBe(2);

    await manager.removeNode('w1', true);
    const orphans = manager.listTasks({ node: [w1] });
    expect(orphans.map((t) => [t.DesiredState, t.Status.State])).toEqual([
      ['shutdown', 'orphaned'],
      ['shutdown', 'orphaned'],
    ]);
  });

  it('moves the tasks of a drained node and puts none there', async () => {
    await manager.createService(web());
    await runAll('web');
    const w1 = manager.getNode('w1');
    await manager.updateNode('w1', w1.Version.Index, { ...w1.Spec, Availability: 'drain' });
    expect(tasksOf('web').some((t) => nodeName(t.NodeID) === 'w1')).toBe(false);
    expect(tasksOf('web')).toHaveLength(3);
  });

  it('leaves tasks pending with swarmkit’s message when no node meets the constraints, and places them once one does', async () => {
    await manager.createService(web({ TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, Placement: { Constraints: ['node.labels.zone==eu'] } } }));
    const pending = tasksOf('web');
    expect(pending.map((t) => [t.Status.State, t.Status.Err, t.NodeID])).toEqual(Array(3).fill(['pending', 'no suitable node (scheduling constraints not satisfied on 3 nodes)', '']));
    const w2 = manager.getNode('w2');
    await manager.updateNode('w2', w2.Version.Index, { ...w2.Spec, Labels: { zone: 'eu' } });
    expect(tasksOf('web').map((t) => [t.Status.State, nodeName(t.NodeID), t.Status.Err])).toEqual(Array(3).fill(['assigned', 'w2', undefined]));
  });

  it('honours MaxReplicas per node', async () => {
    await manager.createService(web({ Mode: { Replicated: { Replicas: 4 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, Placement: { MaxReplicas: 1 } } }));
    const tasks = tasksOf('web');
    expect(tasks.filter((t) => t.Status.State === 'assigned')).toHaveLength(3);
    expect(tasks.filter((t) => t.Status.State === 'pending').map((t) => t.Status.Err)).toEqual(['no suitable node (max replicas per node limit exceed)']);
  });

  it('restarts a failed task after the restart delay, in the same slot, keeping the old one as history', async () => {
    await manager.createService(web({ Mode: { Replicated: { Replicas: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, RestartPolicy: { Condition: 'on-failure', Delay: 2 * S, MaxAttempts: 2 } } }));
    await runAll('web');
    const first = tasksOf('web')[0]!;
    await report([first], 'failed', 'exit status 1');
    expect(tasksOf('web', 'any').map((t) => t.ID)).toEqual([first.ID]);
    await advance(1_500);
    expect(tasksOf('web', 'any')).toHaveLength(1);
    await advance(1_000);
    const all = tasksOf('web', 'any');
    expect(all.map((t) => [t.Slot, t.DesiredState, t.Status.State])).toEqual([
      [1, 'shutdown', 'failed'],
      [1, 'running', 'assigned'],
    ]);
    // Two restarts at most: the third failure stays.
    await runAll('web');
    await report(tasksOf('web'), 'failed');
    await advance(2_500);
    await runAll('web');
    await report(tasksOf('web'), 'failed');
    await advance(5_000);
    expect(tasksOf('web', 'any').map((t) => t.Status.State)).toEqual(['failed', 'failed', 'failed']);
    expect(status('web')?.RunningTasks).toBe(0);
  });

  it('keeps at most TaskHistoryRetentionLimit tasks per slot', async () => {
    const swarm = manager.swarm();
    await manager.updateSwarm(swarm.Version.Index, { ...swarm.Spec, Orchestration: { TaskHistoryRetentionLimit: 2 } }, { worker: false, manager: false });
    await manager.createService(web({ Mode: { Replicated: { Replicas: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, RestartPolicy: { Condition: 'any', Delay: 0 } } }));
    for (let i = 0; i < 5; i++) {
      await runAll('web');
      await report(tasksOf('web'), 'failed');
      await advance(500);
    }
    expect(tasksOf('web', 'any').length).toBeLessThanOrEqual(2);
    expect(tasksOf('web')).toHaveLength(1);
  });

  it('rolls an update one task at a time with a truthful UpdateStatus and _up-to-date, then rolls back', async () => {
    const cfg = { Parallelism: 1, Delay: 0, Monitor: 1 * S, FailureAction: 'pause', Order: 'stop-first' };
    await manager.createService(web({ UpdateConfig: cfg }));
    await runAll('web');
    const before = manager.getService('web', { insertDefaults: false });
    const v2 = { ...before.Spec, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami', Env: ['V=2'] } } };
    await manager.updateService('web', before.Version.Index, v2, { rollback: false });
    const upToDate = (): TaskRecord[] => manager.listTasks({ service: ['web'], '_up-to-date': ['true'] }).filter((t) => t.DesiredState === 'running');
    const state = (): string | undefined => manager.getService('web', { insertDefaults: false }).UpdateStatus?.State;
    expect(state()).toBe('updating');
    expect(manager.getService('web', { insertDefaults: false }).PreviousSpec).toEqual(before.Spec);

    // Bounded: three slots, each needs its old task to stop and its new one to run.
    for (let step = 0; step < 10 && upToDate().filter((t) => t.Status.State === 'running').length < 3; step++) {
      expect(state()).toBe('updating');
      const stopping = manager.listTasks({ service: ['web'], 'desired-state': ['shutdown'] }).filter((t) => t.Status.State === 'running');
      expect(stopping.length).toBeLessThanOrEqual(1);
      await report(stopping, 'shutdown');
      await runAll('web');
    }
    expect(upToDate().map((t) => [t.Slot, t.Status.State])).toEqual([
      [1, 'running'],
      [2, 'running'],
      [3, 'running'],
    ]);
    expect(state()).toBe('updating'); // Monitor not over yet
    await advance(1_000);
    expect(manager.getService('web', { insertDefaults: false }).UpdateStatus).toMatchObject({ State: 'completed', Message: 'update completed' });

    const after = manager.getService('web', { insertDefaults: false });
    await manager.updateService('web', after.Version.Index, undefined, { rollback: true });
    expect(manager.getService('web', { insertDefaults: false }).UpdateStatus).toMatchObject({ State: 'rollback_started', Message: 'manually requested rollback' });
    expect(manager.getService('web', { insertDefaults: false }).Spec.TaskTemplate).toEqual(before.Spec.TaskTemplate);
    for (let step = 0; step < 10 && upToDate().filter((t) => t.Status.State === 'running').length < 3; step++) {
      await report(manager.listTasks({ service: ['web'], 'desired-state': ['shutdown'] }).filter((t) => t.Status.State === 'running'), 'shutdown');
      await runAll('web');
    }
    // No RollbackConfig: swarmkit's default Monitor, 5 s.
    await advance(4_000);
    expect(state()).toBe('rollback_started');
    await advance(1_000);
    expect(manager.getService('web', { insertDefaults: false }).UpdateStatus).toMatchObject({ State: 'rollback_completed', Message: 'rollback completed' });
    expect(upToDate().every((t) => t.Spec.ContainerSpec.Env === undefined)).toBe(true);
  });

  it('rolls back by itself when a new task fails and FailureAction is rollback', async () => {
    await manager.createService(web({ UpdateConfig: { Parallelism: 1, FailureAction: 'rollback', Monitor: 1 * S } }));
    await runAll('web');
    const before = manager.getService('web', { insertDefaults: false });
    await manager.updateService('web', before.Version.Index, { ...before.Spec, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami', Args: ['--bad'] } } }, { rollback: false });
    await report(manager.listTasks({ service: ['web'], 'desired-state': ['shutdown'] }).filter((t) => t.Status.State === 'running'), 'shutdown');
    const fresh = manager.listTasks({ service: ['web'], '_up-to-date': ['true'], 'desired-state': ['running'] }).filter((t) => t.Status.State === 'assigned');
    expect(fresh).toHaveLength(1);
    await report(fresh, 'failed', 'exit status 2');
    const after = manager.getService('web', { insertDefaults: false });
    expect(after.UpdateStatus).toMatchObject({ State: 'rollback_started', Message: `update rolled back due to failure or early termination of task ${fresh[0]!.ID}` });
    expect(after.Spec.TaskTemplate).toEqual(before.Spec.TaskTemplate);
    expect(after.PreviousSpec?.TaskTemplate.ContainerSpec.Args).toEqual(['--bad']);
  });

  it('refuses bad specs with 400 and stores nothing', async () => {
    const bad = [
      web({ Mode: { Replicated: { Replicas: -1 } } }),
      web({ TaskTemplate: { ContainerSpec: { Image: 'nginx' } } }),
      web({ EndpointSpec: { Ports: [{ TargetPort: 70000 }] } }),
      web({ TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, Placement: { Constraints: ['node.role=manager'] } } }),
      web({ Mode: { ReplicatedJob: {} } }),
      web({ TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, RestartPolicy: { Condition: 'sometimes' } } }),
    ];
    for (const spec of bad) await expect(manager.createService(spec)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(manager.listServices({}, { status: false })).toEqual([]);
    expect(manager.listTasks({})).toEqual([]);
  });

  it('refuses a taken name and a taken published port with 409, and a stale version or rename otherwise', async () => {
    await manager.createService(web());
    await expect(manager.createService(web())).rejects.toThrow(
      new ConflictError('rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists'),
    );
    await expect(manager.createService(web({ Name: 'WEB', EndpointSpec: {} }))).rejects.toBeInstanceOf(ConflictError);
    await expect(manager.createService(web({ Name: 'other' }))).rejects.toBeInstanceOf(ConflictError);
    expect(manager.listServices({}, { status: false }).map((s) => s.Spec.Name)).toEqual(['web']);
    const s = manager.getService('web', { insertDefaults: false });
    await expect(manager.updateService('web', s.Version.Index - 1, s.Spec, { rollback: false })).rejects.toThrow(new OutOfSequenceError('update out of sequence'));
    await expect(manager.updateService('web', s.Version.Index, { ...s.Spec, Name: 'web2' }, { rollback: false })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(manager.updateService('web', s.Version.Index, undefined, { rollback: true })).rejects.toBeInstanceOf(FailedPreconditionError);
    // Its own published port stays its own on update.
    await manager.updateService('web', s.Version.Index, { ...s.Spec, Labels: { a: 'b' } }, { rollback: false });
    expect(manager.getService('web', { insertDefaults: false }).Endpoint.Ports?.[0]?.PublishedPort).toBe(8080);
  });

  it('removes a service and its tasks at once; the agents see them gone', async () => {
    await manager.createService(web());
    await runAll('web');
    await manager.removeService('web');
    expect(() => manager.getService('web', { insertDefaults: false })).toThrow(NotFoundError);
    expect(manager.listTasks({})).toEqual([]);
    expect(manager.assignments(leader).Tasks).toEqual([]);
    expect(manager.assignments(leader).Services).toEqual([]);
    // Its port and VIP are free again.
    await manager.createService(web({ Name: 'again' }));
    expect(manager.getService('again', { insertDefaults: false }).Endpoint.VirtualIPs?.[0]?.Addr).toBe('100.64.0.128/24');
  });

  it('keeps the agents’ log lines per service and task, and follows a service’s new tasks', async () => {
    await manager.createService(web({ Mode: { Replicated: { Replicas: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, RestartPolicy: { Delay: 0 } } }));
    await runAll('web');
    const first = tasksOf('web')[0]!;
    const line = (taskId: string, text: string, s: number): { TaskID: string; Stream: 'stdout'; Timestamp: string; Line: string } => ({
      TaskID: taskId,
      Stream: 'stdout',
      Timestamp: new Date(WALL + s * 1000).toISOString(),
      Line: text,
    });
    manager.appendLogs(first.NodeID, [line(first.ID, 'hello', 1), line(first.ID, 'world', 2)]);
    manager.appendLogs('some-other-node', [line(first.ID, 'forged', 3)]);
    const logs = manager.logs({ service: 'web' }, {});
    expect(logs.entries.map((e) => [e.Line, e.ServiceID, e.NodeID])).toEqual([
      ['hello', first.ServiceID, first.NodeID],
      ['world', first.ServiceID, first.NodeID],
    ]);
    expect(manager.logs({ task: first.ID }, { tail: 1 }).entries.map((e) => e.Line)).toEqual(['world']);
    const followed: string[] = [];
    const stop = logs.subscribe((e) => followed.push(e.Line));
    await report([first], 'failed');
    const second = tasksOf('web')[0]!;
    expect(second.ID).not.toBe(first.ID);
    await runAll('web');
    manager.appendLogs(second.NodeID, [line(second.ID, 'again', 4)]);
    stop();
    manager.appendLogs(second.NodeID, [line(second.ID, 'unheard', 5)]);
    expect(followed).toEqual(['again']);
    expect(() => manager.logs({ service: 'nosuch' }, {})).toThrow(NotFoundError);
  });

  it('answers task filters by name, node, label and service name', async () => {
    await manager.createService(web({ Labels: { tier: 'front' } }));
    expect(manager.listTasks({ name: ['web.2'] }).map((t) => t.Slot)).toEqual([2]);
    expect(manager.listTasks({ label: ['tier=front'] })).toHaveLength(3);
    expect(manager.listTasks({ label: ['tier=back'] })).toHaveLength(0);
    expect(manager.listTasks({ node: ['w1'] })).toHaveLength(1);
    expect(manager.listTasks({ service: ['nosuch'] })).toEqual([]);
    expect(() => manager.listTasks({ bogus: ['x'] })).toThrow("invalid filter 'bogus'");
  });});

describe('Manager services on a durable store', () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-services-'));
  });
  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('keeps services, tasks and networks across a restart', async () => {
    const clock = new ManualClock();
    const open = async (): Promise<{ store: LogStore; manager: Manager }> => {
      const store = await LogStore.open(tmp);
      return { store, manager: new Manager({ store, clock, wallClock: () => WALL + clock.now(), rng: new SeededRng(5) }) };
    };
    const first = await open();
    await first.manager.init({ self: self('lead', 1), publicKeyPem: key.publicKeyPem });
    await first.manager.createService(web());
    await first.manager.createNetwork({ Name: 'net1', Driver: 'overlay' });
    const tasks = first.manager.listTasks({});
    first.manager.close();
    await first.store.close();

    const second = await open();
    await second.manager.settled();
    expect(second.manager.getService('web', { insertDefaults: false }).Endpoint.Ports?.[0]?.PublishedPort).toBe(8080);
    expect(second.manager.listTasks({}).map((t) => t.ID)).toEqual(tasks.map((t) => t.ID));
    expect(second.manager.listNetworks({}).map((n) => n.Name)).toEqual(['ingress', 'net1']);
    second.manager.close();
    await second.store.close();
  });
});
