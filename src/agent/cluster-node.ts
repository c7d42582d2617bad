/**
 * The swarm side of one agent (issue 7): whether this node is in a swarm and as what, the
 * calls that change that (`swarm init`, `join`, `leave`, as the Docker API receives them), and
 * what each role runs:
 *
 * - the **leader** (the node that ran `swarm init`) opens the durable store, runs the Manager
 *   and serves 2377 with mutual TLS;
 * - every other member sends heartbeats to the managers over mTLS, renews its certificate when
 *   its role changes (promote/demote), and, as a manager, forwards control calls (node ls,
 *   node update…) to the leader with its manager certificate.
 *
 * Membership persists in the data dir (cluster-state.ts), so a killed node restarts as it was.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import os from 'node:os';
import { CryptoRng } from '../lib/rng.js';
import { RealClock } from '../lib/clock.js';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, UnavailableError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type NodeIdentity, certificateNeedsRenewal, generateNodeKey, requireManager } from '../cluster/ca.js';
import type { NodeLiveness } from '../cluster/liveness.js';
import { Manager, NOT_A_MANAGER, type NodeSelf } from '../cluster/manager.js';
import { LogStore, type LogStoreOptions } from '../cluster/node-log-store.js';
import { caDigestHex, parseJoinToken } from '../cluster/tokens.js';
import { subjectOf } from '../cluster/x509.js';
import type { NodeAvailability, NodeDescription, NodeRole, SwarmView } from '../cluster/types.js';
import type { AssignmentSet, TaskLogLine, TaskStatusUpdate } from '../cluster/service-types.js';
import { parseAvailability, parseNodeDescription, parseRole } from '../cluster/validate.js';
import { type ControlPlane, asObject, callControl, forwardingControl, localControl } from './control-plane.js';
import { type RpcServer, RemoteRpcError, rpcCall, splitHostPort, startRpcServer } from './cluster-rpc.js';
import { type SwarmNodeFiles, loadSwarmNode, removeSwarmNode, saveSwarmNode, storeDir } from './cluster-state.js';

export const SHOAL_ENGINE_VERSION = '0.1.0';
export const DEFAULT_SWARM_PORT = 2377;
const LEADER_RENEWAL_CHECK_MS = 3600_000;
/** Longest long poll a manager holds (an agent asks for less). */
const MAX_ASSIGNMENT_WAIT_MS = 30_000;
/** How much longer than its long poll an agent waits for the answer before calling it lost. */
const ASSIGNMENT_WAIT_MARGIN_MS = 5_000;

const ALREADY_IN_SWARM = 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.';
const WORKER_NOT_MANAGER =
  "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
/** A manager that does not hold the store erases nothing by leaving, but stays listed as a manager. */
const LEAVE_AS_OTHER_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. It will stay in the node list as an unreachable manager until it is demoted (docker node demote) and removed. Use `--force` to ignore this message.';
const LEAVE_AS_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.';

/** One node's calls to the dispatcher (service-types.ts has the message shapes). */
export interface DispatcherLink {
  readonly nodeId: string;
  /** Long poll: resolves once the node's assignments differ from `since`, or after about `timeoutMs`. */
  waitAssignments(since: number, timeoutMs: number, signal?: AbortSignal): Promise<AssignmentSet>;
  reportStatus(updates: readonly TaskStatusUpdate[]): Promise<void>;
  appendLogs(lines: readonly TaskLogLine[]): Promise<void>;
}

/** `Swarm` of `GET /info` (spec §1.3). */
export interface SwarmInfo {
  readonly NodeID: string;
  readonly NodeAddr: string;
  readonly LocalNodeState: 'inactive' | 'active';
  readonly ControlAvailable: boolean;
  readonly Error: string;
  readonly RemoteManagers: { NodeID: string; Addr: string }[] | null;
  readonly Nodes?: number;
  readonly Managers?: number;
  readonly Cluster?: Omit<SwarmView, 'JoinTokens'>;
}

export interface ClusterNodeConfig {
  readonly dataDir: string;
  /** Shown as the node's hostname (`docker node ls` HOSTNAME). */
  readonly nodeName: string;
  /** The agent's underlay address: the default bind and advertise address of 2377. */
  readonly advertiseAddr: string;
  readonly logger: Logger;
}

