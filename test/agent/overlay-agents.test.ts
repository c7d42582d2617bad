/**
 * Two real `shoal agent` processes on loopback (127.0.0.2 and 127.0.0.3, data path port unique
 * to this file): their userspace interfaces reach each other over VXLAN, and the API answers
 * bad requests with Docker-style errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { apiRequest } from '../../src/cli/api-client.js';
import { type AgentProcess, startAgent } from '../helpers/agent.js';
import { stopProcess } from '../helpers/netns.js';

const PORT = 14789; // unique to this file

describe('two agents on loopback', () => {
  let tmp: string;
  let a: AgentProcess;
  let b: AgentProcess;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-overlay-agents-'));
    const agent = (n: number, peer: number) =>
      startAgent([
        '--node-name', `node-${n}`, '--advertise-addr', `127.0.0.${n}`, '--data-path-port', String(PORT), '--gossip-port', String(PORT + 1),
        '--overlay-addr', `100.64.0.${n}/24`, '--peer', `100.64.0.${peer}@127.0.0.${peer}:${PORT}`,
        '--api-socket', path.join(tmp, `${n}.sock`),
      ]);
    [a, b] = await Promise.all([agent(2, 3), agent(3, 2)]);
  });

  afterAll(async () => {
    await Promise.all([a && stopProcess(a.child), b && stopProcess(b.child)]);
    await rm(tmp, { recursive: true, force: true });
  });

  it('each pings the other over the overlay', async () => {
    for (const [from, to] of [[a, '100.64.0.3'], [b, '100.64.0.2']] as const) {
      const { status, json } = await apiRequest(from.apiSocket, 'POST', '/shoal/overlay/ping', { address: to, count: 3, intervalMs: 50 });
      expect(status).toBe(200);
      const replies = (json as { replies: { seqNo: number; ttl?: number; bytes?: number }[] }).replies;
      expect(replies.map((r) => [r.seqNo, r.ttl, r.bytes])).toEqual([[1, 64, 56], [2, 64, 56], [3, 64, 56]]);
    }
  });

  it('counts what crossed the VTEP in /metrics', async () => {
    const { status, text } = await apiRequest(b.apiSocket, 'GET', '/metrics');
    expect(status).toBe(200);
    expect(text).toMatch(/^icmp_rx_echo_requests\{node="node-3"\} [1-9]/m);
    expect(text).toMatch(/^vtep_rx_frames\{node="node-3"\} [1-9]/m);
  });

  it('reports an address outside the overlay subnet as lost, not as an error of the API', async () => {
    const { status, json } = await apiRequest(a.apiSocket, 'POST', '/shoal/overlay/ping', { address: '100.64.9.9', count: 1, timeoutMs: 200 });
    expect(status).toBe(200);
    expect((json as { replies: { error?: string }[] }).replies[0]?.error).toMatch(/No echo reply/);
  });

  it('answers bad requests with 400 and a Docker-style message', async () => {
    for (const body of [{ address: 'not-an-ip' }, { address: '100.64.0.3', count: 0 }, { address: 7 }]) {
      const { status, json } = await apiRequest(a.apiSocket, 'POST', '/shoal/overlay/ping', body);
      expect(status).toBe(400);
      expect(typeof (json as { message?: unknown }).message).toBe('string');
    }
    const notFound = await apiRequest(a.apiSocket, 'GET', '/nope');
    expect(notFound.status).toBe(404);
  });
});
