/**
 * The router on in-memory connections: the endpoint table, the real balancer and relay, and
 * fake connectors that hand out one end of an in-memory pair per upstream connection (the
 * other end plays the task). No sockets, no real time.
 */
import { describe, expect, it } from 'vitest';
import { Duplex } from 'node:stream';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { type EndpointRow, encodeState } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { MeshRouter, type PublishedPort, type Upstream, appProtocolOfPortName, proxyProtocolOfLabel } from '../../src/mesh/router.js';
import { formatIpv4Address } from '../../src/wire/address.js';
import { parseProxyHeader } from '../../src/wire/proxy-protocol.js';
import { parseMetrics } from '../helpers/mesh-cluster.js';
import { row } from './table-fixtures.js';

function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
    });
  ends.push(make(() => ends[1]!), make(() => ends[0]!));
  return [ends[0]!, ends[1]!];
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

interface FakeTask {
  readonly task: string;
  /** The task's end of the connection. */
  readonly end: Duplex;
  /** The router's end (what the connector returned). */
  readonly upstream: Duplex;
  received: Buffer;
}

/** A connector whose every connection is an in-memory pair; `tasks` collects the task ends. */
function fakeConnector(refuse: ReadonlySet<string> = new Set()): { connect: (u: Upstream) => Promise<Duplex>; tasks: FakeTask[] } {
  const tasks: FakeTask[] = [];
  return {
    tasks,
    connect: (u) => {
      if (refuse.has(u.row.taskId)) return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
      const [upstream, taskEnd] = duplexPair();
      const t: FakeTask = { task: u.row.taskId, end: taskEnd, upstream, received: Buffer.alloc(0) };
      taskEnd.on('data', (c: Buffer) => (t.received = Buffer.concat([t.received, c])));
      taskEnd.on('error', () => undefined);
      tasks.push(t);
      return Promise.resolve(upstream);
    },
  };
}

/** A downstream connection as the ingress hands it over: one end of a pair, with a kernel socket's addresses. */
function client(addresses = { remoteAddress: '127.0.0.133', remotePort: 40001, localAddress: '127.0.0.134', localPort: 24600 }): { downstream: Duplex; app: Duplex; text: () => string } {
  const [app, downstream] = duplexPair();
  Object.assign(downstream, addresses);
  let text = '';
  app.on('data', (c: Buffer) => (text += c.toString()));
  app.on('error', () => undefined);
  return { downstream, app, text: () => text };
}

let version = 0;
/** Another node's rows arrive, as a push/pull would bring them. */
function learn(table: EndpointTable, rows: EndpointRow[], deleted = false): void {
  table.mergeRemoteState(encodeState(++version + 100, rows.map((r) => ({ row: r, version: ++version + 100, deleted }))), false);
}

const WEB: PublishedPort = { service: 'web', protocol: 'tcp', published: 24600, target: 80 };
const WEB_HTTP: PublishedPort = { ...WEB, appProtocol: 'http' };

function setup(options: { refuse?: ReadonlySet<string> } = {}): { table: EndpointTable; router: MeshRouter; remote: ReturnType<typeof fakeConnector>; clock: ManualClock } {
  const clock = new ManualClock();
  const table = new EndpointTable({ nodeName: 'n1', clock });
  const remote = fakeConnector(options.refuse);
  const local = fakeConnector(options.refuse);
  const router = new MeshRouter({ table, clock, rng: new SeededRng(7), connectLocal: local.connect, connectRemote: remote.connect, connectTimeoutMs: 1000 });
  return { table, router, remote, clock };
}