export class ClusterNode {
  readonly config: ClusterNodeConfig;
  readonly #logger: Logger;
  readonly #clock = new RealClock();
  readonly #rng = new CryptoRng();
  #files: SwarmNodeFiles | undefined;
  #manager: Manager | undefined;
  #store: LogStore | undefined;
  #rpc: RpcServer | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #leaderRenewal: NodeJS.Timeout | undefined;
  /** Whether the last heartbeat failed: failures are logged when they start and end, not each time. */
  #heartbeatFailing = false;
  readonly #joinedListeners = new Set<(managers: readonly string[]) => void>();
  #liveness: NodeLiveness | undefined;
  /** init/join/leave and role changes run one at a time. */
  #busy: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(config: ClusterNodeConfig) {
    this.config = config;
    this.#logger = config.logger;
  }

  /** Resumes the membership saved in the data dir, if any. Throws StoreError for unreadable state. */
  static async start(config: ClusterNodeConfig): Promise<ClusterNode> {
    const node = new ClusterNode(config);
    const files = await loadSwarmNode(config.dataDir);
    if (files) await node.#resume(files);
    return node;
  }

  /** The port 2377 is bound on, when this node is the leader (0 if not listening). */
  get rpcPort(): number {
    return this.#rpc?.port ?? 0;
  }

  /**
   * The managers' 2377 addresses (leader first) while this node is in a swarm, else empty: the
   * hosts through which the agent joins the gossip (read it after start() for a resumed swarm).
   */
  managers(): readonly string[] {
    return this.#files?.state.managers ?? [];
  }

  /** Calls `listener` with managers() each time this node inits or joins a swarm; returns an unsubscribe function. */
  onSwarmJoined(listener: (managers: readonly string[]) => void): () => void {
    this.#joinedListeners.add(listener);
    return () => this.#joinedListeners.delete(listener);
  }

  /** The manager's counters while this node is the leader (empty otherwise), for /metrics. */
  counters(): Readonly<Record<string, number>> {
    return this.#manager?.counters.snapshot() ?? {};
  }

  /** The `Swarm` header of `/_ping`. */
  swarmHeader(): string {
    if (!this.#files) return 'inactive';
    return `active/${this.#files.state.role}`;
  }

  /** Feeds membership events (gossip) to the manager's node status, now and after a later init. */
  attachLiveness(liveness: NodeLiveness): void {
    this.#liveness = liveness;
    this.#manager?.attachLiveness(liveness);
  }

  async info(): Promise<SwarmInfo> {
    const files = this.#files;
    if (!files) return { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null };
    const base = {
      NodeID: files.state.nodeId,
      NodeAddr: splitHostPort(files.state.advertiseAddr).host,
      LocalNodeState: 'active' as const,
      ControlAvailable: files.state.role === 'manager',
      Error: '',
      RemoteManagers: files.state.managers.map((Addr) => ({ NodeID: '', Addr })),
    };
    if (files.state.role !== 'manager') return base;
    try {
      const control = this.control();
      const [nodes, swarm] = await Promise.all([control.listNodes({}), control.swarm()]);
      const { JoinTokens: _tokens, ...cluster } = swarm;
      const managers = nodes.filter((n) => n.ManagerStatus);
      return {
        ...base,
        RemoteManagers: managers.map((n) => ({ NodeID: n.ID, Addr: n.ManagerStatus!.Addr })),
        Nodes: nodes.length,
        Managers: managers.length,
        Cluster: cluster,
      };
    } catch (error) {
      return { ...base, Error: (error as Error).message };
    }
  }

  /** What the Docker API's swarm and node routes call. Throws UnavailableError when this node is no manager. */
  control(): ControlPlane {
    const files = this.#files;
    if (!files) throw new UnavailableError(NOT_A_MANAGER);
    if (files.state.role !== 'manager') throw new UnavailableError(WORKER_NOT_MANAGER);
    const manager = this.#manager;
    if (manager) return localControl(manager);
    return forwardingControl((method, args) => this.#forward(method, args));
  }

  /**
   * This node's link to the dispatcher while it is in a swarm (undefined otherwise): the leader
   * calls its own Manager; every other node calls the managers (leader first) over mTLS. The
   * agent's dispatcher session (dispatcher-session.ts) long-polls through it.
   */
  dispatcher(): DispatcherLink | undefined {
    const files = this.#files;
    if (!files) return undefined;
    const nodeId = files.state.nodeId;
    const manager = this.#manager;
    if (manager) {
      return {
        nodeId,
        waitAssignments: (since, timeoutMs, signal) => manager.waitAssignments(nodeId, since, timeoutMs, signal),
        reportStatus: (updates) => manager.reportTaskStatus(nodeId, updates),
        appendLogs: async (lines) => manager.appendLogs(nodeId, lines),
      };
    }
    return {
      nodeId,
      waitAssignments: async (since, timeoutMs, signal) =>
        (await this.#callManagers(files, '/dispatcher/assignments', { Since: since, TimeoutMs: timeoutMs }, { timeoutMs: timeoutMs + ASSIGNMENT_WAIT_MARGIN_MS, ...(signal && { signal }) })) as AssignmentSet,
      reportStatus: async (updates) => {
        await this.#callManagers(files, '/dispatcher/status', { Updates: updates });
      },
      appendLogs: async (lines) => {
        await this.#callManagers(files, '/dispatcher/logs', { Lines: lines });
      },
    };
  }

  /** `POST /swarm/init` (InitRequest, spec §5.1) → the new node ID. */
  init(body: unknown): Promise<string> {
    return this.#exclusive(async () => {
      if (this.#files) throw new UnavailableError(ALREADY_IN_SWARM);
      const req = asObject(body, 'InitRequest');
      if (req['AutoLockManagers'] === true) throw new InvalidArgumentError('autolock is not supported by shoal yet');
      const addrs = this.#addresses(req['ListenAddr'], req['AdvertiseAddr']);
      const availability = optionalAvailability(req['Availability']);
      const key = generateNodeKey();
      const store = await LogStore.open(storeDir(this.config.dataDir), storeOptions());
      // A store without state.json is a crash between the two writes of an earlier init: never acknowledged.
      await store.clear();
      const manager = new Manager({ store, clock: this.#clock, wallClock: () => Date.now(), rng: this.#rng, logger: this.#logger });
      let issued;
      try {
        issued = await manager.init({
          self: this.#self(addrs.advertiseAddr, availability),
          publicKeyPem: key.publicKeyPem,
          spec: req['Spec'],
          addressPool: { pools: req['DefaultAddrPool'], subnetSize: req['SubnetSize'] },
        });
      } catch (error) {
        manager.close();
        await store.close();
        throw error;
      }
      const files: SwarmNodeFiles = {
        state: { nodeId: issued.nodeId, clusterId: issued.clusterId, role: 'manager', leader: true, managers: [addrs.advertiseAddr], listenAddr: addrs.listenAddr, advertiseAddr: addrs.advertiseAddr },
        keyPem: key.keyPem,
        certPem: issued.certPem,
        caPem: issued.caPem,
      };
      try {
        await this.#startLeader(files, store, manager);
      } catch (error) {
        await manager.destroy();
        manager.close();
        await store.close();
        await removeSwarmNode(this.config.dataDir);
        throw error;
      }
      await saveSwarmNode(this.config.dataDir, files);
      this.#files = files;
      this.#notifyJoined();
      return issued.nodeId;
    });
  }

  /** `POST /swarm/join` (JoinRequest, spec §5.1). */
  join(body: unknown): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#files) throw new UnavailableError(ALREADY_IN_SWARM);
      const req = asObject(body, 'JoinRequest');
      const token = req['JoinToken'];
      if (typeof token !== 'string') throw new InvalidArgumentError('JoinToken must be a string');
      const remotes = req['RemoteAddrs'];
      if (!Array.isArray(remotes) || remotes.length === 0 || remotes.length > 16 || !remotes.every((r) => typeof r === 'string')) {
        throw new InvalidArgumentError('RemoteAddrs must list at least one manager address');
      }
      const parsed = parseJoinToken(token);
      if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
      const role = req['Role'] === undefined ? undefined : parseRole(req['Role']);
      if (role && !role.ok) throw new InvalidArgumentError(role.error);
      const addrs = this.#addresses(req['ListenAddr'], req['AdvertiseAddr']);
      const availability = optionalAvailability(req['Availability']);
      // The first manager of the list that answers (swarmkit tries the remotes in turn).
      let remote = '';
      let caPem: unknown;
      let unreachable: unknown;
      for (const candidate of (remotes as string[]).map(withDefaultPort)) {
        try {
          caPem = await rpcCall(candidate, 'GET', '/ca', undefined, { mode: 'fetch-ca' });
          remote = candidate;
          break;
        } catch (error) {
          unreachable = error;
        }
      }
      if (remote === '') throw unreachable;
      // swarmkit GetRemoteCA: trust the manager only if its CA hashes to the token's digest.
      if (typeof caPem !== 'string' || caDigestHex(caPem) !== parsed.value.caDigestHex) {
        throw new FailedPreconditionError(`remote CA does not match fingerprint. Expected: ${parsed.value.caDigestHex}`);
      }
      const key = generateNodeKey();
      const self = this.#self(addrs.advertiseAddr, availability);
      const answer = (await rpcCall(
        remote,
        'POST',
        '/join',
        { Token: token, PublicKeyPem: key.publicKeyPem, ...(role?.ok ? { Role: role.value } : {}), Addr: self.addr, ManagerAddr: self.managerAddr, Availability: availability, Description: self.description },
        { mode: 'ca-only', caPem },
      )) as { NodeID: string; Role: NodeRole; ClusterID: string; CertPem: string; Managers: string[] };
      checkIssuedCertificate(answer, caPem, key.publicKeyPem);
      const files: SwarmNodeFiles = {
        state: { nodeId: answer.NodeID, clusterId: answer.ClusterID, role: answer.Role, leader: false, managers: answer.Managers, listenAddr: addrs.listenAddr, advertiseAddr: addrs.advertiseAddr },
        keyPem: key.keyPem,
        certPem: answer.CertPem,
        caPem,
      };
      await saveSwarmNode(this.config.dataDir, files);
      this.#files = files;
      this.#logger.info({ node: answer.NodeID, role: answer.Role, manager: remote }, 'joined the swarm');
      await this.#syncFollowerListener();
      this.#scheduleHeartbeat(0);
      this.#notifyJoined();
    });
  }

  #notifyJoined(): void {
    const managers = this.managers();
    for (const listener of [...this.#joinedListeners]) {
      try {
        listener(managers);
      } catch (error) {
        this.#logger.warn({ reason: (error as Error).message }, 'a swarm-joined listener failed');
      }
    }
  }

  /** `POST /swarm/leave[?force=1]`. */
  leave(force: boolean): Promise<void> {
    return this.#exclusive(async () => {
      const files = this.#files;
      if (!files) throw new UnavailableError('This node is not part of a swarm');
      if (files.state.role === 'manager' && !force) throw new UnavailableError(files.state.leader ? LEAVE_AS_MANAGER : LEAVE_AS_OTHER_MANAGER);
      await this.#stopRole();
      if (this.#manager) {
        await this.#manager.destroy();
        this.#manager.close();
        this.#manager = undefined;
      }
      await this.#store?.close();
      this.#store = undefined;
      await removeSwarmNode(this.config.dataDir);
      this.#files = undefined;
      this.#logger.info({ node: files.state.nodeId }, 'left the swarm');
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#busy.catch(() => undefined);
    await this.#stopRole();
    this.#manager?.close();
    await this.#store?.close();
  }

  async #resume(files: SwarmNodeFiles): Promise<void> {
    this.#files = files;
    if (files.state.leader) {
      const store = await LogStore.open(storeDir(this.config.dataDir), storeOptions());
      const manager = new Manager({ store, clock: this.#clock, wallClock: () => Date.now(), rng: this.#rng, logger: this.#logger });
      if (!manager.active) this.#logger.warn({ dir: storeDir(this.config.dataDir) }, 'the store of this leader is empty: the swarm state was lost');
      else files = await this.#renewLeaderCertificate(manager, files);
      await this.#startLeader(files, store, manager);
      this.#logger.info({ node: files.state.nodeId, nodes: manager.active ? manager.listNodes().length : 0 }, 'resumed as leader');
    } else {
      this.#logger.info({ node: files.state.nodeId, role: files.state.role }, 'resumed swarm membership');
      await this.#syncFollowerListener();
      this.#scheduleHeartbeat(0);
    }
  }

  async #startLeader(files: SwarmNodeFiles, store: LogStore, manager: Manager): Promise<void> {
    const { host, port } = splitHostPort(files.state.listenAddr);
    this.#rpc = await startRpcServer(host, port, { keyPem: files.keyPem, certPem: files.certPem, caPem: files.caPem }, {
      authenticate: (der) => manager.authenticate(der),
      refused: () => manager.counters.inc('cluster_rpc_refused_certificate'),
      handle: (route, body, identity, signal) => this.#serveRpc(manager, route, body, identity, signal),
    });
    this.#store = store;
    this.#manager = manager;
    if (this.#liveness) manager.attachLiveness(this.#liveness);
    this.#logger.info({ listen: files.state.listenAddr, port: this.#rpc.port }, 'manager listening');
    // The leader signs its own certificate; check hourly that it is renewed before it lapses.
    clearInterval(this.#leaderRenewal);
    this.#leaderRenewal = setInterval(() => {
      void this.#exclusive(async () => {
        const current = this.#files;
        if (!current || this.#manager !== manager) return;
        const renewed = await this.#renewLeaderCertificate(manager, current);
        if (renewed !== current) this.#rpc?.updateTls({ keyPem: renewed.keyPem, certPem: renewed.certPem, caPem: renewed.caPem });
      }).catch((error: unknown) => this.#logger.warn({ reason: (error as Error).message }, 'cannot renew the leader certificate'));
    }, LEADER_RENEWAL_CHECK_MS);
    this.#leaderRenewal.unref();
  }

  /** A fresh certificate for the leader once its own is half way to expiry (else `files` as they are). */
  async #renewLeaderCertificate(manager: Manager, files: SwarmNodeFiles): Promise<SwarmNodeFiles> {
    if (!certificateNeedsRenewal(files.certPem, Date.now())) return files;
    const key = generateNodeKey();
    const renewed = manager.renewCertificate({ nodeId: files.state.nodeId, role: 'manager', clusterId: files.state.clusterId }, key.publicKeyPem);
    const next = { ...files, keyPem: key.keyPem, certPem: renewed.certPem };
    await saveSwarmNode(this.config.dataDir, next);
    this.#files = next;
    this.#logger.info({ node: files.state.nodeId }, 'leader certificate renewed');
    return next;
  }

  /** The leader's 2377 routes (cluster-rpc.ts says which need which certificate). */
  async #serveRpc(manager: Manager, route: string, body: unknown, identity: NodeIdentity | undefined, signal: AbortSignal): Promise<unknown> {
    switch (route) {
      case 'POST /dispatcher/assignments': {
        const req = asObject(body ?? {}, 'assignments request');
        const since = typeof req['Since'] === 'number' ? req['Since'] : -1;
        const timeoutMs = typeof req['TimeoutMs'] === 'number' ? Math.min(Math.max(req['TimeoutMs'], 0), MAX_ASSIGNMENT_WAIT_MS) : 0;
        return manager.waitAssignments(identity!.nodeId, since, timeoutMs, signal);
      }
      case 'POST /dispatcher/status': {
        const updates = asObject(body, 'status report')['Updates'];
        if (!Array.isArray(updates)) throw new InvalidArgumentError('Updates must be a list');
        await manager.reportTaskStatus(identity!.nodeId, updates as TaskStatusUpdate[]);
        return {};
      }
      case 'POST /dispatcher/logs': {
        const lines = asObject(body, 'log report')['Lines'];
        if (!Array.isArray(lines)) throw new InvalidArgumentError('Lines must be a list');
        manager.appendLogs(identity!.nodeId, lines as TaskLogLine[]);
        return {};
      }
      case 'GET /ca':
        return manager.caPem;
      case 'POST /join': {
        const req = asObject(body, 'join request');
        const description = parseNodeDescription(req['Description']);
        if (!description.ok) throw new InvalidArgumentError(description.error);
        const role = req['Role'] === undefined ? undefined : parseRole(req['Role']);
        if (role && !role.ok) throw new InvalidArgumentError(role.error);
        const addr = req['Addr'];
        const managerAddr = req['ManagerAddr'];
        if (typeof addr !== 'string' || typeof managerAddr !== 'string' || typeof req['Token'] !== 'string' || typeof req['PublicKeyPem'] !== 'string') {
          throw new InvalidArgumentError('join request needs Token, PublicKeyPem, Addr and ManagerAddr');
        }
        splitHostPort(managerAddr);
        const availability = optionalAvailability(req['Availability']);
        const self: NodeSelf = { hostname: description.value.Hostname, addr, managerAddr, description: description.value, ...(availability ? { availability } : {}) };
        const issued = await manager.join({ token: req['Token'], publicKeyPem: req['PublicKeyPem'], self, ...(role?.ok ? { role: role.value } : {}) });
        return { NodeID: issued.nodeId, Role: issued.role, ClusterID: issued.clusterId, CertPem: issued.certPem, Managers: manager.managerAddrs() };
      }
      case 'POST /heartbeat': {
        const answer = manager.heartbeat(identity!);
        return { PeriodMs: answer.periodMs, Role: answer.role, Managers: answer.managers };
      }
      case 'POST /renew': {
        const key = asObject(body, 'renew request')['PublicKeyPem'];
        if (typeof key !== 'string') throw new InvalidArgumentError('PublicKeyPem must be a string');
        const renewed = manager.renewCertificate(identity!, key);
        return { CertPem: renewed.certPem, Role: renewed.role };
      }
      case 'POST /control': {
        requireManager(identity!);
        const req = asObject(body, 'control request');
        return (await callControl(localControl(manager), req['Method'], req['Args'])) ?? {};
      }
      default:
        throw new InvalidArgumentError(`page not found: ${route}`);
    }
  }

  async #forward(method: string, args: unknown[]): Promise<unknown> {
    const files = this.#files;
    if (!files) throw new UnavailableError(NOT_A_MANAGER);
    return this.#callManagers(files, '/control', { Method: method, Args: args });
  }

  /** Calls the managers in order (leader first) with this node's certificate; the first that answers wins. */
  async #callManagers(files: SwarmNodeFiles, route: string, body: unknown, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<unknown> {
    let last: unknown = new UnavailableError('No manager is known to this node');
    for (const addr of files.state.managers) {
      try {
        return await rpcCall(addr, 'POST', route, body, { mode: 'mutual', caPem: files.caPem, certPem: files.certPem, keyPem: files.keyPem }, options);
      } catch (error) {
        if (error instanceof RemoteRpcError) throw error;
        last = error;
      }
    }
    throw last;
  }

  #scheduleHeartbeat(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#heartbeat);
    this.#heartbeat = setTimeout(() => void this.#beat(), delayMs);
    this.#heartbeat.unref();
  }

  /** One heartbeat (swarmkit's agent sends one per period, with ±jitter, to the manager it is connected to). */
  async #beat(): Promise<void> {
    const files = this.#files;
    if (!files || files.state.leader || this.#closed) return;
    let periodMs = 1000;
    try {
      const answer = (await this.#callManagers(files, '/heartbeat', {})) as { PeriodMs: number; Role: NodeRole; Managers: string[] };
      periodMs = answer.PeriodMs;
      if (this.#heartbeatFailing) this.#logger.info({ manager: files.state.managers[0] }, 'heartbeats reach the manager again');
      this.#heartbeatFailing = false;
      const renew = answer.Role !== files.state.role || certificateNeedsRenewal(files.certPem, Date.now());
      if (renew || answer.Managers.join() !== files.state.managers.join()) {
        await this.#exclusive(() => this.#adopt(answer.Role, answer.Managers, renew));
      }
    } catch (error) {
      if (error instanceof RemoteRpcError && error.code === new PermissionDeniedError('').code && this.#files === files) {
        this.#logger.warn({ reason: error.message }, 'the manager refused this node: leaving the swarm');
        await this.#exclusive(async () => {
          await removeSwarmNode(this.config.dataDir);
          this.#files = undefined;
        });
        return;
      }
      if (!this.#heartbeatFailing) this.#logger.warn({ reason: (error as Error).message }, 'heartbeats to the managers fail');
      this.#heartbeatFailing = true;
    }
    if (this.#files === files || this.#files?.state.nodeId === files.state.nodeId) {
      this.#scheduleHeartbeat(periodMs * (0.9 + 0.2 * this.#rng.float()));
    }
  }

  /**
   * The manager says this node's role or the manager list changed, or the certificate is past
   * half its life (swarmkit renews node certificates well before expiry): save the managers,
   * and renew the certificate, for the role the manager has on record, with a fresh key.
   */
  async #adopt(role: NodeRole, managers: readonly string[], renew: boolean): Promise<void> {
    const files = this.#files;
    if (!files) return;
    let next: SwarmNodeFiles = { ...files, state: { ...files.state, managers: managers.length > 0 ? managers : files.state.managers } };
    if (renew || role !== files.state.role) {
      const key = generateNodeKey();
      const renewed = (await this.#callManagers(files, '/renew', { PublicKeyPem: key.publicKeyPem })) as { CertPem: string; Role: NodeRole };
      next = { ...next, keyPem: key.keyPem, certPem: renewed.CertPem, state: { ...next.state, role: renewed.Role } };
      this.#logger.info({ node: files.state.nodeId, role: renewed.Role }, 'role changed');
    }
    await saveSwarmNode(this.config.dataDir, next);
    this.#files = next;
    if (next.certPem !== files.certPem) await this.#syncFollowerListener();
  }

  /**
   * A manager that does not hold the store still listens on its 2377, as every swarm manager
   * does, so that the join command it prints (`swarm join-token` shows this manager's
   * address) works: it serves the CA and relays joins to the leader. Other calls it refuses
   * with the leader's address: nodes send them to the leader, which is first in their list.
   * (Re)started with the current certificate after every renewal; stopped on demotion.
   */
  async #syncFollowerListener(): Promise<void> {
    await this.#rpc?.close();
    this.#rpc = undefined;
    const files = this.#files;
    if (!files || files.state.leader || files.state.role !== 'manager') return;
    const leader = files.state.managers[0];
    const notLeader = (): never => {
      throw new UnavailableError(`This manager does not hold the swarm's store: send this call to the leader${leader ? ` at ${leader}` : ''}`);
    };
    const { host, port } = splitHostPort(files.state.listenAddr);
    try {
      this.#rpc = await startRpcServer(host, port, { keyPem: files.keyPem, certPem: files.certPem, caPem: files.caPem }, {
        authenticate: notLeader,
        handle: async (route, body) => {
          if (route === 'GET /ca') return files.caPem;
          if (route !== 'POST /join' || !leader) return notLeader();
          return rpcCall(leader, 'POST', '/join', body, { mode: 'ca-only', caPem: files.caPem });
        },
      });
      this.#logger.info({ listen: files.state.listenAddr }, 'manager listening (relaying joins to the leader)');
    } catch (error) {
      this.#logger.warn({ listen: files.state.listenAddr, reason: (error as Error).message }, 'cannot listen on the manager port');
    }
  }

  async #stopRole(): Promise<void> {
    clearInterval(this.#leaderRenewal);
    this.#leaderRenewal = undefined;
    clearTimeout(this.#heartbeat);
    this.#heartbeat = undefined;
    await this.#rpc?.close();
    this.#rpc = undefined;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(fn);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  /**
   * Where 2377 binds and what it advertises, from InitRequest/JoinRequest. An unspecified listen
   * host (0.0.0.0, the docker CLI's default) binds the agent's own address instead, so that
   * several agents on one machine (127.0.0.x) each own their 2377. An advertise address without
   * port takes the listen port, as swarmkit does.
   */
  #addresses(listen: unknown, advertise: unknown): { listenAddr: string; advertiseAddr: string } {
    const listenText = listen === undefined || listen === null || listen === '' ? `0.0.0.0:${DEFAULT_SWARM_PORT}` : listen;
    if (typeof listenText !== 'string') throw new InvalidArgumentError('ListenAddr must be a string');
    const l = parseAddr(listenText, DEFAULT_SWARM_PORT, 'ListenAddr');
    const host = l.host === '0.0.0.0' || l.host === '' || l.host === '::' ? this.config.advertiseAddr : l.host;
    const advertiseText = advertise === undefined || advertise === null || advertise === '' ? host : advertise;
    if (typeof advertiseText !== 'string') throw new InvalidArgumentError('AdvertiseAddr must be a string');
    const a = parseAddr(advertiseText, l.port, 'AdvertiseAddr');
    return { listenAddr: `${host}:${l.port}`, advertiseAddr: `${a.host}:${a.port}` };
  }

  #self(advertiseAddr: string, availability: NodeAvailability | undefined): NodeSelf {
    const description: NodeDescription = {
      Hostname: this.config.nodeName,
      Platform: { Architecture: architecture(), OS: os.platform() },
      Resources: { NanoCPUs: os.cpus().length * 1e9, MemoryBytes: os.totalmem() },
      Engine: { EngineVersion: SHOAL_ENGINE_VERSION, Labels: {}, Plugins: [{ Type: 'Network', Name: 'overlay' }] },
    };
    return { hostname: this.config.nodeName, addr: splitHostPort(advertiseAddr).host, managerAddr: advertiseAddr, description, ...(availability ? { availability } : {}) };
  }
}

