/**
 * TcpSocket as a Node Duplex, over two simulated stacks on a ManualClock: what code written for
 * net.Socket observes (data, 'end', 'drain', 'close', errors with Node's codes, http.Server).
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { TcpSockets, type TcpSocket } from '../../../src/netstack/tcp/stream.js';
import { B_ADDR, PERFECT_LINK, SimNet, randomBytes, type LinkProfile } from './sim-net.js';
import type { TcpConfig } from '../../../src/netstack/tcp/config.js';

const LOSSY: LinkProfile = { loss: 0.05, duplicate: 0.02, reorder: 0.05, reorderMs: 5, delayMs: 2, jitterMs: 0.2 };

function setup(link: LinkProfile = PERFECT_LINK, config: Partial<TcpConfig> = {}, seed = 1): { net: SimNet; client: TcpSockets; server: TcpSockets } {
  const net = new SimNet(seed, link, config);
  return { net, client: new TcpSockets(net.a.driver, net.clock), server: new TcpSockets(net.b.driver, net.clock) };
}

/** Lets stream callbacks (nextTick, microtasks, immediates) run, then moves the clock to the next event, until `done`. */
async function runUntil(net: SimNet, done: () => boolean, maxSteps = 200_000): Promise<void> {
  for (let i = 0; i < maxSteps; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (done()) return;
    const t = net.clock.nextDeadline();
    if (t !== undefined) net.clock.advanceTo(t);
  }
  throw new Error('Simulation did not reach its goal');
}

