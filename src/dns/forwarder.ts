/**
 * The forwarder: names that are not Swarm's go to the host's resolvers (as Docker's embedded
 * DNS does with the nameservers of the host's /etc/resolv.conf). Each client query gets a
 * fresh random ID upstream (RFC 5452 §4.3 — the client's ID is restored on the way back), a
 * timeout per attempt and a retry on the next server, and a response is trusted only when it
 * comes from the server asked, carries the ID sent and repeats the question (RFC 5452 §9.1);
 * anything else is ignored and counted. A truncated UDP answer is asked again over TCP
 * (RFC 1035 §4.2.1, RFC 7766 §5). At most `maxOutstanding` client queries are in flight.
 *
 * Upstream I/O is an injected transport and time an injected clock, so every path here runs
 * under a ManualClock with a fake upstream.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import type { Rng } from '../lib/rng.js';
import { DNS_HEADER_LEN, Flag, copyBytes, Rcode, rcodeOf, readU16, sameQuestion, withId } from './message.js';

export interface UpstreamServer {
  readonly address: string;
  readonly port: number;
}

/** One query over TCP; `cancel()` abandons it (closing its connection). */
export interface TcpExchange {
  /** The response message, without its length prefix; rejects when the connection fails. */
  readonly response: Promise<Uint8Array>;
  cancel(): void;
}

export interface UpstreamTransport {
  /** Sends one query datagram; the transport owns `message` from now on. */
  sendUdp(message: Uint8Array, server: UpstreamServer): void;
  /** The one receiver of datagrams from upstream servers; `message` is valid only during the call. */
  onUdpMessage(handler: (message: Uint8Array, from: UpstreamServer) => void): void;
  /** Sends one query over a new TCP connection (RFC 7766 framing is the transport's job). */
  queryTcp(message: Uint8Array, server: UpstreamServer): TcpExchange;
  close(): Promise<void>;
}

export type ForwardFailure = 'no-upstream' | 'capacity' | 'timeout' | 'tcp-failed' | 'closed';
export type ForwardResult = { readonly ok: true; readonly response: Uint8Array } | { readonly ok: false; readonly reason: ForwardFailure };

/** What the resolver needs of a forwarder (the fake in tests implements just this). */
export interface DnsForwarding {
  /**
   * Forwards `query` (a parsed, well-formed query whose question ends at `questionEnd`).
   * Resolves, never rejects: the upstream's response with the client's ID, or why not.
   */
  forward(query: Uint8Array, questionEnd: number): Promise<ForwardResult>;
}

export interface ForwarderOptions {
  readonly servers: readonly UpstreamServer[];
  readonly transport: UpstreamTransport;
  readonly clock: Clock;
  /** Draws upstream IDs: CryptoRng in production, so an off-path spoofer cannot guess them (RFC 5452 §4.3). */
  readonly rng: Rng;
  /**
   * Per attempt. Default 2000 ms: two attempts end before glibc's stub gives up on us (5 s,
   * resolv.conf(5) `timeout`), so the client sees our SERVFAIL rather than its own timeout.
   */
  readonly timeoutMs?: number;
  /** Attempts per query, each on the next server in order (wrapping). Default 2. */
  readonly attempts?: number;
  /** Client queries in flight at once; beyond it a query fails at once with 'capacity'. Default 1024. */
  readonly maxOutstanding?: number;
}

export const FORWARDER_COUNTERS = [
  'dns_forward_queries',
  'dns_forward_udp_sent',
  'dns_forward_tcp_sent',
  'dns_forward_timeouts',
  'dns_forward_retries',
  'dns_forward_ignored_responses',
  'dns_forward_upstream_errors',
  'dns_forward_tcp_errors',
  'dns_forward_rejected_capacity',
  'dns_forward_no_upstream',
  'dns_forward_failed',
  'dns_forward_answered',
] as const;
export type ForwarderCounter = (typeof FORWARDER_COUNTERS)[number];

interface Exchange {
  readonly clientId: number;
  /** The query as forwarded, with the current upstream ID. */
  message: Uint8Array;
  readonly questionEnd: number;
  attempt: number;
  /** Bumped on every new attempt so callbacks of an abandoned one are ignored. */
  epoch: number;
  server: UpstreamServer | undefined;
  upstreamId: number | undefined;
  timer: Timer | undefined;
  tcp: TcpExchange | undefined;
  /** An upstream error answer kept in case no later attempt does better. */
  fallback: Uint8Array | undefined;
  lastFailure: ForwardFailure;
  done: boolean;
  readonly resolve: (result: ForwardResult) => void;
}

