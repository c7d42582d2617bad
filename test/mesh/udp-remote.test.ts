/**
 * UDP published ports reaching tasks on other nodes, with two userspace stacks on an in-memory
 * VXLAN underlay (the only part not real here): node A listens on the published port
 * 127.0.0.161:25001/udp and runs no task of `echo` at first; node B owns the echo tasks, which
 * are node:dgram sockets on 127.0.0.161:25010–25011, and serves them on the overlay
 * (UdpTaskListeners). Clients are node:dgram sockets on 127.0.0.161:25100–25119.
 *
 * The flow tables of both sides run on a manual clock, so idling out is stepped, not waited for.
 */
import { type Socket, createSocket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { IngressListeners } from '../../src/mesh/node-ingress.js';
import { localTcpConnector, openLocalUdpUpstream } from '../../src/mesh/node-upstream.js';
import { MeshRouter, type PublishedPort } from '../../src/mesh/router.js';
import { UdpEndpoints } from '../../src/mesh/udp-flows.js';
import { UdpTaskListeners } from '../../src/mesh/udp-task-listeners.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { UdpLayer } from '../../src/netstack/udp.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { MemoryDatagramNetwork } from '../../src/overlay/memory-datagram.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { waitFor } from './mesh-helpers.js';

const VNI = 4096;
const HOST = '127.0.0.161';
const TARGET = 9000;
const ECHO: PublishedPort = { service: 'echo', protocol: 'udp', published: 25001, target: TARGET };
const IDLE_MS = 30_000;
const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);

const realClock = new RealClock();

interface Node {
  readonly name: string;
  readonly vtep: Vtep;
  readonly iface: OverlayInterface;
  readonly udp: UdpLayer;
  readonly table: EndpointTable;
  readonly underlay: { address: string; port: number };
}

function node(net: MemoryDatagramNetwork, name: string, last: number): Node {
  const underlay = { address: `198.18.9.${last}`, port: 4789 };
  const vtep = new Vtep({ socket: net.open(underlay), fdb: new ForwardingTable() });
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: IP(`100.64.20.${last}`), prefixLen: 24, link, clock: realClock }));
  return { name, vtep, iface, udp: new UdpLayer(iface), table: new EndpointTable({ nodeName: name, clock: realClock }), underlay };
}

function echoRow(nodeName: string, taskId: string, overlayLast: number, hostPort: number): EndpointRow {
  return {
    service: 'echo',
    taskId,
    slot: 1,
    node: nodeName,
    overlayAddress: IP(`100.64.20.${overlayLast}`),
    vni: VNI,
    vtepAddress: IP(HOST),
    vtepPort: 4789,
    hostAddress: IP(HOST),
    ports: [{ protocol: 'udp', target: TARGET, hostPort }],
    health: 'none',
  };
}

/** An echo task: answers `<task>|<the port it saw>|` and the datagram's bytes to whoever sent it. */
async function startEcho(task: string, port: number): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('message', (msg, r) => s.send([Buffer.from(`${task}|${r.port}|`), msg], r.port, r.address));
  await new Promise<void>((resolve) => s.bind(port, HOST, resolve));
  return s;
}

interface Client {
  readonly socket: Socket;
  readonly answers: string[];
  /** Ports the answers came from (the published port, every time). */
  readonly fromPorts: Set<number>;
}

async function client(port: number): Promise<Client> {
  const socket = createSocket('udp4');
  const c: Client = { socket, answers: [], fromPorts: new Set() };
  socket.on('message', (msg, r) => {
    c.answers.push(msg.toString());
    c.fromPorts.add(r.port);
  });
  await new Promise<void>((resolve) => socket.bind(port, HOST, resolve));
  return c;
}

function send(c: Client, text: string | Uint8Array): void {
  c.socket.send(text, ECHO.published, HOST);
}

/** Sends `text` until an answer to it arrives (loopback UDP may drop): bounded. */
async function ask(c: Client, text: string, what: string): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    send(c, text);
    const deadline = performance.now() + 250;
    while (performance.now() < deadline) {
      const a = c.answers.find((x) => x.endsWith(`|${text}`));
      if (a) return a;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  throw new Error(`No answer to ${what}`);
}