/**
 * Checks what a manager answered to a join before this node relies on it, as swarmkit checks
 * an issued certificate against the root it pinned: a certificate from the pinned CA, for this
 * node's own key, naming the node ID and role of the answer. Throws UnavailableError.
 */
function checkIssuedCertificate(answer: { NodeID: unknown; Role: unknown; ClusterID: unknown; CertPem: unknown; Managers: unknown }, caPem: string, publicKeyPem: string): void {
  const fail = (why: string): never => {
    throw new UnavailableError(`The manager's answer to the join cannot be used: ${why}`);
  };
  if (typeof answer.NodeID !== 'string' || typeof answer.ClusterID !== 'string' || typeof answer.CertPem !== 'string') fail('it is malformed');
  if (!Array.isArray(answer.Managers) || !answer.Managers.every((m) => typeof m === 'string')) fail('it lists no managers');
  const role = parseRole(answer.Role);
  if (!role.ok) fail(role.error);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(answer.CertPem as string);
  } catch {
    return fail('the certificate cannot be parsed');
  }
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) fail('the certificate was not issued by the pinned CA');
  if (!cert.publicKey.equals(createPublicKey(publicKeyPem))) fail('the certificate is not for this node\'s key');
  const subject = subjectOf(cert);
  if (subject.commonName !== answer.NodeID || subject.organization !== answer.ClusterID) fail('the certificate names another node');
}

