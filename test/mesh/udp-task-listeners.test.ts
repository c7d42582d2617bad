/**
 * UdpTaskListeners against an overlay UDP layer that reports each datagram's destination
 * address (and one that does not), and kernel UDP echo tasks on 127.0.0.162:25020–25029.
 * Overlay peers are played by the fake layer; the flow table runs on a manual clock.
 */
import { type Socket, createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, RealClock } from '../../src/lib/clock.js';
import type { Ipv4Address } from '../../src/wire/address.js';
import type { UdpPeer } from '../../src/netstack/udp.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { openLocalUdpUpstream } from '../../src/mesh/node-upstream.js';
import type { OverlayUdp, OverlayUdpSocket } from '../../src/mesh/udp-flows.js';
import { UDP_BIND_RETRY_MS, UdpTaskListeners } from '../../src/mesh/udp-task-listeners.js';
import { waitFor } from './mesh-helpers.js';

const HOST = '127.0.0.162';
const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);

interface Sent {
  readonly data: string;
  readonly to: UdpPeer;
  readonly from: Ipv4Address | undefined;
}

/** An overlay UDP layer in memory: `deliver` plays a peer's datagram; what the listeners send lands in `sent`. */
class FakeUdp implements OverlayUdp {
  readonly handlers = new Map<number, (data: Uint8Array, from: UdpPeer, local?: Ipv4Address) => void>();
  readonly sent: Sent[] = [];

  bind(port: number, onDatagram: (data: Uint8Array, from: UdpPeer, local?: Ipv4Address) => void): OverlayUdpSocket {
    if (this.handlers.has(port)) throw new Error(`UDP port ${port} is already bound`);
    this.handlers.set(port, onDatagram);
    return {
      port,
      send: (data, to, from) => this.sent.push({ data: Buffer.from(data).toString(), to, from }),
      close: () => this.handlers.delete(port),
    };
  }

  deliver(port: number, text: string, from: UdpPeer, local?: Ipv4Address): void {
    this.handlers.get(port)?.(Buffer.from(text), from, local);
  }
}

function row(taskId: string, overlayLast: number, ports: { target: number; hostPort: number }[], service = 'echo'): EndpointRow {
  return {
    service,
    taskId,
    slot: 1,
    node: 'b',
    overlayAddress: IP(`100.64.30.${overlayLast}`),
    vni: 4096,
    vtepAddress: IP(HOST),
    vtepPort: 4789,
    hostAddress: IP(HOST),
    ports: ports.map((p) => ({ protocol: 'udp' as const, ...p })),
    health: 'none',
  };
}

const PEER: UdpPeer = { address: IP('100.64.30.2'), port: 50000 };
const realClock = new RealClock();

