import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FUZZ_RUNS } from '../helpers/fuzz.js';
import { Forwarder, type ForwardResult, type TcpExchange, type UpstreamServer, type UpstreamTransport } from '../../src/dns/forwarder.js';
import { questionEnd } from '../../src/dns/message.js';
import { DnsResolver } from '../../src/dns/resolver.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { HOST_CLIENT, answersOf, decode, query, swarmRecords, upstreamAnswer } from './fixtures.js';

const NS1: UpstreamServer = { address: '198.18.5.1', port: 53 };
const NS2: UpstreamServer = { address: '198.18.5.2', port: 53 };
const TC = 0x0200;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

interface TcpCall {
  readonly message: Uint8Array;
  readonly server: UpstreamServer;
  resolve(bytes: Uint8Array): void;
  reject(error: Error): void;
  cancelled: boolean;
}

/** An upstream that records what the forwarder sends and answers only when the test says. */
class FakeUpstream implements UpstreamTransport {
  readonly udp: { message: Uint8Array; server: UpstreamServer }[] = [];
  readonly tcp: TcpCall[] = [];
  #handler: (message: Uint8Array, from: UpstreamServer) => void = () => {};
  closed = false;

  sendUdp(message: Uint8Array, server: UpstreamServer): void {
    this.udp.push({ message, server });
  }
  onUdpMessage(handler: (message: Uint8Array, from: UpstreamServer) => void): void {
    this.#handler = handler;
  }
  queryTcp(message: Uint8Array, server: UpstreamServer): TcpExchange {
    let call!: TcpCall;
    const response = new Promise<Uint8Array>((resolve, reject) => {
      call = { message, server, resolve, reject, cancelled: false };
    });
    response.catch(() => {});
    this.tcp.push(call);
    return { response, cancel: () => (call.cancelled = true) };
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  /** Delivers a datagram as if from `from`. */
  reply(from: UpstreamServer, bytes: Uint8Array): void {
    this.#handler(bytes, from);
  }
  /** The last UDP query sent, and the answer `answers` to it. */
  last(): { message: Uint8Array; server: UpstreamServer } {
    const entry = this.udp.at(-1);
    if (!entry) throw new Error('Nothing sent');
    return entry;
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(options: { servers?: UpstreamServer[]; maxOutstanding?: number; attempts?: number } = {}) {
  const clock = new ManualClock();
  const upstream = new FakeUpstream();
  const forwarder = new Forwarder({ servers: options.servers ?? [NS1, NS2], transport: upstream, clock, rng: new SeededRng(9), timeoutMs: 1000, ...options });
  /** Starts forwarding a query and returns its settled result later. */
  const forward = (bytes: Uint8Array): { result: ForwardResult | undefined; done: Promise<ForwardResult> } => {
    const state: { result: ForwardResult | undefined; done: Promise<ForwardResult> } = { result: undefined, done: Promise.resolve({ ok: false, reason: 'closed' }) };
    state.done = forwarder.forward(bytes, questionEnd(bytes)).then((r) => (state.result = r));
    return state;
  };
  return { clock, upstream, forwarder, forward };
}

const A_ANSWER = (name: string) => [{ type: 'A' as const, name, ttl: 60, data: '192.0.2.7' }];

describe('forwarder', () => {
  it('sends the query upstream under a fresh ID and gives the answer back under the client ID', async () => {
    const { upstream, forward, forwarder, clock } = setup();
    const q = query('example.com', 'A', { id: 4242 });
    const pending = forward(q);
    const sent = upstream.last();
    expect(sent.server).toEqual(NS1);
    expect(decode(sent.message).questions).toEqual(decode(q).questions);
    const upstreamId = decode(sent.message).id;
    upstream.reply(NS1, upstreamAnswer(sent.message, A_ANSWER('example.com')));
    const result = await pending.done;
    expect(result.ok).toBe(true);
    const r = decode(result.ok ? result.response : new Uint8Array());
    expect(r.id).toBe(4242);
    expect(answersOf(r)).toEqual(['192.0.2.7']);
    // Upstream IDs are random, not the client's (RFC 5452): over several queries at least one differs.
    const ids = new Set([upstreamId]);
    for (let i = 0; i < 4; i++) {
      void forward(q);
      ids.add(decode(upstream.last().message).id);
    }
    expect(ids.size).toBeGreaterThan(1);
    expect(forwarder.counters.get('dns_forward_answered')).toBe(1);
    await forwarder.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('retries on the next server after a timeout', async () => {
    const { upstream, forward, clock, forwarder } = setup();
    const pending = forward(query('example.com'));
    clock.advance(999);
    expect(upstream.udp).toHaveLength(1);
    clock.advance(1);
    expect(upstream.udp).toHaveLength(2);
    expect(upstream.last().server).toEqual(NS2);
    upstream.reply(NS2, upstreamAnswer(upstream.last().message, A_ANSWER('example.com')));
    const result = await pending.done;
    expect(result.ok).toBe(true);
    expect(forwarder.counters.get('dns_forward_timeouts')).toBe(1);
    expect(forwarder.counters.get('dns_forward_retries')).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fails with timeout when every attempt times out; the resolver turns it into SERVFAIL', async () => {
    const clock = new ManualClock();
    const upstream = new FakeUpstream();
    const forwarder = new Forwarder({ servers: [NS1, NS2], transport: upstream, clock, rng: new SeededRng(1), timeoutMs: 1000 });
    const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1), forwarder });
    const outcome = resolver.handle(query('slow.example', 'A', { id: 99 }), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    clock.advance(2000);
    const r = decode(outcome.kind === 'forwarded' ? await outcome.response : new Uint8Array());
    expect(r.rcode).toBe('SERVFAIL');
    expect(r.id).toBe(99);
    expect(upstream.udp.map((u) => u.server)).toEqual([NS1, NS2]);
    expect(forwarder.counters.get('dns_forward_failed')).toBe(1);
    expect(resolver.counters.get('dns_responses_servfail')).toBe(1);
  });

  it('ignores responses with the wrong ID, from the wrong server or port, or for another question', async () => {
    const { upstream, forward, forwarder } = setup();
    const pending = forward(query('example.com'));
    const sent = upstream.last().message;
    const right = upstreamAnswer(sent, A_ANSWER('example.com'));
    const wrongId = Buffer.from(right);
    wrongId.writeUInt16BE((wrongId.readUInt16BE(0) + 1) & 0xffff, 0);
    upstream.reply(NS1, wrongId);
    upstream.reply(NS2, right);
    upstream.reply({ address: NS1.address, port: 5353 }, right);
    const otherQuestion = Buffer.from(query('example.org'));
    otherQuestion.writeUInt16BE(Buffer.from(sent).readUInt16BE(0), 0);
    upstream.reply(NS1, upstreamAnswer(otherQuestion, A_ANSWER('example.org')));
    upstream.reply(NS1, new Uint8Array([1, 2, 3]));
    await flush();
    expect(pending.result).toBeUndefined();
    expect(forwarder.counters.get('dns_forward_ignored_responses')).toBe(5);
    upstream.reply(NS1, right);
    expect((await pending.done).ok).toBe(true);
  });

  it('accepts the question echoed in another letter case (0x20)', async () => {
    const { upstream, forward } = setup();
    const pending = forward(query('Example.COM'));
    const sent = Buffer.from(upstream.last().message);
    const echoed = upstreamAnswer(query('eXAMPLE.com', 'A', { id: sent.readUInt16BE(0) }), A_ANSWER('example.com'));
    upstream.reply(NS1, echoed);
    expect((await pending.done).ok).toBe(true);
  });

  it('ignores an answer that arrives after its attempt timed out', async () => {
    const { upstream, forward, clock, forwarder } = setup();
    const pending = forward(query('example.com'));
    const first = upstream.last().message;
    clock.advance(1000);
    upstream.reply(NS1, upstreamAnswer(first, A_ANSWER('example.com')));
    await flush();
    expect(pending.result).toBeUndefined();
    expect(forwarder.counters.get('dns_forward_ignored_responses')).toBe(1);
    upstream.reply(NS2, upstreamAnswer(upstream.last().message, A_ANSWER('example.com')));
    expect((await pending.done).ok).toBe(true);
  });

  it('asks again over TCP when the UDP answer is truncated, and passes the full answer on', async () => {
    const { upstream, forward, forwarder, clock } = setup();
    const pending = forward(query('big.example'));
    const sent = upstream.last().message;
    upstream.reply(NS1, upstreamAnswer(sent, [], { flags: TC }));
    expect(upstream.tcp).toHaveLength(1);
    expect(upstream.tcp[0]!.server).toEqual(NS1);
    const many = Array.from({ length: 50 }, (_, i) => ({ type: 'A' as const, name: 'big.example', ttl: 60, data: `192.0.2.${i}` }));
    upstream.tcp[0]!.resolve(upstreamAnswer(upstream.tcp[0]!.message, many));
    const result = await pending.done;
    expect(result.ok && decode(result.response).answers).toHaveLength(50);
    expect(forwarder.counters.get('dns_forward_tcp_sent')).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('moves to the next server when the TCP retry fails or hangs', async () => {
    const { upstream, forward, clock, forwarder } = setup({ attempts: 3 });
    const pending = forward(query('big.example'));
    upstream.reply(NS1, upstreamAnswer(upstream.last().message, [], { flags: TC }));
    upstream.tcp[0]!.reject(new Error('ECONNREFUSED'));
    await flush();
    expect(upstream.last().server).toEqual(NS2);
    expect(forwarder.counters.get('dns_forward_tcp_errors')).toBe(1);
    upstream.reply(NS2, upstreamAnswer(upstream.last().message, [], { flags: TC }));
    expect(upstream.tcp).toHaveLength(2);
    clock.advance(1000);
    expect(upstream.tcp[1]!.cancelled).toBe(true);
    expect(upstream.udp).toHaveLength(3);
    upstream.reply(NS1, upstreamAnswer(upstream.last().message, A_ANSWER('big.example')));
    expect((await pending.done).ok).toBe(true);
  });

  it('tries the next server on SERVFAIL, and passes the last SERVFAIL on when none does better', async () => {
    const { upstream, forward, forwarder } = setup();
    const first = forward(query('broken.example'));
    upstream.reply(NS1, upstreamAnswer(upstream.last().message, [], { rcode: RCODE_SERVFAIL }));
    expect(upstream.last().server).toEqual(NS2);
    upstream.reply(NS2, upstreamAnswer(upstream.last().message, A_ANSWER('broken.example')));
    const ok = await first.done;
    expect(ok.ok && answersOf(decode(ok.response))).toEqual(['192.0.2.7']);

    const second = forward(query('broken.example', 'A', { id: 5 }));
    upstream.reply(NS1, upstreamAnswer(upstream.last().message, [], { rcode: RCODE_SERVFAIL }));
    upstream.reply(NS2, upstreamAnswer(upstream.last().message, [], { rcode: RCODE_SERVFAIL }));
    const failed = await second.done;
    expect(failed.ok && decode(failed.response).rcode).toBe('SERVFAIL');
    expect(failed.ok && decode(failed.response).id).toBe(5);
    expect(forwarder.counters.get('dns_forward_upstream_errors')).toBe(3);
  });

  it('passes NXDOMAIN on at once: it is an answer, not a failure', async () => {
    const { upstream, forward } = setup();
    const pending = forward(query('nosuch.example'));
    upstream.reply(NS1, upstreamAnswer(upstream.last().message, [], { rcode: RCODE_NXDOMAIN }));
    const result = await pending.done;
    expect(result.ok && decode(result.response).rcode).toBe('NXDOMAIN');
    expect(upstream.udp).toHaveLength(1);
  });

  it('bounds the queries in flight and refuses the rest at once', async () => {
    const { forward, forwarder, upstream } = setup({ maxOutstanding: 2 });
    forward(query('a.example'));
    forward(query('b.example'));
    const third = forward(query('c.example'));
    expect(await third.done).toEqual({ ok: false, reason: 'capacity' });
    expect(upstream.udp).toHaveLength(2);
    expect(forwarder.outstanding).toBe(2);
    expect(forwarder.counters.get('dns_forward_rejected_capacity')).toBe(1);
  });

  it('ignores any bytes an upstream sends, and still takes the real answer after them', async () => {
    const { upstream, forward, forwarder } = setup();
    const pending = forward(query('example.com'));
    const sent = upstream.last().message;
    const id = Buffer.from(sent).readUInt16BE(0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (junk, withId) => {
        const bytes = Buffer.from(junk);
        // Half the time the junk carries the right ID, so it reaches the question check.
        if (withId && bytes.length >= 2) bytes.writeUInt16BE(id, 0);
        if (withId && bytes.length >= 4) bytes[2] = (bytes[2]! & 0xfd) | 0x80; // QR set, TC clear
        if (withId && bytes.length >= 6) bytes.writeUInt16BE(1, 4);
        upstream.reply(NS1, bytes);
      }),
      { numRuns: FUZZ_RUNS },
    );
    // Junk that happened to be a well-formed answer to the question would have settled it; none can be.
    expect(pending.result).toBeUndefined();
    expect(forwarder.counters.get('dns_forward_ignored_responses')).toBe(FUZZ_RUNS);
    upstream.reply(NS1, upstreamAnswer(sent, A_ANSWER('example.com')));
    expect((await pending.done).ok).toBe(true);
  });

  it('fails at once without upstream servers', async () => {
    const { forward } = setup({ servers: [] });
    expect(await forward(query('example.com')).done).toEqual({ ok: false, reason: 'no-upstream' });
  });

  it('fails queries in flight when closed, and closes the transport', async () => {
    const { forward, forwarder, upstream, clock } = setup();
    const pending = forward(query('example.com'));
    await forwarder.close();
    expect(await pending.done).toEqual({ ok: false, reason: 'closed' });
    expect(upstream.closed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });
});