describe('MeshRouter when an endpoint’s node dies', () => {
  it('resets the connections to a dead member at once, and replays their unanswered request on a live endpoint', async () => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1')]);
    const c = client();
    const handled = router.handle(c.downstream, WEB_HTTP);
    await flush();
    expect(remote.tasks.map((t) => t.task)).toEqual(['web.1']);
    // A first request answered, then a second one in flight when n2 is SIGKILLed.
    c.app.write('GET /1 HTTP/1.1\r\n\r\n');
    await flush();
    remote.tasks[0]!.end.write('answer from web.1;');
    await flush();
    c.app.write('GET /2 HTTP/1.1\r\n\r\n');
    await flush();
    learn(table, [row('n3', 'web.2')]);
    expect(router.upstreamConnections('web\u0000web.1')).toBe(1);
    // The gossip declares n2 dead: its rows go, with the reason.
    table.memberDead('n2');
    await flush();
    expect(router.counters.get('mesh_upstream_cx_destroy_member_dead')).toBe(1);
    expect(router.upstreamConnections('web\u0000web.1')).toBe(0);
    expect(remote.tasks.map((t) => t.task)).toEqual(['web.1', 'web.2']);
    expect(remote.tasks[1]!.received.toString()).toBe('GET /2 HTTP/1.1\r\n\r\n');
    remote.tasks[1]!.end.write('answer from web.2;');
    await flush();
    expect(c.text()).toBe('answer from web.1;answer from web.2;');
    c.app.end();
    remote.tasks[1]!.end.end();
    const result = await handled;
    expect(result).toMatchObject({ end: 'closed', replays: 1 });
    expect(router.serviceMetrics.get('web', 'mesh_service_upstream_rq_replay')).toBe(1);
    expect(router.activeConnections).toBe(0);
  });

  it('with nothing to replay, the client sees a reset at once instead of hanging', async () => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1')]);
    const c = client();
    let clientError: string | undefined;
    c.app.on('close', () => (clientError ??= 'closed'));
    const handled = router.handle(c.downstream, WEB);
    await flush();
    c.app.write('request');
    await flush();
    remote.tasks[0]!.end.write('partial answer');
    await flush();
    table.memberDead('n2');
    const result = await handled;
    expect(result?.end).toBe('upstream-error');
    expect((result?.upstreamError as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    expect(c.downstream.destroyed).toBe(true);
  });

  it('a row withdrawn by its owner drains: its connections carry on', async () => {
    const { table, router, remote } = setup();
    const r = row('n2', 'web.1');
    learn(table, [r]);
    const c = client();
    const handled = router.handle(c.downstream, WEB);
    await flush();
    c.app.write('request');
    await flush();
    learn(table, [r], true);
    expect(table.endpoints('web')).toEqual([]);
    await flush();
    expect(router.upstreamConnections('web\u0000web.1')).toBe(1);
    remote.tasks[0]!.end.end('answer');
    c.app.end();
    await flush();
    expect(c.text()).toBe('answer');
    expect((await handled)?.end).toBe('closed');
    expect(router.counters.get('mesh_upstream_cx_destroy_member_dead')).toBe(0);
  });
});

describe('MeshRouter replay and passive health', () => {
  it('tasks that close on a client’s junk without answering are tried in turn but not ejected; the client sees the close', async () => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1'), row('n3', 'web.2')]);
    const c = client();
    const handled = router.handle(c.downstream, WEB);
    await flush();
    c.app.write('\x16\x03junk');
    await flush();
    remote.tasks[0]!.end.end();
    await flush();
    expect(remote.tasks).toHaveLength(2);
    expect(remote.tasks[1]!.received.toString()).toBe('\x16\x03junk');
    remote.tasks[1]!.end.end();
    const result = await handled;
    expect(result?.end).toBe('upstream-error');
    expect(router.counters.get('mesh_upstream_rq_replay_failed')).toBe(1);
    expect(router.balancer.isEjected('web\u0000web.1') || router.balancer.isEjected('web\u0000web.2')).toBe(false);
  });

  it('a task that resets before answering is ejected, and the request is answered by another', async () => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1'), row('n3', 'web.2')]);
    const c = client();
    const handled = router.handle(c.downstream, WEB);
    await flush();
    c.app.write('request');
    await flush();
    const first = remote.tasks[0]!;
    first.upstream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await flush();
    expect(router.balancer.isEjected(`web\u0000${first.task}`)).toBe(true);
    remote.tasks[1]!.end.end('answer');
    c.app.end();
    await flush();
    expect(c.text()).toBe('answer');
    expect((await handled)?.replays).toBe(1);
    expect(router.balancer.outstanding(`web\u0000${remote.tasks[1]!.task}`)).toBe(0);
  });
});

describe('MeshRouter PROXY protocol', () => {
  it.each(['v1', 'v2'] as const)('%s: every upstream connection starts with the client’s and the published address, a replay’s too', async (mode) => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1'), row('n3', 'web.2')]);
    const c = client();
    const handled = router.handle(c.downstream, { ...WEB, proxyProtocol: mode });
    await flush();
    c.app.write('hello');
    await flush();
    // The first task's node dies before answering: the request is replayed on the other.
    table.memberDead(remote.tasks[0]!.task === 'web.1' ? 'n2' : 'n3');
    await flush();
    expect(remote.tasks).toHaveLength(2);
    for (const t of remote.tasks) {
      const parsed = parseProxyHeader(t.received);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      expect(parsed.value.header.version).toBe(mode === 'v1' ? 1 : 2);
      const a = parsed.value.header.addresses!;
      expect([formatIpv4Address(a.sourceAddress), a.sourcePort, formatIpv4Address(a.destinationAddress), a.destinationPort]).toEqual(['127.0.0.133', 40001, '127.0.0.134', 24600]);
      expect(t.received.subarray(parsed.value.length).toString()).toBe('hello');
    }
    c.app.destroy();
    c.downstream.destroy();
    await handled;
  });

  it('a downstream with no IPv4 addresses gets UNKNOWN / LOCAL, so the task uses the connection’s own', async () => {
    const { table, router, remote } = setup();
    learn(table, [row('n2', 'web.1')]);
    const c = client({ remoteAddress: '::1', remotePort: 1, localAddress: '::1', localPort: 2 });
    const handled = router.handle(c.downstream, { ...WEB, proxyProtocol: 'v1' });
    await flush();
    expect(remote.tasks[0]!.received.toString()).toBe('PROXY UNKNOWN\r\n');
    c.downstream.destroy();
    await handled;
  });
});

