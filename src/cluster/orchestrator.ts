/**
 * The orchestrator (swarmkit manager/orchestrator: replicated, global, restart, update,
 * taskreaper): desired state in, the task changes that move the cluster toward it out. Pure:
 * one snapshot (services, tasks, nodes with their live status, the time) in, one list of
 * changes out, so that every rule below is a table test and the Manager applies the whole
 * result in one store transaction.
 *
 * A task belongs to an *instance*: slot 1..N of a replicated service, or one node of a global
 * service (Slot 0). Per instance, newest task first, at most one task is *live* (desired
 * running) except while a start-first update overlaps old and new.
 *
 * - Node down, drained or removed: its live tasks get desired state shutdown at once and
 *   their instance is refilled elsewhere at once, without the restart delay (swarmkit does
 *   the same). A node that comes back gets no task moved to it: nothing running is moved.
 * - A task that ends on its own (complete, failed, rejected; or stopped unasked) while desired
 *   running is replaced in the same instance after RestartPolicy.Delay, if the condition
 *   (any, on-failure: failed or rejected only, none) allows and fewer than MaxAttempts
 *   restarts of the same spec happened within Window. The ended task stays as history.
 * - Slots above Replicas are shut down; an empty instance gets a new task (state new, a copy
 *   of the TaskTemplate). An instance whose last task was asked to stop on a healthy node
 *   waits for it to stop (stop-first), at most the stop grace period plus STOP_SLACK_MS.
 * - Rolling update: instances whose live task's Spec differs from the TaskTemplate are
 *   replaced, Parallelism at a time (0: all), each worker waiting until its new task has run
 *   for Delay; Order stop-first or start-first. A new task that fails counts against
 *   MaxFailureRatio; past it, FailureAction pauses, continues or rolls back. The update is
 *   `completed` only once every instance runs an up-to-date task and the last one has run for
 *   Monitor (what the CLI's convergence display relies on, spec §7).
 * - History: per instance, the newest TaskHistoryRetentionLimit tasks are kept; older ended
 *   ones are deleted (swarmkit's task reaper).
 *
 * Time is the manager's wall clock in ms; a task's UpdatedAt is when the manager last wrote
 * it, which for an ended or running task is when it learnt of that state.
 */
import type { ServiceRecord, TaskRecord, TaskSpec, TaskState, UpdateConfig, UpdateStatus } from './service-types.js';
import { type NodeInfo, constraintsMet, serviceConstraints, stateOrder } from './scheduler.js';
import { NS_PER_MS } from './types.js';

/** swarmkit defaults (api/defaults): restart any after 5 s; update one at a time, monitor 5 s, pause on failure. */
export const DEFAULT_RESTART_DELAY_MS = 5_000;
export const DEFAULT_MONITOR_MS = 5_000;
export const DEFAULT_STOP_GRACE_MS = 10_000;
/** How long past its stop grace period an instance waits for its old task to report it stopped. */
export const STOP_SLACK_MS = 5_000;

const RUNNING = stateOrder('running');
const ASSIGNED = stateOrder('assigned');

export interface OrchestratorInput {
  readonly services: readonly ServiceRecord[];
  readonly tasks: readonly TaskRecord[];
  /** Every node in the store, with its live status. */
  readonly nodes: readonly NodeInfo[];
  /** Wall clock, ms since the epoch. */
  readonly nowMs: number;
  /** Cluster Spec.Orchestration.TaskHistoryRetentionLimit. */
  readonly historyLimit: number;
  /** The store index the changes commit at (new tasks' Version). */
  readonly index: number;
  readonly newId: () => string;
}

export interface OrchestratorResult {
  /** New tasks, state `new`. */
  readonly create: TaskRecord[];
  /** Existing tasks with a changed DesiredState or Status (whole records). */
  readonly updated: TaskRecord[];
  /** Task IDs to delete (history beyond the retention limit). */
  readonly remove: string[];
  /** Services whose UpdateStatus changes. */
  readonly updateStatus: { readonly serviceId: string; readonly status: UpdateStatus }[];
  /** Services whose update failed with FailureAction rollback: the Manager swaps their specs. */
  readonly rollback: { readonly serviceId: string; readonly message: string }[];
  /** When the orchestrator must look again (restart delay, update delay, monitor), wall ms. */
  readonly wakeAtMs: number | undefined;
}

export function isTerminal(state: TaskState): boolean {
  return stateOrder(state) > RUNNING;
}

