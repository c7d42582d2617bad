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
import { formatIpv4Address } from '../wire/address.js';
import { Balancer, type BalancerOptions } from './balancer.js';
import type { EndpointRow, Health, PortProtocol } from './endpoint-codec.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { type RelayCounter, type RelayResult, connectWithRetry, relay, relayCounters } from './relay.js';
import type { Counters } from '../lib/counters.js';

/** A port a service publishes on every node (Swarm's `mode: ingress`). */
export interface PublishedPort {
  readonly service: string;
  readonly protocol: PortProtocol;
  /** The port every node listens on. */
  readonly published: number;
  /** The service's port that tasks serve (looked up in each endpoint row's ports). */
  readonly target: number;
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
  /** Kernel TCP to a task on this node (node-upstream.ts `connectLocalTcp`). */
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
  readonly balancer?: Omit<BalancerOptions, 'clock' | 'rng'>;
  readonly logger?: Logger;
}

export const DEFAULT_MAX_CONNECT_ATTEMPTS = 3;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export class MeshRouter {
  readonly counters: Counters<RelayCounter> = relayCounters();
  readonly balancer: Balancer;
  readonly #table: EndpointTable;
  readonly #clock: Clock;
  readonly #connectLocal: UpstreamConnector;
  readonly #connectRemote: UpstreamConnector | undefined;
  readonly #maxAttempts: number;
  readonly #connectTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #log: Logger;
  readonly #active = new Set<Duplex>();
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
    this.#log = (options.logger ?? silentLogger).child({ component: 'mesh-router' });
    this.balancer = new Balancer({ clock: options.clock, rng: options.rng, ...options.balancer });
    this.#unsubscribe = this.#table.subscribe((e) => {
      this.#cache.clear();
      if (e.type === 'removed') this.balancer.forget(rowKey(e.row.service, e.row.taskId));
    });
  }

  /** Downstream connections being relayed now (Envoy's `downstream_cx_active`). */
  get activeConnections(): number {
    return this.#active.size;
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
   * healthy endpoint, retrying a failed connect on others. With none, the downstream is closed
   * at once. Resolves when the connection is over (never rejects).
   */
  async handle(downstream: Duplex, published: PublishedPort): Promise<RelayResult | undefined> {
    this.counters.inc('mesh_downstream_cx_total');
    this.#active.add(downstream);
    // Until the relay takes over: an error (client reset during our connect) must not be unhandled.
    let early: Error | undefined;
    const onEarlyError = (error: Error): void => {
      early ??= error;
    };
    downstream.on('error', onEarlyError);
    try {
      const connected = await connectWithRetry({
        endpoints: this.upstreams(published.service, published.target, 'tcp'),
        balancer: this.balancer,
        connect: (u) => (u.local ? this.#connectLocal(u) : this.#connectRemote!(u)),
        maxAttempts: this.#maxAttempts,
        connectTimeoutMs: this.#connectTimeoutMs,
        clock: this.#clock,
        counters: this.counters,
      });
      if (!connected) {
        this.counters.inc('mesh_downstream_cx_destroy');
        downstream.destroy();
        return undefined;
      }
      downstream.off('error', onEarlyError);
      if (early || downstream.destroyed) {
        connected.socket.destroy();
        this.balancer.release(connected.endpoint.key);
        this.counters.inc('mesh_downstream_cx_destroy');
        downstream.destroy();
        return undefined;
      }
      const result = await relay(downstream, connected.socket, { counters: this.counters, clock: this.#clock, idleTimeoutMs: this.#idleTimeoutMs });
      this.balancer.release(connected.endpoint.key);
      if (result.end === 'upstream-error' && isReset(result.upstreamError)) {
        // Passive health: a task that resets connections is ejected like one that refuses them.
        const ms = this.balancer.reportFailure(connected.endpoint.key);
        this.#log.debug({ endpoint: connected.endpoint.key, ejectMs: ms }, 'Upstream reset: endpoint ejected');
      }
      return result;
    } finally {
      this.#active.delete(downstream);
    }
  }

  /** Stops following the table. Connections in flight carry on until their ends close them. */
  close(): void {
    this.#unsubscribe();
  }
}

function isReset(error: Error | undefined): boolean {
  return (error as { code?: string } | undefined)?.code === 'ECONNRESET';
}
