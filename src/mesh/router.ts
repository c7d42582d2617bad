/**
 * The routing mesh's decision for one downstream connection (ARCHITECTURE.md, "The north–south
 * path"): published port → service → healthy endpoints from the endpoint table → balancer →
 * upstream connector (local: kernel TCP to the task's host port; remote: userspace TCP over the
 * overlay to the task's overlay address) → relay. Listeners (node-ingress.ts) only accept
 * connections and hand them here; this file does no I/O of its own.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { Rng } from '../lib/rng.js';
import { ConnectionResetError } from '../lib/errors.js';
import { formatIpv4Address, parseIpv4Address } from '../wire/address.js';
import { encodeProxyHeader } from '../wire/proxy-protocol.js';
import { Balancer, type BalancerOptions } from './balancer.js';
import type { EndpointRow, Health, PortProtocol } from './endpoint-codec.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { DEFAULT_REPLAY_MAX_BYTES, type RelayCounter, type RelayResult, type ReplayPolicy, connectWithRetry, relay, relayCounters } from './relay.js';
import { type EndpointIdentity, ServiceMetrics, type ServiceMetricsOptions } from './service-metrics.js';
import type { Counters } from '../lib/counters.js';

/**
 * What a published port's application speaks, where the mesh needs to know: `http` (HTTP/1)
 * lets the relay replay a request that an upstream dropped between requests of a keep-alive
 * connection (relay.ts `ReplayPolicy`). Declared in the catalog by `app_protocol: http` (compose's
 * long port syntax) and for swarm services by a PortConfig named `http` (or `http-…`):
 * `appProtocolOfPortName`.
 */
export type AppProtocol = 'http';

/** PROXY protocol toward the task (HAProxy's proxy-protocol.txt): the header version the ingress writes. */
export type ProxyProtocolMode = 'v1' | 'v2';

/** A port a service publishes on every node (Swarm's `mode: ingress`). */
export interface PublishedPort {
  readonly service: string;
  readonly protocol: PortProtocol;
  /** The port every node listens on. */
  readonly published: number;
  /** The service's port that tasks serve (looked up in each endpoint row's ports). */
  readonly target: number;
  /** Absent: any protocol (only bytes the upstream never answered at all are replayed). */
  readonly appProtocol?: AppProtocol;
  /**
   * Absent: none. Otherwise the ingress node writes a PROXY header carrying the client's address
   * and the published address before the first byte, on every upstream connection it opens for
   * the client (a replay's too); the task's node relays it unchanged. The task must expect it.
   */
  readonly proxyProtocol?: ProxyProtocolMode;
}

/** The service label that asks for PROXY protocol on a swarm service's published ports (`v1` or `v2`). */
export const PROXY_PROTOCOL_LABEL = 'shoal.proxy-protocol';

/** A swarm PortConfig's Name → its app protocol: `http` and `http-*` (Kubernetes' appProtocol/port-name convention) are HTTP. */
export function appProtocolOfPortName(name: string | undefined): AppProtocol | undefined {
  if (name === undefined) return undefined;
  const n = name.toLowerCase();
  return n === 'http' || n.startsWith('http-') ? 'http' : undefined;
}

/** The value of PROXY_PROTOCOL_LABEL → the mode; undefined for anything else (absent, `off`, junk). */
export function proxyProtocolOfLabel(value: string | undefined): ProxyProtocolMode | undefined {
  return value === 'v1' || value === 'v2' ? value : undefined;
}

/** Where an endpoint is reached, and whether through the local kernel or the overlay. */
export interface Upstream {
  /** The endpoint table key of the task (balancer state is per task). */
  readonly key: string;
  readonly local: boolean;
  readonly row: EndpointRow;
  /** Local: the task's host address; remote: its overlay address. Dotted quad. */
  readonly host: string;
  /** Local: the task's host port; remote: the target port. */
  readonly port: number;
}

/** Opens a connection to an upstream; resolves once connected, rejects when it cannot be. */
export type UpstreamConnector = (upstream: Upstream) => Promise<Duplex>;

/** Health states that take traffic: Swarm keeps a task with a health check out of the balancer until it is healthy. */
export function isRoutable(health: Health): boolean {
  return health === 'none' || health === 'healthy';
}

