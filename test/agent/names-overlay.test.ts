/**
 * Names on the overlay, with two userspace stacks on an in-memory VXLAN underlay (the only part
 * not real here; sockets to tasks and mirrors are real):
 * - node A runs NameService: DNS on 100.64.10.2:53 over the overlay's UDP, VIP 100.64.10.254
 *   on its overlay interface, mirrors on 127.64.10.x; its task T1 on 127.0.0.122:24420;
 * - node B owns task T2 (127.0.0.122:24421), served on the overlay at 100.64.10.131 by its
 *   OverlayTaskListeners, and stands in for any overlay client (a task, a kernel VXLAN host):
 *   it asks A's DNS and connects to the VIP with its own userspace TCP.
 */
import dgram from 'node:dgram';
import { type Server, createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NameService } from '../../src/agent/names.js';
import type { ServiceRoute } from '../../src/cluster/service-types.js';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { OverlayTaskListeners, overlayTcpConnector } from '../../src/mesh/task-listeners.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { type AttachedTcp, attachTcp } from '../../src/netstack/tcp/index.js';
import { UdpLayer } from '../../src/netstack/udp.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { MemoryDatagramNetwork } from '../../src/overlay/memory-datagram.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { answersOf, decode, query } from '../dns/fixtures.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const VNI = 4096;
const HOST = '127.0.0.122';
const TARGET = 24450;
const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const T1 = 'k5q3n9x2m7c4v8b1z6a0s3d5f';
const T2 = 'p0o9i8u7y6t5r4e3w2q1a2s3d';
const WEB: ServiceRoute = { ID: 'svc1', Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.10.254', Ports: [{ Protocol: 'tcp', TargetPort: TARGET, PublishedPort: 24452, PublishMode: 'ingress' }] };

interface Node {
  readonly vtep: Vtep;
  readonly iface: OverlayInterface;
  readonly udp: UdpLayer;
  readonly tcp: AttachedTcp;
  readonly table: EndpointTable;
  readonly underlay: { address: string; port: number };
}

const clock = new RealClock();

function node(net: MemoryDatagramNetwork, name: string, last: number): Node {
  const underlay = { address: `198.18.9.${last}`, port: 4789 };
  const vtep = new Vtep({ socket: net.open(underlay), fdb: new ForwardingTable() });
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: IP(`100.64.10.${last}`), prefixLen: 24, link, clock }));
  return { vtep, iface, udp: new UdpLayer(iface), tcp: attachTcp(iface, { clock, rng: new SeededRng(last) }), table: new EndpointTable({ nodeName: name, clock }), underlay };
}

function taskRow(name: string, taskId: string, slot: number, last: number, hostPort: number): EndpointRow {
  return {
    service: 'web',
    taskId,
    slot,
    node: name,
    overlayAddress: IP(`100.64.10.${last}`),
    vni: VNI,
    vtepAddress: IP(HOST),
    vtepPort: 4789,
    hostAddress: IP(HOST),
    ports: [{ protocol: 'tcp', target: TARGET, hostPort }],
    health: 'none',
  };
}

function startTask(taskId: string, port: number): Promise<Server> {
  const server = createServer((_req, res) => res.end(JSON.stringify({ task: taskId })));
  return new Promise((resolve) => server.listen(port, HOST, () => resolve(server)));
}

/** One HTTP/1.0 GET over a userspace TCP connection: the body. */
function overlayGet(tcp: AttachedTcp, address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Duplex = tcp.sockets.connect({ address, port });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('utf8')));
    socket.once('error', reject);
    socket.once('end', () => resolve(text.slice(text.indexOf('\r\n\r\n') + 4)));
    socket.once('connect', () => socket.write('GET / HTTP/1.0\r\nHost: web\r\n\r\n'));
  });
}

/** One DNS query from B's overlay UDP to A's DNS: the decoded answer. */
function overlayDig(b: Node, name: string, type: Parameters<typeof query>[1] = 'A'): Promise<ReturnType<typeof decode>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no DNS answer for ${name}`));
    }, 3000);
    const socket = b.udp.bind(0, (data) => {
      clearTimeout(timer);
      socket.close();
      resolve(decode(Uint8Array.from(data)));
    });
    socket.send(query(name, type), { address: IP('100.64.10.2'), port: 53 });
  });
}

/** One DNS query over B's userspace TCP to A's DNS (RFC 7766 framing): the decoded answer. */
function overlayDigTcp(b: Node, name: string): Promise<ReturnType<typeof decode>> {
  return new Promise((resolve, reject) => {
    const socket: Duplex = b.tcp.sockets.connect({ address: '100.64.10.2', port: 53 });
    let got = Buffer.alloc(0);
    socket.once('error', reject);
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        socket.end();
        resolve(decode(got.subarray(2, 2 + got.readUInt16BE(0))));
      }
    });
    socket.once('connect', () => {
      const q = query(name, 'A');
      const framed = Buffer.alloc(q.length + 2);
      framed.writeUInt16BE(q.length, 0);
      q.copy(framed, 2);
      socket.write(framed);
    });
  });
}

/** One A query from a host process to A's host-side DNS over node:dgram: the decoded answer. */
function hostDig(name: string): Promise<ReturnType<typeof decode>> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no DNS answer for ${name}`));
    }, 3000);
    socket.on('message', (m) => {
      clearTimeout(timer);
      socket.close();
      resolve(decode(m));
    });
    socket.send(query(name, 'A'), 24430, HOST);
  });
}

