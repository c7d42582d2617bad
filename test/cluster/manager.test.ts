/**
 * The manager's rules, in-process on a MemoryStore and a ManualClock: init, joins by token and
 * role, node updates and removals as swarmkit allows them, and node status from heartbeats and
 * the membership (liveness) within their bounds.
 */
import { X509Certificate } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { generateNodeKey } from '../../src/cluster/ca.js';
import { ManualLiveness } from '../../src/cluster/liveness.js';
import { Manager, type NodeSelf } from '../../src/cluster/manager.js';
import { MemoryStore } from '../../src/cluster/store.js';
import type { NodeDescription } from '../../src/cluster/types.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';

const WALL = Date.parse('2026-11-25T12:00:00Z');
const key = generateNodeKey();

function self(name: string, n: number): NodeSelf {
  const description: NodeDescription = {
    Hostname: name,
    Platform: { Architecture: 'x86_64', OS: 'linux' },
    Resources: { NanoCPUs: 2e9, MemoryBytes: 1 << 30 },
    Engine: { EngineVersion: '0.1.0', Labels: {}, Plugins: [] },
  };
  return { hostname: name, addr: `127.0.0.${n}`, managerAddr: `127.0.0.${n}:2377`, description };
}

describe('Manager', () => {
  let clock: ManualClock;
  let store: MemoryStore;
  let manager: Manager;
  let leaderId: string;

  const make = (): Manager => new Manager({ store, clock, wallClock: () => WALL + clock.now(), rng: new SeededRng(9) });
  const join = async (name: string, n: number, token: string, role?: 'worker' | 'manager'): Promise<string> =>
    (await manager.join({ token, publicKeyPem: key.publicKeyPem, self: self(name, n), ...(role ? { role } : {}) })).nodeId;
  const state = (ref: string): string => manager.getNode(ref).Status.State;

  beforeEach(async () => {
    clock = new ManualClock();
    store = new MemoryStore();
    manager = make();
    // 1 s heartbeats: down after 3 s without one (swarmkit's grace multiplier).
    leaderId = (await manager.init({ self: self('lead', 1), publicKeyPem: key.publicKeyPem, spec: { Dispatcher: { HeartbeatPeriod: 1e9 } } })).nodeId;
  });

  it('init makes the leader a ready manager with swarmkit defaults', () => {
    const lead = manager.getNode(leaderId);
    expect(lead.Spec).toEqual({ Labels: {}, Role: 'manager', Availability: 'active' });
    expect(lead.Status).toEqual({ State: 'ready', Addr: '127.0.0.1' });
    expect(lead.ManagerStatus).toEqual({ Leader: true, Reachability: 'reachable', Addr: '127.0.0.1:2377' });
    const swarm = manager.swarm();
    expect(swarm.Spec.Dispatcher.HeartbeatPeriod).toBe(1e9);
    expect(swarm.Spec.CAConfig.NodeCertExpiry).toBe(7776000000000000);
    expect(swarm.Spec.Orchestration.TaskHistoryRetentionLimit).toBe(5);
    expect(swarm.JoinTokens.Worker).not.toBe(swarm.JoinTokens.Manager);
  });

  it('refuses a second init', async () => {
    await expect(manager.init({ self: self('x', 9), publicKeyPem: key.publicKeyPem })).rejects.toThrow('This node is already part of a swarm');
  });

  it('admits by token: the worker token makes workers, the manager token managers', async () => {
    const { Worker, Manager: managerToken } = manager.swarm().JoinTokens;
    const w = await join('w', 2, Worker);
    const m = await join('m', 3, managerToken);
    expect(manager.getNode(w).Spec.Role).toBe('worker');
    expect(manager.getNode(m).ManagerStatus).toEqual({ Reachability: 'reachable', Addr: '127.0.0.3:2377' });
    expect(manager.managerAddrs()).toEqual(['127.0.0.1:2377', '127.0.0.3:2377']);
  });

  it('issues a certificate whose subject names the node, role and cluster', async () => {
    const issued = await manager.join({ token: manager.swarm().JoinTokens.Worker, publicKeyPem: key.publicKeyPem, self: self('w', 2) });
    expect(new X509Certificate(issued.certPem).subject).toBe(`CN=${issued.nodeId}\nOU=swarm-worker\nO=${manager.clusterId}`);
    expect(manager.authenticate(new X509Certificate(issued.certPem).raw)).toEqual({ nodeId: issued.nodeId, role: 'worker', clusterId: manager.clusterId });
  });

  it('refuses a wrong secret, another CA, and a role the token does not grant', async () => {
    const worker = manager.swarm().JoinTokens.Worker;
    await expect(join('x', 4, worker.slice(0, -1) + (worker.endsWith('0') ? '1' : '0'))).rejects.toThrow('A valid join token is necessary to join this cluster');
    await expect(join('x', 4, 'SWMTKN-1-' + '1'.repeat(50) + worker.slice(-26))).rejects.toThrow('A valid join token is necessary to join this cluster');
    await expect(join('x', 4, worker, 'manager')).rejects.toMatchObject({ code: 'ERR_PERMISSION_DENIED' });
    expect(manager.listNodes()).toHaveLength(1);
    expect(manager.counters.snapshot()).toMatchObject({ cluster_joins: 0, cluster_joins_refused: 3 });
  });

  it('rotating a token makes the old one useless and keeps the other', async () => {
    const before = manager.swarm();
    await manager.updateSwarm(before.Version.Index, before.Spec, { worker: true, manager: false });
    const after = manager.swarm();
    expect(after.JoinTokens.Worker).not.toBe(before.JoinTokens.Worker);
    expect(after.JoinTokens.Manager).toBe(before.JoinTokens.Manager);
    await expect(join('x', 4, before.JoinTokens.Worker)).rejects.toThrow('A valid join token');
    await expect(manager.updateSwarm(before.Version.Index, before.Spec, { worker: true, manager: false })).rejects.toThrow('update out of sequence');
  });

  it('tells nodes a new heartbeat period in their next heartbeat answer', async () => {
    const w = await join('w', 2, manager.swarm().JoinTokens.Worker);
    const swarm = manager.swarm();
    await manager.updateSwarm(swarm.Version.Index, { ...swarm.Spec, Dispatcher: { HeartbeatPeriod: 2e9 } }, { worker: false, manager: false });
    expect(manager.heartbeat({ nodeId: w, role: 'worker', clusterId: manager.clusterId }).periodMs).toBe(2000);
    clock.advance(5999);
    expect(state(w)).toBe('ready');
    clock.advance(2);
    expect(state(w)).toBe('down');
  });

  it('updates a node with the current version only, and resolves names and unique prefixes', async () => {
    const w = await join('worker-a', 2, manager.swarm().JoinTokens.Worker);
    const v = manager.getNode('worker-a').Version.Index;
    await manager.updateNode(w.slice(0, 6), v, { Labels: { a: 'b' }, Role: 'worker', Availability: 'drain' });
    expect(manager.getNode(w).Spec).toEqual({ Labels: { a: 'b' }, Role: 'worker', Availability: 'drain' });
    expect(manager.getNode(w).Version.Index).toBeGreaterThan(v);
    await expect(manager.updateNode(w, v, { Labels: {}, Role: 'worker', Availability: 'active' })).rejects.toThrow('update out of sequence');
    await expect(manager.updateNode('nope', 1, { Labels: {}, Role: 'worker', Availability: 'active' })).rejects.toThrow('node nope not found');
    await expect(manager.updateNode(w, 99, { Labels: {}, Role: 'boss', Availability: 'active' })).rejects.toThrow('invalid role "boss"');
  });

  it('refuses demoting the last manager and the store-holding leader', async () => {
    const v = manager.getNode(leaderId).Version.Index;
    await expect(manager.updateNode(leaderId, v, { Labels: {}, Role: 'worker', Availability: 'active' })).rejects.toThrow('attempting to demote the last manager of the swarm');
    const m = await join('m', 3, manager.swarm().JoinTokens.Manager);
    await expect(manager.updateNode(leaderId, manager.getNode(leaderId).Version.Index, { Labels: {}, Role: 'worker', Availability: 'active' })).rejects.toThrow('demote the leader');
    await manager.updateNode(m, manager.getNode(m).Version.Index, { Labels: {}, Role: 'worker', Availability: 'active' });
    expect(manager.getNode(m).ManagerStatus).toBeUndefined();
  });

  it('removes only down workers without force, never managers', async () => {
    const w = await join('w', 2, manager.swarm().JoinTokens.Worker);
    await expect(manager.removeNode(w, false)).rejects.toThrow(`node ${w} is not down and can't be removed`);
    await expect(manager.removeNode(leaderId, true)).rejects.toThrow('must be demoted to worker before removal');
    clock.advance(3001);
    await manager.removeNode('w', false);
    await expect(Promise.resolve().then(() => manager.getNode(w))).rejects.toThrow('not found');
    expect(() => manager.heartbeat({ nodeId: w, role: 'worker', clusterId: manager.clusterId })).toThrow('was removed');
  });

  it('filters nodes as dockerd does, and refuses unknown filters', async () => {
    const { Worker } = manager.swarm().JoinTokens;
    const w = await join('w', 2, Worker);
    await manager.updateNode(w, manager.getNode(w).Version.Index, { Labels: { zone: 'a' }, Role: 'worker', Availability: 'active' });
    expect(manager.listNodes({ role: ['manager'] }).map((n) => n.ID)).toEqual([leaderId]);
    expect(manager.listNodes({ 'node.label': ['zone=a'] }).map((n) => n.ID)).toEqual([w]);
    expect(manager.listNodes({ 'node.label': ['zone=b'] })).toEqual([]);
    expect(manager.listNodes({ name: ['le'] }).map((n) => n.ID)).toEqual([leaderId]);
    expect(() => manager.listNodes({ colour: ['red'] })).toThrow("invalid filter 'colour'");
  });

  describe('node status', () => {
    it('goes down after three heartbeat periods without one, and ready on the next', async () => {
      const w = await join('w', 2, manager.swarm().JoinTokens.Worker);
      const id = { nodeId: w, role: 'worker' as const, clusterId: manager.clusterId };
      expect(state(w)).toBe('ready');
      clock.advance(2999);
      expect(state(w)).toBe('ready');
      manager.heartbeat(id);
      clock.advance(2999);
      expect(state(w)).toBe('ready');
      clock.advance(2);
      expect(manager.getNode(w).Status).toEqual({ State: 'down', Message: 'heartbeat failure', Addr: '127.0.0.2' });
      expect(manager.heartbeat(id).periodMs).toBe(1000);
      expect(state(w)).toBe('ready');
    });

    it('follows the membership: down at once on a down event, ready with the next heartbeat after up', async () => {
      const liveness = new ManualLiveness();
      manager.attachLiveness(liveness);
      const w = await join('w', 2, manager.swarm().JoinTokens.Worker);
      liveness.emit({ addr: '127.0.0.2', state: 'down' });
      expect(state(w)).toBe('down');
      liveness.emit({ addr: '127.0.0.99', name: 'w', state: 'up' });
      expect(state(w)).toBe('down');
      manager.heartbeat({ nodeId: w, role: 'worker', clusterId: manager.clusterId });
      expect(state(w)).toBe('ready');
      // Gossip alone never keeps a node ready: one that left the swarm still gossips for the mesh.
      clock.advance(10_000);
      expect(state(w)).toBe('down');
    });

    it('after a manager restart, other nodes are unknown until heard from, then down', async () => {
      const w = await join('w', 2, manager.swarm().JoinTokens.Worker);
      const w2 = await join('w2', 3, manager.swarm().JoinTokens.Worker);
      manager.close();
      manager = make();
      expect(state(w)).toBe('unknown');
      manager.heartbeat({ nodeId: w2, role: 'worker', clusterId: manager.clusterId });
      clock.advance(3001);
      expect(state(w)).toBe('down');
      expect(state(w2)).toBe('down');
      expect(state(leaderId)).toBe('ready');
      expect(manager.listNodes()).toHaveLength(3);
    });
  });

  it('a demoted node\'s manager certificate authorises only what a worker may do', async () => {
    const issued = await manager.join({ token: manager.swarm().JoinTokens.Manager, publicKeyPem: key.publicKeyPem, self: self('m', 3) });
    await manager.updateNode(issued.nodeId, manager.getNode(issued.nodeId).Version.Index, { Labels: {}, Role: 'worker', Availability: 'active' });
    expect(manager.authenticate(new X509Certificate(issued.certPem).raw).role).toBe('worker');
  });

  it('forgets everything on destroy', async () => {
    await manager.destroy();
    expect(manager.active).toBe(false);
    expect(() => manager.listNodes()).toThrow('This node is not a swarm manager');
  });
});
