import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ManualClock, RealClock } from '../../src/lib/clock.js';
import { ClosedError, ConnectionRefusedError, ConnectionTimedOutError, GossipSocketError, InvalidArgumentError } from '../../src/lib/errors.js';
import { NodeTransport } from '../../src/gossip/node-transport.js';
import type { Packet, Stream, StreamHandlers } from '../../src/gossip/transport.js';
import { StreamReader, encodeStream } from '../../src/wire/memberlist/stream.js';
import { decodePacket, encodeMessage, encodePacket } from '../../src/wire/memberlist/codec.js';
import { Keyring } from '../../src/wire/memberlist/crypto.js';

const open: NodeTransport[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
});

async function bind(options: Partial<Parameters<typeof NodeTransport.bind>[0]> = {}): Promise<NodeTransport> {
  const t = await NodeTransport.bind({ host: '127.0.0.1', port: 0, clock: new RealClock(), ...options });
  open.push(t);
  return t;
}

/** Resolves with the next value `register` delivers; rejects after `ms` so a lost packet fails the test, never hangs it. */
function next<T>(register: (deliver: (v: T) => void) => void, ms = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('Nothing arrived')), ms);
    register((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/** Collects a stream's events; `closed` resolves with the close error (or undefined). */
function record(stream: Stream): { data: Uint8Array[]; ended: boolean; closed: Promise<Error | undefined>; endedOrClosed: Promise<void>; bytes(): Buffer } {
  let onEnd = (): void => {};
  const rec = {
    data: [] as Uint8Array[],
    ended: false,
    closed: undefined as unknown as Promise<Error | undefined>,
    endedOrClosed: next<void>((deliver) => (onEnd = deliver)),
    bytes: () => Buffer.concat(rec.data),
  };
  rec.closed = next<Error | undefined>((deliver) => {
    const h: StreamHandlers = {
      onData: (c) => rec.data.push(c),
      onEnd: () => {
        rec.ended = true;
        onEnd();
      },
      onClose: (e) => {
        onEnd();
        deliver(e);
      },
    };
    stream.setHandlers(h);
  });
  // Awaited by the tests that care; a test failing elsewhere must not add an unhandled rejection.
  rec.closed.catch(() => {});
  rec.endedOrClosed.catch(() => {});
  return rec;
}

function acceptOne(t: NodeTransport): Promise<Stream> {
  return next((deliver) => t.setHandlers({ onPacket: () => {}, onStream: deliver }));
}

describe('NodeTransport', () => {
  it('binds UDP and TCP on one port and advertises the bound address', async () => {
    const t = await bind();
    expect(t.localAddress.host).toBe('127.0.0.1');
    expect(t.localAddress.port).toBeGreaterThan(0);
    expect(t.recvBufferSize).toBeGreaterThan(0);

    const packet = next<Packet>((deliver) => t.setHandlers({ onPacket: deliver, onStream: () => {} }));
    const raw = createSocket('udp4');
    raw.send(Uint8Array.of(1, 2, 3), t.localAddress.port, '127.0.0.1');
    const p = await packet;
    expect([...p.buf]).toEqual([1, 2, 3]);
    expect(p.from.host).toBe('127.0.0.1');
    raw.close();

    const accepted = acceptOne(t);
    const sock = connect({ host: '127.0.0.1', port: t.localAddress.port });
    const s = await accepted;
    expect(s.remote.port).toBe(sock.localPort);
    sock.destroy();
  });

  it('sends datagrams from its own port, so replies can go to the source (spec §1)', async () => {
    const a = await bind();
    const b = await bind();
    const got = next<Packet>((deliver) => b.setHandlers({ onPacket: deliver, onStream: () => {} }));
    const ring = new Keyring([new Uint8Array(32).fill(1)]);
    const ping = encodeMessage({ type: 'ping', body: { seqNo: 9, node: 'b' } });
    a.sendPacket(b.localAddress, encodePacket([ping], { crc: true, keyring: ring }));
    const p = await got;
    expect(p.from).toEqual(a.localAddress);
    const msgs = decodePacket(p.buf, { keyring: ring });
    expect(msgs.ok && msgs.value).toEqual([{ type: 'ping', body: { seqNo: 9, node: 'b' } }]);
    expect(a.counters.get('transport_udp_tx_packets')).toBe(1);
    expect(b.counters.get('transport_udp_rx_packets')).toBe(1);
  });

  it('drops and counts empty datagrams (ML net_transport.go:323-340)', async () => {
    const t = await bind();
    const got: Packet[] = [];
    t.setHandlers({ onPacket: (p) => got.push(p), onStream: () => {} });
    const raw = createSocket('udp4');
    raw.send(new Uint8Array(0), t.localAddress.port, '127.0.0.1');
    raw.send(Uint8Array.of(7), t.localAddress.port, '127.0.0.1');
    await next<void>((deliver) => {
      const poll = setInterval(() => {
        if (got.length > 0) {
          clearInterval(poll);
          deliver();
        }
      }, 5);
    });
    raw.close();
    expect(got.map((p) => [...p.buf])).toEqual([[7]]);
    expect(t.counters.get('transport_udp_rx_dropped_empty')).toBe(1);
  });

  it('carries a memberlist exchange over a stream: request, half-close, reply', async () => {
    const a = await bind();
    const b = await bind();
    const accepted = acceptOne(b);
    const client = a.openStream(b.localAddress);
    const clientRec = record(client);
    // A big push/pull in many TCP segments, read incrementally on the other side.
    const userState = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
    client.write(encodeStream({ type: 'pushPull', body: { join: true, nodes: [], userState } }, { compress: true }));
    client.end();

    const server = await accepted;
    const reader = new StreamReader();
    const request = await next<ReturnType<StreamReader['push']>>((deliver) =>
      server.setHandlers({
        onData: (c) => {
          const r = reader.push(c);
          if (r.status !== 'incomplete') deliver(r);
        },
        onEnd: () => {},
        onClose: () => {},
      }),
    );
    expect(request.status === 'message' && request.message.type === 'pushPull' && Buffer.from(request.message.body.userState).equals(Buffer.from(userState))).toBe(true);
    server.write(encodeStream({ type: 'ackResp', body: { seqNo: 5, payload: new Uint8Array(0) } }));
    server.end();
    expect(await clientRec.closed).toBeUndefined();
    expect(clientRec.ended).toBe(true);
    const reply = new StreamReader().push(clientRec.bytes());
    expect(reply.status === 'message' && reply.message).toEqual({ type: 'ackResp', body: { seqNo: 5, payload: new Uint8Array(0) } });
  });

  it('reports a refused connection through onClose', async () => {
    const a = await bind();
    const gone = await bind();
    const port = gone.localAddress.port;
    gone.close();
    const rec = record(a.openStream({ host: '127.0.0.1', port }));
    const error = await rec.closed;
    expect(error).toBeInstanceOf(ConnectionRefusedError);
  });

  it('ends an inbound stream that outlives memberlist’s 10 s TCP deadline', async () => {
    const clock = new ManualClock();
    const t = await bind({ clock });
    const accepted = acceptOne(t);
    const sock = connect({ host: '127.0.0.1', port: t.localAddress.port });
    const peerClosed = next<void>((deliver) => sock.on('close', () => deliver()));
    sock.on('error', () => {});
    const server = await accepted;
    const rec = record(server);
    clock.advance(9_999);
    expect(t.counters.get('transport_tcp_timeouts')).toBe(0);
    clock.advance(1);
    expect(await rec.closed).toBeInstanceOf(ConnectionTimedOutError);
    await peerClosed;
    expect(t.counters.get('transport_tcp_timeouts')).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('cancels the deadline of a stream that closed in time', async () => {
    const clock = new ManualClock();
    const t = await bind({ clock });
    const accepted = acceptOne(t);
    const sock = connect({ host: '127.0.0.1', port: t.localAddress.port });
    const server = await accepted;
    const rec = record(server);
    sock.end();
    await rec.endedOrClosed;
    expect(rec.ended).toBe(true); // a half-close, not a close: we may still reply
    server.destroy();
    expect(await rec.closed).toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  it('holds stream events until handlers are set', async () => {
    const a = await bind();
    const stream = a.openStream({ host: '127.0.0.1', port: 1 }); // nothing listens on port 1
    await new Promise((r) => setTimeout(r, 200));
    const rec = record(stream);
    expect(await rec.closed).toBeInstanceOf(ConnectionRefusedError);
  });

  it('close() resets open streams, stops sending and frees the port', async () => {
    const a = await bind();
    const b = await bind();
    const accepted = acceptOne(b);
    const client = a.openStream(b.localAddress);
    const clientRec = record(client);
    client.write(Uint8Array.of(1));
    const server = await accepted;
    const serverRec = record(server);
    b.close();
    b.close();
    expect(await serverRec.closed).toBeInstanceOf(ClosedError);
    await clientRec.endedOrClosed; // the peer went away: FIN or RST
    b.sendPacket(a.localAddress, Uint8Array.of(1));
    expect(b.counters.get('transport_udp_tx_packets')).toBe(0);
    const again = await bind({ port: b.localAddress.port });
    expect(again.localAddress.port).toBe(b.localAddress.port);
    const late = record(b.openStream(a.localAddress));
    expect(await late.closed).toBeInstanceOf(ClosedError);
  });

  it('refuses a port in use and an unusable host', async () => {
    const a = await bind();
    await expect(NodeTransport.bind({ host: '127.0.0.1', port: a.localAddress.port, clock: new RealClock() })).rejects.toBeInstanceOf(GossipSocketError);
    await expect(NodeTransport.bind({ host: 'localhost', port: 0, clock: new RealClock() })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(NodeTransport.bind({ host: '127.0.0.1', port: 70000, clock: new RealClock() })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it.skipIf(process.platform !== 'linux')('counts the datagrams the kernel dropped while we could not read', async () => {
    const t = await bind({ recvBufferSize: 4096 });
    t.setHandlers({ onPacket: () => {}, onStream: () => {} });
    expect(t.udpKernelDrops()).toBe(0);
    // Another process floods the port while this one's event loop is blocked in execFileSync,
    // so nothing drains the (small) receive buffer.
    const flood = `const s = require('node:dgram').createSocket('udp4'); let n = 0;
      const go = () => { if (n++ === 400) return s.close(); s.send(Buffer.alloc(1000), ${t.localAddress.port}, '127.0.0.1', go); }; go();`;
    execFileSync(process.execPath, ['-e', flood]);
    const drops = t.udpKernelDrops();
    expect(drops).toBeGreaterThan(0);
    // What got through is still delivered.
    await next<void>((deliver) => {
      const poll = setInterval(() => {
        if (t.counters.get('transport_udp_rx_packets') > 0) {
          clearInterval(poll);
          deliver();
        }
      }, 5);
    });
    expect(t.counters.get('transport_udp_rx_packets') + drops!).toBeLessThanOrEqual(400);
    t.close();
    expect(t.udpKernelDrops()).toBeUndefined();
  });

  const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === '::1'));

  it.skipIf(!hasIpv6Loopback)('works over IPv6 (::1)', async () => {
    const a = await bind({ host: '::1' });
    const b = await bind({ host: '::1' });
    expect(a.localAddress.host).toBe('::1');
    const got = next<Packet>((deliver) => b.setHandlers({ onPacket: deliver, onStream: () => {} }));
    a.sendPacket(b.localAddress, Uint8Array.of(4, 2));
    const p = await got;
    expect({ from: p.from, bytes: [...p.buf] }).toEqual({ from: a.localAddress, bytes: [4, 2] });
    const accepted = acceptOne(b);
    const client = a.openStream(b.localAddress);
    client.write(Uint8Array.of(9));
    const server = await accepted;
    const rec = record(server);
    client.end();
    await rec.endedOrClosed;
    expect([...rec.bytes()]).toEqual([9]);
    expect(server.remote.host).toBe('::1');
  });

  it('advertises the given address when bound to a wildcard', async () => {
    const t = await bind({ host: '0.0.0.0', advertiseHost: '127.0.0.1' });
    expect(t.localAddress).toEqual({ host: '127.0.0.1', port: t.localAddress.port });
  });
});
