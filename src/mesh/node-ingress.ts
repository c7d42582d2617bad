/**
 * Ingress listeners (Swarm's `mode: ingress` publishing): every agent listens on every
 * published port of every service, whether or not it runs a task, and hands each accepted
 * TCP connection to the MeshRouter. UDP published ports get a per-client flow table
 * (udp-flows.ts): a client's datagrams all go to the endpoint its first one chose, and the
 * answers come back from the published port. With `udpEndpoints`, a flow may choose a task on
 * another node (over the overlay's UDP); without, local tasks only.
 *
 * Sockets: half-open allowed (the relay forwards FINs), Nagle off, TCP keepalive on.
 */
import { type Socket as UdpSocket, type RemoteInfo, createSocket } from 'node:dgram';
import { type Server, type Socket, createServer } from 'node:net';
import type { Clock } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { openLocalUdpUpstream } from './node-upstream.js';
import type { MeshRouter, PublishedPort, Upstream } from './router.js';
import { type PendingUdpFlow, type UdpEndpoints, type UdpUpstream, UdpFlowTable, attachUpstream, forwardOnFlow } from './udp-flows.js';

export interface IngressOptions {
  /** The address to listen on (an agent on 127.0.0.2 listens there; 0.0.0.0 for every interface). */
  readonly host: string;
  readonly router: MeshRouter;
  readonly clock: Clock;
  /** Opens a UDP flow to a local endpoint (default: kernel UDP to the task's host port). */
  readonly openUdpUpstream?: (u: Upstream) => Promise<UdpUpstream>;
  /**
   * The UDP endpoints of every node, and the overlay path to remote ones (udp-flows.ts). Absent:
   * UDP flows go to local tasks only (the router's UDP upstreams).
   */
  readonly udpEndpoints?: UdpEndpoints;
  readonly maxUdpFlows?: number;
  readonly udpFlowIdleMs?: number;
  /** TCP keepalive idle time on accepted connections, ms (0: off). */
  readonly keepAliveMs?: number;
  /** Datagrams held per UDP flow while its upstream opens (default 16; more are dropped and counted). */
  readonly maxPendingDatagrams?: number;
  readonly logger?: Logger;
}

interface TcpListener {
  readonly kind: 'tcp';
  port: PublishedPort;
  readonly server: Server;
  readonly sockets: Set<Socket>;
}

interface UdpListener {
  readonly kind: 'udp';
  readonly port: PublishedPort;
  readonly socket: UdpSocket;
  readonly flows: UdpFlowTable<UdpFlow>;
}

interface UdpFlow extends PendingUdpFlow {
  readonly key: string;
}

type Listener = TcpListener | UdpListener;

const listenerKey = (p: { protocol: string; published: number }): string => `${p.protocol}/${p.published}`;

export class IngressListeners {
  readonly #o: IngressOptions;
  readonly #log: Logger;
  readonly #listeners = new Map<string, Listener>();
  readonly #udpCounterTotals = new Map<string, number>();
  /** Ends of the UDP flows open now, by endpoint key: run when the endpoint is gone. */
  readonly #udpFlowsByEndpoint = new Map<string, Set<() => void>>();
  readonly #stopFollowing: (() => void) | undefined;
  #closed = false;

