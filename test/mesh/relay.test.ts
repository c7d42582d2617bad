/**
 * The relay and connect-with-retry on in-memory Duplex pairs and a ManualClock: no sockets,
 * no real time. (The same code on kernel sockets: node-ingress.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Duplex } from 'node:stream';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { Balancer } from '../../src/mesh/balancer.js';
import { type ReplayPolicy, connectWithRetry, relay, relayCounters } from '../../src/mesh/relay.js';

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

const reset = (): Error => Object.assign(new Error('reset'), { code: 'ECONNRESET' });

/** A reconnect that hands out the given upstream ends in turn (then none), noting each failure. */
function spareUpstreams(...spares: Duplex[]): { reconnect: ReplayPolicy['reconnect']; failures: { error: string | undefined; answered: boolean }[] } {
  const failures: { error: string | undefined; answered: boolean }[] = [];
  return {
    failures,
    reconnect: (f) => {
      failures.push({ error: (f.error as NodeJS.ErrnoException | undefined)?.code, answered: f.answered });
      return Promise.resolve(spares.shift());
    },
  };
}

describe('relay replay: an upstream that fails before answering', () => {
  it('a reset before any answer: the bytes go to another upstream and the client never sees it', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    const [upstream2, task2] = duplexPair();
    const atTask1 = collect(task1);
    const atTask2 = collect(task2);
    const atClient = collect(client);
    const spares = spareUpstreams(upstream2);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'start', reconnect: spares.reconnect } });
    client.write('GET / HTTP/1.1\r\n');
    client.write('\r\n');
    await flush();
    expect(atTask1.text()).toBe('GET / HTTP/1.1\r\n\r\n');
    upstream1.destroy(reset());
    await flush();
    expect(atTask2.text()).toBe('GET / HTTP/1.1\r\n\r\n');
    task2.end('HTTP/1.1 200 OK\r\n\r\n');
    client.end();
    await flush();
    expect(atClient.text()).toBe('HTTP/1.1 200 OK\r\n\r\n');
    expect(atClient.ended()).toBe(true);
    const result = await done;
    expect(result).toMatchObject({ end: 'closed', replays: 1, upstreamRxBytes: 19 });
    expect(spares.failures).toEqual([{ error: 'ECONNRESET', answered: false }]);
    expect(counters.get('mesh_upstream_rq_replay')).toBe(1);
    expect(upstream1.destroyed && upstream2.destroyed && downstream.destroyed).toBe(true);
  });

  it('a FIN before any answer is a failure too; the client’s own FIN follows its bytes to the next upstream', async () => {
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    const [upstream2, task2] = duplexPair();
    collect(task1);
    const atTask2 = collect(task2);
    const atClient = collect(client);
    const done = relay(downstream, upstream1, { counters: relayCounters(), clock: new ManualClock(), replay: { scope: 'start', reconnect: spareUpstreams(upstream2).reconnect } });
    client.end('ping');
    await flush();
    task1.end();
    await flush();
    expect(atTask2.text()).toBe('ping');
    expect(atTask2.ended()).toBe(true);
    expect(atClient.ended()).toBe(false);
    task2.end('pong');
    await flush();
    expect(atClient.text()).toBe('pong');
    expect((await done).replays).toBe(1);
  });

  it('scope start: once the upstream has answered, a failure reaches the client (counted unsafe)', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    const [upstream2] = duplexPair();
    collect(task1);
    collect(client);
    const spares = spareUpstreams(upstream2);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'start', reconnect: spares.reconnect } });
    client.write('GET /1 HTTP/1.1\r\n\r\n');
    await flush();
    task1.write('HTTP/1.1 200 OK\r\n\r\n');
    await flush();
    client.write('GET /2 HTTP/1.1\r\n\r\n');
    await flush();
    upstream1.destroy(reset());
    const result = await done;
    expect(result.end).toBe('upstream-error');
    expect(result.replays).toBeUndefined();
    expect(spares.failures).toEqual([]);
    expect(counters.get('mesh_upstream_rq_replay_unsafe')).toBe(1);
    expect(downstream.destroyed).toBe(true);
  });

  it('scope http: a request sent after earlier answers is replayed; the earlier answer is not sent again', async () => {
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    const [upstream2, task2] = duplexPair();
    const atTask1 = collect(task1);
    const atTask2 = collect(task2);
    const atClient = collect(client);
    const spares = spareUpstreams(upstream2);
    const done = relay(downstream, upstream1, { counters: relayCounters(), clock: new ManualClock(), replay: { scope: 'http', reconnect: spares.reconnect } });
    client.write('GET /1 HTTP/1.1\r\n\r\n');
    await flush();
    task1.write('answer 1;');
    await flush();
    client.write('GET /2 HTTP/1.1\r\n\r\n');
    await flush();
    expect(atTask1.text()).toBe('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n');
    // The keep-alive race (RFC 9112 §9.6): the task closes as the second request arrives.
    task1.end();
    await flush();
    expect(atTask2.text()).toBe('GET /2 HTTP/1.1\r\n\r\n');
    task2.write('answer 2;');
    await flush();
    expect(atClient.text()).toBe('answer 1;answer 2;');
    expect(spares.failures).toEqual([{ error: undefined, answered: true }]);
    client.destroy();
    downstream.destroy();
    expect((await done).replays).toBe(1);
  });

  it('scope http: unanswered bytes that do not start a request (the rest of a body) are not replayed', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    collect(task1);
    collect(client);
    const spares = spareUpstreams(duplexPair()[0]);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'http', reconnect: spares.reconnect } });
    client.write('POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n');
    await flush();
    task1.write('HTTP/1.1 100 Continue\r\n\r\n');
    await flush();
    client.write('body bytes');
    await flush();
    upstream1.destroy(reset());
    expect((await done).end).toBe('upstream-error');
    expect(spares.failures).toEqual([]);
    expect(counters.get('mesh_upstream_rq_replay_unsafe')).toBe(1);
  });

  it('more unanswered bytes than the bound: no replay, counted', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    collect(task1);
    collect(client);
    const spares = spareUpstreams(duplexPair()[0]);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'start', maxBytes: 8, reconnect: spares.reconnect } });
    client.write('12345');
    client.write('67890');
    await flush();
    upstream1.destroy(reset());
    expect((await done).end).toBe('upstream-error');
    expect(spares.failures).toEqual([]);
    expect(counters.get('mesh_upstream_rq_replay_overflow')).toBe(1);
  });

  it('no other upstream: the client sees the failure (reset), counted; replays are bounded', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    const [upstream2, task2] = duplexPair();
    collect(task1);
    collect(task2);
    collect(client);
    const spares = spareUpstreams(upstream2);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'start', reconnect: spares.reconnect } });
    client.write('hello');
    await flush();
    upstream1.destroy(reset());
    await flush();
    upstream2.destroy(reset());
    const result = await done;
    expect(result).toMatchObject({ end: 'upstream-error', replays: 2 });
    expect(spares.failures).toHaveLength(2);
    expect(counters.get('mesh_upstream_rq_replay_failed')).toBe(1);
    expect(downstream.destroyed).toBe(true);
  });

  it('a client that goes while the upstream is connected is no reason to replay', async () => {
    const counters = relayCounters();
    const [client, downstream] = duplexPair();
    const [upstream1, task1] = duplexPair();
    collect(task1);
    const spares = spareUpstreams(duplexPair()[0]);
    const done = relay(downstream, upstream1, { counters, clock: new ManualClock(), replay: { scope: 'start', reconnect: spares.reconnect } });
    client.write('hello');
    await flush();
    downstream.destroy(reset());
    expect((await done).end).toBe('downstream-error');
    expect(spares.failures).toEqual([]);
    expect(counters.get('mesh_upstream_rq_replay')).toBe(0);
  });
});

