/**
 * The owner's end of the remote path (ARCHITECTURE.md, north–south step 4): another agent opens
 * a TCP connection inside the overlay to a task's overlay address and target port; this agent's
 * userspace stack terminates it and relays it to the task over kernel TCP on loopback.
 *
 * For every live row this node owns, the overlay interface answers for the task's overlay
 * address and the stack listens on each of its TCP target ports there. Rows that change or go
 * take their listeners and address with them.
 *
 * Only a routable task (health `none` or `healthy`) has listeners: once its row says it is
 * down (its process exited, its health check failed), a remote agent that has not heard yet
 * gets a RST to its SYN, and its connect is retried on another endpoint before its client sees
 * anything — as if the task's own kernel refused it. The address stays (ping still answers).
 *
 * If the task cannot be reached all the same, the overlay connection is reset, so the remote
 * agent's relay sees ECONNRESET and ejects the endpoint (passive health) — a clean close would
 * look like an empty answer from a healthy task.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import type { Counters } from '../lib/counters.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { type Ipv4Address, formatIpv4Address } from '../wire/address.js';
import type { EndpointRow } from './endpoint-codec.js';
import { rowKey, rowsEqual } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { type RelayCounter, relay, relayCounters } from './relay.js';
import { type Upstream, type UpstreamConnector, isRoutable } from './router.js';

/**
 * The overlay TCP socket API this needs, structurally: what src/netstack/tcp's `TcpSockets`
 * offers (`attachTcp(iface, …).sockets`). `connect` returns a Duplex that emits 'connect' or
 * 'error'; `listen` accepts connections to one address and port.
 */
export interface OverlayTcpSockets {
  connect(options: { readonly address: string; readonly port: number }): Duplex;
  listen(port: number, onConnection: (socket: Duplex) => void, options: { address?: Ipv4Address }): { close(): void };
}

/** The overlay interface's extra addresses (OverlayInterface.addAddress/removeAddress). */
export interface OverlayAddresses {
  addAddress(ip: Ipv4Address): void;
  removeAddress(ip: Ipv4Address): void;
}

/**
 * The remote upstream connector: userspace TCP over the overlay to a task's overlay address
 * and target port (MeshRouter's `connectRemote`). Resolves on 'connect', rejects on 'error'.
 */
export function overlayTcpConnector(sockets: OverlayTcpSockets): UpstreamConnector {
  return (u: Upstream) =>
    new Promise<Duplex>((resolve, reject) => {
      let socket: Duplex;
      try {
        socket = sockets.connect({ address: u.host, port: u.port });
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      const onError = (error: Error): void => reject(error);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(socket);
      });
    });
}

export interface OverlayTaskListenersOptions {
  readonly table: EndpointTable;
  readonly sockets: OverlayTcpSockets;
  readonly addresses: OverlayAddresses;
  /** Kernel TCP to the local task (node-upstream.ts `localTcpConnector`). */
  readonly connectLocal: UpstreamConnector;
  readonly clock: Clock;
  readonly idleTimeoutMs?: number;
  readonly counters?: Counters<RelayCounter>;
  readonly logger?: Logger;
}

interface Listening {
  readonly row: EndpointRow;
  readonly closeAddress: () => void;
  readonly ports: { close(): void }[];
}

export class OverlayTaskListeners {
  readonly counters: Counters<RelayCounter>;
  readonly #o: OverlayTaskListenersOptions;
  readonly #log: Logger;
  readonly #listening = new Map<string, Listening>();
  readonly #unsubscribe: () => void;
  readonly #active = new Set<Duplex>();