describe('UDP published ports reach tasks on other nodes', () => {
  const flowClock = new ManualClock();
  let a: Node;
  let b: Node;
  let router: MeshRouter;
  let endpoints: UdpEndpoints;
  let ingress: IngressListeners;
  let owner: UdpTaskListeners;
  const echoes: Socket[] = [];
  const clients: Client[] = [];
  const cleanups: (() => void)[] = [];

  beforeAll(async () => {
    const net = new MemoryDatagramNetwork(realClock);
    a = node(net, 'a', 2);
    b = node(net, 'b', 3);
    a.vtep.fdb.addFlood(VNI, b.underlay);
    b.vtep.fdb.addFlood(VNI, a.underlay);
    // The gossip's part: B's rows reach A.
    b.table.setReplication({ broadcast: (payload) => setImmediate(() => a.table.notifyMsg(payload)) });
    echoes.push(await startEcho('t1', 25010), await startEcho('t2', 25011));
    owner = new UdpTaskListeners({ table: b.table, udp: b.udp, openLocal: openLocalUdpUpstream, clock: flowClock, idleTimeoutMs: IDLE_MS, maxDatagramBytes: b.iface.maxPayload - 8 });
    // OverlayTaskListeners adds a local task's overlay address in an agent.
    b.iface.addAddress(IP('100.64.20.131'));
    b.table.upsertLocal(echoRow('b', 't1', 131, 25010));
    await waitFor(() => a.table.endpoints('echo').length === 1, 5000, 'A to learn of B’s task');
    router = new MeshRouter({ table: a.table, clock: realClock, rng: new SeededRng(5), connectLocal: localTcpConnector() });
    endpoints = new UdpEndpoints({ table: a.table, udp: a.udp, maxDatagramBytes: a.iface.maxPayload - 8 });
    ingress = new IngressListeners({ host: HOST, router, clock: flowClock, udpEndpoints: endpoints, udpFlowIdleMs: IDLE_MS, maxUdpFlows: 8 });
    await ingress.setPorts([ECHO]);
    for (let i = 0; i < 20; i++) clients.push(await client(25100 + i));
  });

  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
    // Every test starts with no flow on either side.
    flowClock.advance(IDLE_MS);
    for (const c of clients) c.answers.length = 0;
  });

  afterAll(async () => {
    await ingress?.close();
    endpoints?.close();
    owner?.close();
    router?.close();
    for (const c of clients) c.socket.close();
    for (const e of echoes) e.close();
    for (const n of [a, b]) {
      n?.table.close();
      n?.iface.close();
      await n?.vtep.close();
    }
  });

  it('a node with no local task answers every datagram of several clients at once, each from its own flow, without crosstalk', async () => {
    const group = clients.slice(0, 4);
    const rounds = 10;
    // First one answer each (loopback UDP may drop), then a burst from every client at once.
    for (const [i, c] of group.entries()) await ask(c, `c${i}-hello`, `client ${i}`);
    for (let r = 0; r < rounds; r++) for (const [i, c] of group.entries()) send(c, `c${i}-${r}`);
    await waitFor(() => group.every((c) => c.answers.length >= rounds + 1), 5000, 'every echo');
    const seenPorts = new Set<string>();
    for (const [i, c] of group.entries()) {
      expect(c.fromPorts).toEqual(new Set([ECHO.published]));
      const parsed = c.answers.map((x) => x.split('|'));
      expect(parsed.map((p) => p[2]).sort()).toEqual([`c${i}-hello`, ...Array.from({ length: rounds }, (_, r) => `c${i}-${r}`)].sort());
      // The task saw one kernel socket per flow: its answers map back to this client only.
      const ports = new Set(parsed.map((p) => p[1]));
      expect(ports.size).toBe(1);
      seenPorts.add([...ports][0]!);
      expect(new Set(parsed.map((p) => p[0]))).toEqual(new Set(['t1']));
    }
    expect(seenPorts.size).toBe(group.length);
    expect(ingress.udpCounters()['mesh_udp_flows_total']).toBeGreaterThanOrEqual(group.length);
    expect(owner.flows).toBe(group.length);
  });

  it('flows idle out on both sides, counted; the client’s next datagram opens a new flow that answers', async () => {
    const c = clients[4]!;
    const before = ingress.udpCounters();
    await ask(c, 'before', 'the first datagram');
    expect(owner.flows).toBe(1);
    flowClock.advance(IDLE_MS - 1);
    expect(owner.flows).toBe(1);
    flowClock.advance(1);
    expect(owner.flows).toBe(0);
    const after = ingress.udpCounters();
    expect(after['mesh_udp_flows_expired']! - before['mesh_udp_flows_expired']!).toBe(1);
    expect(owner.counters()['mesh_udp_flows_expired']).toBeGreaterThanOrEqual(1);
    expect(await ask(c, 'after', 'a datagram after the flow expired')).toMatch(/^t1\|\d+\|after$/);
    expect(ingress.udpCounters()['mesh_udp_flows_total']! - after['mesh_udp_flows_total']!).toBe(1);
  });

  it('datagrams larger than the overlay carries are dropped and counted, both ways; junk of every size up to it is echoed', async () => {
    const c = clients[5]!;
    await ask(c, 'ready', 'the first datagram');
    const tooBig = new Uint8Array(a.iface.maxPayload - 8 + 1).fill(0x41);
    send(c, tooBig);
    await waitFor(() => ingress.udpCounters()['mesh_udp_overlay_dropped_too_big'] === 1, 5000, 'the oversized datagram counted');
    const rng = new SeededRng(11);
    // The largest the task can echo: its answer carries `t1|<port>|` in front.
    const sizes = [0, 1, 7, 512, a.iface.maxPayload - 8 - 'tN|NNNNN|'.length];
    const sent: number[] = [];
    for (const size of sizes) {
      const junk = rng.fill(new Uint8Array(size));
      junk[0] = 0x7c; // not a printable prefix of ours: the answer still carries the task's prefix.
      sent.push(size);
      c.socket.send(junk, ECHO.published, HOST);
    }
    // The echo answers are `t1|port|` + the bytes; count them, whatever the bytes decode to.
    await waitFor(() => c.answers.filter((x) => x.startsWith('t1|')).length >= 1 + sizes.length, 5000, 'the junk echoed');
    expect(ingress.udpCounters()['mesh_udp_overlay_dropped_too_big']).toBe(1);
    // The largest datagram A carries, whose echo B cannot carry back.
    const dropped = owner.counters()['mesh_udp_task_dropped_too_big']!;
    c.socket.send(new Uint8Array(a.iface.maxPayload - 8).fill(0x42), ECHO.published, HOST);
    await waitFor(() => owner.counters()['mesh_udp_task_dropped_too_big'] === dropped + 1, 5000, 'the oversized answer counted');
  });

  it('a new client beyond the flow limit is dropped and counted; the others keep working', async () => {
    const group = clients.slice(6, 14);
    for (const [i, c] of group.entries()) await ask(c, `full-${i}`, `client ${i}`);
    const before = ingress.udpCounters()['mesh_udp_dropped_flows_full']!;
    send(clients[14]!, 'one too many');
    await waitFor(() => ingress.udpCounters()['mesh_udp_dropped_flows_full'] === before + 1, 5000, 'the refused flow counted');
    expect(await ask(group[0]!, 'still-here', 'an existing flow')).toMatch(/^t1\|/);
    expect(clients[14]!.answers).toEqual([]);
  });

  it('when the remote task leaves the table, its flows end on both sides and the client’s next datagram goes to a task still there', async () => {
    const local = await startEcho('t3', 25012);
    cleanups.push(() => local.close());
    const c = clients[15]!;
    expect(await ask(c, 'to-b', 'the remote task')).toMatch(/^t1\|/);
    const gone = ingress.udpCounters()['mesh_udp_flows_endpoint_gone']!;
    // A task of A's own appears, then B's task goes.
    a.table.upsertLocal(echoRow('a', 't3', 140, 25012));
    cleanups.push(() => void a.table.deleteLocal('echo', 't3'));
    b.table.deleteLocal('echo', 't1');
    cleanups.push(() => b.table.upsertLocal(echoRow('b', 't1', 131, 25010)));
    await waitFor(() => a.table.get('echo', 't1') === undefined, 5000, 'A to hear that t1 left');
    expect(ingress.udpCounters()['mesh_udp_flows_endpoint_gone']).toBe(gone + 1);
    expect(owner.flows).toBe(0);
    expect(owner.listening()).toEqual([]);
    expect(await ask(c, 'to-a', 'the task still there')).toMatch(/^t3\|/);
  });

  it('two tasks on B share the target port: flows spread over both, each client sticks to one, each task answers from its own overlay address', async () => {
    b.iface.addAddress(IP('100.64.20.132'));
    b.table.upsertLocal(echoRow('b', 't2', 132, 25011));
    cleanups.push(() => void b.table.deleteLocal('echo', 't2'));
    await waitFor(() => a.table.endpoints('echo').length === 2, 5000, 'A to learn of t2');
    const group = clients.slice(16, 20);
    for (const [i, c] of group.entries()) await ask(c, `two-${i}`, `client ${i}`);
    for (const [i, c] of group.entries()) for (let r = 0; r < 3; r++) await ask(c, `two-${i}-${r}`, `client ${i} again`);
    const byClient = group.map((c) => new Set(c.answers.map((x) => x.split('|')[0])));
    for (const tasks of byClient) expect(tasks.size).toBe(1);
    expect(new Set(byClient.flatMap((t) => [...t]))).toEqual(new Set(['t1', 't2']));
    expect(owner.counters()['mesh_udp_task_ambiguous']).toBe(0);
    expect(owner.counters()['mesh_udp_task_dropped_no_task']).toBe(0);
  });

  it('B answers a datagram from any overlay peer (a task, a kernel VXLAN host) and sends the answer back to it', async () => {
    // Before: the previous test put t1 back; wait until A hears it.
    await waitFor(() => owner.listening().length === 1, 5000, 'B to serve t1 again');
    const got: string[] = [];
    const peer = a.udp.bind(0, (data, from) => {
      expect(from.port).toBe(TARGET);
      got.push(Buffer.from(data).toString());
    });
    cleanups.push(() => peer.close());
    for (let attempt = 0; attempt < 20 && got.length === 0; attempt++) {
      peer.send(Buffer.from('from-a-task'), { address: IP('100.64.20.131'), port: TARGET });
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(got[0]).toMatch(/^t1\|\d+\|from-a-task$/);
    // A port nobody serves on B: ICMP port unreachable from B's layer, nothing relayed.
    const relayed = owner.counters()['mesh_udp_task_rx_datagrams'];
    peer.send(Buffer.from('nobody'), { address: IP('100.64.20.131'), port: TARGET + 1 });
    await waitFor(() => b.udp.counters.get('udp_rx_dropped_no_socket') >= 1, 5000, 'the stray datagram dropped');
    expect(owner.counters()['mesh_udp_task_rx_datagrams']).toBe(relayed);
  });
});
