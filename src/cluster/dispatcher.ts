/**
 * The manager side of handing tasks to agents, and of taking their status reports.
 *
 * Mirrors swarmkit's dispatcher (manager/dispatcher): per-node sessions, the `Assignments`
 * stream, `UpdateTaskStatus` with its checks (the task must be the node's, state only moves
 * forward). Shoal differs in three ways:
 * - An agent long-polls over HTTPS (the 2377 channel) instead of holding a gRPC stream, and
 *   every answer is the node's whole assignment set, not a delta: the executor reconciles to
 *   it, so a lost answer costs nothing.
 * - `Index` is per node and moves only when that node's set changes (compared as canonical
 *   JSON), so an idle agent's poll is not woken by writes that do not concern it.
 * - A session is "a poll outstanding, or one ended less than `sessionGraceMs` ago" rather than
 *   a stream plus heartbeats; its end is one of the two signals (with the gossip's suspicion,
 *   src/cluster/status.ts) that declare a node down fast.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { CapacityError, ClosedError } from '../lib/errors.js';
import { ingressOf, INGRESS_SUBNET, INGRESS_VNI, networkSubnet, networkVni } from './networks.js';
import { formatSubnet } from '../overlay/ipam.js';
import {
  type AssignmentSet,
  type EndpointPort,
  type NetworkRecord,
  type ServiceRecord,
  type ServiceRoute,
  type TaskAssignment,
  type TaskRecord,
  type TaskState,
  type TaskStatus,
  type TaskStatusUpdate,
  TASK_STATES,
} from './service-types.js';
import type { StoreReader, StoreTx } from './store.js';

/**
 * Longer than an agent's worst re-poll: each poll is a fresh HTTPS request (TLS handshake
 * included), which on a loaded 2-core host took over a second; a shorter grace let a busy
 * agent's session lapse between polls, and a coincident false suspicion marked it down.
 * A killed agent's suspicion comes 1.5–2.5 s after its connection closed anyway.
 */
export const DEFAULT_SESSION_GRACE_MS = 3_000;
/** Polls one node may have outstanding at once: the agent needs one; a few cover reconnects. */
export const DEFAULT_MAX_WAITS_PER_NODE = 4;
/** Nodes whose last set is remembered (to keep their Index steady); beyond it, the idlest are forgotten. */
export const DEFAULT_MAX_NODES = 10_000;
/** Status updates taken from one report; the rest are ignored (an executor sends a handful). */
export const MAX_STATUS_UPDATES = 1_000;
/** Longest Message/Err kept from an executor's report; longer text is cut. */
export const MAX_STATUS_TEXT = 4_096;

const RUNNING = TASK_STATES.indexOf('running');

function stateIndex(state: unknown): number {
  return (TASK_STATES as readonly unknown[]).indexOf(state);
}

