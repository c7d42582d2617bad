/**
 * The manager role: the cluster object (CA, join tokens, spec) and the node table, kept in a
 * Store, and the rules swarmkit applies to them — who may join and with which role, what a
 * node update may change, when a node may be removed — plus live node status (status.ts).
 * Every method that writes resolves only after the store has made the write durable.
 *
 * Desired state (issue 8): services, tasks and networks in the same store. Each API call is
 * one transaction (services.ts, networks.ts); then a *reconcile* — orchestrator.ts (tasks from
 * services and nodes), the allocator (addresses) and scheduler.ts (nodes for pending tasks) as
 * one more transaction — after every change of services, nodes, node status and task status,
 * and on a timer when the orchestrator waits (restart delay, update delay, monitor). The
 * dispatcher (dispatcher.ts) hands each node its tasks; the log broker keeps their output.
 *
 * One manager holds the store (the leader, the node that ran `swarm init`). Other managers
 * (joined with the manager token, or promoted) get manager certificates and forward control
 * calls to the leader; a replicated store is a later issue.
 *
 * Throws (as documented per method) the catalogue's errors, which the API maps to statuses.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfSequenceError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { Rng } from '../lib/rng.js';
import { ClusterCa, type NodeIdentity } from './ca.js';
import { newObjectId } from './ids.js';
import type { NodeLiveness } from './liveness.js';
import { NodeStatusTracker } from './status.js';
import type { Store, StoreTx } from './store.js';
import { caDigestHex, generateJoinToken, parseJoinToken, tokensEqual } from './tokens.js';
import {
  type ClusterRecord,
  type NodeAvailability,
  type NodeDescription,
  type NodeRecord,
  type NodeRole,
  type NodeSpec,
  type NodeView,
  NS_PER_MS,
  type SwarmSpec,
  type SwarmView,
} from './types.js';
import { parseNodeSpec, parseSwarmSpecUpdate } from './validate.js';
import type { AssignmentSet, NetworkRecord, ObjectFilters, ServiceView, TaskLogLine, TaskRecord, TaskStatusUpdate } from './service-types.js';
import { Dispatcher, applyStatusUpdates } from './dispatcher.js';
import { LogBroker, type LogEntry } from './log-broker.js';
import { createNetworkIn, ingressNetworkRecord, parseAddressPool, ingressOf, listNetworksIn, removeNetworkIn, resolveNetworkIn } from './networks.js';
import type { NodeInfo } from './scheduler.js';
import { labelMatches, withDefaults } from './service-spec.js';
import {
  type TxContext,
  createServiceIn,
  listServicesIn,
  listTasksIn,
  reconcileIn,
  removeServiceIn,
  resolveServiceIn,
  resolveTaskIn,
  serviceStatus,
  updateServiceIn,
} from './services.js';

export const NOT_A_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

/** swarmkit's defaults, filled in for zero values at init (spec §5.1). */
export const DEFAULT_SWARM_SPEC: SwarmSpec = {
  Name: 'default',
  Labels: {},
  Orchestration: { TaskHistoryRetentionLimit: 5 },
  Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
  Dispatcher: { HeartbeatPeriod: 5_000 * NS_PER_MS },
  CAConfig: { NodeCertExpiry: 90 * 24 * 3600 * 1000 * NS_PER_MS },
  TaskDefaults: {},
  EncryptionConfig: { AutoLockManagers: false },
};

/** Shortest heartbeat period accepted: below it the heartbeat traffic is all there is. */
export const MIN_HEARTBEAT_PERIOD_MS = 100;

export interface ManagerDeps {
  readonly store: Store;
  readonly clock: Clock;
  /** Wall-clock time in milliseconds since the epoch, for CreatedAt and certificate validity. */
  readonly wallClock: () => number;
  readonly rng: Rng;
  readonly logger?: Logger;
}

/** What a node says about itself when it joins or inits. */
export interface NodeSelf {
  readonly hostname: string;
  /** Underlay address (no port), shown as Status.Addr. */
  readonly addr: string;
  /** host:port of this node's 2377 listener, for when it is or becomes a manager. */
  readonly managerAddr: string;
  readonly description: NodeDescription;
  readonly availability?: NodeAvailability;
}

export interface InitOptions {
  readonly self: NodeSelf;
  /** The node's public key (PEM): its certificate is issued for it. */
  readonly publicKeyPem: string;
  /** Spec fields from InitRequest; zero values mean "default". */
  readonly spec?: unknown;
  /** InitRequest's DefaultAddrPool and SubnetSize (networks.ts parseAddressPool). */
  readonly addressPool?: { readonly pools?: unknown; readonly subnetSize?: unknown };
}

export interface IssuedCertificate {
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly clusterId: string;
  readonly certPem: string;
  readonly caPem: string;
}

