/**
 * A real Manager (MemoryStore, real clock) behind the real API server, with STAND-IN AGENTS:
 * instead of agents running task processes, a loop in the test process heartbeats every node
 * and reports each task the manager assigns as running (and each task told to stop as shut
 * down), as an executor would, with one log line per started task (`hello from web.1`). The
 * API, manager, orchestrator and scheduler are the real ones; the end-to-end test with real
 * agents is the lead's (issue 8).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { localControl } from '../../src/agent/control-plane.js';
import { type ApiBackend } from '../../src/api/docker.js';
import { type ApiServer, serveApi } from '../../src/api/server.js';
import { generateNodeKey } from '../../src/cluster/ca.js';
import { Manager, type NodeSelf } from '../../src/cluster/manager.js';
import { taskName } from '../../src/cluster/service-spec.js';
import type { TaskStatusUpdate } from '../../src/cluster/service-types.js';
import { MemoryStore } from '../../src/cluster/store.js';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';

export interface StandInSwarm {
  readonly manager: Manager;
  readonly server: ApiServer;
  /** Node IDs by hostname. */
  readonly nodes: ReadonlyMap<string, string>;
  /** While false, the stand-in agents leave new tasks where the manager put them. */
  runTasks: boolean;
  close(): Promise<void>;
}

const key = generateNodeKey();

function self(name: string, n: number): NodeSelf {
  return {
    hostname: name,
    addr: `127.0.0.${n}`,
    managerAddr: `127.0.0.${n}:2377`,
    description: { Hostname: name, Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 1 << 30 }, Engine: { EngineVersion: '0.1.0', Labels: {}, Plugins: [] } },
  };
}

/** Starts a swarm of `hostnames` (the first is the leader) and its API on a unix socket and, optionally, TCP. */
export async function startStandInSwarm(hostnames: readonly string[], tcp?: { host: string; port: number }): Promise<StandInSwarm> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-standin-'));
  const manager = new Manager({ store: new MemoryStore(), clock: new RealClock(), wallClock: () => Date.now(), rng: new SeededRng(7) });
  const nodes = new Map<string, string>();
  const leader = (await manager.init({ self: self(hostnames[0]!, 1), publicKeyPem: key.publicKeyPem, spec: { Dispatcher: { HeartbeatPeriod: 1e9 } } })).nodeId;
  nodes.set(hostnames[0]!, leader);
  for (const [i, name] of hostnames.slice(1).entries()) {
    nodes.set(name, (await manager.join({ token: manager.swarm().JoinTokens.Worker, publicKeyPem: key.publicKeyPem, self: self(name, i + 2) })).nodeId);
  }
  const backend: ApiBackend = {
    nodeName: hostnames[0]!,
    cluster: {
      swarmHeader: () => 'active/manager',
      info: async () => ({ NodeID: leader, NodeAddr: '127.0.0.1', LocalNodeState: 'active', ControlAvailable: true, Error: '', RemoteManagers: [{ NodeID: leader, Addr: '127.0.0.1:2377' }] }),
      control: () => localControl(manager),
      init: () => Promise.reject(new Error('a stand-in swarm is initialised once')),
      join: () => Promise.reject(new Error('a stand-in swarm takes no joins')),
      leave: () => Promise.reject(new Error('a stand-in swarm does not leave')),
    },
  };
  const server = await serveApi(backend, path.join(tmp, 'api.sock'), tcp);

  const swarm: StandInSwarm & { stopped: boolean } = {
    manager,
    server,
    nodes,
    runTasks: true,
    stopped: false,
    close: async () => {
      swarm.stopped = true;
      await loop;
      await server.close();
      manager.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
  /** One round of the stand-in agents: heartbeats, then task reports. */
  const round = async (): Promise<void> => {
    for (const id of nodes.values()) if (id !== leader) manager.heartbeat({ nodeId: id, role: 'worker', clusterId: manager.clusterId });
    const now = new Date().toISOString();
    const byNode = new Map<string, TaskStatusUpdate[]>();
    for (const t of manager.listTasks({})) {
      if (!t.NodeID) continue;
      let update: TaskStatusUpdate | undefined;
      const order = ['assigned', 'accepted', 'preparing', 'ready', 'starting'];
      if (t.DesiredState === 'running' && order.includes(t.Status.State) && swarm.runTasks) update = { TaskID: t.ID, State: 'running', Message: 'started', PID: 4242, Timestamp: now };
      else if (t.DesiredState !== 'running' && ['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running'].includes(t.Status.State)) update = { TaskID: t.ID, State: 'shutdown', Message: 'shutdown', Timestamp: now };
      if (update) byNode.set(t.NodeID, [...(byNode.get(t.NodeID) ?? []), update]);
    }
    for (const [node, updates] of byNode) {
      await manager.reportTaskStatus(node, updates);
      // What a task's process would print first: one stdout line naming its task.
      const started = updates.filter((u) => u.State === 'running').map((u) => manager.getTask(u.TaskID));
      const lines = started.map((t) => ({ TaskID: t.ID, Stream: 'stdout' as const, Timestamp: now, Line: `hello from ${taskName(manager.getService(t.ServiceID, { insertDefaults: false }).Spec.Name, t)}` }));
      if (lines.length > 0) manager.appendLogs(node, lines);
    }
  };
  const loop = (async () => {
    while (!swarm.stopped) {
      await round();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return swarm;
}