describe('agent: names on the overlay', () => {
  let a: Node;
  let b: Node;
  let router: MeshRouter;
  let names: NameService;
  let bListeners: OverlayTaskListeners;
  const tasks: Server[] = [];

  beforeAll(async () => {
    const net = new MemoryDatagramNetwork(clock);
    a = node(net, 'a', 2);
    b = node(net, 'b', 3);
    a.vtep.fdb.addFlood(VNI, b.underlay);
    b.vtep.fdb.addFlood(VNI, a.underlay);
    tasks.push(await startTask(T1, 24420), await startTask(T2, 24421));
    // The gossip's part: B's rows reach A.
    b.table.setReplication({ broadcast: (payload) => setImmediate(() => a.table.notifyMsg(payload)) });
    bListeners = new OverlayTaskListeners({ table: b.table, sockets: b.tcp.sockets, addresses: b.iface, connectLocal: localTcpConnector(), clock });
    b.table.upsertLocal(taskRow('b', T2, 2, 131, 24421));
    a.table.upsertLocal(taskRow('a', T1, 1, 130, 24420));
    await waitFor(() => a.table.endpoints('web').length === 2, 5000, 'A to know both tasks');
    router = new MeshRouter({ table: a.table, clock, rng: new SeededRng(7), connectLocal: localTcpConnector(), connectRemote: overlayTcpConnector(a.tcp.sockets), connectTimeoutMs: 2000 });
    names = await NameService.start({
      table: a.table,
      router,
      overlay: { iface: a.iface, udp: a.udp, tcpSockets: a.tcp.sockets, nodeAddress: a.iface.address },
      dns: { address: HOST, port: 24430 },
      tryEmbeddedAddress: false,
      mirrors: true,
      clock,
      rng: new SeededRng(8),
      upstreamResolvers: [],
    });
    names.setServices([WEB]);
    await names.mirrors!.settled();
  });

  afterAll(async () => {
    await names?.close();
    router?.close();
    bListeners?.close();
    for (const n of [a, b]) {
      n?.tcp.driver.stop();
      n?.table.close();
      n?.iface.close();
    }
    for (const t of tasks) await new Promise((r) => t.close(r));
  });

  it('answers DNS on the node’s overlay address, UDP 53, in overlay form', async () => {
    expect(answersOf(await overlayDig(b, 'web'))).toEqual(['100.64.10.254']);
    expect((answersOf(await overlayDig(b, 'tasks.web')) as string[]).sort()).toEqual(['100.64.10.130', '100.64.10.131']);
    expect(answersOf(await overlayDig(b, '131.10.64.100.in-addr.arpa', 'PTR'), 'PTR')).toEqual([`web.2.${T2}`]);
    expect((await overlayDig(b, 'nosuch')).rcode).toBe('NXDOMAIN');
    expect(names.overlayDns!.counters.get('dns_overlay_udp_rx')).toBeGreaterThanOrEqual(4);
    expect(names.metrics()).toMatch(/dns_overlay_udp_tx [1-9]/);
  });

  it('answers DNS over the overlay’s TCP too (where a truncated answer is retried)', async () => {
    expect((answersOf(await overlayDigTcp(b, 'tasks.web')) as string[]).sort()).toEqual(['100.64.10.130', '100.64.10.131']);
    expect(names.overlayTcpDns!.counters.get('dns_tcp_rx_messages')).toBe(1);
  });

  it('answers for the VIP on the overlay and balances connections to it over both tasks, local and remote', async () => {
    expect(names.overlayVips!.listening()).toEqual([{ address: '100.64.10.254', port: TARGET, service: 'web' }]);
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) seen.add((JSON.parse(await overlayGet(b.tcp, '100.64.10.254', TARGET)) as { task: string }).task);
    expect([...seen].sort()).toEqual([T1, T2].sort());
    expect(names.overlayVips!.counters.get('vip_overlay_cx_total')).toBeGreaterThanOrEqual(2);
  });

  it('carries a host process through a remote task’s mirror over the overlay to that task only', async () => {
    for (let i = 0; i < 5; i++) expect(JSON.parse((await httpGet('127.64.10.131', TARGET, '/')).body)).toEqual({ task: T2 });
    expect(bListeners.counters.get('mesh_downstream_cx_total')).toBeGreaterThanOrEqual(5);
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) seen.add((JSON.parse((await httpGet('127.64.10.254', TARGET, '/')).body) as { task: string }).task);
    expect([...seen].sort()).toEqual([T1, T2].sort());
  });

  it('a host process resolves the service and fetches through the VIP’s mirror while its only task runs on another node', async () => {
    a.table.setHealth('web', T1, 'unhealthy');
    expect(answersOf(await hostDig('web'))).toEqual(['127.64.10.254']);
    expect(answersOf(await hostDig('tasks.web'))).toEqual(['127.64.10.131']);
    for (let i = 0; i < 5; i++) expect(JSON.parse((await httpGet('127.64.10.254', TARGET, '/')).body)).toEqual({ task: T2 });
    a.table.setHealth('web', T1, 'none');
  });

  it('stops answering for a VIP whose service is gone', async () => {
    names.setServices([]);
    expect(names.overlayVips!.listening()).toEqual([]);
    expect(a.iface.hasAddress(IP('100.64.10.254'))).toBe(false);
    await waitFor(() => !names.mirrors!.listening().some((l) => l.address === '127.64.10.254'), 5000, 'the VIP mirror to close');
    await expect(httpGet('127.64.10.254', TARGET, '/')).rejects.toThrow();
    names.setServices([WEB]);
    expect(a.iface.hasAddress(IP('100.64.10.254'))).toBe(true);
  });
});