export class Forwarder implements DnsForwarding {
  readonly counters = new Counters<ForwarderCounter>(FORWARDER_COUNTERS);
  readonly #transport: UpstreamTransport;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #maxOutstanding: number;
  #servers: readonly UpstreamServer[];
  /** UDP attempts awaiting an answer, by upstream ID. */
  readonly #byId = new Map<number, Exchange>();
  readonly #live = new Set<Exchange>();
  #closed = false;

  constructor(options: ForwarderOptions) {
    this.#servers = [...options.servers];
    this.#transport = options.transport;
    this.#clock = options.clock;
    this.#rng = options.rng;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#attempts = Math.max(1, options.attempts ?? 2);
    // Each query in flight holds one of 65536 upstream IDs.
    this.#maxOutstanding = Math.min(32768, Math.max(1, options.maxOutstanding ?? 1024));
    this.#transport.onUdpMessage((message, from) => this.#onUdp(message, from));
  }

  /** Replaces the upstream list (resolv.conf changed); queries in flight finish on the old one. */
  setServers(servers: readonly UpstreamServer[]): void {
    this.#servers = [...servers];
  }

  get servers(): readonly UpstreamServer[] {
    return this.#servers;
  }

  /** Client queries in flight. */
  get outstanding(): number {
    return this.#live.size;
  }

