/**
 * One node's routing mesh driven by the catalog file (until, and beside, the control plane):
 * a NodeMesh (node-mesh.ts) fed by one more source. The catalog's services become the mesh's
 * services (ingress listeners on every published port), and the catalog supervisor's events
 * become the NodeMesh's task calls:
 *
 * - a task that listens (or an `address` task) → `taskRunning`, plus its catalog health check
 *   on the NodeMesh's checker;
 * - a task whose process exits → `taskExited` (unhealthy at once, so every balancer in the
 *   cluster stops choosing it before its passive health has to notice; the supervisor restarts
 *   it and `taskRunning` brings it back);
 * - a task stopped with us → `taskRemoved`.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { Rng } from '../lib/rng.js';
import { parseIpv4Address } from '../wire/address.js';
import type { EndpointTableOptions } from '../mesh/endpoint-table.js';
import type { HealthChecker } from '../mesh/health.js';
import type { IngressListeners } from '../mesh/node-ingress.js';
import type { MeshRouter } from '../mesh/router.js';
import type { EndpointTable } from '../mesh/endpoint-table.js';
import type { OverlayTaskListeners } from '../mesh/task-listeners.js';
import { type Catalog, type CatalogTask, serviceOf, tasksOf } from './catalog.js';
import { type BackoffOptions, CatalogSupervisor, type TaskLocation } from './catalog-supervisor.js';
import { LB_SERVICE, type MeshService, NodeMesh, type NodeMeshOverlay } from './node-mesh.js';

export { LB_SERVICE };

/** The overlay side of a node's mesh (node-mesh.ts NodeMeshOverlay). */
export type CatalogMeshOverlay = NodeMeshOverlay;

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

/** The catalog's services as the mesh sees them. */
export function catalogServices(catalog: Catalog): MeshService[] {
  return catalog.services.map((s) => ({ name: s.name, ports: s.ports }));
}

/** What attaching a catalog to an existing NodeMesh needs (the mesh's own options are its own). */
export interface CatalogSourceOptions {
  readonly catalog: Catalog;
  /** This node's name: the catalog's `nodes:` key. */
  readonly nodeName: string;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly backoff?: Partial<BackoffOptions>;
}

/** The `setServices` source name of the catalog's services. */
export const CATALOG_SOURCE = 'catalog';

export class CatalogMesh {
  /** The mesh this catalog drives (shared with the executor when attached). */
  readonly node: NodeMesh;
  readonly supervisor: CatalogSupervisor;
  /** Whether this CatalogMesh started the NodeMesh (and so closes it), or was attached to one. */
  readonly #owned: boolean;
  readonly #catalog: Catalog;
  readonly #nodeName: string;
  #stopping = false;
  #closed = false;

  private constructor(node: NodeMesh, supervisor: CatalogSupervisor, owned: boolean, catalog: Catalog, nodeName: string) {
    this.node = node;
    this.supervisor = supervisor;
    this.#owned = owned;
    this.#catalog = catalog;
    this.#nodeName = nodeName;
  }

  get table(): EndpointTable {
    return this.node.table;
  }

  get router(): MeshRouter {
    return this.node.router;
  }

  get ingress(): IngressListeners {
    return this.node.ingress;
  }

  get health(): HealthChecker {
    return this.node.health;
  }

  get taskListeners(): OverlayTaskListeners | undefined {
    return this.node.taskListeners;
  }

  /**
   * Starts the mesh of one node with the catalog as its only source: listeners first (every
   * published port answers, even before any task is known), then this node's tasks. Rejects
   * with the bind error of a published port (EADDRINUSE …) after closing what it opened, or
   * InvalidArgumentError for a VTEP address that is not an IPv4 address.
   */
  static async start(o: CatalogMeshOptions): Promise<CatalogMesh> {
    const node = await NodeMesh.start({
      nodeName: o.nodeName,
      listenHost: o.listenHost,
      vtep: o.vtep,
      clock: o.clock,
      rng: o.rng,
      vni: o.catalog.network.vni,
      ...(o.logger && { logger: o.logger }),
      ...(o.overlay && { overlay: o.overlay }),
      ...(o.idleTimeoutMs !== undefined && { idleTimeoutMs: o.idleTimeoutMs }),
      ...(o.connectTimeoutMs !== undefined && { connectTimeoutMs: o.connectTimeoutMs }),
      ...(o.table && { table: o.table }),
    });
    return CatalogMesh.#begin(node, o, true);
  }

