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
import { type Catalog, type CatalogTask, serviceOf } from './catalog.js';
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

export class CatalogMesh {
  /** The mesh this catalog drives (the executor's source would drive the same kind). */
  readonly node: NodeMesh;
  readonly supervisor: CatalogSupervisor;
  #closed = false;

  private constructor(node: NodeMesh, supervisor: CatalogSupervisor) {
    this.node = node;
    this.supervisor = supervisor;
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
   * Starts the mesh of one node: listeners first (every published port answers, even before any
   * task is known), then this node's tasks. Rejects with the bind error of a published port
   * (EADDRINUSE …) after closing what it opened, or InvalidArgumentError for a VTEP address that
   * is not an IPv4 address.
   */
  static async start(o: CatalogMeshOptions): Promise<CatalogMesh> {
    const log = (o.logger ?? silentLogger).child({ component: 'mesh' });
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
    let stopping = false;
    const onRunning = (task: CatalogTask, where: TaskLocation): void => {
      const host = parseIpv4Address(where.hostAddress);
      if (!host.ok) return;
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
      if (stopping) node.taskRemoved(task.service, task.taskId);
      else node.taskExited(task.service, task.taskId);
    };
    const supervisor = new CatalogSupervisor({ catalog: o.catalog, node: o.nodeName, clock: o.clock, logger: log, events: { onRunning, onExited }, ...(o.backoff && { backoff: o.backoff }) });
    const mesh = new CatalogMesh(node, supervisor);
    mesh.#onClose = () => {
      stopping = true;
    };
    try {
      await node.setServices(catalogServices(o.catalog));
      // The catalog is fixed: a port it publishes that cannot be bound is a start error.
      const unbound = node.unboundPorts()[0];
      if (unbound) throw unbound.error;
      await supervisor.start();
    } catch (error) {
      await mesh.close();
      throw error;
    }
    log.info({ node: o.nodeName, ports: node.ingress.ports().map((p) => `${p.published}/${p.protocol}`), tasks: supervisor.status().length }, 'Mesh started');
    return mesh;
  }

  #onClose: () => void = () => undefined;

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
   * before shutdown). Idempotent.
   */
  withdraw(): void {
    this.#onClose();
    this.node.withdraw();
  }

  /**
   * Stops: listeners first (no new connections), then our tasks (their rows become tombstones,
   * broadcast if the gossip still runs: close the mesh before leaving the gossip), then the
   * health checks, the overlay side and the table. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.withdraw();
    await this.node.ingress.close();
    await this.supervisor.stop();
    // `address` tasks are not ours to stop, but their rows go with us; so does our own overlay row.
    await this.node.close();
  }
}
