/**
 * UDP published ports have no connections, so the ingress keeps a flow per client address
 * (Linux conntrack's view of UDP): the first datagram from a client chooses an endpoint, and
 * every later one from that client goes to the same endpoint, whose answers go back to the
 * client from the published port. Flows expire after `idleTimeoutMs` without traffic
 * (conntrack's `nf_conntrack_udp_timeout`, 30 s) and are bounded: at `maxFlows`, a new client
 * is dropped and counted, existing flows keep working.
 *
 * A remote endpoint is reached as Swarm's IPVS reaches it for UDP: over the overlay, from this
 * node's overlay address and a port of the flow's own (`UdpEndpoints.open`), to the task's
 * overlay address and target port; the owner relays to its task (udp-task-listeners.ts), and
 * the answers come back to the flow's port.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { type Ipv4Address, formatIpv4Address, parseIpv4Address } from '../wire/address.js';
import type { UdpPeer } from '../netstack/udp.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { type Upstream, isRoutable } from './router.js';

/** One upstream flow: a connected UDP socket to the chosen endpoint. */
export interface UdpUpstream {
  send(bytes: Uint8Array): void;
  /** Sets the receiver of the endpoint's answers. */
  onMessage(handler: (bytes: Uint8Array) => void): void;
  close(): void;
}

/**
 * One client's flow to an upstream UDP socket, as the ingress (node-ingress.ts) and the owner
 * side (udp-task-listeners.ts) both keep it: datagrams queue (bounded) until the socket opens.
 */
export interface PendingUdpFlow {
  upstream: UdpUpstream | undefined;
  readonly pending: Uint8Array[];
  closed: boolean;
}

/** Sends `data` on the flow's open socket, or queues it while the socket opens; false when the queue is full (the caller counts the drop). */
export function forwardOnFlow(flow: PendingUdpFlow, data: Uint8Array, maxPending: number): boolean {
  if (flow.upstream) flow.upstream.send(data);
  else if (flow.pending.length < maxPending) flow.pending.push(data);
  else return false;
  return true;
}

/**
 * The flow's socket has opened: it becomes the flow's upstream, the queued datagrams go out, and
 * every answer goes to `onAnswer` while the flow lives. A flow that ended while the socket was
 * opening closes it instead.
 */
export function attachUpstream(flow: PendingUdpFlow, u: UdpUpstream, onAnswer: (answer: Uint8Array) => void): void {
  if (flow.closed) {
    u.close();
    return;
  }
  flow.upstream = u;
  u.onMessage((answer) => {
    if (!flow.closed) onAnswer(answer);
  });
  for (const d of flow.pending.splice(0)) u.send(d);
}

export const UDP_FLOW_COUNTERS = [
  'mesh_udp_rx_datagrams',
  'mesh_udp_tx_datagrams',
  'mesh_udp_flows_total',
  'mesh_udp_flows_expired',
  /** A new client while the flow table was full. */
  'mesh_udp_dropped_flows_full',
  /** A new client with no healthy endpoint (or whose upstream could not be opened). */
  'mesh_udp_dropped_no_upstream',
  /** A datagram of a flow whose upstream was still opening, beyond the flow's queue. */
  'mesh_udp_dropped_queue_full',
  /** Flows ended because their endpoint left the table or stopped being routable. */
  'mesh_udp_flows_endpoint_gone',
] as const;

export interface UdpFlowTableOptions {
  readonly clock: Clock;
  readonly maxFlows?: number;
  readonly idleTimeoutMs?: number;
}

export const DEFAULT_MAX_UDP_FLOWS = 4096;
export const DEFAULT_UDP_FLOW_IDLE_MS = 30_000;

interface Flow<T> {
  readonly value: T;
  lastSeen: number;
  readonly onExpire: () => void;
}

/** Flows by client key, expiring on an injected clock. */
export class UdpFlowTable<T> {
  readonly counters = new Counters(UDP_FLOW_COUNTERS);
  readonly maxFlows: number;
  readonly idleTimeoutMs: number;
  readonly #clock: Clock;
  readonly #flows = new Map<string, Flow<T>>();
  #sweep: Timer | undefined;

  constructor(options: UdpFlowTableOptions) {
    this.#clock = options.clock;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_UDP_FLOWS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_UDP_FLOW_IDLE_MS;
  }