  /**
   * Makes the catalog one more source of an existing NodeMesh (beside the executor's tasks and
   * the manager's services, source `catalog` in `setServices`): its services' ports get
   * listeners, this node's catalog tasks are run and published. close() then stops only what
   * the catalog brought. Rejects with the bind error of a port the catalog publishes (after
   * undoing what it did).
   */
  static attach(node: NodeMesh, o: CatalogSourceOptions): Promise<CatalogMesh> {
    return CatalogMesh.#begin(node, o, false);
  }

  static async #begin(node: NodeMesh, o: CatalogSourceOptions, owned: boolean): Promise<CatalogMesh> {
    const log = (o.logger ?? silentLogger).child({ component: 'mesh' });
    const onRunning = (task: CatalogTask, where: TaskLocation): void => {
      const host = parseIpv4Address(where.hostAddress);
      if (!host.ok || mesh.#stopping) return;
      const service = serviceOf(o.catalog, task.service);
      node.taskRunning({
        service: task.service,
        taskId: task.taskId,
        slot: task.slot,
        overlayAddress: task.overlayAddress,
        hostAddress: host.value,
        hostPorts: where.hostPorts,
        targets: service?.targets ?? [],
        health: service?.healthcheck ? 'starting' : 'none',
      });
      const tcp = service?.targets.find((t) => t.protocol === 'tcp');
      const port = tcp && where.hostPorts.get(tcp.target);
      if (service?.healthcheck && port !== undefined) node.health.add(task.service, task.taskId, { host: where.hostAddress, port }, service.healthcheck);
    };
    const onExited = (task: CatalogTask): void => {
      if (mesh.#stopping) node.taskRemoved(task.service, task.taskId);
      else node.taskExited(task.service, task.taskId);
    };
    const supervisor = new CatalogSupervisor({ catalog: o.catalog, node: o.nodeName, clock: o.clock, logger: log, events: { onRunning, onExited }, ...(o.backoff && { backoff: o.backoff }) });
    // The events above fire only once the supervisor starts, after this.
    const mesh = new CatalogMesh(node, supervisor, owned, o.catalog, o.nodeName);
    try {
      await node.setServices(catalogServices(o.catalog), CATALOG_SOURCE);
      // The catalog is fixed: a port it publishes that cannot be bound is a start error.
      const mine = new Set(o.catalog.services.map((s) => s.name));
      const unbound = node.unboundPorts().find((u) => mine.has(u.port.service));
      if (unbound) throw unbound.error;
      await supervisor.start();
    } catch (error) {
      await mesh.close();
      throw error;
    }
    log.info({ node: o.nodeName, ports: node.ingress.ports().map((p) => `${p.published}/${p.protocol}`), tasks: supervisor.status().length }, 'Mesh started');
    return mesh;
  }

  /**
   * Every mesh counter in Prometheus text: the table, ingress relays, the owner-side overlay
   * relays (`path="overlay"`), health checks and UDP flows, plus gauges of live rows and
   * active connections.
   */
  metrics(labels: Readonly<Record<string, string>> = {}): string {
    return this.node.metrics(labels);
  }

  /**
   * The first step of a graceful stop: withdraw every task row of ours (broadcast as
   * tombstones) while our tasks keep serving what is in flight and our ingress keeps routing
   * new connections to other nodes' tasks. The caller lets the gossip spread the tombstones
   * before close() stops the tasks, so other nodes stop choosing them first (Swarm's drain
   * before shutdown). Attached: only the catalog's rows. Idempotent.
   */
  withdraw(): void {
    this.#stopping = true;
    if (this.#owned) this.node.withdraw();
    else for (const t of tasksOf(this.#catalog, this.#nodeName)) this.node.taskRemoved(t.service, t.taskId);
  }

  /**
   * Stops: listeners first (no new connections), then our tasks (their rows become tombstones,
   * broadcast if the gossip still runs: close the mesh before leaving the gossip), then the
   * health checks, the overlay side and the table. Attached: the catalog's tasks and rows, and
   * its services' listeners; the NodeMesh goes on. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.withdraw();
    if (!this.#owned) {
      await this.supervisor.stop();
      this.withdraw();
      await this.node.setServices([], CATALOG_SOURCE);
      return;
    }
    await this.node.ingress.close();
    await this.supervisor.stop();
    // `address` tasks are not ours to stop, but their rows go with us; so does our own overlay row.
    await this.node.close();
  }
}
