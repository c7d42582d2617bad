/**
 * The ingress path on real sockets, one process playing the agent: listeners on 127.0.0.1
 * (ports 18100–18199, this file's own), whoami tasks as in-process servers, the balancer, the
 * local relay and passive health. Every listener and socket is closed in afterAll/afterEach.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { HealthChecker } from '../../src/mesh/health.js';
import { IngressListeners } from '../../src/mesh/node-ingress.js';
import { nodeProbe } from '../../src/mesh/node-health-probe.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter, type PublishedPort } from '../../src/mesh/router.js';
import { type WhoamiServer, startWhoami } from '../../src/agent/images/whoami.js';
import { httpGet, taskRow, waitFor } from './mesh-helpers.js';

const HOST = '127.0.0.1';
const WEB: PublishedPort = { service: 'web', protocol: 'tcp', published: 18101, target: 80 };
const EMPTY: PublishedPort = { service: 'empty', protocol: 'tcp', published: 18102, target: 80 };
const RAW: PublishedPort = { service: 'raw', protocol: 'tcp', published: 18103, target: 80 };
const DNS: PublishedPort = { service: 'dns', protocol: 'udp', published: 18104, target: 80 };

const clock = new RealClock();
let table: EndpointTable;
let router: MeshRouter;
let ingress: IngressListeners;
const tasks: WhoamiServer[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  table = new EndpointTable({ nodeName: 'n1', clock });
  router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: localTcpConnector(), balancer: { baseEjectionMs: 60_000 } });
  ingress = new IngressListeners({ host: HOST, router, clock });
  await ingress.setPorts([WEB, EMPTY, RAW, DNS]);
  for (let i = 1; i <= 3; i++) {
    const w = await startWhoami({ port: 0, service: 'web', task: `web.${i}`, node: 'n1' });
    tasks.push(w);
    table.upsertLocal(taskRow('web', `web.${i}`, 'n1', w.port));
  }
});

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

afterAll(async () => {
  await ingress.close();
  router.close();
  table.close();
  for (const t of tasks) await t.close();
});

/** A TCP server on 127.0.0.1 that runs `onConn` for each connection; closed after the test. */
async function rawTask(onConn: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => void s.destroy());
  });
}

/** Everything the socket receives until it ends or closes, and how it ended. */
function drain(s: Socket): Promise<{ bytes: number; text: string; error?: string }> {
  return new Promise((resolve) => {
    let bytes = 0;
    let text = '';
    let error: string | undefined;
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      if (text.length < 1000) text += c.toString('latin1');
    });
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    // Our side is half-open too: once the mesh has ended, end ours so the socket closes.
    s.on('end', () => s.end());
    s.on('close', () => resolve({ bytes, text, ...(error !== undefined && { error }) }));
  });
}