export interface MeshRouterOptions {
  readonly table: EndpointTable;
  readonly clock: Clock;
  readonly rng: Rng;
  /** Kernel TCP to a task on this node (node-upstream.ts `connectLocal`). */
  readonly connectLocal: UpstreamConnector;
  /**
   * Userspace TCP over the overlay to a task on another node. Until the overlay TCP stack is
   * wired, leave it out: remote endpoints are then not candidates at all (a node with no local
   * task closes the connection at once, counted as `none_healthy`).
   */
  readonly connectRemote?: UpstreamConnector;
  /** Endpoints tried per downstream connection (default 3). */
  readonly maxConnectAttempts?: number;
  readonly connectTimeoutMs?: number;
  /** 0 (default): idle connections are never cut. */
  readonly idleTimeoutMs?: number;
  /**
   * Unanswered client bytes kept per connection for a replay on another endpoint when the
   * upstream fails before answering (relay.ts `ReplayPolicy`); default 64 KiB; 0: never replay.
   */
  readonly replayMaxBytes?: number;
  readonly balancer?: Omit<BalancerOptions, 'clock' | 'rng'>;
  /** Per-service label bounds (service-metrics.ts). */
  readonly metrics?: ServiceMetricsOptions;
  readonly logger?: Logger;
}

export const DEFAULT_MAX_CONNECT_ATTEMPTS = 3;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** The addresses a downstream socket shows (node:net's; anything else may show none). */
interface SocketAddresses {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

export class MeshRouter {
  readonly counters: Counters<RelayCounter> = relayCounters();
  /** Per service and per endpoint: render with `serviceMetrics.render(labels)`. */
  readonly serviceMetrics: ServiceMetrics;
  readonly balancer: Balancer;
  readonly #table: EndpointTable;
  readonly #clock: Clock;
  readonly #connectLocal: UpstreamConnector;
  readonly #connectRemote: UpstreamConnector | undefined;
  readonly #maxAttempts: number;
  readonly #connectTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #replayMaxBytes: number;
  readonly #log: Logger;
  readonly #active = new Set<Duplex>();
  /** Upstream sockets open now, by endpoint key: reset at once when the endpoint's node dies. */
  readonly #upstreamsByEndpoint = new Map<string, Set<Duplex>>();
  readonly #unsubscribe: () => void;
  /** upstreams() per service, target and protocol, until the table changes: the hot path reads it per connection. */
  readonly #cache = new Map<string, readonly Upstream[]>();

  constructor(options: MeshRouterOptions) {
    this.#table = options.table;
    this.#clock = options.clock;
    this.#connectLocal = options.connectLocal;
    this.#connectRemote = options.connectRemote;
    this.#maxAttempts = options.maxConnectAttempts ?? DEFAULT_MAX_CONNECT_ATTEMPTS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.#replayMaxBytes = options.replayMaxBytes ?? DEFAULT_REPLAY_MAX_BYTES;
    this.#log = (options.logger ?? silentLogger).child({ component: 'mesh-router' });
    this.balancer = new Balancer({ clock: options.clock, rng: options.rng, ...options.balancer });
    this.serviceMetrics = new ServiceMetrics(options.metrics);
    this.#unsubscribe = this.#table.subscribe((e) => {
      this.#cache.clear();
      if (e.type !== 'removed') return;
      const key = rowKey(e.row.service, e.row.taskId);
      this.balancer.forget(key);
      this.serviceMetrics.forgetEndpoint(key);
      // A withdrawn row drains: its connections finish on their own. A dead member's never will:
      // reset them now, so their clients (or the relay's replay) move on instead of hanging.
      if (e.reason === 'member-dead') this.#resetEndpoint(key, e.row.node);
    });
  }

  /** Downstream connections being relayed now (Envoy's `downstream_cx_active`). */
  get activeConnections(): number {
    return this.#active.size;
  }

  /** Upstream connections open now to one endpoint (for tests and debugging). */
  upstreamConnections(key: string): number {
    return this.#upstreamsByEndpoint.get(key)?.size ?? 0;
  }

  /**
   * The endpoints a new connection to `service`'s `target` port may go to: routable rows that
   * serve that port, local ones always, remote ones when a remote connector is set.
   */
  upstreams(service: string, target: number, protocol: PortProtocol = 'tcp'): readonly Upstream[] {
    const cacheKey = `${protocol}/${target}/${service}`;
    const cached = this.#cache.get(cacheKey);
    if (cached) return cached;
    const out: Upstream[] = [];
    const nodeName = this.#table.nodeName;
    for (const row of this.#table.endpoints(service)) {
      if (!isRoutable(row.health)) continue;
      const port = row.ports.find((p) => p.protocol === protocol && p.target === target);
      if (!port) continue;
      const local = row.node === nodeName;
      if (!local && (!this.#connectRemote || protocol !== 'tcp')) continue;
      out.push({
        key: rowKey(row.service, row.taskId),
        local,
        row,
        host: formatIpv4Address(local ? row.hostAddress : row.overlayAddress),
        port: local ? port.hostPort : port.target,
      });
    }
    // Bounded by the number of published ports (every key is one of them, or a test's query).
    if (this.#cache.size < 4096) this.#cache.set(cacheKey, out);
    return out;
  }

  /**
   * Takes over one accepted downstream TCP connection for `published` and relays it to a
   * healthy endpoint, retrying a failed connect on others, and replaying unanswered bytes on
   * another endpoint when the upstream fails before answering them (`replayMaxBytes`). With no
   * endpoint, the downstream is closed at once. Resolves when the connection is over (never rejects).
   */
  async handle(downstream: Duplex, published: PublishedPort): Promise<RelayResult | undefined> {
    const service = published.service;
    const startedAt = this.#clock.now();
    this.counters.inc('mesh_downstream_cx_total');
    this.serviceMetrics.inc(service, 'mesh_service_downstream_cx_total');
    this.#active.add(downstream);
    // Until the relay takes over: an error (client reset during our connect) must not be unhandled.
    let early: Error | undefined;
    const onEarlyError = (error: Error): void => {
      early ??= error;
    };
    downstream.on('error', onEarlyError);
    const preamble = published.proxyProtocol ? proxyHeaderFor(published.proxyProtocol, downstream as SocketAddresses) : undefined;
    const tried = new Set<string>();
    let current: Upstream | undefined;
    let currentSocket: Duplex | undefined;
    const connectOnce = async (): Promise<Duplex | undefined> => {
      const connected = await connectWithRetry({
        endpoints: this.upstreams(service, published.target, 'tcp'),
        exclude: tried,
        balancer: this.balancer,
        connect: (u) => this.#connect(u, service, preamble),
        maxAttempts: this.#maxAttempts,
        connectTimeoutMs: this.#connectTimeoutMs,
        clock: this.#clock,
        counters: this.counters,
      });
      if (!connected) return undefined;
      tried.add(connected.endpoint.key);
      current = connected.endpoint;
      currentSocket = connected.socket;
      this.#track(current.key, currentSocket);
      return connected.socket;
    };
    /** The current upstream is done with: release it, and eject it when it failed badly. */
    const letGo = (failure: { error: Error | undefined } | undefined): void => {
      if (!current || !currentSocket) return;
      this.#untrack(current.key, currentSocket);
      this.balancer.release(current.key);
      // Passive health: a reset ejects, as before replay existed. A clean close before an
      // answer does not: a task that closes on a client's junk is not failing, and ejecting on it
      // would let one client eject every endpoint it reaches by replay. (A task that died is
      // ejected by the refused connects that follow.)
      if (failure && isReset(failure.error)) {
        const ms = this.balancer.reportFailure(current.key);
        this.#log.debug({ endpoint: current.key, ejectMs: ms }, 'Upstream failed: endpoint ejected');
      }
      current = undefined;
      currentSocket = undefined;
    };
    try {
      const first = await connectOnce();
      if (!first) {
        this.counters.inc('mesh_downstream_cx_destroy');
        this.serviceMetrics.inc(service, 'mesh_service_downstream_cx_no_upstream');
        downstream.destroy();
        return undefined;
      }
      downstream.off('error', onEarlyError);
      if (early || downstream.destroyed) {
        first.destroy();
        letGo(undefined);
        this.counters.inc('mesh_downstream_cx_destroy');
        downstream.destroy();
        return undefined;
      }
      const replay: ReplayPolicy | undefined =
        this.#replayMaxBytes > 0
          ? {
              scope: published.appProtocol === 'http' ? 'http' : 'start',
              maxBytes: this.#replayMaxBytes,
              reconnect: async (failure) => {
                this.serviceMetrics.inc(service, 'mesh_service_upstream_rq_replay');
                letGo(failure);
                return connectOnce();
              },
            }
          : undefined;
      const result = await relay(downstream, first, { counters: this.counters, clock: this.#clock, idleTimeoutMs: this.#idleTimeoutMs, ...(replay && { replay }) });
      const endpoint = current;
      letGo(result.end === 'upstream-error' ? { error: result.upstreamError } : undefined);
      this.serviceMetrics.inc(service, 'mesh_service_downstream_cx_rx_bytes_total', result.downstreamRxBytes);
      this.serviceMetrics.inc(service, 'mesh_service_downstream_cx_tx_bytes_total', result.upstreamRxBytes);
      if (endpoint) {
        const id = endpointIdentity(endpoint);
        this.serviceMetrics.incEndpoint(id, 'mesh_endpoint_upstream_cx_tx_bytes_total', result.downstreamRxBytes);
        this.serviceMetrics.incEndpoint(id, 'mesh_endpoint_upstream_cx_rx_bytes_total', result.upstreamRxBytes);
      }
      return result;
    } finally {
      letGo(undefined);
      this.serviceMetrics.observeLength(service, this.#clock.now() - startedAt);
      this.#active.delete(downstream);
    }
  }

  /** Stops following the table. Connections in flight carry on until their ends close them. */
  close(): void {
    this.#unsubscribe();
  }

  /** One connect attempt to `u`, timed and counted per endpoint; writes the PROXY header first. */
  async #connect(u: Upstream, service: string, preamble: Uint8Array | undefined): Promise<Duplex> {
    const id = endpointIdentity(u);
    const t0 = this.#clock.now();
    this.serviceMetrics.incEndpoint(id, 'mesh_endpoint_upstream_cx_total');
    try {
      const socket = await (u.local ? this.#connectLocal(u) : this.#connectRemote!(u));
      this.serviceMetrics.observeConnect(service, this.#clock.now() - t0);
      if (preamble) socket.write(preamble);
      return socket;
    } catch (error) {
      this.serviceMetrics.incEndpoint(id, 'mesh_endpoint_upstream_cx_connect_fail');
      this.serviceMetrics.inc(service, 'mesh_service_upstream_cx_connect_fail');
      throw error;
    }
  }

  #track(key: string, socket: Duplex): void {
    let set = this.#upstreamsByEndpoint.get(key);
    if (!set) this.#upstreamsByEndpoint.set(key, (set = new Set()));
    set.add(socket);
  }

  #untrack(key: string, socket: Duplex): void {
    const set = this.#upstreamsByEndpoint.get(key);
    if (!set) return;
    set.delete(socket);
    if (set.size === 0) this.#upstreamsByEndpoint.delete(key);
  }

  #resetEndpoint(key: string, node: string): void {
    const set = this.#upstreamsByEndpoint.get(key);
    if (!set || set.size === 0) return;
    this.#log.info({ endpoint: key, node, connections: set.size }, 'Resetting connections to a dead member');
    for (const socket of [...set]) {
      this.counters.inc('mesh_upstream_cx_destroy_member_dead');
      socket.destroy(new ConnectionResetError(`The node ${node} of this upstream was declared dead`));
    }
  }
}

function endpointIdentity(u: Upstream): EndpointIdentity {
  return { key: u.key, service: u.row.service, task: u.row.taskId, node: u.row.node };
}

/**
 * The PROXY header for a downstream connection: its peer (the client) as source, and the address
 * it reached (the published address) as destination. Not IPv4 (or not a socket): v1 UNKNOWN /
 * v2 LOCAL, which tell the task to use the connection's own addresses.
 */
export function proxyHeaderFor(mode: ProxyProtocolMode, s: SocketAddresses): Uint8Array {
  const version = mode === 'v1' ? 1 : 2;
  const src = ipv4Of(s.remoteAddress);
  const dst = ipv4Of(s.localAddress);
  const sport = s.remotePort;
  const dport = s.localPort;
  if (src === undefined || dst === undefined || sport === undefined || dport === undefined) return encodeProxyHeader({ version });
  return encodeProxyHeader({ version, addresses: { sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport } });
}

function ipv4Of(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const r = parseIpv4Address(text.startsWith('::ffff:') ? text.slice(7) : text);
  return r.ok ? r.value : undefined;
}

function isReset(error: Error | undefined): boolean {
  return (error as { code?: string } | undefined)?.code === 'ECONNRESET';
}