/**
 * SHOAL_STORE_COMPACT_EVERY: transactions between compactions of the leader's store (default
 * in node-log-store.ts). Tests set it low to kill the manager mid-compaction.
 */
function storeOptions(): LogStoreOptions {
  const n = Number(process.env['SHOAL_STORE_COMPACT_EVERY']);
  return Number.isInteger(n) && n > 0 ? { compactEvery: n } : {};
}


function optionalAvailability(v: unknown): NodeAvailability | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const parsed = parseAvailability(v);
  if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
  return parsed.value;
}

/** "ip", "ip:port" → parts (IPv4 only: shoal's underlay is IPv4). Throws InvalidArgumentError. */
function parseAddr(text: string, defaultPort: number, what: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text.trim());
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m || m[1]!.split('.').some((o) => Number(o) > 255) || port > 65535) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(text)}: expected an IPv4 address with an optional port (interface names are not supported)`);
  }
  return { host: m[1]!, port };
}

function withDefaultPort(addr: string): string {
  return /:\d+$/.test(addr) ? addr : `${addr}:${DEFAULT_SWARM_PORT}`;
}

/** Go's GOARCH names as dockerd reports them (Description.Platform.Architecture). */
function architecture(): string {
  const arch = os.arch();
  return arch === 'x64' ? 'x86_64' : arch === 'arm64' ? 'aarch64' : arch;
}