describe('ingress, balancer and local relay', () => {
  it('every task answers through the published port, and whoami sees the mesh as its client', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const r = await httpGet(HOST, WEB.published);
      expect(r.status).toBe(200);
      const a = JSON.parse(r.body) as { task: string; service: string; client: { address: string } };
      expect(a.service).toBe('web');
      expect(a.client.address).toBe('127.0.0.1');
      seen.set(a.task, (seen.get(a.task) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['web.1', 'web.2', 'web.3']);
    expect(router.counters.get('mesh_downstream_cx_total')).toBeGreaterThanOrEqual(60);
    expect(router.counters.get('mesh_upstream_cx_rx_bytes_total')).toBeGreaterThan(0);
  });

  it('closes a connection at once when the service has no healthy endpoint, and counts it', async () => {
    const before = router.counters.get('mesh_upstream_cx_none_healthy');
    const s = await dial(EMPTY.published);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await drain(s);
    expect(r.bytes).toBe(0);
    expect(router.counters.get('mesh_upstream_cx_none_healthy')).toBe(before + 1);
  });

  it('keeps a task whose health is starting or unhealthy out of the balancer', async () => {
    const port = await rawTask((s) => s.end('sick'));
    table.upsertLocal({ ...taskRow('empty', 'sick', 'n1', port), health: 'unhealthy' });
    cleanups.push(() => void table.deleteLocal('empty', 'sick'));
    expect(router.upstreams('empty', 80)).toEqual([]);
    table.setHealth('empty', 'sick', 'healthy');
    const s = await dial(EMPTY.published);
    expect((await drain(s)).text).toBe('sick');
  });

  it('relays half-close both ways: the client shuts its write side and still gets the answer', async () => {
    const port = await rawTask((s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => s.end(`got ${n}`));
    });
    table.upsertLocal(taskRow('raw', 'half', 'n1', port));
    cleanups.push(() => void table.deleteLocal('raw', 'half'));
    const s = await dial(RAW.published);
    s.end('x'.repeat(100_000));
    expect(await drain(s)).toEqual({ bytes: 10, text: 'got 100000' });
  });

  it('pauses reading the task while the client does not read, and loses no byte', async () => {
    const total = 32 * 1024 * 1024;
    const port = await rawTask((s) => {
      const chunk = Buffer.alloc(64 * 1024, 0x62);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    table.upsertLocal(taskRow('raw', 'big', 'n1', port));
    cleanups.push(() => void table.deleteLocal('raw', 'big'));
    const before = router.counters.get('mesh_upstream_flow_control_paused_reading_total');
    const s = await dial(RAW.published);
    s.pause();
    await waitFor(() => router.counters.get('mesh_upstream_flow_control_paused_reading_total') > before, 10_000, 'the relay to pause reading upstream');
    s.end();
    const got = drain(s);
    s.resume();
    expect((await got).bytes).toBe(total);
  });

  it('passes a task reset on to the client as a reset, and ejects the task', async () => {
    const port = await rawTask((s) => s.once('data', () => s.resetAndDestroy()));
    table.upsertLocal(taskRow('raw', 'rst', 'n1', port));
    cleanups.push(() => void table.deleteLocal('raw', 'rst'));
    const s = await dial(RAW.published);
    s.write('hello');
    expect((await drain(s)).error).toBe('ECONNRESET');
    await waitFor(() => router.balancer.isEjected(router.upstreams('raw', 80)[0]?.key ?? ''), 2000, 'ejection');
  });

  it('retries a refused connect on another task: no request fails when a task dies', async () => {
    const victim = tasks[0]!;
    await victim.close();
    const failuresBefore = router.counters.get('mesh_upstream_cx_connect_fail');
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await httpGet(HOST, WEB.published);
      expect(r.status).toBe(200);
      seen.add((JSON.parse(r.body) as { task: string }).task);
    }
    expect([...seen].sort()).toEqual(['web.2', 'web.3']);
    expect(router.counters.get('mesh_upstream_cx_connect_fail')).toBe(failuresBefore + 1);
    expect(router.counters.get('mesh_upstream_cx_connect_retry')).toBeGreaterThanOrEqual(1);
  });

  it('routes UDP per client flow: each client sticks to one task and gets its answers from the published port', async () => {
    const answerers: { close(): void }[] = [];
    for (const name of ['u1', 'u2']) {
      const sock = createSocket('udp4');
      sock.on('message', (msg, r) => sock.send(`${name}:${msg.toString()}`, r.port, r.address));
      await new Promise<void>((r) => sock.bind(0, HOST, r));
      answerers.push(sock);
      table.upsertLocal(taskRow('dns', name, 'n1', sock.address().port, 'udp'));
    }
    cleanups.push(() => {
      for (const a of answerers) a.close();
      table.deleteLocal('dns', 'u1');
      table.deleteLocal('dns', 'u2');
    });
    const clients = [createSocket('udp4'), createSocket('udp4')];
    cleanups.push(() => {
      for (const c of clients) c.close();
    });
    const answers: string[][] = [[], []];
    for (const [i, c] of clients.entries()) {
      c.on('message', (msg, r) => {
        expect(r.port).toBe(DNS.published);
        answers[i]!.push(msg.toString());
      });
      await new Promise<void>((r) => c.bind(0, HOST, r));
    }
    for (let round = 0; round < 3; round++) for (const c of clients) c.send(`q${round}`, DNS.published, HOST);
    await waitFor(() => answers.every((a) => a.length === 3), 5000, 'UDP answers');
    for (const a of answers) {
      const task = a[0]!.split(':')[0];
      expect(a).toEqual([`${task}:q0`, `${task}:q1`, `${task}:q2`]);
    }
    expect(ingress.udpCounters()['mesh_udp_flows_total']).toBe(2);
  });
});

describe('junk', () => {
  it('random bytes on the TCP and UDP published ports harm nothing: the next request is served', async () => {
    const rng = new SeededRng(77);
    for (let i = 0; i < 20; i++) {
      const s = await dial(i % 2 ? WEB.published : EMPTY.published);
      s.on('error', () => undefined);
      s.end(rng.fill(new Uint8Array(1 + rng.int(4096))));
      await drain(s);
    }
    const c = createSocket('udp4');
    cleanups.push(() => void c.close());
    for (let i = 0; i < 20; i++) c.send(rng.fill(new Uint8Array(1 + rng.int(1400))), DNS.published, HOST);
    const r = await httpGet(HOST, WEB.published);
    expect(r.status).toBe(200);
  });
});

describe('active health through the real probe', () => {
  it('a task that stops answering its HTTP check leaves the balancer; back when it answers again', async () => {
    const t = await startWhoami({ port: 0, service: 'checked', task: 'c1', node: 'n1' });
    cleanups.push(() => t.close());
    table.upsertLocal({ ...taskRow('checked', 'c1', 'n1', t.port), health: 'starting' });
    cleanups.push(() => void table.deleteLocal('checked', 'c1'));
    const checker = new HealthChecker({ clock, probe: nodeProbe, report: (s, id, h) => table.setHealth(s, id, h) });
    cleanups.push(() => checker.close());
    checker.add('checked', 'c1', { host: HOST, port: t.port }, { kind: 'http', path: '/health', intervalMs: 50, timeoutMs: 500, retries: 2 });
    await waitFor(() => table.get('checked', 'c1')?.health === 'healthy', 5000, 'healthy');
    expect(router.upstreams('checked', 80)).toHaveLength(1);
    await t.close();
    await waitFor(() => table.get('checked', 'c1')?.health === 'unhealthy', 5000, 'unhealthy');
    expect(router.upstreams('checked', 80)).toEqual([]);
  });
});
