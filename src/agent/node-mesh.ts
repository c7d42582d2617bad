/**
 * One node's routing mesh, driven by whoever knows the services and this node's tasks: the
 * executor (tasks the manager assigns) or the catalog file (catalog-mesh.ts). Both are sources
 * of the same calls, so there is one path into the endpoint table (ARCHITECTURE.md, "One
 * host, one agent"; issue 8: "the catalog file becomes one more source, not a second path").
 *
 * - the endpoint table (its replication and member events come from the gossip: see
 *   `meshGossipDelegate` / `meshReplicationOf` in src/mesh/gossip-delegate.ts);
 * - ingress listeners on every published port of every service (`setServices`), in front of
 *   the router (balancer, connect-with-retry, relay), whether this node runs a task or not;
 * - this node's task rows: `taskRunning` upserts one, `setTaskHealth` moves its health,
 *   `taskExited` marks it unhealthy at once (so every balancer in the cluster stops choosing
 *   it before its passive health has to notice), `taskRemoved` deletes it (a tombstone);
 * - `health`: the active checker (TCP connect / HTTP GET) that sources with such checks (the
 *   catalog) use; its results go into our rows;
 * - with an overlay (`overlay`): the remote path (userspace TCP to tasks on other nodes), the
 *   owner's end of it (our tasks' overlay addresses and ports, relayed to the tasks), the
 *   VTEP's forwarding entries from the same table, and our own `lb-ingress` row.
 */
import type { Clock } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { renderCounters } from '../lib/metrics.js';
import type { Rng } from '../lib/rng.js';
import { type Ipv4Address, parseIpv4Address } from '../wire/address.js';
import type { Health, PortProtocol } from '../mesh/endpoint-codec.js';
import { EndpointTable, type EndpointTableOptions } from '../mesh/endpoint-table.js';
import { HealthChecker } from '../mesh/health.js';
import { nodeProbe } from '../mesh/node-health-probe.js';
import { IngressListeners } from '../mesh/node-ingress.js';
import { localTcpConnector, openLocalUdpUpstream } from '../mesh/node-upstream.js';
import { type OverlayPeerTarget, syncOverlayPeers } from '../mesh/overlay-peers.js';
import { MeshRouter, PROXY_PROTOCOL_LABEL, type PublishedPort, appProtocolOfPortName, proxyProtocolOfLabel } from '../mesh/router.js';
import { type OverlayAddresses, type OverlayTcpSockets, OverlayTaskListeners, overlayTcpConnector } from '../mesh/task-listeners.js';
import type { ServiceRoute } from '../cluster/service-types.js';
import { type OverlayUdp, UdpEndpoints } from '../mesh/udp-flows.js';
import { UdpTaskListeners } from '../mesh/udp-task-listeners.js';

export interface NodeMeshOverlay {
  /** This node's own overlay address. */
  readonly nodeAddress: Ipv4Address;
  /** The overlay's TCP sockets (`attachTcp(iface, …).sockets`). */
  readonly sockets: OverlayTcpSockets;
  /** The overlay interface, which answers for our tasks' addresses. */
  readonly addresses: OverlayAddresses;
  /** Where remote tasks' MAC → VTEP entries go (`overlayPeerTarget(vtep.fdb, iface, vni)`). */
  readonly peers: OverlayPeerTarget;
  /**
   * The overlay's UDP (the agent's one UdpLayer, which the embedded DNS shares): UDP published
   * ports then reach tasks on other nodes, and our tasks' UDP ports are served on the overlay.
   */
  readonly udp?: OverlayUdp;
  /** The largest UDP payload the overlay carries (`iface.maxPayload - 8`). */
  readonly maxDatagramBytes?: number;
}

export interface NodeMeshOptions {
  /** This node's name: the gossip's, and the owner of our rows. */
  readonly nodeName: string;
  /** Where ingress listeners bind (the agent's address: 127.0.0.2 on a loopback cluster). */
  readonly listenHost: string;
  /** This node's VTEP as peers reach it (the advertised underlay address, not 0.0.0.0). */
  readonly vtep: { readonly address: string; readonly port: number };
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger?: Logger;
  readonly overlay?: NodeMeshOverlay;
  /** The ingress network's VNI, written into our rows. */
  readonly vni: number;
  /** Relay idle timeout; 0 or absent: never (the default, unlike IPVS's silent 900 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Upstream connect timeout before the next endpoint is tried (Envoy's 5 s by default). A
   * crashed node's tasks cost each connection that picks them this long until the gossip
   * declares the node dead; on a LAN, 1–2 s is plenty (the first SYN retransmission is at 1 s).
   */
  readonly connectTimeoutMs?: number;
  readonly table?: Partial<Omit<EndpointTableOptions, 'nodeName' | 'clock'>>;
}