export function isLive(task: TaskRecord): boolean {
  return stateOrder(task.DesiredState) <= RUNNING;
}

/** Structural equality of JSON values (key order ignored): whether a task runs its service's current TaskTemplate. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]));
}

export function isUpToDate(task: TaskRecord, service: ServiceRecord): boolean {
  return jsonEqual(task.Spec, service.Spec.TaskTemplate);
}

/** Nodes a global service runs on: active, not down, constraints met (also its DesiredTasks). */
export function globalNodes(service: ServiceRecord, nodes: readonly NodeInfo[]): NodeInfo[] {
  const constraints = serviceConstraints(service);
  if (constraints === undefined) return [];
  return nodes.filter((n) => n.Availability === 'active' && n.State !== 'down' && constraintsMet(constraints, n));
}

const ms = (ns: number | undefined, fallback: number): number => (typeof ns === 'number' && ns > 0 ? ns / NS_PER_MS : fallback);
const at = (iso: string | undefined): number => (iso ? Date.parse(iso) : 0);
const newestFirst = (a: TaskRecord, b: TaskRecord): number => at(b.CreatedAt) - at(a.CreatedAt) || (a.ID < b.ID ? 1 : a.ID > b.ID ? -1 : 0);

export function orchestrate(input: OrchestratorInput): OrchestratorResult {
  const now = input.nowMs;
  const nowIso = new Date(now).toISOString();
  const nodes = new Map(input.nodes.map((n) => [n.ID, n]));
  const work = new Map(input.tasks.map((t) => [t.ID, t]));
  const changed = new Set<string>();
  const create: TaskRecord[] = [];
  const remove: string[] = [];
  const updateStatus: { serviceId: string; status: UpdateStatus }[] = [];
  const rollback: { serviceId: string; message: string }[] = [];
  let wakeAtMs: number | undefined;
  const wake = (when: number): void => {
    wakeAtMs = wakeAtMs === undefined ? when : Math.min(wakeAtMs, when);
  };
  const set = (task: TaskRecord, change: Partial<TaskRecord>): TaskRecord => {
    const next = { ...task, ...change, UpdatedAt: nowIso };
    work.set(task.ID, next);
    changed.add(task.ID);
    return next;
  };
  // A task not yet assigned has no agent to stop it: it is shut down here and now.
  const shutdown = (task: TaskRecord): TaskRecord =>
    stateOrder(task.Status.State) < ASSIGNED
      ? set(task, { DesiredState: 'shutdown', Status: { ...task.Status, State: 'shutdown', Message: 'shutdown before assignment', Timestamp: nowIso } })
      : set(task, { DesiredState: 'shutdown' });

  const services = [...input.services].sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID));
  const byService = new Map<string, TaskRecord[]>();
  for (const t of input.tasks) {
    const list = byService.get(t.ServiceID) ?? [];
    list.push(t);
    byService.set(t.ServiceID, list);
  }

  for (const service of services) {
    const global = 'Global' in service.Spec.Mode;
    const template = service.Spec.TaskTemplate;
    const restart = template.RestartPolicy ?? {};
    const status = service.UpdateStatus ?? undefined;
    const rollingBack = status?.State === 'rollback_started' || status?.State === 'rollback_paused';
    const inUpdate = status?.State === 'updating' || status?.State === 'rollback_started';
    const paused = status?.State === 'paused' || status?.State === 'rollback_paused';
    const config: UpdateConfig = (rollingBack ? service.Spec.RollbackConfig : service.Spec.UpdateConfig) ?? {};
    const startedMs = at(status?.StartedAt);
    const stopWaitMs = ms(template.ContainerSpec.StopGracePeriod, DEFAULT_STOP_GRACE_MS) + STOP_SLACK_MS;
    const eligible = global ? new Set(globalNodes(service, input.nodes).map((n) => n.ID)) : undefined;

    // Step 1: nodes that failed, drained or left (and, for global services, no longer qualify).
    for (const t of byService.get(service.ID) ?? []) {
      const task = work.get(t.ID)!;
      if (task.NodeID === '') continue;
      const node = nodes.get(task.NodeID);
      // A removed node will never report its tasks' end: they are orphaned (swarmkit's state for it).
      if (!node && !isTerminal(task.Status.State)) {
        set(task, { DesiredState: 'shutdown', Status: { ...task.Status, State: 'orphaned', Message: 'node removed from the swarm', Timestamp: nowIso } });
        continue;
      }
      if (!isLive(task) || !node) continue;
      if (node.State === 'down' || node.Availability === 'drain' || (eligible && node.Availability === 'active' && !eligible.has(node.ID))) {
        shutdown(task);
      }
    }

    // Instances: slot number or node ID → their tasks, newest first.
    const instances = new Map<string, TaskRecord[]>();
    const keyOf = (t: { Slot: number; NodeID: string }): string => (global ? `n:${t.NodeID}` : `s:${t.Slot}`);
    for (const t of byService.get(service.ID) ?? []) {
      const list = instances.get(keyOf(t)) ?? [];
      list.push(t);
      instances.set(keyOf(t), list);
    }
    const wanted: { key: string; slot: number; nodeId: string }[] = [];
    if (global) for (const id of [...eligible!].sort()) wanted.push({ key: `n:${id}`, slot: 0, nodeId: id });
    else {
      const replicas = 'Replicated' in service.Spec.Mode ? (service.Spec.Mode.Replicated.Replicas ?? 1) : 0;
      for (let slot = 1; slot <= replicas; slot++) wanted.push({ key: `s:${slot}`, slot, nodeId: '' });
    }
    const wantedKeys = new Set(wanted.map((w) => w.key));
    const current = (key: string): TaskRecord[] => (instances.get(key) ?? []).map((t) => work.get(t.ID)!).sort(newestFirst);

    // Step 2: instances no longer wanted (scaled down; global nodes that paused keep theirs).
    for (const key of instances.keys()) {
      if (wantedKeys.has(key)) continue;
      const node = global ? nodes.get(key.slice(2)) : undefined;
      if (node?.Availability === 'pause' && node.State !== 'down') continue;
      for (const t of current(key)) if (isLive(t)) shutdown(t);
    }

    const makeTask = (slot: number, nodeId: string): TaskRecord => {
      const task: TaskRecord = {
        ID: input.newId(),
        Version: { Index: input.index },
        CreatedAt: nowIso,
        UpdatedAt: nowIso,
        Labels: {},
        Spec: structuredClone(template) as TaskSpec,
        ServiceID: service.ID,
        Slot: slot,
        NodeID: nodeId,
        Status: { Timestamp: nowIso, State: 'new', Message: 'created', PortStatus: {} },
        DesiredState: 'running',
      };
      create.push(task);
      return task;
    };
    /** A task this update made (outside an update: any task of the current spec). */
    const updated = (t: TaskRecord): boolean => isUpToDate(t, service) && (!inUpdate || at(t.CreatedAt) >= startedMs);
    const delayMs = restart.Delay === undefined ? DEFAULT_RESTART_DELAY_MS : restart.Delay / NS_PER_MS;
    const windowMs = ms(restart.Window, 0);
    const ended = (t: TaskRecord): boolean => t.Status.State === 'complete' || t.Status.State === 'failed' || t.Status.State === 'rejected';

    // Step 3: per wanted instance, restarts and refills; instances left to update go to `dirty`.
    const dirty: { slot: number; nodeId: string; key: string }[] = [];
    let busy = 0;
    for (const w of wanted) {
      for (const t of current(w.key)) {
        if (!isLive(t) || !isTerminal(t.Status.State)) continue;
        const condition = restart.Condition ?? 'any';
        if (condition === 'none' || (condition === 'on-failure' && t.Status.State === 'complete')) continue;
        const restarts = current(w.key).filter((o) => o.ID !== t.ID && ended(o) && jsonEqual(o.Spec, t.Spec) && (windowMs === 0 || now - at(o.UpdatedAt) <= windowMs)).length;
        if ((restart.MaxAttempts ?? 0) > 0 && restarts >= restart.MaxAttempts!) continue;
        const due = at(t.UpdatedAt) + delayMs;
        if (now >= due) shutdown(t);
        else wake(due);
      }
      const tasks = current(w.key);
      const live = tasks.filter(isLive);
      if (live.length === 0) {
        // Stop-first: a task still stopping on a healthy node keeps its instance until it stops.
        const stopping = tasks.find((t) => {
          const node = nodes.get(t.NodeID);
          return !isTerminal(t.Status.State) && node !== undefined && node.State === 'ready' && node.Availability === 'active' && now < at(t.UpdatedAt) + stopWaitMs;
        });
        if (stopping) {
          wake(at(stopping.UpdatedAt) + stopWaitMs);
          busy++;
        } else {
          makeTask(w.slot, w.nodeId);
          if (inUpdate) busy++;
        }
        continue;
      }
      const fresh = live.filter((t) => isUpToDate(t, service));
      const old = live.filter((t) => !isUpToDate(t, service));
      // Start-first: once the new task runs, the old ones go.
      if (fresh.some((t) => t.Status.State === 'running')) for (const t of old) shutdown(t);
      else if (old.length > 0 && fresh.length === 0) dirty.push(w);
      // An update worker stays busy until its new task has run for Delay.
      for (const t of fresh) {
        if (!updated(t) || isTerminal(t.Status.State)) continue;
        if (t.Status.State !== 'running') busy++;
        else if (now < at(t.UpdatedAt) + ms(config.Delay, 0)) {
          busy++;
          wake(at(t.UpdatedAt) + ms(config.Delay, 0));
        }
      }
    }

    // Step 4: failures of new tasks during the update, against MaxFailureRatio.
    let halted = paused;
    if (inUpdate) {
      const failedTasks = (byService.get(service.ID) ?? []).map((t) => work.get(t.ID)!).filter((t) => updated(t) && (t.Status.State === 'failed' || t.Status.State === 'rejected'));
      const first = failedTasks.sort(newestFirst).at(-1);
      if (first && failedTasks.length > (config.MaxFailureRatio ?? 0) * Math.max(1, wanted.length)) {
        const action = config.FailureAction ?? 'pause';
        const what = rollingBack ? 'rollback' : 'update';
        if (action === 'pause' || (action === 'rollback' && rollingBack)) {
          updateStatus.push({
            serviceId: service.ID,
            status: { ...status, State: rollingBack ? 'rollback_paused' : 'paused', Message: `${what} paused due to failure or early termination of task ${first.ID}` },
          });
          halted = true;
        } else if (action === 'rollback') {
          rollback.push({ serviceId: service.ID, message: `update rolled back due to failure or early termination of task ${first.ID}` });
          halted = true;
        }
      }
    }

    // Step 5: the rolling update proper, Parallelism instances at a time.
    if (!halted && dirty.length > 0) {
      const parallelism = config.Parallelism ?? 1;
      let room = parallelism === 0 ? dirty.length : Math.max(0, parallelism - busy);
      for (const w of dirty) {
        if (room === 0) break;
        room--;
        const live = current(w.key).filter(isLive);
        if (config.Order === 'start-first') {
          makeTask(w.slot, w.nodeId);
          continue;
        }
        for (const t of live) shutdown(t);
        if (live.some((t) => !isTerminal(t.Status.State))) wake(now + stopWaitMs);
        else makeTask(w.slot, w.nodeId);
      }
    }

    // Step 6: the update is complete once every instance runs an up-to-date task, the last for Monitor.
    if (inUpdate && !halted && dirty.length === 0) {
      let lastStart = 0;
      let done = true;
      for (const w of wanted) {
        const live = current(w.key).filter(isLive);
        const running = live.find((t) => isUpToDate(t, service) && t.Status.State === 'running');
        if (!running || live.some((t) => !isUpToDate(t, service))) {
          done = false;
          break;
        }
        if (updated(running)) lastStart = Math.max(lastStart, at(running.UpdatedAt));
      }
      const until = lastStart + ms(config.Monitor, DEFAULT_MONITOR_MS);
      if (done && lastStart > 0 && now < until) wake(until);
      else if (done) {
        updateStatus.push({
          serviceId: service.ID,
          status: {
            State: rollingBack ? 'rollback_completed' : 'completed',
            ...(status?.StartedAt ? { StartedAt: status.StartedAt } : {}),
            CompletedAt: nowIso,
            Message: rollingBack ? 'rollback completed' : 'update completed',
          },
        });
      }
    }

    // Step 7: history (swarmkit's task reaper): the newest `historyLimit` tasks per instance stay.
    const limit = Math.max(1, input.historyLimit);
    for (const key of instances.keys()) {
      const made = create.filter((t) => t.ServiceID === service.ID && keyOf(t) === key).length;
      for (const t of current(key).slice(Math.max(0, limit - made))) {
        // A task this pass changed goes in a later pass: whoever reads the store sees its end first.
        if (isLive(t) || changed.has(t.ID)) continue;
        if (isTerminal(t.Status.State) || t.NodeID === '') remove.push(t.ID);
      }
    }
  }

  const removed = new Set(remove);
  return {
    create,
    updated: [...changed].filter((id) => !removed.has(id)).map((id) => work.get(id)!),
    remove,
    updateStatus,
    rollback,
    wakeAtMs,
  };
}
