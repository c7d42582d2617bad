/**
 * kill -9 of the manager in the middle of a burst of node updates, its store compacting every
 * few transactions (real agent processes on
 * 127.0.0.46–47, 2377 on 23776–23777, all unique to this file): after a restart, every update
 * the API acknowledged is there, and the manager resumes the same swarm — same cluster, nodes,
 * tokens — with the worker back to ready.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/cli/api-client.js';
import { type AgentProcess, startAgent } from '../helpers/agent.js';
import { stopProcess } from '../helpers/netns.js';

const DATA_PATH_PORT = 23788;

interface NodeJson {
  ID: string;
  Version: { Index: number };
  Spec: { Labels: Record<string, string>; Role: string; Availability: string };
  Description: { Hostname: string };
  Status: { State: string };
}

describe('manager killed during a burst of node updates', () => {
  let tmp: string;
  const agents = new Map<number, AgentProcess>();
  const sock = (n: number): string => path.join(tmp, `${n}.sock`);

  const start = async (n: number): Promise<AgentProcess> => {
    const agent = await startAgent([
      '--node-name', `crash-${n}`, '--advertise-addr', `127.0.0.${n}`, '--data-path-port', String(DATA_PATH_PORT),
      '--overlay-addr', `100.64.1.${n}/24`, '--api-socket', sock(n), '--data-dir', path.join(tmp, `data-${n}`),
    ]);
    agent.child.stdout?.resume();
    agent.child.stderr?.resume();
    agents.set(n, agent);
    return agent;
  };

  const api = async (n: number, method: string, route: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const r = await apiRequest(sock(n), method, `/v1.50${route}`, body);
    return { status: r.status, json: r.json };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-manager-crash-'));
    // Compact the store every 7 transactions, so that the kill also lands in or near a compaction.
    process.env['SHOAL_STORE_COMPACT_EVERY'] = '7';
    await Promise.all([start(46), start(47)]);
    const init = await api(46, 'POST', '/swarm/init', { ListenAddr: '127.0.0.46:23776', AdvertiseAddr: '127.0.0.46', Spec: { Dispatcher: { HeartbeatPeriod: 500_000_000 } } });
    expect(init.status).toBe(200);
    const swarm = (await api(46, 'GET', '/swarm')).json as { JoinTokens: { Worker: string } };
    const join = await api(47, 'POST', '/swarm/join', { ListenAddr: '127.0.0.47:23777', RemoteAddrs: ['127.0.0.46:23776'], JoinToken: swarm.JoinTokens.Worker });
    expect(join.status).toBe(200);
  });

  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => stopProcess(a.child)));
    await rm(tmp, { recursive: true, force: true });
  });

  it('keeps every acknowledged update and resumes the same swarm', async () => {
    const before = (await api(46, 'GET', '/nodes')).json as NodeJson[];
    const swarmBefore = (await api(46, 'GET', '/swarm')).json as { ID: string; JoinTokens: unknown };
    expect(before).toHaveLength(2);

    // One writer per node: read the node, add a label, post it back with its version.
    const acknowledged: { nodeId: string; key: string; value: string }[] = [];
    let stop = false;
    const writer = async (node: NodeJson): Promise<void> => {
      for (let i = 0; i < 2000 && !stop; i++) {
        try {
          const current = await api(46, 'GET', `/nodes/${node.ID}`);
          if (current.status !== 200) return;
          const n = current.json as NodeJson;
          const key = `burst-${i}`;
          const spec = { ...n.Spec, Labels: { ...n.Spec.Labels, [key]: `${n.Version.Index}` } };
          const r = await api(46, 'POST', `/nodes/${node.ID}/update?version=${n.Version.Index}`, spec);
          if (r.status === 200) acknowledged.push({ nodeId: node.ID, key, value: `${n.Version.Index}` });
        } catch {
          return; // the manager is gone
        }
      }
    };
    const writers = before.map((n) => writer(n));
    for (let i = 0; i < 400 && acknowledged.length < 60; i++) await new Promise((r) => setTimeout(r, 10));
    const manager = agents.get(46)!;
    const exited = new Promise((r) => manager.child.once('exit', r));
    manager.child.kill('SIGKILL');
    await exited;
    stop = true;
    await Promise.all(writers);
    expect(acknowledged.length).toBeGreaterThanOrEqual(60);

    await start(46);
    const after = (await api(46, 'GET', '/nodes')).json as NodeJson[];
    const byId = new Map(after.map((n) => [n.ID, n]));
    expect([...byId.keys()].sort()).toEqual(before.map((n) => n.ID).sort());
    const missing = acknowledged.filter((a) => byId.get(a.nodeId)?.Spec.Labels[a.key] !== a.value);
    expect(missing).toEqual([]);

    const swarmAfter = (await api(46, 'GET', '/swarm')).json as { ID: string; JoinTokens: unknown };
    expect(swarmAfter.ID).toBe(swarmBefore.ID);
    expect(swarmAfter.JoinTokens).toEqual(swarmBefore.JoinTokens);

    // The worker never stopped heartbeating: it is ready again once the new manager hears it.
    let worker = (await api(46, 'GET', '/nodes/crash-47')).json as NodeJson;
    for (let i = 0; i < 40 && worker.Status.State !== 'ready'; i++) {
      await new Promise((r) => setTimeout(r, 250));
      worker = (await api(46, 'GET', '/nodes/crash-47')).json as NodeJson;
    }
    expect(worker.Status.State).toBe('ready');
  });
});
