/**
 * The mirror listeners on real sockets (127.64.9.x, ports 24470–24479) and the overlay VIP
 * listeners over a stand-in for the userspace TCP: what two agents on one host see, the
 * listener bound, refusals, and VIP ports following the table.
 */
import { type Server, createServer } from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { encodeRows } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { MirrorListeners } from '../../src/mesh/node-mirror.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter } from '../../src/mesh/router.js';
import type { OverlayTcpSockets } from '../../src/mesh/task-listeners.js';
import { OverlayVipListeners } from '../../src/mesh/vip.js';
import { httpGet, waitFor } from './mesh-helpers.js';

const HOST = '127.0.0.123';
const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const clock = new RealClock();

function taskRow(node: string, taskId: string, last: number, target: number, hostPort: number): EndpointRow {
  return {
    service: 'api',
    taskId,
    slot: 1,
    node,
    overlayAddress: IP(`100.64.9.${last}`),
    vni: 4096,
    vtepAddress: IP(HOST),
    vtepPort: 4789,
    hostAddress: IP(HOST),
    ports: [{ protocol: 'tcp', target, hostPort }],
    health: 'none',
  };
}

describe('MirrorListeners on one host', () => {
  let task: Server;
  const tables: EndpointTable[] = [];
  const routers: MeshRouter[] = [];
  const mirrors: MirrorListeners[] = [];

  const agent = (name: string, options: { maxListeners?: number; retryMs?: number } = {}) => {
    const table = new EndpointTable({ nodeName: name, clock });
    const router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector() });
    const m = new MirrorListeners({
      table,
      router,
      clock,
      connectLocal: localTcpConnector(),
      ...(options.maxListeners !== undefined && { maxListeners: options.maxListeners }),
      ...(options.retryMs !== undefined && { retryMs: options.retryMs }),
    });
    tables.push(table);
    routers.push(router);
    mirrors.push(m);
    return { table, router, m };
  };

  beforeAll(async () => {
    task = createServer((_req, res) => res.end('api-1'));
    await new Promise<void>((r) => task.listen(24471, HOST, r));
  });

  afterAll(async () => {
    for (const m of mirrors) await m.close();
    for (const r of routers) r.close();
    for (const t of tables) t.close();
    await new Promise((r) => task.close(r));
  });

  it('a second agent on the host cannot bind the mirrors: it counts the failures, serves nothing wrong, and takes them over when the first stops', async () => {
    const first = agent('n1');
    const second = agent('n2', { retryMs: 100 });
    const row = taskRow('n1', 'api1', 170, 24470, 24471);
    first.table.upsertLocal(row);
    second.table.notifyMsg(encodeRows([{ row, version: 1, deleted: false }]));
    first.m.setServices([{ name: 'api', vip: IP('100.64.9.253'), tcpPorts: [24470] }]);
    second.m.setServices([{ name: 'api', vip: IP('100.64.9.253'), tcpPorts: [24470] }]);
    await first.m.settled();
    await second.m.settled();
    expect(first.m.listening().map((l) => `${l.address}:${l.port} ${l.target.kind}`).sort()).toEqual(['127.64.9.170:24470 task', '127.64.9.253:24470 vip']);
    expect(second.m.listening()).toEqual([]);
    expect(second.m.counters.get('mirror_listen_failures')).toBeGreaterThanOrEqual(2);
    expect((await httpGet('127.64.9.253', 24470, '/')).body).toBe('api-1');
    expect((await httpGet('127.64.9.170', 24470, '/')).body).toBe('api-1');

    await first.m.close();
    // Its retry takes the mirrors over without any change (its task is remote and it has no
    // overlay, so the task mirror refuses; the VIP has no endpoint it can reach).
    await waitFor(() => second.m.listening().length === 2, 5000, 'the second agent to take the mirrors over');
    await expect(httpGet('127.64.9.170', 24470, '/')).rejects.toThrow();
    expect(second.m.counters.get('mirror_task_cx_refused')).toBe(1);
    await expect(httpGet('127.64.9.253', 24470, '/')).rejects.toThrow();
    expect(second.router.counters.get('mesh_upstream_cx_none_healthy')).toBe(1);
  });

  it('resets a task mirror’s connections at once when the task’s node is declared dead', async () => {
    // The "remote" task: a kernel socket standing in for the overlay, that accepts and says nothing.
    let accepted = 0;
    const silent = net.createServer(() => void accepted++);
    await new Promise<void>((r) => silent.listen(24474, HOST, r));
    const table = new EndpointTable({ nodeName: 'n4', clock });
    const router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector() });
    const m = new MirrorListeners({ table, router, clock, connectLocal: localTcpConnector(), connectRemote: (u) => localTcpConnector()({ ...u, host: HOST, port: 24474 }) });
    tables.push(table);
    routers.push(router);
    mirrors.push(m);
    table.notifyMsg(encodeRows([{ row: taskRow('n9', 'far', 175, 24473, 1), version: 1, deleted: false }]));
    await m.settled();
    const client = net.connect({ host: '127.64.9.175', port: 24473 });
    let error: string | undefined;
    let closed = false;
    client.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    client.on('close', () => (closed = true));
    await waitFor(() => m.taskRelayCounters.get('mesh_upstream_cx_total') === 1 && accepted === 1, 5000, 'the relay to the far task');
    table.memberDead('n9');
    await waitFor(() => closed, 5000, 'the client connection to be reset');
    expect(error).toBe('ECONNRESET');
    await new Promise((r) => silent.close(r));
  });

  it('opens no more than maxListeners, VIPs first, and counts the rest', async () => {
    const { table, m } = agent('n3', { maxListeners: 2 });
    table.upsertLocal(taskRow('n3', 'a', 180, 24472, 24471));
    table.upsertLocal(taskRow('n3', 'b', 181, 24472, 24471));
    m.setServices([{ name: 'api', vip: IP('100.64.9.252'), tcpPorts: [] }]);
    await m.settled();
    expect(m.listening().map((l) => `${l.address}:${l.port}`)).toEqual(['127.64.9.252:24472', '127.64.9.180:24472']);
    expect(m.counters.get('mirror_listeners_over_limit')).toBe(1);
    table.deleteLocal('api', 'a');
    await waitFor(() => m.listening().some((l) => l.address === '127.64.9.181'), 5000, 'the freed slot to go to the other task');
    expect((await httpGet('127.64.9.181', 24472, '/')).body).toBe('api-1');
  });
});