describe('relay replay, as a property', () => {
  it('whatever the chunks and however the first upstreams fail (reset, FIN, close) before answering, the last one gets every byte once, in order, and the client one answer', async () => {
    const failure = fc.constantFrom('reset' as const, 'fin' as const, 'close' as const);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 5 }), fc.array(failure, { maxLength: 2 }), fc.boolean(), async (chunks, failures, clientFin) => {
        const [client, downstream] = duplexPair();
        const pairs = Array.from({ length: failures.length + 1 }, () => duplexPair());
        const tasks = pairs.map(([, task]) => {
          let bytes = Buffer.alloc(0);
          let ended = false;
          task.on('data', (c: Buffer) => (bytes = Buffer.concat([bytes, c])));
          task.on('end', () => (ended = true));
          task.on('error', () => undefined);
          return { end: task, bytes: () => bytes, ended: () => ended };
        });
        let answer = '';
        client.on('data', (c: Buffer) => (answer += c.toString()));
        client.on('error', () => undefined);
        const spares = spareUpstreams(...pairs.slice(1).map(([u]) => u));
        const done = relay(downstream, pairs[0]![0], { counters: relayCounters(), clock: new ManualClock(), replay: { scope: 'start', reconnect: spares.reconnect } });
        for (const c of chunks) {
          client.write(c);
          await flush();
        }
        if (clientFin) client.end();
        await flush();
        for (const [i, f] of failures.entries()) {
          const [up] = pairs[i]!;
          if (f === 'reset') up.destroy(reset());
          else if (f === 'fin') tasks[i]!.end.end();
          else up.destroy();
          await flush();
          await flush();
        }
        const last = tasks.at(-1)!;
        expect(last.bytes()).toEqual(Buffer.concat(chunks));
        expect(last.ended()).toBe(clientFin);
        last.end.end('answer');
        await flush();
        expect(answer).toBe('answer');
        client.destroy();
        downstream.destroy();
        const result = await done;
        expect(result.replays ?? 0).toBe(failures.length);
        expect(spares.failures.map((f) => f.answered)).toEqual(failures.map(() => false));
      }),
      { numRuns: 200 },
    );
  });
});

describe('relay reset propagation', () => {
  it('an upstream reset aborts a userspace TCP downstream (a RST over the overlay, not a FIN)', async () => {
    const [client, downstream] = duplexPair();
    const [upstream] = duplexPair();
    collect(client);
    let aborted = 0;
    Object.assign(downstream, { connection: { abort: () => aborted++ } });
    const done = relay(downstream, upstream, { counters: relayCounters(), clock: new ManualClock() });
    upstream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    expect((await done).end).toBe('upstream-error');
    expect(aborted).toBe(1);
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