/** A service as the mesh needs it: the ports it publishes in ingress mode. */
export interface MeshService {
  readonly name: string;
  /** Ingress-mode published ports (`service` in each must be `name`). */
  readonly ports: readonly PublishedPort[];
}

/** One of this node's tasks, as it enters the endpoint table. */
export interface LocalTask {
  readonly service: string;
  readonly taskId: string;
  readonly slot: number;
  readonly overlayAddress: Ipv4Address;
  /** Where the task listens on this host. */
  readonly hostAddress: Ipv4Address;
  /** Target port → host port. Targets without one are left out of the row. */
  readonly hostPorts: ReadonlyMap<number, number>;
  readonly targets: readonly { readonly protocol: PortProtocol; readonly target: number }[];
  /** `none` (no health check: routable at once) or `starting` (not routable until healthy). */
  readonly health: Health;
}

/**
 * The mesh's view of the manager's service routes (AssignmentSet.Services): each service with
 * its ingress-mode TCP and UDP published ports. Host-mode ports bypass the mesh (the task
 * itself listens on them, on its node only); SCTP has no listener here. A TCP port named
 * `http` or `http-*` is declared HTTP (the relay may replay a request its upstream never
 * answered); the service label `shoal.proxy-protocol=v1|v2` makes the ingress node send a
 * PROXY header with the client's address (router.ts).
 */
export function meshServices(routes: readonly ServiceRoute[]): MeshService[] {
  return routes.map((r) => {
    const proxyProtocol = proxyProtocolOfLabel(r.Labels?.[PROXY_PROTOCOL_LABEL]);
    return {
      name: r.Name,
      ports: r.Ports.flatMap((p): PublishedPort[] => {
        if (p.PublishMode !== 'ingress' || (p.Protocol !== 'tcp' && p.Protocol !== 'udp') || p.PublishedPort <= 0) return [];
        const appProtocol = p.Protocol === 'tcp' ? appProtocolOfPortName(p.Name) : undefined;
        const proxy = p.Protocol === 'tcp' ? proxyProtocol : undefined;
        return [{ service: r.Name, protocol: p.Protocol, published: p.PublishedPort, target: p.TargetPort, ...(appProtocol && { appProtocol }), ...(proxy && { proxyProtocol: proxy }) }];
      }),
    };
  });
}

/**
 * The service name of each node's own row on the overlay (Swarm's load-balancer endpoint,
 * `lb-<network>`): remote agents connect from this address, so every owner needs its MAC →
 * VTEP entry to answer. It has no ports: no balancer ever chooses it.
 */
export const LB_SERVICE = 'lb-ingress';

export const NODE_MESH_COUNTERS = ['mesh_ingress_bind_fail', 'mesh_ingress_port_conflict', 'mesh_local_task_rejected'] as const;

/** The source of `setServices` calls that name none. */
export const DEFAULT_SOURCE = 'default';

const portKey = (p: { protocol: string; published: number }): string => `${p.published}/${p.protocol}`;

export class NodeMesh {
  readonly table: EndpointTable;
  readonly router: MeshRouter;
  readonly ingress: IngressListeners;
  readonly health: HealthChecker;
  readonly taskListeners: OverlayTaskListeners | undefined;
  readonly udpTaskListeners: UdpTaskListeners | undefined;
  readonly udpEndpoints: UdpEndpoints | undefined;
  readonly counters = new Counters(NODE_MESH_COUNTERS);
  readonly #stopPeers: (() => void) | undefined;
  readonly #log: Logger;
  readonly #vtepAddress: Ipv4Address;
  readonly #vtepPort: number;
  readonly #vni: number;
  /** Published ports that could not be bound at the last setServices, with why. */
  #unbound = new Map<string, { readonly port: PublishedPort; readonly error: Error }>();
  /** Each source's services, in the order the sources first set them. */
  readonly #sources = new Map<string, readonly MeshService[]>();
  /** Serialises setServices: each call reconciles to the sources as they are then, in call order. */
  #ports: Promise<void> = Promise.resolve();
  #withdrawn = false;
  #closed = false;