function collect(socket: TcpSocket): { chunks: Buffer[]; ended: boolean; closed: boolean; error: (Error & { code?: string }) | undefined } {
  const state = { chunks: [] as Buffer[], ended: false, closed: false, error: undefined as (Error & { code?: string }) | undefined };
  socket.on('data', (b: Buffer) => state.chunks.push(b));
  socket.on('end', () => (state.ended = true));
  socket.on('close', () => (state.closed = true));
  socket.on('error', (e: Error & { code?: string }) => (state.error = e));
  return state;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('TcpSocket (stream.Duplex)', () => {
  it('echoes 1 MB through pipe() on a lossy link, byte-exact, then both sockets close', async () => {
    const { net, client, server } = setup(LOSSY);
    let serverClosed = false;
    server.listen(7, (s) => {
      s.pipe(s);
      s.on('close', () => (serverClosed = true));
    });
    const data = randomBytes(11, 1024 * 1024);
    const c = client.connect({ address: '100.64.0.2', port: 7 });
    const got = collect(c);
    let connected = false;
    c.on('connect', () => (connected = true));
    c.end(data);
    await runUntil(net, () => got.closed && serverClosed);
    expect(connected).toBe(true);
    expect(got.error).toBeUndefined();
    expect(sha(Buffer.concat(got.chunks))).toBe(sha(data));
    net.drain();
    expect(net.a.stack.connectionCount + net.b.stack.connectionCount).toBe(0);
    expect(net.clock.pendingTimers).toBe(0);
  });

  it('applies backpressure: write() returns false, then drain once the reader resumes', async () => {
    const { net, client, server } = setup(PERFECT_LINK, { sendBufferSize: 64 * 1024, receiveBufferSize: 64 * 1024 });
    let serverSocket: TcpSocket | undefined;
    const received: Buffer[] = [];
    server.listen(9, (s) => {
      serverSocket = s;
      s.pause(); // Not reading: the window closes, the client's buffer fills.
      s.on('data', (b: Buffer) => received.push(b));
    });
    const c = client.connect({ address: B_ADDR, port: 9 });
    const chunk = randomBytes(3, 16 * 1024);
    let writes = 0;
    let refused = false;
    await runUntil(net, () => serverSocket !== undefined);
    for (let i = 0; i < 64 && !refused; i++) {
      writes++;
      refused = !c.write(chunk);
      await runUntil(net, () => true);
    }
    expect(refused).toBe(true);
    let drained = false;
    c.once('drain', () => (drained = true));
    // Let the windows settle shut: no drain while the reader is paused.
    for (let i = 0; i < 20; i++) await runUntil(net, () => true);
    expect(drained).toBe(false);
    serverSocket!.resume();
    await runUntil(net, () => drained);
    c.end();
    await runUntil(net, () => Buffer.concat(received).length === writes * chunk.length);
    expect(Buffer.concat(received).equals(Buffer.concat(Array.from({ length: writes }, () => Buffer.from(chunk))))).toBe(true);
  });

  it('half-closes: the server sees end, then still answers, as HTTP/1.0 clients expect', async () => {
    const { net, client, server } = setup(LOSSY, {}, 5);
    server.listen(80, (s) => {
      const parts: Buffer[] = [];
      s.on('data', (b: Buffer) => parts.push(b));
      s.on('end', () => s.end(`got ${Buffer.concat(parts).toString()}`));
    });
    const c = client.connect({ address: B_ADDR, port: 80 });
    const got = collect(c);
    c.end('request');
    await runUntil(net, () => got.ended);
    expect(Buffer.concat(got.chunks).toString()).toBe('got request');
  });

  it('fails with ECONNREFUSED when nothing listens', async () => {
    const { net, client } = setup();
    const c = client.connect({ address: B_ADDR, port: 81 });
    const got = collect(c);
    await runUntil(net, () => got.error !== undefined);
    expect(got.error?.code).toBe('ECONNREFUSED');
    await runUntil(net, () => got.closed);
  });

  it('fails with ECONNRESET when the peer aborts', async () => {
    const { net, client, server } = setup();
    server.listen(80, (s) => {
      s.once('data', () => s.connection.abort());
    });
    const c = client.connect({ address: B_ADDR, port: 80 });
    const got = collect(c);
    c.write('hello');
    await runUntil(net, () => got.error !== undefined);
    expect(got.error?.code).toBe('ECONNRESET');
  });

  it('fails with ETIMEDOUT when the peer vanishes mid-transfer', async () => {
    const { net, client, server } = setup(PERFECT_LINK, { maxRetransmits: 4, maxRtoMs: 2_000 });
    server.listen(80, (s) => s.resume());
    const c = client.connect({ address: B_ADDR, port: 80 });
    const got = collect(c);
    c.write(randomBytes(1, 10_000));
    await runUntil(net, () => !c.connecting);
    net.link = { ...PERFECT_LINK, loss: 1 }; // The peer is gone.
    c.write(randomBytes(2, 10_000));
    await runUntil(net, () => got.error !== undefined);
    expect(got.error?.code).toBe('ETIMEDOUT');
  });

  it('fails connect with ETIMEDOUT when no SYN-ACK ever comes', async () => {
    const { net, client } = setup({ ...PERFECT_LINK, loss: 1 }, { maxSynRetransmits: 2 });
    const c = client.connect({ address: B_ADDR, port: 80 });
    const got = collect(c);
    await runUntil(net, () => got.error !== undefined);
    expect(got.error?.code).toBe('ETIMEDOUT');
  });

  it('carries stream.pipeline between two sockets (a relay) byte-exact', async () => {
    const { net, client, server } = setup(LOSSY, {}, 9);
    // A serves an echo on 7; B relays its port 8 to it (the mesh's shape: downstream socket,
    // upstream socket, pipeline both ways); the client on A talks to B's port 8.
    const aServer = new TcpSockets(net.a.driver, net.clock);
    aServer.listen(7, (s) => s.pipe(s));
    server.listen(8, (downstream) => {
      const upstream = server.connect({ address: '100.64.0.1', port: 7 });
      void pipeline(downstream, upstream, downstream).catch(() => undefined);
    });
    const data = randomBytes(21, 256 * 1024);
    const c = client.connect({ address: B_ADDR, port: 8 });
    const got = collect(c);
    c.end(data);
    await runUntil(net, () => got.ended);
    expect(sha(Buffer.concat(got.chunks))).toBe(sha(data));
  });

  it('serves http.Server through emit("connection")', async () => {
    const { net, client, server } = setup(LOSSY, {}, 3);
    const body = randomBytes(5, 300_000);
    const httpServer = http.createServer((req, res) => {
      res.setHeader('content-length', body.length);
      res.end(body);
    });
    server.listen(80, (s) => httpServer.emit('connection', s));
    let status = 0;
    const parts: Buffer[] = [];
    let done = false;
    const req = http.request({ method: 'GET', path: '/body', host: '100.64.0.2', createConnection: () => client.connect({ address: B_ADDR, port: 80 }) as never }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => (done = true));
    });
    req.end();
    await runUntil(net, () => done);
    expect(status).toBe(200);
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    httpServer.close();
  });
});