export interface JoinOptions {
  readonly token: string;
  readonly publicKeyPem: string;
  readonly self: NodeSelf;
  /** When given, the role the node asks for: refused unless the token is that role's. */
  readonly role?: NodeRole;
}

export interface HeartbeatAnswer {
  readonly periodMs: number;
  /** The role the node should have (Spec.Role): a change means renew the certificate. */
  readonly role: NodeRole;
  /** Every manager's 2377 address, leader first. */
  readonly managers: readonly string[];
}

export type NodeFilters = Readonly<Record<string, readonly string[]>>;
export const NODE_FILTER_KEYS = ['id', 'label', 'membership', 'name', 'node.label', 'role'];

export const MANAGER_COUNTERS = [
  'cluster_joins',
  'cluster_joins_refused',
  'cluster_certificates_issued',
  'cluster_heartbeats',
  'cluster_nodes_down',
  'cluster_nodes_ready',
  'cluster_rpc_refused_certificate',
] as const;

export class Manager {
  /** Joins, refusals, certificates, heartbeats, status changes (exposed in /metrics). */
  readonly counters = new Counters(MANAGER_COUNTERS);
  readonly #store: Store;
  readonly #wall: () => number;
  readonly #rng: Rng;
  readonly #logger: Logger;
  readonly #status: NodeStatusTracker;
  readonly #clock: Clock;
  readonly #dispatcher: Dispatcher;
  /** Task log lines the agents push (bounded, in memory: `service logs` reads them). */
  readonly logBroker = new LogBroker();
  #ca: ClusterCa | undefined;
  #unsubscribe: (() => void) | undefined;
  /** The reconcile asked for and not yet begun: later asks join it (at most one pending). */
  #reconcilePending: Promise<void> | undefined;
  /** When the orchestrator asked to look again (restart delay, update delay, monitor). */
  #wake: Timer | undefined;
  #closed = false;

