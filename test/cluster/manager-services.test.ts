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
  const tasksOf = (service: string, desired: TaskState | undefined = 'running'): TaskRecord[] =>
    manager.listTasks({ service: [service], ...(desired ? { 'desired-state': [desired] } : {}) });
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
    expect(mine.Services).toEqual([{ ID, Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.0.128', Ports: service.Endpoint.Ports }]);
    await runAll('web');
    expect(status('web')).toEqual({ RunningTasks: 3, DesiredTasks: 3, CompletedTasks: 0 });
    expect(manager.getService(ID, { insertDefaults: false }).UpdateStatus ?? null).toBeNull();
  });
});