describe('OverlayVipListeners', () => {
  function fakeOverlay(preexisting: number[] = []) {
    const listens = new Map<string, unknown>();
    const addresses = new Set<number>(preexisting);
    const sockets: OverlayTcpSockets = {
      connect: () => {
        throw new Error('not used');
      },
      listen: (port, onConnection, options) => {
        const key = `${options.address}:${port}`;
        if (listens.has(key)) throw new Error(`Port ${port} is already listened on`);
        listens.set(key, onConnection);
        return { close: () => listens.delete(key) };
      },
    };
    const iface = { addAddress: (ip: number) => void addresses.add(ip), removeAddress: (ip: number) => void addresses.delete(ip), hasAddress: (ip: number) => addresses.has(ip) };
    return { sockets, iface, listens, addresses };
  }

  it('answers for each VIP on its service’s ports and its tasks’ ports, following the table and the services', () => {
    const table = new EndpointTable({ nodeName: 'n1', clock });
    const router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector() });
    const { sockets, iface, listens, addresses } = fakeOverlay();
    const vips = new OverlayVipListeners({ table, router, sockets, addresses: iface });
    vips.setServices([{ name: 'api', vip: IP('100.64.9.250'), tcpPorts: [80] }]);
    expect([...listens.keys()]).toEqual([`${IP('100.64.9.250')}:80`]);
    expect([...addresses]).toEqual([IP('100.64.9.250')]);
    table.upsertLocal(taskRow('n1', 'a', 190, 8080, 24471));
    expect(vips.listening().map((l) => l.port)).toEqual([80, 8080]);
    table.deleteLocal('api', 'a');
    expect(vips.listening().map((l) => l.port)).toEqual([80]);
    vips.setServices([]);
    expect(listens.size).toBe(0);
    expect(addresses.size).toBe(0);
    vips.close();
    router.close();
    table.close();
  });

  it('never removes an address it did not add, and counts a port it cannot take', () => {
    const table = new EndpointTable({ nodeName: 'n1', clock });
    const router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector() });
    const { sockets, iface, addresses } = fakeOverlay([IP('100.64.9.249')]);
    sockets.listen(81, () => undefined, { address: IP('100.64.9.249') });
    const vips = new OverlayVipListeners({ table, router, sockets, addresses: iface });
    vips.setServices([{ name: 'api', vip: IP('100.64.9.249'), tcpPorts: [80, 81] }]);
    expect(vips.listening().map((l) => l.port)).toEqual([80]);
    expect(vips.counters.get('vip_overlay_listen_failures')).toBe(1);
    vips.close();
    expect(addresses.has(IP('100.64.9.249'))).toBe(true);
    router.close();
    table.close();
  });
});