describe('MeshRouter per-service metrics', () => {
  it('counts connections, bytes and connect failures per service and endpoint, and renders histograms', async () => {
    const { table, router, remote, clock } = setup({ refuse: new Set(['web.2']) });
    learn(table, [row('n2', 'web.1'), row('n3', 'web.2')]);
    for (let i = 0; i < 4; i++) {
      const c = client();
      const handled = router.handle(c.downstream, WEB);
      await flush();
      c.app.end('ping');
      await flush();
      clock.advance(250);
      remote.tasks.at(-1)!.end.end('pong!');
      await flush();
      await handled;
    }
    const m = parseMetrics(router.serviceMetrics.render({ node: 'n1' }));
    expect(m.get('mesh_service_downstream_cx_total', { service: 'web', node: 'n1' })).toBe(4);
    expect(m.get('mesh_service_downstream_cx_rx_bytes_total', { service: 'web' })).toBe(16);
    expect(m.get('mesh_service_downstream_cx_tx_bytes_total', { service: 'web' })).toBe(20);
    expect(m.get('mesh_endpoint_upstream_cx_total', { task: 'web.1' })).toBe(4);
    expect(m.get('mesh_endpoint_upstream_cx_rx_bytes_total', { task: 'web.1' })).toBe(20);
    const fails = m.get('mesh_endpoint_upstream_cx_connect_fail', { task: 'web.2' });
    expect(fails).toBeGreaterThanOrEqual(1);
    expect(m.get('mesh_service_upstream_cx_connect_fail', { service: 'web' })).toBe(fails);
    // Connects take no time on a ManualClock; each connection lasted 250 ms.
    expect(m.get('mesh_service_upstream_cx_connect_seconds_count', { service: 'web' })).toBe(4);
    expect(m.get('mesh_service_upstream_cx_connect_seconds_bucket', { service: 'web', le: '0.0005' })).toBe(4);
    expect(m.get('mesh_service_downstream_cx_length_seconds_bucket', { service: 'web', le: '0.1' })).toBe(0);
    expect(m.get('mesh_service_downstream_cx_length_seconds_bucket', { service: 'web', le: '0.5' })).toBe(4);
    expect(m.get('mesh_service_downstream_cx_length_seconds_bucket', { service: 'web', le: '+Inf' })).toBe(4);
    expect(m.get('mesh_service_downstream_cx_length_seconds_sum', { service: 'web' })).toBeCloseTo(1);
    const text = router.serviceMetrics.render();
    expect(text.match(/^# TYPE mesh_service_downstream_cx_length_seconds histogram$/gm)).toHaveLength(1);
    // An endpoint that leaves the table takes its series with it.
    learn(table, [row('n2', 'web.1')], true);
    expect(parseMetrics(router.serviceMetrics.render()).get('mesh_endpoint_upstream_cx_total', { task: 'web.1' })).toBe(0);
  });

  it('bounds label cardinality: services past the limit are summed as _other', () => {
    const clock = new ManualClock();
    const table = new EndpointTable({ nodeName: 'n1', clock });
    const router = new MeshRouter({ table, clock, rng: new SeededRng(1), connectLocal: () => Promise.reject(new Error('unused')), metrics: { maxServices: 2, maxEndpoints: 1 } });
    for (const s of ['a', 'b', 'c', 'd']) router.serviceMetrics.inc(s, 'mesh_service_downstream_cx_total');
    for (const t of ['a.1', 'a.2', 'a.3']) router.serviceMetrics.incEndpoint({ key: t, service: 'a', task: t, node: 'n1' }, 'mesh_endpoint_upstream_cx_total');
    const m = parseMetrics(router.serviceMetrics.render());
    expect(m.samples.filter((s) => s.name === 'mesh_service_downstream_cx_total').map((s) => [s.labels['service'], s.value])).toEqual([
      ['a', 1],
      ['b', 1],
      ['_other', 2],
    ]);
    expect(m.samples.filter((s) => s.name === 'mesh_endpoint_upstream_cx_total').map((s) => [s.labels['task'], s.value])).toEqual([
      ['a.1', 1],
      ['_other', 2],
    ]);
  });
});

describe('published port declarations', () => {
  it('a swarm PortConfig named http or http-* is HTTP; the proxy label takes v1 or v2 only', () => {
    expect([appProtocolOfPortName('http'), appProtocolOfPortName('HTTP-web'), appProtocolOfPortName('https'), appProtocolOfPortName(undefined)]).toEqual(['http', 'http', undefined, undefined]);
    expect([proxyProtocolOfLabel('v1'), proxyProtocolOfLabel('v2'), proxyProtocolOfLabel('off'), proxyProtocolOfLabel(undefined)]).toEqual(['v1', 'v2', undefined, undefined]);
  });
});
