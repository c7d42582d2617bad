/**
 * The host-side mirror listeners on real sockets (node:net): the agent listens on 127.X.Y.Z
 * for every VIP and task address 100.X.Y.Z it can reach (mirror-listeners.ts decides which)
 * and carries each accepted connection over the mesh:
 * - a VIP's connection goes to the router exactly as an ingress connection for that service
 *   and target port does (balancer, passive health, connect retry, relay);
 * - a task address's connection goes to that task only: kernel TCP to its host port when it is
 *   ours, userspace TCP over the overlay to its overlay address when it is not. A task that is
 *   not routable (unhealthy, starting) is refused with a RST, as its own kernel would.
 *
 * Listeners follow the endpoint table and the services (`setServices`); changes arriving in
 * the same tick are reconciled once. Binding fails when another agent on the same host holds
 * the mirror (agents on 127.0.0.2, .3 … of one machine share 127.64.0.0/10): the failure is
 * counted, logged once per address, and tried again at the next change and, while an address
 * is in use, every `retryMs`: when the agent holding the host's mirrors stops, another takes
 * them over. Every agent knows every row, so whichever holds a mirror carries it correctly.
 */
import { type Server, type Socket, createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { formatIpv4Address } from '../wire/address.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { type MirrorListener, type MirrorTarget, type VipService, mirrorKey, planMirrors } from './mirror-listeners.js';
import { type RelayCounter, relay, relayCounters } from './relay.js';
import { type MeshRouter, type Upstream, type UpstreamConnector, isRoutable } from './router.js';

export const MIRROR_COUNTERS = [
  'mirror_listeners_opened',
  'mirror_listeners_closed',
  /** A bind that failed (EADDRINUSE: another agent on this host holds the mirror). */
  'mirror_listen_failures',
  /** The most listeners ever left out at once by `maxListeners` (a high-water mark, so it never decreases). */
  'mirror_listeners_over_limit',
  'mirror_vip_cx_total',
  'mirror_task_cx_total',
  /** A task mirror's connection refused: the task is gone, not routable, or has no such port. */
  'mirror_task_cx_refused',
] as const;
export type MirrorCounter = (typeof MIRROR_COUNTERS)[number];

export interface MirrorListenersOptions {
  readonly table: EndpointTable;
  readonly router: MeshRouter;
  readonly clock: Clock;
  /** Kernel TCP to a local task (node-upstream.ts `localTcpConnector`). */
  readonly connectLocal: UpstreamConnector;
  /** Userspace TCP over the overlay (task-listeners.ts `overlayTcpConnector`); without it remote tasks are refused. */
  readonly connectRemote?: UpstreamConnector;
  readonly maxListeners?: number;
  /** Services whose rows are not tasks (each node's own `lb-ingress` row): never mirrored. */
  readonly skipServices?: ReadonlySet<string>;
  /** While some mirror could not be bound, reconcile again this often (default 5 s). */
  readonly retryMs?: number;
  /** A task mirror's connect timeout (default 5 s). */
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly logger?: Logger;
}

interface Open {
  target: MirrorTarget;
  readonly server: Server;
  readonly sockets: Set<Socket>;
}

export class MirrorListeners {
  readonly counters = new Counters<MirrorCounter>(MIRROR_COUNTERS);
  /** Relay counters of task mirrors (VIP connections count in the router's). */
  readonly taskRelayCounters: Counters<RelayCounter> = relayCounters();
  readonly #o: MirrorListenersOptions;
  readonly #log: Logger;
  readonly #open = new Map<string, Open>();
  readonly #warned = new Set<string>();
  /** Task mirror connections being relayed, by endpoint key. */
  readonly #relays = new Map<string, Set<Socket>>();
  readonly #unsubscribe: () => void;
  #services: readonly VipService[] = [];
  #retry: Timer | undefined;
  /** A bind failed in the last reconcile because the address was in use (another agent may let go of it). */
  #inUse = false;
  #dirty = false;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: MirrorListenersOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ component: 'mirror-listeners' });
    this.#unsubscribe = options.table.subscribe((e) => {
      // A dead member's task will never finish its connections: reset them now, as the router
      // does for its own (a withdrawn row drains instead).
      if (e.type === 'removed' && e.reason === 'member-dead') this.#resetTask(rowKey(e.row.service, e.row.taskId));
      // Health changes move no listener (a refused connect answers them); addresses and ports do.
      if (e.type !== 'updated' || e.previous?.overlayAddress !== e.row.overlayAddress || !samePorts(e.previous, e.row)) this.#schedule();
    });
    this.#schedule();
  }

  /** The VIP services to mirror (endpoint mode `vip`); replaces the previous set. */
  setServices(services: readonly VipService[]): void {
    this.#services = services;
    this.#schedule();
  }

  /** Resolves once listeners match the table and services as they are now. */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Mirrors listened on now, with what each carries to. */
  listening(): { address: string; port: number; target: MirrorTarget }[] {
    return [...this.#open.entries()].map(([key, o]) => {
      const [address, port] = key.split(':').map(Number) as [number, number];
      return { address: formatIpv4Address(address), port, target: o.target };
    });
  }

  /** Closes every listener and connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#retry?.cancel();
    await this.settled();
    await Promise.all([...this.#open.keys()].map((k) => this.#close(k)));
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#dirty = true;
    if (this.#running) return;
    this.#running = this.#drain();
  }

  /**
   * Reconciles until nothing changed meanwhile. `#running` is cleared in the same turn as the
   * last check of `#dirty` (a `.finally()` on the promise would leave a microtask between them
   * in which a change could be dropped).
   */
  async #drain(): Promise<void> {
    try {
      // Let every change of this tick land first, then reconcile once per round.
      await Promise.resolve();
      while (this.#dirty && !this.#closed) {
        this.#dirty = false;
        await this.#reconcile();
      }
    } catch (error) {
      this.#log.error({ err: error }, 'Cannot reconcile the mirror listeners');
    } finally {
      this.#running = undefined;
    }
  }

  async #reconcile(): Promise<void> {
    const plan = planMirrors(this.#services, this.#o.table.endpoints(), {
      ...(this.#o.maxListeners !== undefined && { maxListeners: this.#o.maxListeners }),
      ...(this.#o.skipServices && { skipServices: this.#o.skipServices }),
    });
    if (plan.overLimit > 0 && !this.#warned.has('limit')) {
      this.#warned.add('limit');
      this.#log.warn({ overLimit: plan.overLimit }, 'Too many mirror listeners: some VIPs or tasks have no mirror');
    }
    this.counters.inc('mirror_listeners_over_limit', Math.max(0, plan.overLimit - this.counters.get('mirror_listeners_over_limit')));
    const wanted = new Map(plan.listeners.map((l) => [mirrorKey(l), l]));
    this.#inUse = false;
    await Promise.all([...this.#open.keys()].filter((k) => !wanted.has(k)).map((k) => this.#close(k)));
    const opening: Promise<void>[] = [];
    for (const [key, l] of wanted) {
      const open = this.#open.get(key);
      if (open) open.target = l.target; // the connection handler reads it per connection
      else opening.push(this.#listen(key, l));
    }
    await Promise.all(opening);
    // EACCES (a port below 1024 without privilege) will not change by waiting; EADDRINUSE may.
    if (!this.#retry && !this.#closed && this.#inUse) {
      this.#retry = this.#o.clock.setTimer(this.#o.retryMs ?? 5000, () => {
        this.#retry = undefined;
        this.#schedule();
      });
    }
  }

  #listen(key: string, l: MirrorListener): Promise<void> {
    const sockets = new Set<Socket>();
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      const open = this.#open.get(key);
      if (!open) return void socket.destroy();
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      void this.#accept(socket, open.target);
    });
    const host = formatIpv4Address(l.address);
    return new Promise<void>((resolve) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        this.counters.inc('mirror_listen_failures');
        if (error.code === 'EADDRINUSE') this.#inUse = true;
        if (!this.#warned.has(key)) {
          this.#warned.add(key);
          this.#log.warn({ err: error, address: host, port: l.port }, 'Cannot listen on a mirror address (another agent on this host?)');
        }
        resolve();
      });
      server.listen({ host, port: l.port }, () => {
        server.removeAllListeners('error');
        server.on('error', (error) => this.#log.warn({ err: error, address: host, port: l.port }, 'Mirror listener error'));
        if (this.#closed) {
          server.close();
          return resolve();
        }
        this.#warned.delete(key);
        this.#open.set(key, { target: l.target, server, sockets });
        this.counters.inc('mirror_listeners_opened');
        resolve();
      });
    });
  }

  async #close(key: string): Promise<void> {
    const o = this.#open.get(key);
    if (!o) return;
    this.#open.delete(key);
    this.counters.inc('mirror_listeners_closed');
    const closed = new Promise<void>((r) => o.server.close(() => r()));
    for (const s of o.sockets) s.destroy();
    await closed;
  }

  async #accept(socket: Socket, target: MirrorTarget): Promise<void> {
    if (target.kind === 'vip') {
      this.counters.inc('mirror_vip_cx_total');
      await this.#o.router.handle(socket, { service: target.service, protocol: 'tcp', published: target.target, target: target.target });
      return;
    }
    this.counters.inc('mirror_task_cx_total');
    socket.on('error', () => undefined);
    const table = this.#o.table;
    const row = table.get(target.service, target.taskId);
    const port = row?.ports.find((p) => p.protocol === 'tcp' && p.target === target.target);
    const local = row?.node === table.nodeName;
    const connect = local ? this.#o.connectLocal : this.#o.connectRemote;
    if (!row || !port || !isRoutable(row.health) || !connect) {
      this.counters.inc('mirror_task_cx_refused');
      socket.resetAndDestroy();
      return;
    }
    const upstream: Upstream = {
      key: rowKey(row.service, row.taskId),
      local,
      row,
      host: formatIpv4Address(local ? row.hostAddress : row.overlayAddress),
      port: local ? port.hostPort : port.target,
    };
    const counters = this.taskRelayCounters;
    counters.inc('mesh_downstream_cx_total');
    counters.inc('mesh_upstream_cx_total');
    let up: Duplex;
    try {
      up = await withTimeout(connect(upstream), this.#o.clock, this.#o.connectTimeoutMs ?? 5000);
    } catch {
      counters.inc('mesh_upstream_cx_connect_fail');
      socket.resetAndDestroy();
      return;
    }
    if (socket.destroyed) {
      up.destroy();
      return;
    }
    let relays = this.#relays.get(upstream.key);
    if (!relays) this.#relays.set(upstream.key, (relays = new Set()));
    relays.add(socket);
    try {
      await relay(socket, up, { counters, clock: this.#o.clock, ...(this.#o.idleTimeoutMs !== undefined && { idleTimeoutMs: this.#o.idleTimeoutMs }) });
    } finally {
      relays.delete(socket);
      if (relays.size === 0 && this.#relays.get(upstream.key) === relays) this.#relays.delete(upstream.key);
    }
  }

  #resetTask(key: string): void {
    const relays = this.#relays.get(key);
    if (!relays) return;
    this.#relays.delete(key);
    // The relay sees the downstream go and destroys the upstream with it.
    for (const s of relays) s.resetAndDestroy();
  }
}

function samePorts(a: { readonly ports: readonly { protocol: string; target: number }[] }, b: { readonly ports: readonly { protocol: string; target: number }[] }): boolean {
  return a.ports.length === b.ports.length && a.ports.every((p, i) => p.protocol === b.ports[i]?.protocol && p.target === b.ports[i]?.target);
}

/** Rejects after `ms` (destroying a late connection); the connect's own error otherwise. */
function withTimeout(connecting: Promise<Duplex>, clock: Clock, ms: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = clock.setTimer(ms, () => {
      done = true;
      reject(new Error(`Connect timed out after ${ms} ms`));
    });
    connecting.then(
      (s) => {
        timer.cancel();
        if (done) s.destroy();
        else resolve(s);
      },
      (error: unknown) => {
        timer.cancel();
        if (!done) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
