/**
 * Two stacks on an in-memory link with a manual clock (issue 3, "Must show"): seeded loss
 * (0–10 %), reordering, duplication and delay; 1 MB each way byte-exact; every close order ends
 * with both stacks empty and no timer left. A failing seed is printed; replay one seed with
 * SHOAL_TCP_SEED=<seed> (and the order with SHOAL_TCP_ORDER=<order>).
 */
import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../../src/lib/rng.js';
import type { TcpConfig } from '../../../src/netstack/tcp/config.js';
import type { TcpConnection } from '../../../src/netstack/tcp/connection.js';
import { B_ADDR, SimNet, concat, equalBytes, randomBytes, type LinkProfile, type SimOptions } from './sim-net.js';

const CI = process.env['CI'] === 'true';
const SEEDS = Number(process.env['SHOAL_TCP_SEEDS'] ?? (CI ? 500 : 24));
const ONLY_SEED = process.env['SHOAL_TCP_SEED'] === undefined ? undefined : Number(process.env['SHOAL_TCP_SEED']);
const ONLY_ORDER = process.env['SHOAL_TCP_ORDER'];
const MB = 1024 * 1024;

type CloseOrder = 'client-first' | 'server-first' | 'both' | 'rst';
const ORDERS: readonly CloseOrder[] = ['client-first', 'server-first', 'both', 'rst'];

/** A link drawn from the seed: loss 0–10 %, duplication 0–5 %, reordering 0–10 %, delay 0.5–20 ms. */
function linkFor(seed: number): LinkProfile {
  const r = new SeededRng(seed ^ 0x5eed);
  return {
    loss: r.float() * 0.1,
    duplicate: r.float() * 0.05,
    reorder: r.float() * 0.1,
    reorderMs: 1 + r.float() * 20,
    delayMs: 0.5 + r.float() * 20,
    jitterMs: r.float() * 0.5,
  };
}

interface Peer {
  readonly received: Uint8Array[];
  error: string | undefined;
  closed: boolean;
  ended: boolean;
}

/**
 * Plays one side: writes `data` as the send buffer allows, reads everything, and closes either
 * once all is written or once the peer has finished too.
 */
function play(conn: TcpConnection, data: Uint8Array, closeWhen: 'after-send' | 'after-peer-end' | 'never', onProgress?: (peer: Peer) => void): Peer {
  const peer: Peer = { received: [], error: undefined, closed: false, ended: false };
  let off = 0;
  const maybeClose = (): void => {
    if (off < data.length) return;
    if (closeWhen === 'after-send' || (closeWhen === 'after-peer-end' && peer.ended)) conn.close();
  };
  const pump = (): void => {
    while (off < data.length) {
      const n = conn.send(data.subarray(off, off + 64 * 1024));
      if (n === 0) break;
      off += n;
    }
    maybeClose();
  };
  conn.events = {
    onConnect: pump,
    onDrain: pump,
    onData: () => {
      peer.received.push(conn.read());
      onProgress?.(peer);
    },
    onEnd: () => {
      peer.ended = true;
      maybeClose();
    },
    onClose: (error) => {
      peer.closed = true;
      peer.error = error?.code;
    },
  };
  if (conn.state === 'ESTABLISHED') pump();
  return peer;
}

function received(peer: Peer): Uint8Array {
  return concat(peer.received);
}

function runTransfer(seed: number, order: CloseOrder, size: number, config: Partial<TcpConfig> = {}, sim: SimOptions = {}): void {
  const where = `seed ${seed} order ${order} config ${JSON.stringify(config)} sim ${JSON.stringify(sim)} (replay: SHOAL_TCP_SEED=${seed} SHOAL_TCP_ORDER=${order})`;
  const net = new SimNet(seed, linkFor(seed), config, {}, sim);
  const up = randomBytes(seed * 2 + 1, size);
  const down = randomBytes(seed * 2 + 2, size);
  let server: Peer | undefined;
  let clientConn: TcpConnection | undefined;
  net.b.stack.listen(80, (conn) => {
    server = play(conn, down, order === 'server-first' || order === 'both' ? 'after-send' : 'after-peer-end');
  });
  clientConn = net.a.stack.connect({ remoteAddress: B_ADDR, remotePort: 80 }, net.clock.now());
  const client = play(clientConn, up, order === 'client-first' || order === 'both' ? 'after-send' : order === 'rst' ? 'never' : 'after-peer-end', (p) => {
    // The RST case: the client aborts once it holds half of what the server sends.
    if (order === 'rst' && clientConn !== undefined && received(p).length >= size / 2) {
      clientConn.abort();
      clientConn = undefined;
    }
  });

  const finished = net.run(() => client.closed && server !== undefined && server.closed, 20_000_000);
  expect(finished, `${where}: transfer did not finish (client ${client.closed}, server ${server?.closed})`).toBe(true);
  expect(net.drain(), `${where}: timers left`).toBe(true);
  expect(net.a.stack.connectionCount + net.b.stack.connectionCount, `${where}: connections left`).toBe(0);
  expect(net.clock.pendingTimers, `${where}: timers left`).toBe(0);

  const s = server!;
  if (order === 'rst') {
    expect(client.error, where).toBeUndefined();
    expect(s.error, where).toBe('ECONNRESET');
    const got = received(client);
    expect(got.length, where).toBeGreaterThanOrEqual(size / 2);
    expect(equalBytes(got, down.subarray(0, got.length)), `${where}: client's bytes differ`).toBe(true);
    const sgot = received(s);
    expect(equalBytes(sgot, up.subarray(0, sgot.length)), `${where}: server's bytes differ`).toBe(true);
    return;
  }
  expect(client.error, where).toBeUndefined();
  expect(s.error, where).toBeUndefined();
  expect(equalBytes(received(s), up), `${where}: server received ${received(s).length} bytes, not the ${size} sent`).toBe(true);
  expect(equalBytes(received(client), down), `${where}: client received ${received(client).length} bytes, not the ${size} sent`).toBe(true);
}