  constructor(options: IngressOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ component: 'ingress' });
    this.#stopFollowing = options.udpEndpoints?.onEndpointGone((key) => {
      const ends = this.#udpFlowsByEndpoint.get(key);
      if (ends) for (const end of [...ends]) end();
    });
  }

  /** The published ports listened on now. */
  ports(): PublishedPort[] {
    return [...this.#listeners.values()].map((l) => l.port);
  }

  /** UDP flow counters summed over every UDP listener (closed ones included), and the overlay path's. */
  udpCounters(): Record<string, number> {
    const out: Record<string, number> = { ...Object.fromEntries(this.#udpCounterTotals), ...this.#o.udpEndpoints?.counters.snapshot() };
    for (const l of this.#listeners.values()) {
      if (l.kind !== 'udp') continue;
      for (const [k, v] of Object.entries(l.flows.counters.snapshot())) out[k] = (out[k] ?? 0) + v;
    }
    return out;
  }

  /**
   * Listens on exactly `ports`: opens the new ones, closes those no longer published. Rejects
   * with the bind error (EADDRINUSE, EACCES) of the first port that could not be opened; the
   * others are still reconciled.
   */
  async setPorts(ports: readonly PublishedPort[]): Promise<void> {
    const wanted = new Map(ports.map((p) => [listenerKey(p), p]));
    const errors: Error[] = [];
    for (const [key, l] of [...this.#listeners]) {
      const w = wanted.get(key);
      if (!w || w.service !== l.port.service || w.target !== l.port.target) await this.#close(key);
      // Same listener, new options (app protocol, PROXY protocol): new connections use them.
      else if (l.kind === 'tcp') l.port = w;
    }
    for (const [key, p] of wanted) {
      if (this.#listeners.has(key)) continue;
      try {
        await (p.protocol === 'tcp' ? this.#listenTcp(p) : this.#listenUdp(p));
      } catch (error) {
        errors.push(error instanceof Error ? error : new Error(String(error)));
      }
    }
    if (errors.length > 0) throw errors[0]!;
  }

  /** Closes every listener and every connection and flow still open. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopFollowing?.();
    for (const key of [...this.#listeners.keys()]) await this.#close(key);
  }

  #listenTcp(port: PublishedPort): Promise<void> {
    const keepAliveMs = this.#o.keepAliveMs ?? 60_000;
    const sockets = new Set<Socket>();
    const server = createServer({ allowHalfOpen: true, noDelay: true, ...(keepAliveMs > 0 && { keepAlive: true, keepAliveInitialDelay: keepAliveMs }) }, (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      void this.#o.router.handle(socket, listener.port);
    });
    const listener: TcpListener = { kind: 'tcp', port, server, sockets };
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.#o.host, port: port.published }, () => {
        server.off('error', reject);
        server.on('error', (error) => this.#log.warn({ err: error, port: port.published }, 'Ingress listener error'));
        this.#listeners.set(listenerKey(port), listener);
        this.#log.info({ service: port.service, port: port.published, protocol: 'tcp' }, 'Listening on a published port');
        resolve();
      });
    });
  }

  #listenUdp(port: PublishedPort): Promise<void> {
    const socket = createSocket({ type: 'udp4' });
    const flows = new UdpFlowTable<UdpFlow>({
      clock: this.#o.clock,
      ...(this.#o.maxUdpFlows !== undefined && { maxFlows: this.#o.maxUdpFlows }),
      ...(this.#o.udpFlowIdleMs !== undefined && { idleTimeoutMs: this.#o.udpFlowIdleMs }),
    });
    const listener: UdpListener = { kind: 'udp', port, socket, flows };
    socket.on('message', (msg, rinfo) => this.#onDatagram(listener, msg, rinfo));
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: this.#o.host, port: port.published }, () => {
        socket.off('error', reject);
        socket.on('error', (error) => this.#log.warn({ err: error, port: port.published }, 'UDP ingress error'));
        this.#listeners.set(listenerKey(port), listener);
        this.#log.info({ service: port.service, port: port.published, protocol: 'udp' }, 'Listening on a published port');
        resolve();
      });
    });
  }

  #onDatagram(l: UdpListener, msg: Uint8Array, rinfo: RemoteInfo): void {
    l.flows.counters.inc('mesh_udp_rx_datagrams');
    const clientKey = `${rinfo.address}:${rinfo.port}`;
    const existing = l.flows.get(clientKey);
    if (existing) {
      if (!forwardOnFlow(existing, msg, this.#o.maxPendingDatagrams ?? 16)) l.flows.counters.inc('mesh_udp_dropped_queue_full');
      return;
    }
    if (l.flows.full) {
      l.flows.counters.inc('mesh_udp_dropped_flows_full');
      return;
    }
    const router = this.#o.router;
    const endpoints = this.#o.udpEndpoints;
    const upstream = router.balancer.choose(endpoints ? endpoints.upstreams(l.port.service, l.port.target) : router.upstreams(l.port.service, l.port.target, 'udp'));
    if (!upstream) {
      l.flows.counters.inc('mesh_udp_dropped_no_upstream');
      return;
    }
    // node:dgram hands each message in a buffer of its own: queued as is.
    const flow: UdpFlow = { upstream: undefined, pending: [msg], key: upstream.key, closed: false };
    router.balancer.acquire(upstream.key);
    const end = (): void => {
      l.flows.counters.inc('mesh_udp_flows_endpoint_gone');
      l.flows.delete(clientKey);
    };
    let ends = this.#udpFlowsByEndpoint.get(upstream.key);
    if (!ends) this.#udpFlowsByEndpoint.set(upstream.key, (ends = new Set()));
    ends.add(end);
    l.flows.add(clientKey, flow, () => {
      flow.closed = true;
      flow.upstream?.close();
      router.balancer.release(upstream.key);
      const set = this.#udpFlowsByEndpoint.get(upstream.key);
      set?.delete(end);
      if (set?.size === 0) this.#udpFlowsByEndpoint.delete(upstream.key);
    });
    const open = upstream.local || !endpoints ? (this.#o.openUdpUpstream ?? openLocalUdpUpstream) : (u: Upstream) => endpoints.open(u);
    open(upstream).then(
      (u) =>
        attachUpstream(flow, u, (answer) => {
          l.flows.touch(clientKey);
          l.flows.counters.inc('mesh_udp_tx_datagrams');
          l.socket.send(answer, rinfo.port, rinfo.address);
        }),
      () => {
        // A local socket that cannot be opened is the endpoint's failure; no free overlay port is ours.
        if (upstream.local) router.balancer.reportFailure(upstream.key);
        l.flows.counters.inc('mesh_udp_dropped_no_upstream');
        l.flows.delete(clientKey);
      },
    );
  }

  async #close(key: string): Promise<void> {
    const l = this.#listeners.get(key);
    if (!l) return;
    this.#listeners.delete(key);
    if (l.kind === 'tcp') {
      const closed = new Promise<void>((r) => l.server.close(() => r()));
      for (const s of l.sockets) s.destroy();
      await closed;
    } else {
      for (const [k, v] of Object.entries(l.flows.counters.snapshot())) this.#udpCounterTotals.set(k, (this.#udpCounterTotals.get(k) ?? 0) + v);
      l.flows.close();
      await new Promise<void>((r) => l.socket.close(() => r()));
    }
    if (!this.#closed) this.#log.info({ port: l.port.published, protocol: l.port.protocol }, 'Stopped listening on a published port');
  }
}
