/**
 * The embedded DNS put together for the agent: the host's resolv.conf read, a forwarder on
 * real sockets, the resolver over the agent's records, and UDP and TCP listeners on the first
 * address that binds — 127.0.0.11:53 where the agent may (Docker's address), else the
 * configured fallback. More listeners (the overlay's UDP) attach later through `resolver`.
 */
import type { Clock } from '../lib/clock.js';
import type { AnswerCacheOptions } from './answer-cache.js';
import { DnsSocketError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { SeededRng, type Rng } from '../lib/rng.js';
import { Forwarder, type ForwarderOptions, type UpstreamServer } from './forwarder.js';
import { readResolvConf } from './node-resolv-conf.js';
import { startTcpDnsServer, type TcpDnsServer, type TcpDnsServerOptions } from './node-tcp-server.js';
import { startUdpDnsServer, type UdpDnsServer } from './node-udp-server.js';
import { openUpstreamTransport } from './node-upstream.js';
import type { DnsRecords, DnsView } from './records.js';
import { DnsResolver, type DnsResolverOptions } from './resolver.js';
import { EMBEDDED_DNS_ADDRESS, selectUpstreams } from './resolv-conf.js';

export interface ListenAddress {
  readonly address: string;
  readonly port: number;
}

export const DEFAULT_LISTEN: readonly ListenAddress[] = [{ address: EMBEDDED_DNS_ADDRESS, port: 53 }];

export interface EmbeddedDnsOptions {
  readonly records: DnsRecords;
  readonly clock: Clock;
  /** Upstream query IDs come from it (pass CryptoRng); answer shuffling from a fast generator it seeds. */
  readonly rng: Rng;
  /** Tried in order; the first where both UDP and TCP bind is used. Default 127.0.0.11:53. */
  readonly listen?: readonly ListenAddress[];
  /** Answer form for clients of these listeners. Default 'host': they are host processes. */
  readonly view?: DnsView;
  /** Upstreams; default the nameservers of `resolvConfPath`. */
  readonly upstreams?: readonly UpstreamServer[];
  readonly resolvConfPath?: string;
  /** Use resolv.conf's search domains as the resolver's searchDomains. Default false (Docker's behaviour). */
  readonly stripSearchDomains?: boolean;
  readonly resolver?: Pick<DnsResolverOptions, 'ttl' | 'maxUdpPayload' | 'forwardSingleLabel' | 'searchDomains'>;
  readonly forwarder?: Pick<ForwarderOptions, 'timeoutMs' | 'attempts' | 'maxOutstanding'>;
  readonly tcp?: Pick<TcpDnsServerOptions, 'idleTimeoutMs' | 'maxConnections' | 'maxInFlight'>;
  /**
   * The resolver's answer cache (answer-cache.ts) on `clock`. Default: on when the records
   * have `version()` (changes are then seen by the next query), off otherwise; `false` turns
   * it off, an object turns it on with these bounds (answers then lag changes by ≤ ttlMs).
   */
  readonly answerCache?: false | Omit<AnswerCacheOptions, 'clock'>;
  /** Logs where it listens, what it forwards to, and addresses it could not bind. */
  readonly logger?: Logger;
}

export interface EmbeddedDns {
  readonly resolver: DnsResolver;
  readonly forwarder: Forwarder;
  readonly udp: UdpDnsServer;
  readonly tcp: TcpDnsServer;
  /** Where it listens. */
  readonly address: string;
  readonly port: number;
  /** Every DNS counter, for /metrics. */
  counters(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

/** Throws DnsSocketError when no listen address binds (the last bind error is its cause). */
export async function startEmbeddedDns(options: EmbeddedDnsOptions): Promise<EmbeddedDns> {
  const candidates = options.listen ?? DEFAULT_LISTEN;
  const conf = await readResolvConf(options.resolvConfPath);
  const transport = await openUpstreamTransport();
  const forwarder = new Forwarder({
    servers: options.upstreams ?? selectUpstreams(conf, candidates),
    transport,
    clock: options.clock,
    rng: options.rng,
    ...options.forwarder,
  });
  const answerCache = options.answerCache ?? (options.records.version ? {} : false);
  const resolver = new DnsResolver({
    records: options.records,
    rng: new SeededRng(options.rng.u32()),
    forwarder,
    ...options.resolver,
    ...(answerCache && { answerCache: { clock: options.clock, ...answerCache } }),
    searchDomains: options.resolver?.searchDomains ?? (options.stripSearchDomains ? conf.search : []),
  });
  const view = options.view ?? 'host';
  const logger = options.logger ?? silentLogger;

  let lastError: unknown;
  for (const candidate of candidates) {
    let udp: UdpDnsServer | undefined;
    try {
      udp = await startUdpDnsServer({ ...candidate, handler: resolver, view });
      const tcp = await startTcpDnsServer({ ...candidate, port: udp.port, handler: resolver, clock: options.clock, view, ...options.tcp });
      logger.info({ address: udp.address, port: udp.port, upstreams: forwarder.servers }, 'embedded DNS listening');
      return {
        resolver,
        forwarder,
        udp,
        tcp,
        address: udp.address,
        port: udp.port,
        counters: () => ({ ...resolver.counters.snapshot(), ...forwarder.counters.snapshot(), ...udp!.counters.snapshot(), ...tcp.counters.snapshot() }),
        close: async () => {
          await Promise.all([udp!.close(), tcp.close()]);
          await forwarder.close();
        },
      };
    } catch (error) {
      lastError = error;
      logger.warn({ address: candidate.address, port: candidate.port, err: error }, 'embedded DNS cannot listen here');
      await udp?.close();
    }
  }
  await forwarder.close();
  throw new DnsSocketError(`Cannot listen for DNS on ${candidates.map((c) => `${c.address}:${c.port}`).join(', ')}`, { cause: lastError });
}
