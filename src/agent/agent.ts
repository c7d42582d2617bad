/**
 * The composition root of one host (ARCHITECTURE.md, "One host, one agent"):
 *
 * - the overlay presence: the VTEP on the data path port and this host's interface on the
 *   ingress network, with the userspace TCP on it;
 * - the gossip (SWIM, memberlist's wire format) on the gossip port, carrying the endpoint table;
 * - the routing mesh (NodeMesh): ingress listeners on every published port, this node's tasks
 *   in the endpoint table, their health, the relay; its sources are the catalog file
 *   (CatalogMesh) and the swarm's services, whose tasks the executor runs;
 * - names (NameService): the embedded DNS, VIPs on the overlay, the host-side mirrors;
 * - the swarm side (issues 7, 8): membership, tokens, the manager role, and the dispatcher
 *   session that hands this node's assignments to the executor and reports back.
 *
 * Only this folder touches real time, sockets and files.
 */
import { RealClock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { mergeExposition, renderCounters } from '../lib/metrics.js';
import { CryptoRng } from '../lib/rng.js';
import { formatIpv4Address, parseIpv4Address } from '../wire/address.js';
import type { UdpEndpoint } from '../overlay/datagram.js';
import { type AttachedTcp, attachTcp } from '../netstack/tcp/index.js';
import { type Member, type MemberEvent, Memberlist } from '../gossip/memberlist.js';
import { NodeTransport } from '../gossip/node-transport.js';
import { meshGossipDelegate, meshReplicationOf } from '../mesh/gossip-delegate.js';
import { overlayPeerTarget } from '../mesh/overlay-peers.js';
import { UdpLayer } from '../netstack/udp.js';
import type { AssignmentSet } from '../cluster/service-types.js';
import { type Catalog, DEFAULT_SUBNET, DEFAULT_VNI, loadCatalog } from './catalog.js';
import { CatalogMesh } from './catalog-mesh.js';
import { MembershipLiveness } from './cluster-liveness.js';
import { ClusterNode } from './cluster-node.js';
import { type AgentSettings, nodeOverlayAddress } from './config.js';
import { DispatcherSession } from './dispatcher-session.js';
import { Executor, meshEvents } from './executor.js';
import { NameService, catalogRoutes, defaultDnsFallback } from './names.js';
import { NodeMesh, meshServices } from './node-mesh.js';
import { OverlayNode, parseCidr } from './overlay-node.js';

/** Upstream connect timeout of the mesh: a crashed node's tasks cost a connection this long until the gossip declares it dead. */
const MESH_CONNECT_TIMEOUT_MS = 1000;
/** How long a graceful leave waits for the gossip to spread it (memberlist's Leave timeout). */
const LEAVE_TIMEOUT_MS = 5000;
/** How long withdrawn rows spread before the tasks stop: a few gossip rounds (200 ms each, GossipNodes 3). */
const DRAIN_MS = 1000;
/** After leave() resolves, time for its last transmission to leave the socket. */
const LEAVE_FLUSH_MS = 400;
/** Join attempts at start: agents started together may come up after their seeds. */
const JOIN_RETRY_MS = 1000;
const JOIN_ATTEMPTS = 30;

export interface AgentConfig {
  readonly settings: AgentSettings;
  /** Where the swarm side keeps this node's identity and the manager's store. */
  readonly dataDir: string;
}

export class Agent {
  readonly config: AgentConfig;
  readonly overlay: OverlayNode;
  readonly tcp: AttachedTcp;
  readonly gossip: Memberlist;
  readonly mesh: NodeMesh;
  readonly catalog: CatalogMesh | undefined;
  readonly names: NameService;
  readonly executor: Executor;
  readonly cluster: ClusterNode;
  readonly session: DispatcherSession;
  readonly #logger: Logger;
  #joining = true;
  /** Set once the executor is stopping: later assignments are not acted on. */
  #closing = false;

  private constructor(parts: {
    config: AgentConfig;
    overlay: OverlayNode;
    tcp: AttachedTcp;
    gossip: Memberlist;
    mesh: NodeMesh;
    catalog: CatalogMesh | undefined;
    names: NameService;
    executor: Executor;
    cluster: ClusterNode;
    session: DispatcherSession;
    logger: Logger;
  }) {
    this.config = parts.config;
    this.overlay = parts.overlay;
    this.tcp = parts.tcp;
    this.gossip = parts.gossip;
    this.mesh = parts.mesh;
    this.catalog = parts.catalog;
    this.names = parts.names;
    this.executor = parts.executor;
    this.cluster = parts.cluster;
    this.session = parts.session;
    this.#logger = parts.logger;
  }

  get nodeName(): string {
    return this.config.settings.nodeName;
  }

  /**
   * Starts every part of the agent, then joins the gossip in the background (retrying while
   * the seeds come up). Throws VtepSocketError or GossipSocketError when a port cannot be
   * bound, CatalogError for a bad catalog, InvalidArgumentError for a bad setting.
   */
  static async start(config: AgentConfig, logger: Logger): Promise<Agent> {
    const s = config.settings;
    const clock = new RealClock();
    const rng = new CryptoRng();
    const catalog: Catalog | undefined = s.catalog === undefined ? undefined : await loadCatalog(s.catalog);
    const network = catalog?.network ?? defaultNetwork();
    const overlayAddr = s.overlayAddr ?? { address: nodeOverlayAddress(s.advertiseAddr, network.subnet, network.prefixLen), prefixLen: network.prefixLen };
    const overlay = await OverlayNode.start(
      { underlay: { address: s.listenAddr, port: s.dataPathPort }, vni: network.vni, address: overlayAddr.address, prefixLen: overlayAddr.prefixLen, peers: s.peers, fdb: s.fdb, flood: s.flood },
      { clock, logger },
    );
    const tcp = attachTcp(overlay.iface, { clock, rng });
    // One UDP layer on the overlay interface, shared by the mesh (UDP published ports) and the embedded DNS.
    const udp = new UdpLayer(overlay.iface);
    const meshOverlay = { nodeAddress: overlayAddr.address, sockets: tcp.sockets, addresses: overlay.iface, peers: overlayPeerTarget(overlay.vtep.fdb, overlay.iface, network.vni), udp, maxDatagramBytes: overlay.iface.maxPayload - 8 };
    const vtep = { address: s.advertiseAddr, port: s.dataPathPort };
    const mesh = await NodeMesh.start({ nodeName: s.nodeName, listenHost: s.listenAddr, vtep, clock, rng, logger, connectTimeoutMs: MESH_CONNECT_TIMEOUT_MS, overlay: meshOverlay, vni: network.vni });
    // The catalog is one source of services and tasks; the swarm (below) is another.
    const catalogMesh = catalog && (await CatalogMesh.attach(mesh, { catalog, nodeName: s.nodeName, clock, logger }));
    const names = await NameService.start({
      table: mesh.table,
      router: mesh.router,
      overlay: { iface: overlay.iface, udp, tcpSockets: tcp.sockets, nodeAddress: overlayAddr.address },
      dns: s.dnsAddr ?? defaultDnsFallback(s.listenAddr),
      // Without --dns-addr, agents sharing a listen address may share the fallback too: any port will do.
      dnsAnyPortLastResort: s.dnsAddr === undefined,
      mirrors: s.mirrors,
      clock,
      logger,
    });
    const catalogRouteSet = catalog ? catalogRoutes(catalog) : [];
    names.setServices(catalogRouteSet);
    const transport = await NodeTransport.bind({ host: s.listenAddr, port: s.gossipPort, clock, advertiseHost: s.advertiseAddr });
    const meshDelegate = meshGossipDelegate(mesh.table);
    // The manager's node status follows the gossip: dead or left → Down, alive → Ready.
    const liveness = new MembershipLiveness();
    const gossip = Memberlist.create({
      name: s.nodeName,
      transport,
      clock,
      rng,
      logger,
      advertise: { host: s.advertiseAddr, port: s.gossipPort },
      delegate: {
        ...meshDelegate,
        notifyEvent: (event: MemberEvent) => {
          logMemberEvent(logger, event);
          meshDelegate.notifyEvent(event);
          liveness.notifyEvent(event);
          // A member back from the dead sent its rows while we still ignored it (the table's
          // rule for dead owners): fetch its state again now that it counts, rather than
          // waiting up to a push/pull period (30 s) during which nobody could answer it.
          if ((event.type === 'join' || event.type === 'alive') && event.member.name !== s.nodeName) void gossip.pushPullWith(event.member.address);
        },
      },
    });
    mesh.table.setReplication(meshReplicationOf(gossip));
    const cluster = await ClusterNode.start({ dataDir: config.dataDir, advertiseAddr: s.advertiseAddr, nodeName: s.nodeName, logger });
    cluster.attachLiveness(liveness);
    // The swarm's tasks: the dispatcher session hands this node's assignments to the executor,
    // whose tasks enter the mesh; the swarm's services join the catalog's on every node.
    const session: DispatcherSession = new DispatcherSession({ link: () => cluster.dispatcher(), onAssignments: (set) => onAssignments(set), logger });
    const executor = new Executor({
      nodeName: s.nodeName,
      publishHost: s.listenAddr,
      clock,
      logger,
      events: { status: (u) => session.report(u), logs: (lines) => session.logs(lines), ...meshEvents(mesh) },
    });
    const onAssignments = (set: AssignmentSet): void => {
      if (agent.#closing) return;
      void mesh.setServices(meshServices(set.Services), 'swarm');
      names.setServices([...catalogRouteSet, ...set.Services]);
      executor.reconcile(set);
    };
    const agent = new Agent({ config, overlay, tcp, gossip, mesh, catalog: catalogMesh, names, executor, cluster, session, logger });
    session.start();
    // A swarm member gossips with its managers' hosts, as Swarm's nodes find each other
    // through the managers: at start (a restarted member) and whenever it inits or joins.
    const managerSeeds = (managers: readonly string[]): string[] => managers.map((m) => `${m.replace(/:\d+$/, '')}:${s.gossipPort}`);
    cluster.onSwarmJoined((managers) => void agent.#join(managerSeeds(managers)));
    void agent.#join([...s.join, ...managerSeeds(cluster.managers())]);
    logger.info({ node: s.nodeName, overlay: formatIpv4Address(overlayAddr.address), vtep: overlay.vtep.local(), gossip: `${s.advertiseAddr}:${s.gossipPort}`, catalog: s.catalog }, 'agent started');
    return agent;
  }

  async #join(candidates: readonly string[]): Promise<void> {
    const self = `${this.config.settings.advertiseAddr}:${this.config.settings.gossipPort}`;
    const seeds = [...new Set(candidates)].filter((seed) => seed !== self);
    for (let attempt = 1; this.#joining && seeds.length > 0 && attempt <= JOIN_ATTEMPTS; attempt++) {
      try {
        const joined = await this.gossip.join(seeds);
        this.#logger.info({ seeds, joined }, 'joined the gossip');
        return;
      } catch (error) {
        if (attempt === 1 || attempt === JOIN_ATTEMPTS) this.#logger.warn({ seeds, attempt, err: error }, 'cannot join the gossip yet');
        await sleep(JOIN_RETRY_MS);
      }
    }
  }

  vtepAddress(): UdpEndpoint {
    return this.overlay.vtep.local();
  }

  /** The members the gossip sees alive or suspect, this node included. */
  members(): Member[] {
    return this.gossip.members();
  }

  /** Pings an overlay address from this host's interface. Throws InvalidArgumentError for a bad address. */
  pingOverlay(address: string, options: { count: number; intervalMs: number; timeoutMs: number }): ReturnType<OverlayNode['ping']> {
    const parsed = parseIpv4Address(address);
    if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
    return this.overlay.ping(parsed.value, options);
  }

  /** Every counter of every component, in Prometheus text format. */
  metrics(): string {
    const labels = { node: this.nodeName };
    return mergeExposition(
      renderCounters(this.overlay.vtep.counters.snapshot(), labels) +
      renderCounters(this.overlay.iface.counters.snapshot(), labels) +
      renderCounters(this.tcp.stack.counters.snapshot(), labels) +
      renderCounters(this.gossip.counters.snapshot(), labels) +
      this.mesh.metrics(labels) +
      this.names.metrics(labels) +
      renderCounters(this.executor.counters.snapshot(), labels) +
      renderCounters(this.session.counters(), labels) +
      renderCounters(this.cluster.counters(), labels)
    );
  }

  /**
   * Stops the agent. Graceful (SIGTERM): the mesh stops taking connections and withdraws this
   * node's rows, the gossip announces the leave, then everything closes.
   */
  async close(): Promise<void> {
    this.#joining = false;
    this.catalog?.withdraw();
    this.mesh.withdraw();
    // The tombstones go out as gossip; a push/pull with every member delivers them over TCP
    // too, so no survivor keeps our rows until it notices we are gone (it took ~13 s when a
    // survivor missed both the tombstones and the leave).
    await Promise.all([sleep(DRAIN_MS), this.gossip.pushPullAll(DRAIN_MS)]);
    await this.names.close();
    // The executor's shutdown reports go out before the session stops (it flushes on close).
    this.#closing = true;
    await this.executor.close();
    await this.session.close();
    await this.catalog?.close();
    await this.mesh.close();
    await this.gossip.leave(LEAVE_TIMEOUT_MS).catch((error: unknown) => this.#logger.info({ err: error }, 'leave not confirmed by any member (none left to tell?)'));
    // leave() resolves when the last transmission is handed out, not sent: closing the socket
    // at once drops it. One more gossip round lets it (and the tombstones before it) go out.
    await sleep(LEAVE_FLUSH_MS);
    this.gossip.shutdown();
    this.tcp.driver.stop();
    await this.cluster.close();
    await this.overlay.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function defaultNetwork(): { subnet: number; prefixLen: number; vni: number } {
  const { address, prefixLen } = parseCidr(DEFAULT_SUBNET);
  return { subnet: address, prefixLen, vni: DEFAULT_VNI };
}

function logMemberEvent(logger: Logger, event: MemberEvent): void {
  logger.info({ member: event.member.name, address: `${event.member.address.host}:${event.member.address.port}` }, `member ${event.type}`);
}