  private constructor(parts: {
    table: EndpointTable;
    router: MeshRouter;
    ingress: IngressListeners;
    health: HealthChecker;
    taskListeners: OverlayTaskListeners | undefined;
    udpTaskListeners: UdpTaskListeners | undefined;
    udpEndpoints: UdpEndpoints | undefined;
    stopPeers: (() => void) | undefined;
    log: Logger;
    vtepAddress: Ipv4Address;
    vtepPort: number;
    vni: number;
  }) {
    this.table = parts.table;
    this.router = parts.router;
    this.ingress = parts.ingress;
    this.health = parts.health;
    this.taskListeners = parts.taskListeners;
    this.udpTaskListeners = parts.udpTaskListeners;
    this.udpEndpoints = parts.udpEndpoints;
    this.#stopPeers = parts.stopPeers;
    this.#log = parts.log;
    this.#vtepAddress = parts.vtepAddress;
    this.#vtepPort = parts.vtepPort;
    this.#vni = parts.vni;
  }

  /**
   * Starts a node's mesh with no service and no task yet (then `setServices`, `taskRunning`).
   * Throws InvalidArgumentError for a VTEP address that is not a unicast IPv4 address.
   */
  static async start(o: NodeMeshOptions): Promise<NodeMesh> {
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
    const udp = o.overlay?.udp;
    const maxDatagram = o.overlay?.maxDatagramBytes !== undefined ? { maxDatagramBytes: o.overlay.maxDatagramBytes } : {};
    const udpEndpoints = udp ? new UdpEndpoints({ table, udp, ...maxDatagram }) : undefined;
    const ingress = new IngressListeners({ host: o.listenHost, router, clock: o.clock, logger: log, ...(udpEndpoints && { udpEndpoints }) });
    const udpTaskListeners = udp ? new UdpTaskListeners({ table, udp, openLocal: openLocalUdpUpstream, clock: o.clock, ...maxDatagram, logger: log }) : undefined;
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
        vni: o.vni,
        vtepAddress: vtepAddress.value,
        vtepPort: o.vtep.port,
        hostAddress: 0,
        ports: [],
        health: 'none',
      });
    }
    return new NodeMesh({ table, router, ingress, health, taskListeners, udpTaskListeners, udpEndpoints, stopPeers, log, vtepAddress: vtepAddress.value, vtepPort: o.vtep.port, vni: o.vni });
  }

  /**
   * Sets the services one source publishes (`default`, or e.g. `manager` and `catalog` side by
   * side), and listens on exactly the ingress-mode published ports of every source's services:
   * opens new ones, closes those no longer published. A port published for two different
   * services goes to the one whose source set it first (the other is logged and counted,
   * `mesh_ingress_port_conflict`); the same service's port from two sources is one listener.
   * A port that cannot be bound (EADDRINUSE, EACCES) is logged, counted
   * (`mesh_ingress_bind_fail`) and listed by `unboundPorts()`, never thrown: the other services
   * keep their listeners, and the next call tries it again. Calls run in order.
   */
  setServices(services: readonly MeshService[], source = DEFAULT_SOURCE): Promise<void> {
    if (services.length === 0) this.#sources.delete(source);
    else this.#sources.set(source, services);
    const run = this.#ports.then(() => this.#setPorts(this.#wantedPorts()));
    this.#ports = run;
    return run;
  }

  /** The union of every source's ports; the first source to publish a port keeps it. */
  #wantedPorts(): PublishedPort[] {
    const byKey = new Map<string, { port: PublishedPort; source: string }>();
    for (const [source, services] of this.#sources) {
      for (const s of services) {
        for (const p of s.ports) {
          const port = { ...p, service: s.name };
          const key = portKey(port);
          const held = byKey.get(key);
          if (!held) byKey.set(key, { port, source });
          else if (held.port.service !== port.service || held.port.target !== port.target) {
            this.counters.inc('mesh_ingress_port_conflict');
            this.#log.warn({ port: key, service: s.name, source, heldBy: { service: held.port.service, source: held.source } }, 'A published port is already published by another source');
          }
        }
      }
    }
    return [...byKey.values()].map((v) => v.port);
  }

  async #setPorts(ports: readonly PublishedPort[]): Promise<void> {
    if (this.#closed) return;
    const wanted = new Map(ports.map((p) => [portKey(p), p]));
    const same = (a: PublishedPort, b: PublishedPort): boolean => a.service === b.service && a.target === b.target;
    // First close what is no longer wanted (or now belongs to another service), keep the rest…
    const kept = this.ingress.ports().filter((l) => {
      const w = wanted.get(portKey(l));
      return w !== undefined && same(w, l);
    });
    await this.ingress.setPorts(kept).catch(() => undefined);
    // …then open each new port on its own, so that one port's bind error is its own.
    const unbound = new Map<string, { port: PublishedPort; error: Error }>();
    for (const [key, p] of wanted) {
      if (kept.some((k) => portKey(k) === key)) continue;
      try {
        await this.ingress.setPorts([...kept, p]);
        kept.push(p);
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        unbound.set(key, { port: p, error: e });
        this.counters.inc('mesh_ingress_bind_fail');
        this.#log.warn({ err: e, service: p.service, port: p.published, protocol: p.protocol }, 'Cannot listen on a published port');
      }
    }
    this.#unbound = unbound;
  }

  /** The published ports that could not be bound at the last `setServices`, with the error. */
  unboundPorts(): readonly { readonly port: PublishedPort; readonly error: Error }[] {
    return [...this.#unbound.values()];
  }

  /**
   * Upserts the row of a local task that serves (its process listens, or it is an outside
   * process the catalog names). Ignored after `withdraw()`; a row the table refuses (full, or
   * invalid) is logged and counted (`mesh_local_task_rejected`), never thrown.
   */
  taskRunning(t: LocalTask): void {
    if (this.#withdrawn) return;
    try {
      this.table.upsertLocal({
        service: t.service,
        taskId: t.taskId,
        slot: t.slot,
        node: this.table.nodeName,
        overlayAddress: t.overlayAddress,
        vni: this.#vni,
        vtepAddress: this.#vtepAddress,
        vtepPort: this.#vtepPort,
        hostAddress: t.hostAddress,
        ports: t.targets.flatMap((p) => {
          const hostPort = t.hostPorts.get(p.target);
          return hostPort === undefined ? [] : [{ protocol: p.protocol, target: p.target, hostPort }];
        }),
        health: t.health,
      });
    } catch (error) {
      this.counters.inc('mesh_local_task_rejected');
      this.#log.error({ err: error, service: t.service, task: t.taskId }, 'Cannot publish a local task');
    }
  }

  /** Moves a local task's health (healthy: routable; starting/unhealthy: not). No-op for an unknown task. */
  setTaskHealth(service: string, taskId: string, health: Health): void {
    if (this.#withdrawn) return;
    this.table.setHealth(service, taskId, health);
  }

  /**
   * A local task's process exited: marked unhealthy at once, so no balancer in the cluster
   * chooses it; its row stays (a restart may bring it back) until `taskRemoved`. After
   * `withdraw()`, the row is deleted instead.
   */
  taskExited(service: string, taskId: string): void {
    this.health.remove(service, taskId);
    if (this.#withdrawn) this.table.deleteLocal(service, taskId);
    else this.table.setHealth(service, taskId, 'unhealthy');
  }

  /** A local task is gone for good: its row becomes a tombstone, broadcast by the gossip. */
  taskRemoved(service: string, taskId: string): void {
    this.health.remove(service, taskId);
    this.table.deleteLocal(service, taskId);
  }

  /**
   * The first step of a graceful stop: withdraw every task row of ours (broadcast as
   * tombstones) while our tasks keep serving what is in flight and our ingress keeps routing
   * new connections to other nodes' tasks. The caller lets the gossip spread the tombstones
   * before close() stops the tasks, so other nodes stop choosing them first (Swarm's drain
   * before shutdown). Later `taskRunning` calls are ignored. Idempotent.
   */
  withdraw(): void {
    this.#withdrawn = true;
    for (const r of this.table.endpoints()) if (r.node === this.table.nodeName && r.service !== LB_SERVICE) this.table.deleteLocal(r.service, r.taskId);
  }

  /**
   * Every mesh counter in Prometheus text: the table, ingress relays, the owner-side overlay
   * relays (`path="overlay"`), health checks, UDP flows and bind failures, plus gauges of live
   * rows and active connections.
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
      (this.udpTaskListeners ? renderCounters(this.udpTaskListeners.counters(), { ...labels, path: 'overlay' }) : '') +
      renderCounters(this.health.counters.snapshot(), labels) +
      renderCounters(this.ingress.udpCounters(), labels) +
      renderCounters(this.counters.snapshot(), labels) +
      this.router.serviceMetrics.render(labels) +
      gauge('mesh_table_rows', this.table.size, {}) +
      gauge('mesh_downstream_cx_active', this.router.activeConnections, { path: 'ingress' })
    );
  }

  /**
   * Stops: withdraws our rows, closes the listeners, then deletes every row of ours left (our
   * own overlay row too), stops the health checks, the overlay side and the table. Stop the
   * tasks between `withdraw()` and `close()`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.withdraw();
    await this.#ports.catch(() => undefined);
    await this.ingress.close();
    for (const r of this.table.endpoints()) if (r.node === this.table.nodeName) this.table.deleteLocal(r.service, r.taskId);
    this.health.close();
    this.taskListeners?.close();
    this.udpTaskListeners?.close();
    this.udpEndpoints?.close();
    this.#stopPeers?.();
    this.router.close();
    this.table.close();
    this.#log.info('Mesh stopped');
  }
}