describe('UdpTaskListeners', () => {
  const echoes: Socket[] = [];

  beforeAll(async () => {
    for (const [i, port] of [25020, 25021].entries()) {
      const s = createSocket('udp4');
      s.on('message', (msg, r) => s.send(`t${i + 1}:${msg.toString()}`, r.port, r.address));
      await new Promise<void>((resolve) => s.bind(port, HOST, resolve));
      echoes.push(s);
    }
  });

  afterAll(() => {
    for (const e of echoes) e.close();
  });

  it('two tasks on one target port: each datagram goes to the task whose overlay address it was sent to, and the answer comes from that address', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock: new ManualClock() });
    try {
      table.upsertLocal(row('t1', 11, [{ target: 9000, hostPort: 25020 }]));
      table.upsertLocal(row('t2', 12, [{ target: 9000, hostPort: 25021 }], 'other'));
      expect(l.listening().sort((x, y) => x.address.localeCompare(y.address))).toEqual([
        { address: '100.64.30.11', port: 9000 },
        { address: '100.64.30.12', port: 9000 },
      ]);
      udp.deliver(9000, 'to-12', PEER, IP('100.64.30.12'));
      udp.deliver(9000, 'to-11', PEER, IP('100.64.30.11'));
      udp.deliver(9000, 'to-nobody', PEER, IP('100.64.30.13'));
      await waitFor(() => udp.sent.length === 2, 5000, 'both answers');
      expect(udp.sent.map((s) => [s.data, s.from]).sort()).toEqual([
        ['t1:to-11', IP('100.64.30.11')],
        ['t2:to-12', IP('100.64.30.12')],
      ]);
      expect(udp.sent.every((s) => s.to.address === PEER.address && s.to.port === PEER.port)).toBe(true);
      expect(l.counters()['mesh_udp_task_dropped_no_task']).toBe(1);
      expect(l.counters()['mesh_udp_task_ambiguous']).toBe(0);
      expect(l.flows).toBe(2);
    } finally {
      l.close();
      table.close();
    }
    expect(udp.handlers.size).toBe(0);
  });

  it('follows the table: a task that stops being routable or changes its ports takes its binding and flows with it', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock: new ManualClock() });
    try {
      // A TCP-only row of ours: nothing bound (rows of other nodes: udp-remote.test.ts).
      table.upsertLocal({ ...row('tcp', 21, []), ports: [{ protocol: 'tcp', target: 80, hostPort: 25029 }] });
      expect(udp.handlers.size).toBe(0);
      table.upsertLocal(row('t1', 11, [{ target: 9000, hostPort: 25020 }]));
      udp.deliver(9000, 'hello', PEER);
      await waitFor(() => udp.sent.length === 1, 5000, 'the answer');
      expect(l.flows).toBe(1);
      table.setHealth('echo', 't1', 'unhealthy');
      expect(udp.handlers.size).toBe(0);
      expect(l.flows).toBe(0);
      table.setHealth('echo', 't1', 'healthy');
      expect([...udp.handlers.keys()]).toEqual([9000]);
      table.upsertLocal(row('t1', 11, [{ target: 9001, hostPort: 25020 }]));
      expect([...udp.handlers.keys()]).toEqual([9001]);
      table.deleteLocal('echo', 't1');
      expect(udp.handlers.size).toBe(0);
    } finally {
      l.close();
      table.close();
    }
  });

  it('without the destination address, a port shared by two tasks goes to the first and the ambiguity is counted', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock: new ManualClock() });
    try {
      table.upsertLocal(row('t1', 11, [{ target: 9000, hostPort: 25020 }]));
      table.upsertLocal(row('t2', 12, [{ target: 9000, hostPort: 25021 }]));
      udp.deliver(9000, 'which', PEER);
      await waitFor(() => udp.sent.length === 1, 5000, 'the answer');
      expect(udp.sent[0]!.data).toBe('t1:which');
      expect(l.counters()['mesh_udp_task_ambiguous']).toBe(1);
    } finally {
      l.close();
      table.close();
    }
  });

  it('a target port the layer already holds, or that is reserved for the DNS, is counted, not thrown; the task’s other ports are served', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const held = udp.bind(5353, () => undefined);
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock: new ManualClock() });
    try {
      table.upsertLocal(row('t1', 11, [{ target: 53, hostPort: 25020 }, { target: 5353, hostPort: 25020 }, { target: 9000, hostPort: 25020 }]));
      expect(l.counters()['mesh_udp_task_bind_fail']).toBe(2);
      expect([...udp.handlers.keys()].sort()).toEqual([5353, 9000]);
      expect(l.listening()).toEqual([{ address: '100.64.30.11', port: 9000 }]);
    } finally {
      l.close();
      table.close();
      held.close();
    }
  });

  it('a port held by an ingress flow is served once the flow gives it back; no retry is left when the task goes', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const clock = new ManualClock();
    const flowPort = udp.bind(50000, () => undefined);
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock });
    try {
      table.upsertLocal(row('t1', 11, [{ target: 50000, hostPort: 25020 }]));
      expect(l.listening()).toEqual([]);
      expect(l.counters()['mesh_udp_task_bind_fail']).toBe(1);
      clock.advance(UDP_BIND_RETRY_MS);
      expect(l.listening()).toEqual([]);
      // Still held: tried again, not counted again.
      expect(l.counters()['mesh_udp_task_bind_fail']).toBe(1);
      flowPort.close();
      clock.advance(UDP_BIND_RETRY_MS);
      expect(l.listening()).toEqual([{ address: '100.64.30.11', port: 50000 }]);
      udp.deliver(50000, 'late', PEER);
      await waitFor(() => udp.sent.length === 1, 5000, 'the answer');
      expect(udp.sent[0]!.data).toBe('t1:late');
      // A task whose port is held, then removed: nothing keeps trying.
      const other = udp.bind(50001, () => undefined);
      table.upsertLocal(row('t2', 12, [{ target: 50001, hostPort: 25021 }]));
      table.deleteLocal('echo', 't2');
      other.close();
      clock.advance(UDP_BIND_RETRY_MS);
      expect(udp.handlers.has(50001)).toBe(false);
    } finally {
      l.close();
      table.close();
    }
    expect(clock.pendingTimers).toBe(0);
  });

  it('bounds peer flows: a new peer beyond the limit is dropped and counted; flows idle out', async () => {
    const table = new EndpointTable({ nodeName: 'b', clock: realClock });
    const udp = new FakeUdp();
    const clock = new ManualClock();
    const l = new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock, maxFlows: 2, idleTimeoutMs: 1000 });
    try {
      table.upsertLocal(row('t1', 11, [{ target: 9000, hostPort: 25020 }]));
      for (let i = 0; i < 3; i++) udp.deliver(9000, `p${i}`, { ...PEER, port: 50000 + i });
      await waitFor(() => udp.sent.length === 2, 5000, 'two answers');
      expect(udp.sent.map((s) => s.data).sort()).toEqual(['t1:p0', 't1:p1']);
      expect(l.counters()['mesh_udp_dropped_flows_full']).toBe(1);
      clock.advance(1000);
      expect(l.flows).toBe(0);
      expect(l.counters()['mesh_udp_flows_expired']).toBe(2);
      udp.deliver(9000, 'p2-again', { ...PEER, port: 50002 });
      await waitFor(() => udp.sent.length === 3, 5000, 'the third peer answered');
    } finally {
      l.close();
      table.close();
    }
  });
});