  constructor(options: OverlayTaskListenersOptions) {
    this.#o = options;
    this.counters = options.counters ?? relayCounters();
    this.#log = (options.logger ?? silentLogger).child({ component: 'overlay-task-listeners' });
    for (const r of options.table.endpoints()) this.#sync(r);
    this.#unsubscribe = options.table.subscribe((e) => {
      if (e.type === 'removed') this.#stop(rowKey(e.row.service, e.row.taskId));
      else this.#sync(e.row);
    });
  }

  /** Overlay addresses and ports listened on now, for tests and debugging. */
  listening(): { address: string; port: number }[] {
    return [...this.#listening.values()].flatMap((l) =>
      l.ports.length === 0 ? [] : l.row.ports.filter((p) => p.protocol === 'tcp').map((p) => ({ address: formatIpv4Address(l.row.overlayAddress), port: p.target })),
    );
  }

  /** Stops listening, and destroys connections in flight. */
  close(): void {
    this.#unsubscribe();
    for (const key of [...this.#listening.keys()]) this.#stop(key);
    for (const s of this.#active) s.destroy();
  }

  #sync(row: EndpointRow): void {
    if (row.node !== this.#o.table.nodeName) return;
    const key = rowKey(row.service, row.taskId);
    const current = this.#listening.get(key);
    const routable = isRoutable(row.health);
    if (current && rowsEqual({ ...current.row, health: row.health }, row)) {
      // Same task, same ports: only whether it takes new connections may change.
      if (routable && current.ports.length === 0) this.#listenPorts(key, row, current.ports);
      else if (!routable) for (const c of current.ports.splice(0)) c.close();
      this.#listening.set(key, { ...current, row });
      return;
    }
    this.#stop(key);
    try {
      this.#o.addresses.addAddress(row.overlayAddress);
    } catch (error) {
      this.#log.warn({ err: error, service: row.service, task: row.taskId }, 'Cannot serve a task on the overlay');
      return;
    }
    const ports: { close(): void }[] = [];
    this.#listening.set(key, { row, closeAddress: () => this.#o.addresses.removeAddress(row.overlayAddress), ports });
    if (routable) this.#listenPorts(key, row, ports);
  }

  #listenPorts(key: string, row: EndpointRow, into: { close(): void }[]): void {
    try {
      for (const p of row.ports) {
        if (p.protocol !== 'tcp') continue;
        const upstream: Upstream = { key, local: true, row, host: formatIpv4Address(row.hostAddress), port: p.hostPort };
        into.push(this.#o.sockets.listen(p.target, (socket) => void this.#accept(socket, upstream), { address: row.overlayAddress }));
      }
    } catch (error) {
      this.#log.warn({ err: error, service: row.service, task: row.taskId }, 'Cannot listen for a task on the overlay');
      for (const c of into.splice(0)) c.close();
    }
  }

  #stop(key: string): void {
    const l = this.#listening.get(key);
    if (!l) return;
    this.#listening.delete(key);
    for (const c of l.ports.splice(0)) c.close();
    l.closeAddress();
  }

  async #accept(downstream: Duplex, upstream: Upstream): Promise<void> {
    this.counters.inc('mesh_downstream_cx_total');
    this.#active.add(downstream);
    downstream.on('error', () => undefined);
    try {
      this.counters.inc('mesh_upstream_cx_total');
      let socket: Duplex;
      try {
        socket = await this.#o.connectLocal(upstream);
      } catch {
        this.counters.inc('mesh_upstream_cx_connect_fail');
        resetOrDestroy(downstream);
        return;
      }
      if (downstream.destroyed) {
        socket.destroy();
        return;
      }
      await relay(downstream, socket, { counters: this.counters, clock: this.#o.clock, ...(this.#o.idleTimeoutMs !== undefined && { idleTimeoutMs: this.#o.idleTimeoutMs }) });
    } finally {
      this.#active.delete(downstream);
    }
  }
}

function resetOrDestroy(s: Duplex): void {
  const r = (s as { resetAndDestroy?: () => void }).resetAndDestroy;
  const conn = (s as { connection?: { abort?: () => void } }).connection;
  if (typeof r === 'function') r.call(s);
  else if (typeof conn?.abort === 'function') {
    // The userspace TCP socket: abort() sends RST (TcpConnection.abort).
    conn.abort();
    s.destroy();
  } else s.destroy();
}