describe('tcp simulation: two stacks, lossy link, manual clock', () => {
  for (const order of ORDERS) {
    if (ONLY_ORDER !== undefined && ONLY_ORDER !== order) continue;
    it(`1 MB each way, ${order} close, ${ONLY_SEED ?? SEEDS} seed(s)`, () => {
      const seeds = ONLY_SEED !== undefined ? [ONLY_SEED] : Array.from({ length: SEEDS }, (_, i) => i + 1);
      for (const seed of seeds) runTransfer(seed, order, MB);
    }, 600_000);
  }

  // Segments delivered in runs, answered once per run (TcpDriver's batchedReceive, as over
  // node:dgram): stretch ACKs must not break loss recovery, with SACK or without.
  for (const [name, config] of [['SACK', {}], ['no SACK (NewReno)', { sack: false }]] as const) {
    it(`1 MB each way, receive runs batched, ${name}, ${ONLY_SEED ?? Math.ceil(SEEDS / 4)} seed(s) per close order`, () => {
      const seeds = ONLY_SEED !== undefined ? [ONLY_SEED] : Array.from({ length: Math.ceil(SEEDS / 4) }, (_, i) => 2000 + i);
      for (const seed of seeds) for (const order of ORDERS) if (ONLY_ORDER === undefined || ONLY_ORDER === order) runTransfer(seed, order, MB, config, { batchMs: 1 + (seed % 4) });
    }, 600_000);
  }

  // The options a peer may refuse: without SACK, recovery is NewReno (RFC 6582); without
  // timestamps, RTT comes from one timed segment per window (RFC 6298 §3, Karn).
  const VARIANTS: readonly [string, Partial<TcpConfig>][] = [
    ['no SACK (NewReno)', { sack: false }],
    ['no timestamps, no window scaling', { timestamps: false, windowScaling: false, receiveBufferSize: 65535 }],
    ['no options at all, delayed ACKs off', { sack: false, timestamps: false, windowScaling: false, receiveBufferSize: 65535, delayedAckMs: 0 }],
  ];
  for (const [name, config] of VARIANTS) {
    it(`1 MB each way with ${name}, ${ONLY_SEED ?? Math.ceil(SEEDS / 4)} seed(s)`, () => {
      const seeds = ONLY_SEED !== undefined ? [ONLY_SEED] : Array.from({ length: Math.ceil(SEEDS / 4) }, (_, i) => 1000 + i);
      for (const seed of seeds) runTransfer(seed, ORDERS[seed % ORDERS.length]!, MB, config);
    }, 600_000);
  }

  it('200 connections at once, 20 kB each way, all byte-exact and all closed', () => {
    const net = new SimNet(ONLY_SEED ?? 3, { loss: 0.02, duplicate: 0.01, reorder: 0.02, reorderMs: 5, delayMs: 3, jitterMs: 0.2 });
    const servers: Peer[] = [];
    const clients: Peer[] = [];
    const sizes = 20_000;
    net.b.stack.listen(80, (conn) => servers.push(play(conn, randomBytes(conn.tuple.remotePort, sizes), 'after-peer-end')));
    const ports: number[] = [];
    for (let i = 0; i < 200; i++) {
      const conn = net.a.stack.connect({ remoteAddress: B_ADDR, remotePort: 80 }, net.clock.now());
      ports.push(conn.tuple.localPort);
      clients.push(play(conn, randomBytes(conn.tuple.localPort + 100_000, sizes), 'after-send'));
    }
    expect(net.run(() => clients.every((c) => c.closed) && servers.length === 200 && servers.every((s) => s.closed), 20_000_000)).toBe(true);
    clients.forEach((c, i) => expect(equalBytes(received(c), randomBytes(ports[i]!, sizes)), `client ${i}`).toBe(true));
    expect(servers.every((s) => received(s).length === sizes && s.error === undefined)).toBe(true);
    expect(net.drain()).toBe(true);
    expect(net.a.stack.connectionCount + net.b.stack.connectionCount).toBe(0);
  }, 600_000);

  it('10 MB each way on a 3 % lossy link', () => {
    const seed = ONLY_SEED ?? 7;
    const net = new SimNet(seed, { loss: 0.03, duplicate: 0.01, reorder: 0.02, reorderMs: 5, delayMs: 5, jitterMs: 0.2 });
    const size = 10 * MB;
    const up = randomBytes(seed * 2 + 1, size);
    const down = randomBytes(seed * 2 + 2, size);
    let server: Peer | undefined;
    net.b.stack.listen(80, (conn) => {
      server = play(conn, down, 'after-peer-end');
    });
    const client = play(net.a.stack.connect({ remoteAddress: B_ADDR, remotePort: 80 }, net.clock.now()), up, 'after-send');
    expect(net.run(() => client.closed && server !== undefined && server.closed, 50_000_000), `seed ${seed}`).toBe(true);
    expect(equalBytes(received(server!), up), `seed ${seed}`).toBe(true);
    expect(equalBytes(received(client), down), `seed ${seed}`).toBe(true);
    expect(net.drain()).toBe(true);
    expect(net.clock.pendingTimers).toBe(0);
  }, 600_000);
});