  get size(): number {
    return this.#flows.size;
  }

  get full(): boolean {
    return this.#flows.size >= this.maxFlows;
  }

  /** The flow of `key`, marked as used now. */
  get(key: string): T | undefined {
    const f = this.#flows.get(key);
    if (!f) return undefined;
    f.lastSeen = this.#clock.now();
    return f.value;
  }

  /** Marks the flow as active now (an answer went back to its client), postponing its idle expiry. */
  touch(key: string): void {
    const f = this.#flows.get(key);
    if (f) f.lastSeen = this.#clock.now();
  }

  /** Adds a flow; false (and counted) when the table is full. `onExpire` runs when it idles out or the table closes. */
  add(key: string, value: T, onExpire: () => void): boolean {
    if (this.#flows.has(key)) return true;
    if (this.full) {
      this.counters.inc('mesh_udp_dropped_flows_full');
      return false;
    }
    this.#flows.set(key, { value, lastSeen: this.#clock.now(), onExpire });
    this.counters.inc('mesh_udp_flows_total');
    this.#arm();
    return true;
  }

  /** Ends one flow now (its upstream failed, say). */
  delete(key: string): void {
    const f = this.#flows.get(key);
    if (!f) return;
    this.#flows.delete(key);
    f.onExpire();
  }

  close(): void {
    this.#sweep?.cancel();
    this.#sweep = undefined;
    for (const key of [...this.#flows.keys()]) this.delete(key);
  }

  #arm(): void {
    if (this.#sweep || this.#flows.size === 0) return;
    // One sweep timer for the table, at the earliest possible expiry.
    let oldest = Infinity;
    for (const f of this.#flows.values()) oldest = Math.min(oldest, f.lastSeen);
    this.#sweep = this.#clock.setTimer(Math.max(0, oldest + this.idleTimeoutMs - this.#clock.now()), () => {
      this.#sweep = undefined;
      const now = this.#clock.now();
      for (const [key, f] of [...this.#flows]) {
        if (now - f.lastSeen >= this.idleTimeoutMs) {
          this.counters.inc('mesh_udp_flows_expired');
          this.delete(key);
        }
      }
      this.#arm();
    });
  }
}

/**
 * The overlay's userspace UDP as the mesh needs it: src/netstack/udp.ts `UdpLayer`, passed by
 * the agent (the one its embedded DNS uses: a second layer on the interface would take UDP from
 * the first). `local` is the address a datagram was sent to and `from` on send the address to
 * send from, where the layer supports them; without them a socket is bound to its port on every
 * address of the interface and sends from the interface's primary address.
 */
export interface OverlayUdp {
  bind(port: number, onDatagram: (data: Uint8Array, from: UdpPeer, local?: Ipv4Address) => void): OverlayUdpSocket;
}

export interface OverlayUdpSocket {
  readonly port: number;
  /** Sends a copy of `data`; a datagram the interface cannot carry is dropped (and counted by the layer). */
  send(data: Uint8Array, to: UdpPeer, from?: Ipv4Address): void;
  close(): void;
}

export const OVERLAY_UDP_COUNTERS = [
  'mesh_udp_overlay_tx_datagrams',
  'mesh_udp_overlay_rx_datagrams',
  /** A client datagram larger than the overlay carries (the overlay never fragments). */
  'mesh_udp_overlay_dropped_too_big',
  /** A datagram to a flow's port from anyone but the flow's endpoint port. */
  'mesh_udp_overlay_rx_dropped_stray',
  /** No overlay port free for a new flow. */
  'mesh_udp_overlay_open_fail',
] as const;
export type OverlayUdpCounter = (typeof OVERLAY_UDP_COUNTERS)[number];

/** IPv4 20 + UDP 8 under the default overlay MTU of 1450. */
export const DEFAULT_MAX_OVERLAY_DATAGRAM = 1450 - 28;

export interface UdpEndpointsOptions {
  readonly table: EndpointTable;
  readonly udp: OverlayUdp;
  /** The largest UDP payload the overlay carries: the interface's `maxPayload` less 8. */
  readonly maxDatagramBytes?: number;
}

/**
 * Where the ingress sends a UDP published port's flows: every routable endpoint of the service
 * that serves the target port over UDP, local ones by kernel UDP (node-upstream.ts) and remote
 * ones over the overlay (`open`). It also tells the ingress when an endpoint is gone, so its
 * flows end and their clients' next datagrams choose again (IPVS's `expire_nodest_conn`, which
 * Swarm turns on).
 */
export class UdpEndpoints {
  readonly counters = new Counters<OverlayUdpCounter>(OVERLAY_UDP_COUNTERS);
  readonly maxDatagramBytes: number;
  readonly #table: EndpointTable;
  readonly #udp: OverlayUdp;
  readonly #goneListeners = new Set<(key: string) => void>();
  readonly #unsubscribe: () => void;

  constructor(options: UdpEndpointsOptions) {
    this.#table = options.table;
    this.#udp = options.udp;
    this.maxDatagramBytes = options.maxDatagramBytes ?? DEFAULT_MAX_OVERLAY_DATAGRAM;
    this.#unsubscribe = this.#table.subscribe((e) => {
      const gone = e.type === 'removed' || !isRoutable(e.row.health) || (e.previous !== undefined && e.previous.overlayAddress !== e.row.overlayAddress);
      if (!gone) return;
      const key = rowKey(e.row.service, e.row.taskId);
      for (const l of this.#goneListeners) l(key);
    });
  }

  /** Routable endpoints of `service` serving `target` over UDP, local and remote. */
  upstreams(service: string, target: number): Upstream[] {
    const out: Upstream[] = [];
    const nodeName = this.#table.nodeName;
    for (const row of this.#table.endpoints(service)) {
      if (!isRoutable(row.health)) continue;
      const port = row.ports.find((p) => p.protocol === 'udp' && p.target === target);
      if (!port) continue;
      const local = row.node === nodeName;
      out.push({
        key: rowKey(row.service, row.taskId),
        local,
        row,
        host: formatIpv4Address(local ? row.hostAddress : row.overlayAddress),
        port: local ? port.hostPort : port.target,
      });
    }
    return out;
  }

  /** Calls `listener` with an endpoint's key when it leaves the table or stops being routable. Returns the unsubscriber. */
  onEndpointGone(listener: (key: string) => void): () => void {
    this.#goneListeners.add(listener);
    return () => this.#goneListeners.delete(listener);
  }

  /**
   * Opens one flow to a remote endpoint: an overlay UDP port of its own (ephemeral), from which
   * each datagram goes to the task's overlay address and target port; what comes back to that
   * port from the target port is the endpoint's answer. Rejects when no overlay port is free.
   */
  open(u: Upstream): Promise<UdpUpstream> {
    const parsed = parseIpv4Address(u.host);
    if (!parsed.ok) return Promise.reject(new Error(`Not an IPv4 address: ${u.host}`));
    const to: UdpPeer = { address: parsed.value, port: u.port };
    let onMessage: ((bytes: Uint8Array) => void) | undefined;
    let socket: OverlayUdpSocket;
    try {
      socket = this.#udp.bind(0, (data, from) => {
        // Only the target port answers a flow (the owner may answer from its node's primary address).
        if (from.port !== to.port) {
          this.counters.inc('mesh_udp_overlay_rx_dropped_stray');
          return;
        }
        this.counters.inc('mesh_udp_overlay_rx_datagrams');
        // `data` is valid only during this call; the answer's send to the client is asynchronous.
        onMessage?.(Buffer.from(data));
      });
    } catch (error) {
      this.counters.inc('mesh_udp_overlay_open_fail');
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    let open = true;
    return Promise.resolve({
      send: (bytes) => {
        if (!open) return;
        if (bytes.length > this.maxDatagramBytes) {
          this.counters.inc('mesh_udp_overlay_dropped_too_big');
          return;
        }
        this.counters.inc('mesh_udp_overlay_tx_datagrams');
        socket.send(bytes, to);
      },
      onMessage: (handler) => {
        onMessage = handler;
      },
      close: () => {
        if (!open) return;
        open = false;
        socket.close();
      },
    });
  }

  /** Stops following the table. Open flows' sockets are closed by their flows. */
  close(): void {
    this.#unsubscribe();
    this.#goneListeners.clear();
  }
}