/** Strips the prefix: "100.64.0.131/24" → "100.64.0.131". */
function bareAddress(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

export interface DispatcherOptions {
  readonly clock: Clock;
  readonly reader: StoreReader;
  readonly sessionGraceMs?: number;
  /** A node's session started (`true`) or ended with no new poll within the grace (`false`). */
  readonly onSession?: (nodeId: string, open: boolean) => void;
  readonly maxWaitsPerNode?: number;
  readonly maxNodes?: number;
  /**
   * The first Index handed out. An agent that moves to a new leader keeps polling with the old
   * leader's Index; start from something that grows across manager restarts (the wall clock in
   * ms, say) so it cannot meet its old Index by chance and miss a change.
   */
  readonly firstIndex?: number;
}

interface Waiter {
  readonly since: number;
  readonly resolve: (set: AssignmentSet) => void;
  readonly reject: (error: Error) => void;
  readonly timer: Timer;
  readonly detach: () => void;
}

interface NodeState {
  index: number;
  /** The last set's content without its Index, as canonical JSON. */
  content: string;
  readonly waiters: Set<Waiter>;
  session: boolean;
  grace: Timer | undefined;
}

/** What every node's set is built from, read once per change. */
interface Snapshot {
  readonly tasksByNode: ReadonlyMap<string, readonly TaskRecord[]>;
  readonly services: ReadonlyMap<string, ServiceRecord>;
  readonly routes: readonly ServiceRoute[];
  readonly ingress: { readonly Vni: number; readonly Subnet: string };
  readonly ingressId: string | undefined;
}

export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #graceMs: number;
  readonly #maxWaits: number;
  readonly #maxNodes: number;
  readonly #nodes = new Map<string, NodeState>();
  /** The last snapshot and the store index it was read at (when the reader has one), until changed(). */
  #cache: { readonly index: number; readonly snapshot: Snapshot } | undefined;
  #nextIndex: number;
  #closed = false;

  constructor(o: DispatcherOptions) {
    this.#o = o;
    this.#graceMs = o.sessionGraceMs ?? DEFAULT_SESSION_GRACE_MS;
    this.#maxWaits = o.maxWaitsPerNode ?? DEFAULT_MAX_WAITS_PER_NODE;
    this.#maxNodes = o.maxNodes ?? DEFAULT_MAX_NODES;
    this.#nextIndex = o.firstIndex ?? 1;
  }

  /**
   * What `nodeId` must run, every service's routes and the ingress network, now: tasks on the
   * node that have not finished and whose desired state is `running` or past it (the executor
   * stops the latter).
   */
  assignments(nodeId: string): AssignmentSet {
    return this.#current(nodeId, this.#snapshot());
  }

  /** The store changed: answers every poll whose node's set changed. Call after each commit. */
  changed(): void {
    this.#cache = undefined;
    if (this.#closed) return;
    let snapshot: Snapshot | undefined;
    for (const [nodeId, node] of this.#nodes) {
      if (node.waiters.size === 0) continue;
      snapshot ??= this.#snapshot();
      const set = this.#current(nodeId, snapshot);
      for (const waiter of [...node.waiters]) if (waiter.since !== set.Index) this.#finish(nodeId, node, waiter, set);
    }
  }

  /**
   * Long poll: resolves with the node's set at once when its Index differs from `sinceIndex`,
   * else when it changes, else after `timeoutMs` with the unchanged set. An aborted `signal`
   * (the agent's connection closed) resolves the wait with the current set, which nobody reads,
   * and starts the session's grace. Rejects with CapacityError when the node already has
   * `maxWaitsPerNode` polls outstanding, with ClosedError once close() ran.
   */
  wait(nodeId: string, sinceIndex: number, timeoutMs: number, signal?: AbortSignal): Promise<AssignmentSet> {
    if (this.#closed) return Promise.reject(new ClosedError('the dispatcher is closed'));
    const set = this.assignments(nodeId);
    const node = this.#nodes.get(nodeId)!;
    if (node.waiters.size >= this.#maxWaits) return Promise.reject(new CapacityError(`node ${nodeId} already has ${node.waiters.size} assignment polls outstanding`));
    this.#open(nodeId, node);
    if (set.Index !== sinceIndex || signal?.aborted) {
      this.#endOfWait(nodeId, node);
      return Promise.resolve(set);
    }
    return new Promise<AssignmentSet>((resolve, reject) => {
      const onAbort = (): void => this.#finish(nodeId, node, waiter, this.assignments(nodeId));
      const waiter: Waiter = {
        since: sinceIndex,
        resolve,
        reject,
        timer: this.#o.clock.setTimer(Math.max(0, timeoutMs), () => this.#finish(nodeId, node, waiter, this.assignments(nodeId))),
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      node.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Whether the node polls now or did less than the grace ago. */
  hasSession(nodeId: string): boolean {
    return this.#nodes.get(nodeId)?.session ?? false;
  }

  /** Rejects every outstanding poll with ClosedError and stops every timer; no session callback fires. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const node of this.#nodes.values()) {
      node.grace?.cancel();
      node.grace = undefined;
      for (const waiter of node.waiters) {
        waiter.timer.cancel();
        waiter.detach();
        waiter.reject(new ClosedError('the dispatcher is closed'));
      }
      node.waiters.clear();
    }
    this.#nodes.clear();
  }

  #finish(nodeId: string, node: NodeState, waiter: Waiter, set: AssignmentSet): void {
    if (!node.waiters.delete(waiter)) return;
    waiter.timer.cancel();
    waiter.detach();
    waiter.resolve(set);
    this.#endOfWait(nodeId, node);
  }

  #open(nodeId: string, node: NodeState): void {
    node.grace?.cancel();
    node.grace = undefined;
    if (node.session) return;
    node.session = true;
    this.#o.onSession?.(nodeId, true);
  }

  /** A poll ended: with none left, the session lasts the grace, then ends unless a poll came. */
  #endOfWait(nodeId: string, node: NodeState): void {
    if (node.waiters.size > 0 || this.#closed) return;
    node.grace?.cancel();
    node.grace = this.#o.clock.setTimer(this.#graceMs, () => {
      node.grace = undefined;
      if (node.waiters.size > 0 || !node.session) return;
      node.session = false;
      this.#o.onSession?.(nodeId, false);
    });
  }

  /** The node's set from `snapshot`, with its Index moved on if the content changed. */
  #current(nodeId: string, snapshot: Snapshot): AssignmentSet {
    const tasks = (snapshot.tasksByNode.get(nodeId) ?? []).map((t) => assignmentOf(t, snapshot));
    const body = { Tasks: tasks, Services: snapshot.routes, Ingress: snapshot.ingress };
    const content = JSON.stringify(body);
    let node = this.#nodes.get(nodeId);
    if (!node) {
      this.#evictIfFull();
      node = { index: this.#nextIndex++, content, waiters: new Set(), session: false, grace: undefined };
      this.#nodes.set(nodeId, node);
    } else if (node.content !== content) {
      node.index = this.#nextIndex++;
      node.content = content;
    }
    return { Index: node.index, ...body };
  }

  /** Forgets the first remembered node without a session; a forgotten node only gets a new Index. */
  #evictIfFull(): void {
    if (this.#nodes.size < this.#maxNodes) return;
    for (const [id, node] of this.#nodes) {
      if (!node.session && node.waiters.size === 0) {
        this.#nodes.delete(id);
        return;
      }
    }
  }

  /**
   * Every poll and every change needs the whole task table, and a store read copies it: when
   * the reader is a Store (it has an `index`), a snapshot serves until the index moves or
   * changed() is called (a Store.clear() does not move the index; the Manager calls changed()).
   */
  #snapshot(): Snapshot {
    const index = (this.#o.reader as { readonly index?: unknown }).index;
    if (typeof index === 'number' && this.#cache?.index === index) return this.#cache.snapshot;
    const snapshot = this.#read();
    this.#cache = typeof index === 'number' ? { index, snapshot } : undefined;
    return snapshot;
  }

  #read(): Snapshot {
    const reader = this.#o.reader;
    const ingress = ingressOf(reader);
    const services = new Map(reader.list<ServiceRecord>('service').map((s) => [s.ID, s]));
    const tasksByNode = new Map<string, TaskRecord[]>();
    for (const task of reader.list<TaskRecord>('task')) {
      if (!task.NodeID || !isAssigned(task)) continue;
      let list = tasksByNode.get(task.NodeID);
      if (!list) tasksByNode.set(task.NodeID, (list = []));
      list.push(task);
    }
    for (const list of tasksByNode.values()) list.sort((a, b) => compare(a.ID, b.ID));
    const routes = [...services.values()].sort((a, b) => compare(a.ID, b.ID)).map((s) => routeOf(s, ingress));
    return { tasksByNode, services, routes, ingress: ingressView(ingress), ingressId: ingress?.Id };
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A task belongs in its node's set while it has not finished and is meant to run (or to be stopped). */
function isAssigned(task: TaskRecord): boolean {
  const observed = stateIndex(task.Status?.State);
  return observed >= 0 && observed <= RUNNING && stateIndex(task.DesiredState) >= RUNNING;
}

function ingressView(ingress: NetworkRecord | undefined): { Vni: number; Subnet: string } {
  const subnet = ingress ? networkSubnet(ingress) : undefined;
  return { Vni: (ingress && networkVni(ingress)) ?? INGRESS_VNI, Subnet: subnet ? formatSubnet(subnet) : INGRESS_SUBNET };
}

function portsOf(service: ServiceRecord | undefined): readonly EndpointPort[] {
  return service?.Endpoint?.Ports ?? [];
}

function routeOf(service: ServiceRecord, ingress: NetworkRecord | undefined): ServiceRoute {
  const mode = service.Spec.EndpointSpec?.Mode ?? 'vip';
  const vip = mode === 'vip' && ingress ? service.Endpoint?.VirtualIPs?.find((v) => v.NetworkID === ingress.Id) : undefined;
  return { ID: service.ID, Name: service.Spec.Name, EndpointMode: mode, ...(vip ? { VirtualIP: bareAddress(vip.Addr) } : {}), Ports: portsOf(service), Labels: service.Spec.Labels };
}

function assignmentOf(task: TaskRecord, snapshot: Snapshot): TaskAssignment {
  const service = snapshot.services.get(task.ServiceID);
  const attachment = task.NetworksAttachments?.find((a) => a.Network?.Id === snapshot.ingressId);
  const address = attachment?.Addresses?.[0];
  return {
    TaskID: task.ID,
    ServiceID: task.ServiceID,
    ServiceName: service?.Spec.Name ?? '',
    Slot: task.Slot,
    DesiredState: task.DesiredState,
    Spec: task.Spec,
    Ports: portsOf(service),
    OverlayAddress: address !== undefined ? bareAddress(address) : '',
  };
}

// ---------------------------------------------------------------------------------------------
// Status reports (swarmkit dispatcher UpdateTaskStatus)

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalInt(v: unknown): number | undefined | null {
  if (v === undefined) return undefined;
  return Number.isSafeInteger(v) ? (v as number) : null;
}

/**
 * Applies an executor's reports inside a store transaction and returns how many changed a
 * task. An update applies only when its task exists, is assigned to `nodeId`, has not finished
 * (terminal states never change), and its State is not before the current one in TASK_STATES
 * order; a report identical to the stored status is not a change. Status.Timestamp is the
 * agent's (dockerd shows the executor's time), or `nowIso` when the agent's is not RFC 3339.
 * Never throws on hostile input: anything malformed is skipped; beyond MAX_STATUS_UPDATES
 * entries the rest are ignored.
 */
export function applyStatusUpdates(tx: StoreTx, nodeId: string, updates: readonly TaskStatusUpdate[], nowIso: string): number {
  if (!Array.isArray(updates)) return 0;
  let applied = 0;
  for (const raw of (updates as readonly unknown[]).slice(0, MAX_STATUS_UPDATES)) {
    if (!isRecord(raw)) continue;
    const { TaskID: taskId, State: state, Message: message, Err: errText, Timestamp: timestamp } = raw;
    const pid = optionalInt(raw['PID']);
    const exitCode = optionalInt(raw['ExitCode']);
    if (typeof taskId !== 'string' || taskId === '' || stateIndex(state) < 0) continue;
    if ((message !== undefined && typeof message !== 'string') || (errText !== undefined && typeof errText !== 'string') || pid === null || exitCode === null) continue;
    const task = tx.get<TaskRecord>('task', taskId);
    if (!task || task.NodeID !== nodeId) continue;
    const current = stateIndex(task.Status?.State);
    const next = stateIndex(state);
    if (current < 0 || current > RUNNING || next < current) continue;
    const previous = task.Status.ContainerStatus;
    const status: TaskStatus = {
      Timestamp: typeof timestamp === 'string' && RFC3339.test(timestamp) && !Number.isNaN(Date.parse(timestamp)) ? timestamp : nowIso,
      State: state as TaskState,
      Message: (message ?? '').slice(0, MAX_STATUS_TEXT),
      ...(errText !== undefined && errText !== '' ? { Err: errText.slice(0, MAX_STATUS_TEXT) } : {}),
      ContainerStatus: {
        ...(previous?.ContainerID !== undefined ? { ContainerID: previous.ContainerID } : {}),
        PID: pid ?? previous?.PID ?? 0,
        ExitCode: exitCode ?? previous?.ExitCode ?? 0,
      },
      PortStatus: task.Status.PortStatus ?? {},
    };
    if (sameStatus(task.Status, status)) continue;
    tx.put('task', task.ID, { ...task, Version: { Index: tx.index }, UpdatedAt: nowIso, Status: status });
    applied++;
  }
  return applied;
}

/** Equal but for the timestamp: a repeated report, not a change. */
function sameStatus(a: TaskStatus, b: TaskStatus): boolean {
  return (
    a.State === b.State &&
    a.Message === b.Message &&
    a.Err === b.Err &&
    a.ContainerStatus?.PID === b.ContainerStatus?.PID &&
    a.ContainerStatus?.ExitCode === b.ContainerStatus?.ExitCode
  );
}
