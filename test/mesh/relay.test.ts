/**
 * The relay and connect-with-retry on in-memory Duplex pairs and a ManualClock: no sockets,
 * no real time. (The same code on kernel sockets: node-ingress.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { Duplex } from 'node:stream';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { Balancer } from '../../src/mesh/balancer.js';
import { connectWithRetry, relay, relayCounters } from '../../src/mesh/relay.js';

/** Two connected in-memory ends, half-open allowed, like a socket pair. */
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

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function collect(s: Duplex): { text: () => string; ended: () => boolean } {
  let text = '';
  let ended = false;
  s.on('data', (c: Buffer) => (text += c.toString()));
  s.on('end', () => (ended = true));
  return { text: () => text, ended: () => ended };
}

describe('relay', () => {
  it('carries bytes both ways and half-closes each direction on its own', async () => {
    const clock = new ManualClock();
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream, task] = duplexPair();
    const done = relay(downstream, upstream, { counters, clock });
    const atTask = collect(task);
    const atClient = collect(client);
    client.end('request');
    await flush();
    expect(atTask.text()).toBe('request');
    expect(atTask.ended()).toBe(true);
    expect(atClient.ended()).toBe(false);
    task.end('answer');
    await flush();
    expect(atClient.text()).toBe('answer');
    expect(atClient.ended()).toBe(true);
    const result = await done;
    expect(result).toEqual({ end: 'closed', downstreamRxBytes: 7, upstreamRxBytes: 6 });
    expect(counters.snapshot()).toMatchObject({ mesh_downstream_cx_rx_bytes_total: 7, mesh_downstream_cx_tx_bytes_total: 6 });
  });

  it('cuts a connection idle for the idle timeout, counting from the last byte either way', async () => {
    const clock = new ManualClock();
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream, task] = duplexPair();
    collect(task);
    collect(client);
    const done = relay(downstream, upstream, { counters, clock, idleTimeoutMs: 1000 });
    clock.advance(600);
    task.write('tick');
    await flush();
    clock.advance(600);
    await flush();
    expect(downstream.destroyed).toBe(false);
    clock.advance(400);
    await flush();
    expect((await done).end).toBe('idle-timeout');
    expect(upstream.destroyed).toBe(true);
    expect(counters.get('mesh_downstream_cx_idle_timeout')).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('never cuts an idle connection by default', async () => {
    const clock = new ManualClock();
    const [, downstream] = duplexPair();
    const [upstream] = duplexPair();
    void relay(downstream, upstream, { counters: relayCounters(), clock });
    expect(clock.pendingTimers).toBe(0);
    clock.advance(24 * 3600_000);
    await flush();
    expect(downstream.destroyed).toBe(false);
    downstream.destroy();
  });

  it('an upstream error takes the downstream down and is reported', async () => {
    const [client, downstream] = duplexPair();
    const [upstream] = duplexPair();
    collect(client);
    const done = relay(downstream, upstream, { counters: relayCounters(), clock: new ManualClock() });
    upstream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    const result = await done;
    expect(result.end).toBe('upstream-error');
    expect((result.upstreamError as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    expect(downstream.destroyed).toBe(true);
  });
});

describe('connectWithRetry', () => {
  const eps = ['a', 'b', 'c', 'd'].map((key) => ({ key, local: false }));

  it('retries refused connects on other endpoints, bounded, ejecting each failure', async () => {
    const clock = new ManualClock();
    const balancer = new Balancer({ clock, rng: new SeededRng(2) });
    const counters = relayCounters();
    const tried: string[] = [];
    const r = await connectWithRetry({
      endpoints: eps,
      balancer,
      connect: (e) => {
        tried.push(e.key);
        return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
      },
      maxAttempts: 3,
      connectTimeoutMs: 1000,
      clock,
      counters,
    });
    expect(r).toBeUndefined();
    expect(new Set(tried).size).toBe(3);
    for (const k of tried) expect(balancer.isEjected(k)).toBe(true);
    expect(counters.snapshot()).toMatchObject({ mesh_upstream_cx_connect_fail: 3, mesh_upstream_cx_connect_retry: 2, mesh_upstream_cx_connect_attempts_exceeded: 1 });
    for (const k of tried) expect(balancer.outstanding(k)).toBe(0);
  });

  it('returns the first endpoint that connects, held in the balancer', async () => {
    const clock = new ManualClock();
    const balancer = new Balancer({ clock, rng: new SeededRng(3) });
    balancer.reportFailure('a');
    balancer.reportFailure('b');
    balancer.reportFailure('c');
    const [sock] = duplexPair();
    const r = await connectWithRetry({ endpoints: eps, balancer, connect: () => Promise.resolve(sock), maxAttempts: 3, connectTimeoutMs: 1000, clock, counters: relayCounters() });
    expect(r?.endpoint.key).toBe('d');
    expect(r?.failedAttempts).toBe(0);
    expect(balancer.outstanding('d')).toBe(1);
  });

  it('gives up on a connect that does not finish within the timeout, and destroys it if it ever does', async () => {
    const clock = new ManualClock();
    const counters = relayCounters();
    const [late] = duplexPair();
    let release: (d: Duplex) => void = () => undefined;
    const p = connectWithRetry({
      endpoints: eps.slice(0, 1),
      balancer: new Balancer({ clock, rng: new SeededRng(4) }),
      connect: () => new Promise<Duplex>((r) => (release = r)),
      maxAttempts: 3,
      connectTimeoutMs: 500,
      clock,
      counters,
    });
    clock.advance(500);
    expect(await p).toBeUndefined();
    expect(counters.get('mesh_upstream_cx_connect_timeout')).toBe(1);
    release(late);
    await flush();
    expect(late.destroyed).toBe(true);
  });

  it('counts none_healthy when there is nothing to try', async () => {
    const clock = new ManualClock();
    const counters = relayCounters();
    const r = await connectWithRetry({ endpoints: [], balancer: new Balancer({ clock, rng: new SeededRng(5) }), connect: () => Promise.reject(new Error('unused')), maxAttempts: 3, connectTimeoutMs: 1, clock, counters });
    expect(r).toBeUndefined();
    expect(counters.get('mesh_upstream_cx_none_healthy')).toBe(1);
  });
});
