/**
 * One node's routing mesh, driven by the catalog: the composition the agent starts, so that
 * its own wiring is a few lines (ARCHITECTURE.md, "One host, one agent").
 *
 * - the endpoint table (its replication and member events come from the gossip: see
 *   `meshGossipDelegate` / `meshReplicationOf` in src/mesh/gossip-delegate.ts);
 * - ingress listeners on every published port of every service, in front of the router
 *   (balancer, connect-with-retry, relay);
 * - the catalog supervisor running this node's tasks: a task that listens becomes a row of
 *   ours; one that exits is marked unhealthy at once (so every balancer in the cluster stops
 *   choosing it before its passive health has to notice), and deleted when we stop;
 * - active health checks of our own tasks, fed back into their rows;
 * - with an overlay (`overlay`): the remote path (userspace TCP to tasks on other nodes), the
 *   owner's end of it (our tasks' overlay addresses and ports, relayed to the tasks), and the
 *   VTEP's forwarding entries, all from the same table.
 */
import type { Clock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { renderCounters } from '../lib/metrics.js';
import type { Rng } from '../lib/rng.js';
import { type Ipv4Address, parseIpv4Address } from '../wire/address.js';
import { EndpointTable, type EndpointTableOptions } from '../mesh/endpoint-table.js';
import { HealthChecker } from '../mesh/health.js';
import { nodeProbe } from '../mesh/node-health-probe.js';
import { IngressListeners } from '../mesh/node-ingress.js';
import { localTcpConnector } from '../mesh/node-upstream.js';
import { type OverlayPeerTarget, syncOverlayPeers } from '../mesh/overlay-peers.js';
import { MeshRouter } from '../mesh/router.js';
import { type OverlayAddresses, type OverlayTcpSockets, OverlayTaskListeners, overlayTcpConnector } from '../mesh/task-listeners.js';
import { type Catalog, type CatalogTask, catalogTaskRow, publishedPorts, serviceOf } from './catalog.js';
import { type BackoffOptions, CatalogSupervisor, type TaskLocation } from './catalog-supervisor.js';

export interface CatalogMeshOverlay {
  /** This node's own overlay address (in the catalog network's lower half). */
  readonly nodeAddress: Ipv4Address;
  /** The overlay's TCP sockets (`attachTcp(iface, …).sockets`). */
  readonly sockets: OverlayTcpSockets;
  /** The overlay interface, which answers for our tasks' addresses. */
  readonly addresses: OverlayAddresses;
  /** Where remote tasks' MAC → VTEP entries go (`overlayPeerTarget(vtep.fdb, iface, vni)`). */
  readonly peers: OverlayPeerTarget;
}

export interface CatalogMeshOptions {
  readonly catalog: Catalog;
  /** This node's name: the gossip's, and the catalog's `nodes:` key. */
  readonly nodeName: string;
  /** Where ingress listeners bind (the agent's address: 127.0.0.2 on a loopback cluster). */
  readonly listenHost: string;
  /** This node's VTEP as peers reach it (the advertised underlay address, not 0.0.0.0). */
  readonly vtep: { readonly address: string; readonly port: number };
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger?: Logger;
  readonly overlay?: CatalogMeshOverlay;
  /** Relay idle timeout; 0 or absent: never (the default, unlike IPVS's silent 900 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Upstream connect timeout before the next endpoint is tried (Envoy's 5 s by default). A
   * crashed node's tasks cost each connection that picks them this long until the gossip
   * declares the node dead; on a LAN, 1–2 s is plenty (the first SYN retransmission is at 1 s).
   */
  readonly connectTimeoutMs?: number;
  readonly backoff?: Partial<BackoffOptions>;
  readonly table?: Partial<Omit<EndpointTableOptions, 'nodeName' | 'clock'>>;
}

/**
 * The service name of each node's own row on the overlay (Swarm's load-balancer endpoint,
 * `lb-<network>`): remote agents connect from this address, so every owner needs its MAC →
 * VTEP entry to answer. It has no ports: no balancer ever chooses it.
 */
export const LB_SERVICE = 'lb-ingress';

export class CatalogMesh {
  readonly table: EndpointTable;
  readonly router: MeshRouter;
  readonly ingress: IngressListeners;
  readonly health: HealthChecker;
  readonly supervisor: CatalogSupervisor;
  readonly taskListeners: OverlayTaskListeners | undefined;
  readonly #stopPeers: (() => void) | undefined;
  readonly #log: Logger;
  #closed = false;

  private constructor(parts: {
    table: EndpointTable;
    router: MeshRouter;
    ingress: IngressListeners;
    health: HealthChecker;
    supervisor: CatalogSupervisor;
    taskListeners: OverlayTaskListeners | undefined;
    stopPeers: (() => void) | undefined;
    log: Logger;
  }) {
    this.table = parts.table;
    this.router = parts.router;
    this.ingress = parts.ingress;
    this.health = parts.health;
    this.supervisor = parts.supervisor;
    this.taskListeners = parts.taskListeners;
    this.#stopPeers = parts.stopPeers;
    this.#log = parts.log;
  }

  /**
   * Starts the mesh of one node: listeners first (every published port answers, even before any
   * task is known), then this node's tasks. Rejects with the bind error of a published port
   * (EADDRINUSE …) after closing what it opened, or InvalidArgumentError for a VTEP address that
   * is not an IPv4 address.
   */
  static async start(o: CatalogMeshOptions): Promise<CatalogMesh> {
    const log = (o.logger ?? silentLogger).child({ component: 'mesh' });
    const vtepAddress = parseIpv4Address(o.vtep.address);
    if (!vtepAddress.ok || vtepAddress.value === 0) throw new InvalidArgumentError(`The mesh needs the VTEP address peers reach, got ${JSON.stringify(o.vtep.address)}`);
    const table = new EndpointTable({ ...o.table, nodeName: o.nodeName, clock: o.clock, logger: log });
    const connectLocal = localTcpConnector();
    const router = new MeshRouter({
      table,
      clock: o.clock,
      rng: o.rng,
      connectLocal,
      ...(o.overlay && { connectRemote: overlayTcpConnector(o.overlay.sockets) }),
      ...(o.idleTimeoutMs !== undefined && { idleTimeoutMs: o.idleTimeoutMs }),
      ...(o.connectTimeoutMs !== undefined && { connectTimeoutMs: o.connectTimeoutMs }),
      logger: log,
    });
    const ingress = new IngressListeners({ host: o.listenHost, router, clock: o.clock, logger: log });
    const health = new HealthChecker({ clock: o.clock, probe: nodeProbe, report: (service, taskId, h) => table.setHealth(service, taskId, h), logger: log });
    const taskListeners = o.overlay
      ? new OverlayTaskListeners({ table, sockets: o.overlay.sockets, addresses: o.overlay.addresses, connectLocal, clock: o.clock, ...(o.idleTimeoutMs !== undefined && { idleTimeoutMs: o.idleTimeoutMs }), logger: log })
      : undefined;
    const stopPeers = o.overlay ? syncOverlayPeers(table, o.overlay.peers, (error, row) => log.warn({ err: error, task: row.taskId }, 'Cannot program an overlay peer')) : undefined;
    if (o.overlay) {
      table.upsertLocal({
        service: LB_SERVICE,
        taskId: o.nodeName,
        slot: 0,
        node: o.nodeName,
        overlayAddress: o.overlay.nodeAddress,
        vni: o.catalog.network.vni,
        vtepAddress: vtepAddress.value,
        vtepPort: o.vtep.port,
        hostAddress: 0,
        ports: [],
        health: 'none',
      });
    }
    let stopping = false;
    const onRunning = (task: CatalogTask, where: TaskLocation): void => {
      const host = parseIpv4Address(where.hostAddress);
      if (!host.ok) return;
      table.upsertLocal(catalogTaskRow(o.catalog, task, { hostAddress: host.value, hostPorts: where.hostPorts, vtepAddress: vtepAddress.value, vtepPort: o.vtep.port }));
      const service = serviceOf(o.catalog, task.service);
      const tcp = service?.targets.find((t) => t.protocol === 'tcp');
      const port = tcp && where.hostPorts.get(tcp.target);
      if (service?.healthcheck && port !== undefined) health.add(task.service, task.taskId, { host: where.hostAddress, port }, service.healthcheck);
    };
    const onExited = (task: CatalogTask): void => {
      health.remove(task.service, task.taskId);
      if (stopping) table.deleteLocal(task.service, task.taskId);
      else table.setHealth(task.service, task.taskId, 'unhealthy');
    };
    const supervisor = new CatalogSupervisor({ catalog: o.catalog, node: o.nodeName, clock: o.clock, logger: log, events: { onRunning, onExited }, ...(o.backoff && { backoff: o.backoff }) });
    const mesh = new CatalogMesh({ table, router, ingress, health, supervisor, taskListeners, stopPeers, log });
    mesh.#onClose = () => {
      stopping = true;
    };
    try {
      await ingress.setPorts(publishedPorts(o.catalog));
      await supervisor.start();
    } catch (error) {
      await mesh.close();
      throw error;
    }
    log.info({ node: o.nodeName, ports: publishedPorts(o.catalog).map((p) => `${p.published}/${p.protocol}`), tasks: supervisor.status().length }, 'Mesh started');
    return mesh;
  }

  #onClose: () => void = () => undefined;

  /**
   * Every mesh counter in Prometheus text: the table, ingress relays, the owner-side overlay
   * relays (`path="overlay"`), health checks and UDP flows, plus gauges of live rows and
   * active connections.
   */
  metrics(labels: Readonly<Record<string, string>> = {}): string {
    const gauge = (name: string, value: number, extra: Record<string, string> = {}): string => {
      const all = { ...labels, ...extra };
      const l = Object.entries(all).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',');
      return `# TYPE ${name} gauge\n${name}${l ? `{${l}}` : ''} ${value}\n`;
    };
    return (
      renderCounters(this.table.counters.snapshot(), labels) +
      renderCounters(this.router.counters.snapshot(), { ...labels, path: 'ingress' }) +
      (this.taskListeners ? renderCounters(this.taskListeners.counters.snapshot(), { ...labels, path: 'overlay' }) : '') +
      renderCounters(this.health.counters.snapshot(), labels) +
      renderCounters(this.ingress.udpCounters(), labels) +
      gauge('mesh_table_rows', this.table.size, {}) +
      gauge('mesh_downstream_cx_active', this.router.activeConnections, { path: 'ingress' })
    );
  }

  /**
   * Stops: listeners first (no new connections), then our tasks (their rows become tombstones,
   * broadcast if the gossip still runs: close the mesh before leaving the gossip), then the
   * health checks, the overlay side and the table. Idempotent.
   */
  /**
   * The first step of a graceful stop: withdraw every task row of ours (broadcast as
   * tombstones) while our tasks keep serving what is in flight and our ingress keeps routing
   * new connections to other nodes' tasks. The caller lets the gossip spread the tombstones
   * before close() stops the tasks, so other nodes stop choosing them first (Swarm's drain
   * before shutdown). Idempotent.
   */
  withdraw(): void {
    this.#onClose();
    for (const r of this.table.endpoints()) if (r.node === this.table.nodeName && r.service !== LB_SERVICE) this.table.deleteLocal(r.service, r.taskId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.withdraw();
    await this.ingress.close();
    await this.supervisor.stop();
    // `address` tasks are not ours to stop, but their rows go with us; so does our own overlay row.
    for (const r of this.table.endpoints()) if (r.node === this.table.nodeName) this.table.deleteLocal(r.service, r.taskId);
    this.health.close();
    this.taskListeners?.close();
    this.#stopPeers?.();
    this.router.close();
    this.table.close();
    this.#log.info('Mesh stopped');
  }
}