  forward(query: Uint8Array, questionEnd: number): Promise<ForwardResult> {
    this.counters.inc('dns_forward_queries');
    if (this.#closed) return Promise.resolve({ ok: false, reason: 'closed' });
    if (this.#servers.length === 0) {
      this.counters.inc('dns_forward_no_upstream');
      return Promise.resolve({ ok: false, reason: 'no-upstream' });
    }
    if (this.#live.size >= this.#maxOutstanding) {
      this.counters.inc('dns_forward_rejected_capacity');
      return Promise.resolve({ ok: false, reason: 'capacity' });
    }
    return new Promise<ForwardResult>((resolve) => {
      const exchange: Exchange = {
        clientId: readU16(query, 0),
        message: query,
        questionEnd,
        attempt: 0,
        epoch: 0,
        server: undefined,
        upstreamId: undefined,
        timer: undefined,
        tcp: undefined,
        fallback: undefined,
        lastFailure: 'timeout',
        done: false,
        resolve,
      };
      this.#live.add(exchange);
      this.#next(exchange);
    });
  }

  /** Fails every query in flight with 'closed' and closes the transport. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const exchange of [...this.#live]) this.#finish(exchange, { ok: false, reason: 'closed' });
    await this.#transport.close();
  }

  /** Starts the next UDP attempt, or ends the exchange when attempts are spent. */
  #next(exchange: Exchange): void {
    this.#abandonAttempt(exchange);
    if (exchange.attempt >= this.#attempts) {
      if (exchange.fallback) this.#finish(exchange, { ok: true, response: exchange.fallback });
      else {
        this.counters.inc('dns_forward_failed');
        this.#finish(exchange, { ok: false, reason: exchange.lastFailure });
      }
      return;
    }
    if (exchange.attempt > 0) this.counters.inc('dns_forward_retries');
    const server = this.#servers[exchange.attempt % this.#servers.length]!;
    exchange.attempt++;
    const id = this.#freshId();
    exchange.server = server;
    exchange.upstreamId = id;
    exchange.message = withId(exchange.message, id);
    this.#byId.set(id, exchange);
    const epoch = exchange.epoch;
    exchange.timer = this.#clock.setTimer(this.#timeoutMs, () => {
      if (exchange.epoch !== epoch || exchange.done) return;
      this.counters.inc('dns_forward_timeouts');
      exchange.lastFailure = 'timeout';
      this.#next(exchange);
    });
    this.counters.inc('dns_forward_udp_sent');
    // The transport owns what it is given; the exchange keeps its own copy for matching.
    this.#transport.sendUdp(copyBytes(exchange.message), server);
  }

  #onUdp(message: Uint8Array, from: UpstreamServer): void {
    const exchange = message.length >= DNS_HEADER_LEN ? this.#byId.get(readU16(message, 0)) : undefined;
    if (!exchange || !exchange.server || exchange.server.port !== from.port || exchange.server.address !== from.address) {
      this.counters.inc('dns_forward_ignored_responses');
      return;
    }
    const flags = readU16(message, 2);
    const qdcount = readU16(message, 4);
    const rcode = rcodeOf(flags);
    const matches = (flags & Flag.QR) !== 0 && qdcount === 1 && sameQuestion(exchange.message, exchange.questionEnd, message);
    // Some servers answer FORMERR/NOTIMP/SERVFAIL without echoing the question; that is still their answer.
    const questionlessError = (flags & Flag.QR) !== 0 && qdcount === 0 && rcode !== Rcode.NOERROR && rcode !== Rcode.NXDOMAIN;
    if (!matches && !questionlessError) {
      this.counters.inc('dns_forward_ignored_responses');
      return;
    }
    this.#byId.delete(exchange.upstreamId!);
    exchange.upstreamId = undefined;
    if (matches && flags & Flag.TC) {
      this.#askOverTcp(exchange, exchange.server);
      return;
    }
    this.#judge(exchange, copyBytes(message));
  }

  /** A matching answer: pass it on, or on a server failure try the next server (glibc's stub does the same). */
  #judge(exchange: Exchange, message: Uint8Array): void {
    const rcode = rcodeOf(readU16(message, 2));
    if (rcode === Rcode.SERVFAIL || rcode === Rcode.REFUSED || rcode === Rcode.NOTIMP || rcode === Rcode.FORMERR) {
      this.counters.inc('dns_forward_upstream_errors');
      exchange.fallback = message;
      this.#next(exchange);
      return;
    }
    this.counters.inc('dns_forward_answered');
    this.#finish(exchange, { ok: true, response: message });
  }

  #askOverTcp(exchange: Exchange, server: UpstreamServer): void {
    this.#abandonAttempt(exchange);
    const epoch = exchange.epoch;
    this.counters.inc('dns_forward_tcp_sent');
    const tcp = this.#transport.queryTcp(copyBytes(exchange.message), server);
    exchange.tcp = tcp;
    exchange.timer = this.#clock.setTimer(this.#timeoutMs, () => {
      if (exchange.epoch !== epoch || exchange.done) return;
      this.counters.inc('dns_forward_timeouts');
      exchange.lastFailure = 'timeout';
      this.#next(exchange);
    });
    tcp.response.then(
      (message) => {
        if (exchange.epoch !== epoch || exchange.done) return;
        const ok =
          message.length >= DNS_HEADER_LEN &&
          readU16(message, 0) === readU16(exchange.message, 0) &&
          (readU16(message, 2) & Flag.QR) !== 0 &&
          readU16(message, 4) === 1 &&
          sameQuestion(exchange.message, exchange.questionEnd, message);
        if (!ok) {
          this.counters.inc('dns_forward_ignored_responses');
          exchange.lastFailure = 'tcp-failed';
          this.#next(exchange);
          return;
        }
        this.#judge(exchange, copyBytes(message));
      },
      () => {
        if (exchange.epoch !== epoch || exchange.done) return;
        this.counters.inc('dns_forward_tcp_errors');
        exchange.lastFailure = 'tcp-failed';
        this.#next(exchange);
      },
    );
  }

  /** Stops listening for the current attempt: timer, UDP ID, TCP connection. */
  #abandonAttempt(exchange: Exchange): void {
    exchange.epoch++;
    exchange.timer?.cancel();
    exchange.timer = undefined;
    if (exchange.upstreamId !== undefined) this.#byId.delete(exchange.upstreamId);
    exchange.upstreamId = undefined;
    exchange.tcp?.cancel();
    exchange.tcp = undefined;
  }

  #finish(exchange: Exchange, result: ForwardResult): void {
    if (exchange.done) return;
    this.#abandonAttempt(exchange);
    exchange.done = true;
    this.#live.delete(exchange);
    exchange.resolve(result.ok ? { ok: true, response: withId(result.response, exchange.clientId) } : result);
  }

  /** A random 16-bit ID not in use (RFC 5452 §4.3); the table is far from full (maxOutstanding ≪ 65536). */
  #freshId(): number {
    for (let i = 0; i < 64; i++) {
      const id = this.#rng.int(0x10000);
      if (!this.#byId.has(id)) return id;
    }
    for (let id = 0; id < 0x10000; id++) if (!this.#byId.has(id)) return id;
    return 0;
  }
}