  constructor(deps: ManagerDeps) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#wall = deps.wallClock;
    this.#rng = deps.rng;
    this.#logger = deps.logger ?? silentLogger;
    const cluster = this.#cluster();
    this.#status = new NodeStatusTracker({
      clock: deps.clock,
      heartbeatPeriodMs: heartbeatPeriodMs(cluster?.Spec ?? DEFAULT_SWARM_SPEC),
      onChange: (nodeId, status) => {
        if (status.state === 'down') this.counters.inc('cluster_nodes_down');
        if (status.state === 'ready') this.counters.inc('cluster_nodes_ready');
        this.#logger.info({ node: nodeId, state: status.state, reason: status.message }, 'node status changed');
        void this.#reconcile();
      },
    });
    // Agents keep their Index across a manager restart: start above any earlier run's.
    this.#dispatcher = new Dispatcher({
      clock: deps.clock,
      reader: deps.store,
      firstIndex: Math.floor(deps.wallClock()),
      // The leader's own agent polls in process: it is always ready (#nodeInfos), never tracked.
      onSession: (nodeId, open) => {
        if (nodeId !== this.#cluster()?.LeaderID) this.#status.session(nodeId, open);
      },
    });
    if (cluster) {
      this.#ca = new ClusterCa(cluster.RootCA.CertPem, cluster.RootCA.KeyPem);
      for (const node of this.#store.list<NodeRecord>('node')) if (node.ID !== cluster.LeaderID) this.#status.track(node.ID);
      void this.#reconcile();
    }
  }

  /** True once a swarm exists in the store (after init, or after a restart of an initialised manager). */
  get active(): boolean {
    return this.#cluster() !== undefined;
  }

  get clusterId(): string {
    return this.#requireCluster().ID;
  }

  /** The node holding the store. */
  get leaderId(): string {
    return this.#requireCluster().LeaderID;
  }

  get caPem(): string {
    return this.#requireCluster().RootCA.CertPem;
  }

  get heartbeatPeriodMs(): number {
    return this.#status.heartbeatPeriodMs;
  }

  /** Feeds membership events (gossip) into node status. Replaces an earlier source. */
  attachLiveness(liveness: NodeLiveness): void {
    this.#unsubscribe?.();
    // Suspicion too: with the node's dispatcher session gone, it makes the node down at once (status.ts).
    this.#unsubscribe = liveness.subscribe(
      (event) => {
        for (const node of this.#store.list<NodeRecord>('node')) {
          if (node.ID === this.#cluster()?.LeaderID) continue;
          if (node.Addr === event.addr || (event.name !== undefined && node.Description.Hostname === event.name)) {
            this.#status.membership(node.ID, event.state);
          }
        }
      },
      { suspect: true },
    );
  }

  /**
   * Creates the swarm with this node as its first manager and leader (`swarm init`). Throws
   * UnavailableError when a swarm exists, InvalidArgumentError for a bad spec.
   */
  async init(options: InitOptions): Promise<IssuedCertificate> {
    if (this.active) throw new UnavailableError('This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.');
    const update = parseSwarmSpecUpdate(options.spec ?? {}, DEFAULT_SWARM_SPEC);
    if (!update.ok) throw new InvalidArgumentError(update.error);
    const spec = update.value;
    const addressPool = parseAddressPool(options.addressPool?.pools, options.addressPool?.subnetSize);
    const now = this.#wall();
    const clusterId = newObjectId(this.#rng);
    const nodeId = newObjectId(this.#rng);
    const ca = ClusterCa.create(clusterId, now, this.#rng);
    const certPem = ca.issue({ nodeId, role: 'manager', clusterId }, options.publicKeyPem, now, certValidityMs(spec), this.#rng);
    await this.#store.update((tx) => {
      const time = iso(now);
      const cluster: ClusterRecord = {
        ID: clusterId,
        Version: { Index: tx.index },
        CreatedAt: time,
        UpdatedAt: time,
        Spec: spec,
        JoinTokens: { Worker: generateJoinToken(ca.certPem, this.#rng), Manager: generateJoinToken(ca.certPem, this.#rng) },
        RootCA: { CertPem: ca.certPem, KeyPem: ca.keyPem },
        DefaultAddrPool: [addressPool.pool],
        SubnetSize: addressPool.subnetSize,
        DataPathPort: 4789,
        LeaderID: nodeId,
      };
      tx.put('cluster', clusterId, cluster);
      tx.put('node', nodeId, newNodeRecord(nodeId, 'manager', options.self, tx.index, time));
      const ingressId = newObjectId(this.#rng);
      tx.put('network', ingressId, ingressNetworkRecord(ingressId, time));
    });
    this.#ca = ca;
    this.#status.heartbeatPeriodMs = heartbeatPeriodMs(spec);
    this.#logger.info({ cluster: clusterId, node: nodeId }, 'swarm initialised');
    return { nodeId, role: 'manager', clusterId, certPem, caPem: ca.certPem };
  }

  /**
   * Admits a node that presents a join token (swarmkit's IssueNodeCertificate): the token's
   * secret decides the role. Throws UnauthenticatedError for a token that is not one of the
   * current two (or names another CA), PermissionDeniedError when the node asked for a role its
   * token does not grant, InvalidArgumentError for a bad key or description.
   */
  async join(options: JoinOptions): Promise<IssuedCertificate> {
    try {
      const issued = await this.#join(options);
      this.counters.inc('cluster_joins');
      this.counters.inc('cluster_certificates_issued');
      return issued;
    } catch (error) {
      this.counters.inc('cluster_joins_refused');
      throw error;
    }
  }

  async #join(options: JoinOptions): Promise<IssuedCertificate> {
    const cluster = this.#requireCluster();
    const parsed = parseJoinToken(options.token);
    if (!parsed.ok || parsed.value.caDigestHex !== caDigestHex(cluster.RootCA.CertPem)) {
      throw new UnauthenticatedError('A valid join token is necessary to join this cluster');
    }
    const role: NodeRole | undefined = tokensEqual(options.token, cluster.JoinTokens.Manager)
      ? 'manager'
      : tokensEqual(options.token, cluster.JoinTokens.Worker)
        ? 'worker'
        : undefined;
    if (!role) throw new UnauthenticatedError('A valid join token is necessary to join this cluster');
    if (options.role !== undefined && options.role !== role) {
      throw new PermissionDeniedError(`The join token is a ${role} token; it cannot join this node as a ${options.role}`);
    }
    const now = this.#wall();
    const nodeId = newObjectId(this.#rng);
    const certPem = this.#ca!.issue({ nodeId, role, clusterId: cluster.ID }, options.publicKeyPem, now, certValidityMs(cluster.Spec), this.#rng);
    await this.#store.update((tx) => {
      tx.put('node', nodeId, newNodeRecord(nodeId, role, options.self, tx.index, iso(now)));
    });
    this.#status.heartbeat(nodeId);
    this.#logger.info({ node: nodeId, role, addr: options.self.addr }, 'node joined');
    void this.#reconcile();
    return { nodeId, role, clusterId: cluster.ID, certPem, caPem: cluster.RootCA.CertPem };
  }

  /**
   * Checks a peer certificate (DER) presented on 2377 and that its node is still a member.
   * Throws UnauthenticatedError for a certificate this cluster did not issue,
   * PermissionDeniedError for a node that has been removed.
   */
  authenticate(certDer: Uint8Array): NodeIdentity {
    try {
      return this.#authenticate(certDer);
    } catch (error) {
      this.counters.inc('cluster_rpc_refused_certificate');
      throw error;
    }
  }

  #authenticate(certDer: Uint8Array): NodeIdentity {
    const cluster = this.#requireCluster();
    const identity = this.#ca!.verify(certDer, cluster.ID, this.#wall());
    const node = this.#store.get<NodeRecord>('node', identity.nodeId);
    if (!node) throw new PermissionDeniedError(`Permission denied: node ${identity.nodeId} is not a member of the swarm (it was removed)`);
    // A demoted node keeps its manager certificate until its next heartbeat renews it: the
    // stored role, not the certificate, has the last word on what it may do.
    return node.Spec.Role === 'worker' && identity.role === 'manager' ? { ...identity, role: 'worker' } : identity;
  }

  /** A node's periodic check-in (swarmkit dispatcher Heartbeat). Throws PermissionDeniedError for a removed node. */
  heartbeat(identity: NodeIdentity): HeartbeatAnswer {
    const node = this.#store.get<NodeRecord>('node', identity.nodeId);
    if (!node) throw new PermissionDeniedError(`Permission denied: node ${identity.nodeId} is not a member of the swarm (it was removed)`);
    this.#status.heartbeat(identity.nodeId);
    this.counters.inc('cluster_heartbeats');
    return { periodMs: this.#status.heartbeatPeriodMs, role: node.Spec.Role, managers: this.managerAddrs() };
  }

  /**
   * A new certificate for the node's current Spec.Role (after promote/demote), for a new key.
   * Throws PermissionDeniedError for a removed node.
   */
  renewCertificate(identity: NodeIdentity, publicKeyPem: string): { certPem: string; role: NodeRole } {
    const cluster = this.#requireCluster();
    const node = this.#store.get<NodeRecord>('node', identity.nodeId);
    if (!node) throw new PermissionDeniedError(`Permission denied: node ${identity.nodeId} is not a member of the swarm (it was removed)`);
    const role = node.Spec.Role;
    this.counters.inc('cluster_certificates_issued');
    const certPem = this.#ca!.issue({ nodeId: node.ID, role, clusterId: cluster.ID }, publicKeyPem, this.#wall(), certValidityMs(cluster.Spec), this.#rng);
    return { certPem, role };
  }

  /** 2377 addresses of the managers, leader first. */
  managerAddrs(): string[] {
    const cluster = this.#requireCluster();
    const nodes = this.#store.list<NodeRecord>('node').filter((n) => n.Spec.Role === 'manager' && n.ManagerAddr);
    nodes.sort((a, b) => Number(b.ID === cluster.LeaderID) - Number(a.ID === cluster.LeaderID));
    return nodes.map((n) => n.ManagerAddr!);
  }

  /** `GET /swarm`. Throws UnavailableError outside a swarm. */
  swarm(): SwarmView {
    const c = this.#requireCluster();
    return {
      ID: c.ID,
      Version: c.Version,
      CreatedAt: c.CreatedAt,
      UpdatedAt: c.UpdatedAt,
      Spec: c.Spec,
      TLSInfo: this.#ca!.tlsInfo(),
      RootRotationInProgress: false,
      DefaultAddrPool: c.DefaultAddrPool,
      SubnetSize: c.SubnetSize,
      DataPathPort: c.DataPathPort,
      JoinTokens: c.JoinTokens,
    };
  }

  /**
   * `POST /swarm/update`: a new spec and/or rotated join tokens. Throws OutOfSequenceError for
   * a stale version, InvalidArgumentError for a bad spec.
   */
  async updateSwarm(version: number, spec: unknown, rotate: { worker: boolean; manager: boolean }): Promise<void> {
    const next = await this.#store.update((tx) => {
      const c = this.#requireClusterIn(tx);
      if (version !== c.Version.Index) throw new OutOfSequenceError('update out of sequence');
      const parsed = parseSwarmSpecUpdate(spec, c.Spec);
      if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
      const tokens = {
        Worker: rotate.worker ? generateJoinToken(c.RootCA.CertPem, this.#rng) : c.JoinTokens.Worker,
        Manager: rotate.manager ? generateJoinToken(c.RootCA.CertPem, this.#rng) : c.JoinTokens.Manager,
      };
      tx.put('cluster', c.ID, { ...c, Spec: parsed.value, JoinTokens: tokens, Version: { Index: tx.index }, UpdatedAt: iso(this.#wall()) });
      return parsed.value;
    });
    // Only once durable: a failed write leaves the old period in force.
    this.#status.heartbeatPeriodMs = heartbeatPeriodMs(next);
  }

  /** `GET /nodes`. Throws InvalidArgumentError for an unknown filter. */
  listNodes(filters: NodeFilters = {}): NodeView[] {
    for (const key of Object.keys(filters)) if (!NODE_FILTER_KEYS.includes(key)) throw new InvalidArgumentError(`invalid filter '${key}'`);
    this.#requireCluster();
    const match = (values: readonly string[] | undefined, test: (v: string) => boolean): boolean => !values || values.length === 0 || values.some(test);
    return this.#store
      .list<NodeRecord>('node')
      .filter(
        (n) =>
          match(filters['id'], (v) => n.ID.startsWith(v)) &&
          match(filters['name'], (v) => n.Description.Hostname.startsWith(v) || (n.Spec.Name ?? '').startsWith(v)) &&
          match(filters['role'], (v) => n.Spec.Role === v) &&
          match(filters['membership'], (v) => v === 'accepted') &&
          match(filters['label'], (v) => labelMatches(n.Description.Engine.Labels ?? {}, v)) &&
          match(filters['node.label'], (v) => labelMatches(n.Spec.Labels, v)),
      )
      .sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID))
      .map((n) => this.#view(n));
  }

  /** `GET /nodes/{id}`. Throws NotFoundError, or InvalidArgumentError for an ambiguous prefix. */
  getNode(ref: string): NodeView {
    this.#requireCluster();
    return this.#view(resolveNode(this.#store.list<NodeRecord>('node'), ref));
  }

  /**
   * `POST /nodes/{id}/update?version=N`. Throws NotFoundError, OutOfSequenceError,
   * InvalidArgumentError for a bad spec, FailedPreconditionError for demoting the last manager
   * or the leader.
   */
  async updateNode(ref: string, version: number, body: unknown): Promise<void> {
    const parsed = parseNodeSpec(body);
    if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
    const spec = parsed.value;
    await this.#store.update((tx) => {
      const cluster = this.#requireClusterIn(tx);
      const node = resolveNode(tx.list<NodeRecord>('node'), ref);
      if (version !== node.Version.Index) throw new OutOfSequenceError('update out of sequence');
      if (node.Spec.Role === 'manager' && spec.Role === 'worker') {
        const managers = tx.list<NodeRecord>('node').filter((n) => n.Spec.Role === 'manager');
        if (managers.length <= 1) throw new FailedPreconditionError('attempting to demote the last manager of the swarm');
        // swarmkit hands leadership to another manager first; with one store-holding leader
        // (no replicated store yet) there is nobody to hand it to.
        if (node.ID === cluster.LeaderID) throw new FailedPreconditionError('attempting to demote the leader, which holds the only copy of the store: demote the other managers instead');
      }
      tx.put('node', node.ID, { ...node, Spec: spec, Version: { Index: tx.index }, UpdatedAt: iso(this.#wall()) });
    });
    await this.#reconcile();
  }

  /**
   * `DELETE /nodes/{id}`. Throws NotFoundError, FailedPreconditionError for a manager or (without
   * `force`) a node that is not down, as swarmkit's RemoveNode.
   */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const removed = await this.#store.update((tx) => {
      this.#requireClusterIn(tx);
      const node = resolveNode(tx.list<NodeRecord>('node'), ref);
      if (node.Spec.Role === 'manager') {
        throw new FailedPreconditionError(`node ${node.ID} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`);
      }
      if (!force && this.#status.status(node.ID).state !== 'down') throw new FailedPreconditionError(`node ${node.ID} is not down and can't be removed`);
      tx.delete('node', node.ID);
      return node.ID;
    });
    this.#status.forget(removed);
    await this.#reconcile();
  }

  // --- Services, tasks, networks (issue 8). Signatures are the contract with src/agent/control-plane.ts
  // and the dispatcher transport. The rules live in services.ts, orchestrator.ts and scheduler.ts.

  /**
   * `POST /services/create`: the service in one transaction, then its tasks (created, given
   * addresses and placed) by the reconcile that follows, before this resolves. Throws
   * InvalidArgumentError (400) for a bad spec, ConflictError (409) for a taken name or
   * published port, NotFoundError for an unknown network.
   */
  async createService(spec: unknown): Promise<{ ID: string; Warnings: string[] | null }> {
    this.#requireCluster();
    const service = await this.#store.update((tx) => createServiceIn(tx, spec, this.#txContext()));
    this.#logger.info({ service: service.ID, name: service.Spec.Name }, 'service created');
    await this.#reconcile();
    return { ID: service.ID, Warnings: null };
  }

  /** `GET /services` (filters id, name, label, mode; `status=true` adds ServiceStatus). Throws InvalidArgumentError for an unknown filter. */
  listServices(filters: ObjectFilters, options: { readonly status: boolean }): ServiceView[] {
    this.#requireCluster();
    const services = listServicesIn(this.#store, filters);
    if (!options.status) return services;
    const tasks = this.#store.list<TaskRecord>('task');
    const nodes = this.#nodeInfos();
    return services.map((s) => ({ ...s, ServiceStatus: serviceStatus(s, tasks, nodes) }));
  }

  /** `GET /services/{ref}` (full ID, exact name, unique ID prefix). Throws NotFoundError. */
  getService(ref: string, options: { readonly insertDefaults: boolean }): ServiceView {
    this.#requireCluster();
    const service = resolveServiceIn(this.#store, ref);
    return options.insertDefaults ? { ...service, Spec: withDefaults(service.Spec) } : service;
  }

  /**
   * `POST /services/{ref}/update?version=N[&rollback=previous]` (spec §9.2, §9.3). Throws
   * OutOfSequenceError, NotFoundError, InvalidArgumentError, FailedPreconditionError (rollback
   * without a previous spec), ConflictError (published port).
   */
  async updateService(ref: string, version: number, spec: unknown, options: { readonly rollback: boolean }): Promise<{ Warnings: string[] | null }> {
    this.#requireCluster();
    await this.#store.update((tx) => updateServiceIn(tx, ref, version, spec, options.rollback, this.#txContext()));
    await this.#reconcile();
    return { Warnings: null };
  }

  /** `DELETE /services/{ref}`: the service and its tasks go at once (spec §9.6); agents stop them as they leave their assignments. */
  async removeService(ref: string): Promise<void> {
    this.#requireCluster();
    const removed = await this.#store.update((tx) => removeServiceIn(tx, ref));
    for (const id of removed.taskIds) this.logBroker.forget(id);
    this.#dispatcher.changed();
    await this.#reconcile();
  }

  /** `GET /tasks` (filters id, name, service, node, desired-state, label, _up-to-date). Throws InvalidArgumentError for an unknown filter. */
  listTasks(filters: ObjectFilters): TaskRecord[] {
    this.#requireCluster();
    return listTasksIn(this.#store, filters, (ref) => {
      try {
        return resolveNode(this.#store.list<NodeRecord>('node'), ref).ID;
      } catch {
        return undefined;
      }
    });
  }

  /** `GET /tasks/{ref}` (full ID or unique prefix). Throws NotFoundError. */
  getTask(ref: string): TaskRecord {
    this.#requireCluster();
    return resolveTaskIn(this.#store, ref);
  }

  /** `GET /networks` (swarm-scoped networks: `ingress` and those created). */
  listNetworks(filters: ObjectFilters): NetworkRecord[] {
    this.#requireCluster();
    return listNetworksIn(this.#store, filters);
  }

  /** `GET /networks/{ref}`. Throws NotFoundError. */
  getNetwork(ref: string): NetworkRecord {
    this.#requireCluster();
    return resolveNetworkIn(this.#store, ref);
  }

  /** `POST /networks/create` → 201 `{Id, Warning}`. Throws as networks.ts createNetworkIn. */
  async createNetwork(body: unknown): Promise<{ Id: string; Warning: string }> {
    const cluster = this.#requireCluster();
    return this.#store.update((tx) =>
      createNetworkIn(tx, body, {
        newId: () => newObjectId(this.#rng),
        now: iso(this.#wall()),
        ...(cluster.DefaultAddrPool[0] ? { pool: cluster.DefaultAddrPool[0] } : {}),
        subnetSize: cluster.SubnetSize,
      }),
    );
  }

  /** `DELETE /networks/{ref}`. Throws NotFoundError, FailedPreconditionError while in use or for ingress. */
  async removeNetwork(ref: string): Promise<void> {
    this.#requireCluster();
    await this.#store.update((tx) => removeNetworkIn(tx, ref));
  }

  // --- Dispatcher (the agent side calls these through the 2377 RPC, the leader's own agent directly)

  /** What `nodeId` must run and every service's routes, now. */
  assignments(nodeId: string): AssignmentSet {
    return this.#dispatcher.assignments(nodeId);
  }

  /**
   * Long poll: resolves with assignments(nodeId) as soon as its Index differs from `sinceIndex`
   * (at once if it already does), or after `timeoutMs` with the unchanged set. While a wait is
   * outstanding the node has a dispatcher session; `signal` aborts the wait (the agent's
   * connection closed), which ends the session unless another wait follows.
   */
  waitAssignments(nodeId: string, sinceIndex: number, timeoutMs: number, signal?: AbortSignal): Promise<AssignmentSet> {
    return this.#dispatcher.wait(nodeId, sinceIndex, timeoutMs, signal);
  }

  /** An executor's task status reports; stale or backwards updates are ignored. The orchestrator then reacts (restarts, updates). */
  async reportTaskStatus(nodeId: string, updates: readonly TaskStatusUpdate[]): Promise<void> {
    const applied = await this.#store.update((tx) => applyStatusUpdates(tx, nodeId, updates, iso(this.#wall())));
    if (applied === 0) return;
    this.#dispatcher.changed();
    await this.#reconcile();
  }

  /** Log lines of tasks on `nodeId` (kept in a bounded in-memory broker, not in the store); lines of tasks not on that node are dropped. */
  appendLogs(nodeId: string, lines: readonly TaskLogLine[]): void {
    // One store read per task of the batch, not per line (a batch is mostly one task's lines).
    const seen = new Map<string, string | undefined>();
    this.logBroker.append(
      nodeId,
      (taskId) => {
        if (!seen.has(taskId)) {
          const task = this.#store.get<TaskRecord>('task', taskId);
          seen.set(taskId, task?.NodeID === nodeId ? task.ServiceID : undefined);
        }
        return seen.get(taskId);
      },
      lines,
    );
  }

  /**
   * `service logs` / `task logs`: the lines kept of a service's tasks (every task of it on
   * record) or of one task, and, to follow, the lines to come — for a service also those of
   * tasks made later (restarts, updates). Entries and subscription come from one synchronous
   * call: no line falls between them. Throws NotFoundError for an unknown reference,
   * InvalidArgumentError when neither is given, CapacityError for too many followers.
   */
  logs(
    selector: { readonly service?: string; readonly task?: string },
    options: { readonly tail?: number; readonly sinceMs?: number },
  ): { entries: LogEntry[]; subscribe(listener: (entry: LogEntry) => void): () => void } {
    this.#requireCluster();
    let ids: Set<string>;
    let follow: ReadonlySet<string>;
    if (selector.task !== undefined) {
      ids = new Set([resolveTaskIn(this.#store, selector.task).ID]);
      follow = ids;
    } else if (selector.service !== undefined) {
      const serviceId = resolveServiceIn(this.#store, selector.service).ID;
      ids = new Set(this.#store.list<TaskRecord>('task').filter((t) => t.ServiceID === serviceId).map((t) => t.ID));
      follow = new ServiceTasks(serviceId, (taskId) => this.#store.get<TaskRecord>('task', taskId)?.ServiceID);
    } else {
      throw new InvalidArgumentError('logs need a service or a task');
    }
    const entries = this.logBroker.read(ids, options);
    return { entries, subscribe: (listener) => this.logBroker.subscribe(follow, listener) };
  }

  /** Resolves once the reconcile asked for so far has run (tests; the API never needs it). */
  async settled(): Promise<void> {
    await this.#reconcilePending;
  }

  /** Forgets the whole swarm (`swarm leave --force` on the leader). */
  async destroy(): Promise<void> {
    this.#wake?.cancel();
    this.#wake = undefined;
    await this.#store.clear();
    this.#status.close();
    this.#dispatcher.changed();
    this.#ca = undefined;
  }

  close(): void {
    this.#closed = true;
    this.#wake?.cancel();
    this.#wake = undefined;
    this.#unsubscribe?.();
    this.#status.close();
    this.#dispatcher.close();
  }

  /**
   * Orchestrator, allocator and scheduler as one store transaction, then the dispatcher's
   * wake-up. Asked for after every change of services, nodes, node status and task status,
   * and by a timer when the orchestrator waits (restart delay, update delay, monitor). At most
   * one reconcile is pending: asks made before it begins join it. Never rejects: a failure is
   * logged and the next ask retries from the store.
   */
  #reconcile(): Promise<void> {
    if (this.#reconcilePending) return this.#reconcilePending;
    const run = this.#store
      .update((tx) => {
        this.#reconcilePending = undefined;
        const cluster = tx.list<ClusterRecord>('cluster')[0];
        if (!cluster || this.#closed) return undefined;
        const now = this.#wall();
        if (!ingressOf(tx)) {
          const id = newObjectId(this.#rng);
          tx.put('network', id, ingressNetworkRecord(id, iso(now)));
        }
        return reconcileIn(tx, { ...this.#txContext(), nodes: this.#nodeInfos(tx), historyLimit: cluster.Spec.Orchestration.TaskHistoryRetentionLimit });
      })
      .then(
        (result) => {
          this.#dispatcher.changed();
          this.#wakeAt(result?.wakeAtMs);
          if (result?.again) void this.#reconcile();
        },
        (error: unknown) => {
          this.#reconcilePending = undefined;
          this.#logger.error({ err: error }, 'reconcile failed');
        },
      );
    this.#reconcilePending = run;
    return run;
  }

  #wakeAt(wallMs: number | undefined): void {
    this.#wake?.cancel();
    this.#wake = undefined;
    if (wallMs === undefined || this.#closed) return;
    this.#wake = this.#clock.setTimer(Math.max(0, wallMs - this.#wall()), () => {
      this.#wake = undefined;
      void this.#reconcile();
    });
  }

  #txContext(): TxContext {
    return { newId: () => newObjectId(this.#rng), nowMs: this.#wall() };
  }

  /** Every node with its live status, as the orchestrator and scheduler see them (the leader is always ready). */
  #nodeInfos(reader: { list<T>(kind: 'node'): T[] } = this.#store): NodeInfo[] {
    const leader = this.#cluster()?.LeaderID;
    return reader.list<NodeRecord>('node').map((n) => ({
      ID: n.ID,
      Hostname: n.Description.Hostname,
      Role: n.Spec.Role,
      Availability: n.Spec.Availability,
      State: n.ID === leader ? 'ready' : this.#status.status(n.ID).state,
      Labels: n.Spec.Labels,
      EngineLabels: n.Description.Engine.Labels ?? {},
      Platform: n.Description.Platform,
    }));
  }

  #cluster(): ClusterRecord | undefined {
    return this.#store.list<ClusterRecord>('cluster')[0];
  }

  #requireCluster(): ClusterRecord {
    const c = this.#cluster();
    if (!c) throw new UnavailableError(NOT_A_MANAGER);
    return c;
  }

  #requireClusterIn(tx: StoreTx): ClusterRecord {
    const c = tx.list<ClusterRecord>('cluster')[0];
    if (!c) throw new UnavailableError(NOT_A_MANAGER);
    return c;
  }

  #view(node: NodeRecord): NodeView {
    const cluster = this.#requireCluster();
    const leader = node.ID === cluster.LeaderID;
    const status = leader ? { state: 'ready' as const, message: '' } : this.#status.status(node.ID);
    const view: NodeView = {
      ID: node.ID,
      Version: node.Version,
      CreatedAt: node.CreatedAt,
      UpdatedAt: node.UpdatedAt,
      Spec: node.Spec,
      Description: { ...node.Description, TLSInfo: this.#ca!.tlsInfo() },
      Status: status.message ? { State: status.state, Message: status.message, Addr: node.Addr } : { State: status.state, Addr: node.Addr },
    };
    if (node.Spec.Role !== 'manager') return view;
    const managerStatus = leader
      ? { Leader: true, Reachability: 'reachable' as const, Addr: node.ManagerAddr ?? node.Addr }
      : { Reachability: status.state === 'ready' ? ('reachable' as const) : ('unreachable' as const), Addr: node.ManagerAddr ?? node.Addr };
    return { ...view, ManagerStatus: managerStatus };
  }
}

/** dockerd's reference resolution (spec §3.5): full ID, then exact name, then unique ID prefix. */
export function resolveNode(nodes: readonly NodeRecord[], ref: string): NodeRecord {
  const byId = nodes.find((n) => n.ID === ref);
  if (byId) return byId;
  const byName = nodes.filter((n) => n.Spec.Name === ref || n.Description.Hostname === ref);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) throw new InvalidArgumentError(`node ${ref} is ambiguous (${byName.length} matches found)`);
  const byPrefix = ref === '' ? [] : nodes.filter((n) => n.ID.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw new InvalidArgumentError(`node ${ref} is ambiguous (${byPrefix.length} matches found)`);
  throw new NotFoundError(`node ${ref} not found`);
}

function newNodeRecord(id: string, role: NodeRole, self: NodeSelf, index: number, time: string): NodeRecord {
  const spec: NodeSpec = { Labels: {}, Role: role, Availability: self.availability ?? 'active' };
  return { ID: id, Version: { Index: index }, CreatedAt: time, UpdatedAt: time, Spec: spec, Description: self.description, Addr: self.addr, ManagerAddr: self.managerAddr };
}

function heartbeatPeriodMs(spec: SwarmSpec): number {
  return Math.max(MIN_HEARTBEAT_PERIOD_MS, Math.round(spec.Dispatcher.HeartbeatPeriod / NS_PER_MS));
}

function certValidityMs(spec: SwarmSpec): number {
  return Math.round(spec.CAConfig.NodeCertExpiry / NS_PER_MS);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** "Is this task one of the service's?", asked per line by a service-logs follower: tasks made after it began count too. */
class ServiceTasks extends Set<string> {
  readonly #serviceId: string;
  readonly #serviceOf: (taskId: string) => string | undefined;

  constructor(serviceId: string, serviceOf: (taskId: string) => string | undefined) {
    super();
    this.#serviceId = serviceId;
    this.#serviceOf = serviceOf;
  }

  /** Task → service never changes: answers are kept (a bounded number) so a busy follower reads the store once per task. */
  readonly #known = new Map<string, boolean>();

  override has(taskId: string): boolean {
    let mine = this.#known.get(taskId);
    if (mine === undefined) {
      mine = this.#serviceOf(taskId) === this.#serviceId;
      if (this.#known.size >= 4096) this.#known.clear();
      this.#known.set(taskId, mine);
    }
    return mine;
  }
}
