/**
 * The Manager's service and task methods inside a store transaction (swarmkit controlapi
 * service.go and task.go, with dockerd's texts, spec docker-api-swarm.md §9), and one
 * reconcile pass: orchestrator, allocator (addresses on the task's networks), scheduler,
 * written together so that a reader never sees a task half-made. No I/O and no timers: the
 * Manager owns those and calls these with its clock's time.
 *
 * Throws the catalogue's errors as documented per function; a throwing function writes
 * nothing (the store discards the transaction).
 */
import { CapacityError, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError, OutOfSequenceError } from '../lib/errors.js';
import { allocateTaskAddressIn, allocateVipIn, ingressOf, resolveNetworkIn } from './networks.js';
import { globalNodes, isUpToDate, jsonEqual, orchestrate } from './orchestrator.js';
import { type NodeInfo, parseConstraints, schedule } from './scheduler.js';
import { SERVICE_FILTER_KEYS, TASK_FILTER_KEYS, checkFilterKeys, labelMatches, parseServiceSpec, resolvePorts, resolveRef, serviceMatches, taskName } from './service-spec.js';
import type {
  EndpointPort,
  NetworkAttachment,
  NetworkRecord,
  ObjectFilters,
  ServiceEndpoint,
  ServiceRecord,
  ServiceSpec,
  ServiceStatus,
  TaskRecord,
  UpdateConfig,
  UpdateStatus,
  VirtualIp,
} from './service-types.js';
import type { StoreReader, StoreTx } from './store.js';

export interface TxContext {
  readonly newId: () => string;
  /** Wall clock, ms since the epoch. */
  readonly nowMs: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** dockerd's resolution of a service reference (§3.5). Throws NotFoundError `service <ref> not found`. */
export function resolveServiceIn(reader: StoreReader, ref: string): ServiceRecord {
  return resolveRef(
    reader.list<ServiceRecord>('service'),
    ref,
    'service',
    (s) => s.ID,
    (s) => s.Spec.Name,
  );
}

/** A task by full ID or unique ID prefix. Throws NotFoundError `task <ref> not found`. */
export function resolveTaskIn(reader: StoreReader, ref: string): TaskRecord {
  return resolveRef(
    reader.list<TaskRecord>('task'),
    ref,
    'task',
    (t) => t.ID,
    () => undefined,
  );
}

/**
 * Checks what parseServiceSpec leaves to the orchestrator and scheduler: constraints,
 * restart policy, update and rollback configs. Throws InvalidArgumentError naming the field.
 */
export function checkOrchestrationSpec(spec: ServiceSpec): void {
  const t = spec.TaskTemplate;
  parseConstraints(t.Placement?.Constraints as readonly unknown[] | undefined);
  const max = t.Placement?.MaxReplicas;
  if (max !== undefined && (!Number.isInteger(max) || max < 0)) throw new InvalidArgumentError('TaskTemplate.Placement.MaxReplicas must be a non-negative integer');
  const r = t.RestartPolicy;
  if (r !== undefined && r !== null) {
    if (r.Condition !== undefined && !['none', 'on-failure', 'any'].includes(r.Condition)) {
      throw new InvalidArgumentError(`TaskTemplate.RestartPolicy.Condition must be none, on-failure or any, not ${JSON.stringify(r.Condition)}`);
    }
    for (const f of ['Delay', 'MaxAttempts', 'Window'] as const) {
      const v = r[f];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw new InvalidArgumentError(`TaskTemplate.RestartPolicy.${f} must be a non-negative integer`);
    }
  }
  for (const name of ['UpdateConfig', 'RollbackConfig'] as const) checkUpdateConfig(spec[name], name);
  if ('Global' in spec.Mode && (t.Placement?.MaxReplicas ?? 0) > 0) throw new InvalidArgumentError('replicas-max-per-node can only be used with replicated mode');
}

function checkUpdateConfig(c: UpdateConfig | undefined, what: string): void {
  if (c === undefined || c === null) return;
  if (typeof c !== 'object') throw new InvalidArgumentError(`${what} must be a JSON object`);
  for (const f of ['Parallelism', 'Delay', 'Monitor'] as const) {
    const v = c[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw new InvalidArgumentError(`${what}.${f} must be a non-negative integer`);
  }
  if (c.FailureAction !== undefined && !['pause', 'continue', 'rollback', ''].includes(c.FailureAction)) {
    throw new InvalidArgumentError(`${what}.FailureAction must be pause, continue or rollback`);
  }
  if (c.Order !== undefined && !['stop-first', 'start-first', ''].includes(c.Order)) throw new InvalidArgumentError(`${what}.Order must be stop-first or start-first`);
  const ratio = c.MaxFailureRatio;
  if (ratio !== undefined && (typeof ratio !== 'number' || ratio < 0 || ratio > 1)) throw new InvalidArgumentError(`${what}.MaxFailureRatio must be a number from 0 to 1`);
}

/** `TaskTemplate.Networks` with every Target a network ID (dockerd resolves names before storing, §9.1). Throws NotFoundError. */
function resolveNetworkTargets(reader: StoreReader, spec: ServiceSpec): ServiceSpec {
  const targets = spec.TaskTemplate.Networks;
  if (targets === undefined || targets === null) return spec;
  if (!Array.isArray(targets)) throw new InvalidArgumentError('TaskTemplate.Networks must be a list');
  const networks = targets.map((n: unknown, i) => {
    if (typeof n !== 'object' || n === null || typeof (n as { Target?: unknown }).Target !== 'string') throw new InvalidArgumentError(`TaskTemplate.Networks[${i}].Target must be a string`);
    const target = n as { Target: string };
    return { ...target, Target: resolveNetworkIn(reader, target.Target).Id };
  });
  return { ...spec, TaskTemplate: { ...spec.TaskTemplate, Networks: networks } };
}

/** `proto/port` of every ingress port other services publish. */
function takenIngressPorts(reader: StoreReader, exceptId: string | undefined): Set<string> {
  const taken = new Set<string>();
  for (const s of reader.list<ServiceRecord>('service')) {
    if (s.ID === exceptId) continue;
    for (const p of s.Endpoint.Ports ?? []) if (p.PublishMode === 'ingress') taken.add(`${p.Protocol}/${p.PublishedPort}`);
  }
  return taken;
}

/**
 * The Endpoint of a spec: resolved ports (an auto-assigned port of `previous` is kept), and in
 * vip mode a VIP on ingress (every task is on ingress in shoal, so DNS gives every vip-mode
 * service its VIP) and on each attached network, reusing `previous` VIPs.
 */
function endpointFor(tx: StoreTx, id: string | undefined, spec: ServiceSpec, previous: ServiceEndpoint | undefined): ServiceEndpoint {
  const requested = (spec.EndpointSpec?.Ports ?? []).map((p) => {
    if (p.PublishedPort || (p.PublishMode ?? 'ingress') !== 'ingress') return p;
    const kept = (previous?.Ports ?? []).find((o) => o.PublishMode === 'ingress' && o.TargetPort === p.TargetPort && o.Protocol === (p.Protocol || 'tcp'));
    return kept ? { ...p, PublishedPort: kept.PublishedPort } : p;
  });
  const ports: EndpointPort[] = resolvePorts(requested, takenIngressPorts(tx, id));
  const mode = spec.EndpointSpec?.Mode || 'vip';
  const vips: VirtualIp[] = [];
  if (mode === 'vip') {
    const ingress = ingressOf(tx);
    const networkIds = [...(ingress ? [ingress.Id] : []), ...(spec.TaskTemplate.Networks ?? []).map((n) => n.Target)];
    const reserved = new Set<number>();
    for (const networkId of [...new Set(networkIds)]) {
      const old = previous?.VirtualIPs?.find((v) => v.NetworkID === networkId);
      if (old) vips.push(old);
      else vips.push({ NetworkID: networkId, Addr: allocateVipIn(tx, resolveNetworkIn(tx, networkId), reserved) });
    }
  }
  return { Spec: spec.EndpointSpec ?? { Mode: 'vip' }, ...(ports.length > 0 ? { Ports: ports } : {}), ...(vips.length > 0 ? { VirtualIPs: vips } : {}) };
}

/**
 * `POST /services/create` in `tx`. Throws InvalidArgumentError (400) for a bad spec,
 * ConflictError (409) for a taken name or published port, NotFoundError for an unknown
 * network, CapacityError when no VIP is free.
 */
export function createServiceIn(tx: StoreTx, body: unknown, ctx: TxContext): ServiceRecord {
  const parsed = parseServiceSpec(body);
  checkOrchestrationSpec(parsed);
  const spec = resolveNetworkTargets(tx, parsed);
  // swarmkit's store indexes names case-insensitively: `Web` conflicts with `web`.
  if (tx.list<ServiceRecord>('service').some((s) => s.Spec.Name.toLowerCase() === spec.Name.toLowerCase())) {
    throw new ConflictError(`rpc error: code = AlreadyExists desc = name conflicts with an existing object: service ${spec.Name} already exists`);
  }
  const id = ctx.newId();
  const now = iso(ctx.nowMs);
  const service: ServiceRecord = { ID: id, Version: { Index: tx.index }, CreatedAt: now, UpdatedAt: now, Spec: spec, Endpoint: endpointFor(tx, undefined, spec, undefined) };
  tx.put('service', id, service);
  return service;
}

/**
 * `POST /services/{ref}/update?version=N[&rollback=previous]` in `tx` (§9.2, §9.3). Throws
 * NotFoundError, OutOfSequenceError for a stale version, InvalidArgumentError for a bad spec,
 * a rename or a mode change, FailedPreconditionError for a rollback without PreviousSpec,
 * ConflictError for a published port another service has.
 */
export function updateServiceIn(tx: StoreTx, ref: string, version: number, body: unknown, rollback: boolean, ctx: TxContext): ServiceRecord {
  const service = resolveServiceIn(tx, ref);
  if (version !== service.Version.Index) throw new OutOfSequenceError('update out of sequence');
  const now = iso(ctx.nowMs);
  let spec: ServiceSpec;
  let previous: ServiceSpec;
  let status: UpdateStatus | null;
  if (rollback) {
    if (!service.PreviousSpec) throw new FailedPreconditionError(`service ${service.ID} does not have a previous spec`);
    spec = service.PreviousSpec;
    previous = service.Spec;
    status = { State: 'rollback_started', StartedAt: now, Message: 'manually requested rollback' };
  } else {
    const parsed = parseServiceSpec(body);
    checkOrchestrationSpec(parsed);
    spec = resolveNetworkTargets(tx, parsed);
    if (spec.Name !== service.Spec.Name) throw new InvalidArgumentError('rpc error: code = Unimplemented desc = renaming services is not supported');
    if ('Global' in spec.Mode !== 'Global' in service.Spec.Mode) throw new InvalidArgumentError('rpc error: code = Unimplemented desc = service mode change is not allowed');
    previous = service.Spec;
    const rolling = !jsonEqual(spec.TaskTemplate, service.Spec.TaskTemplate);
    status = rolling ? { State: 'updating', StartedAt: now, Message: 'update in progress' } : null;
  }
  const next: ServiceRecord = {
    ...service,
    Version: { Index: tx.index },
    UpdatedAt: now,
    Spec: spec,
    PreviousSpec: previous,
    Endpoint: endpointFor(tx, service.ID, spec, service.Endpoint),
    UpdateStatus: status,
  };
  tx.put('service', service.ID, next);
  return next;
}

/** The rollback an update's FailureAction asks for: as a manual one, with the orchestrator's message. */
export function autoRollbackIn(tx: StoreTx, serviceId: string, message: string, ctx: TxContext): void {
  const service = tx.get<ServiceRecord>('service', serviceId);
  if (!service) return;
  try {
    if (!service.PreviousSpec) throw new FailedPreconditionError(`service ${service.ID} does not have a previous spec`);
    const next = updateServiceIn(tx, service.ID, service.Version.Index, undefined, true, ctx);
    tx.put('service', service.ID, { ...next, UpdateStatus: { ...next.UpdateStatus!, Message: message } });
  } catch (error) {
    // A rollback that cannot be made (its old port is now another service's) must not fail
    // the whole reconcile, every time: the update pauses and says why. Nothing was written.
    const status: UpdateStatus = { ...service.UpdateStatus, State: 'paused', Message: `${message}; rollback failed: ${(error as Error).message}` };
    tx.put('service', service.ID, { ...service, Version: { Index: tx.index }, UpdateStatus: status });
  }
}

/** `DELETE /services/{ref}`: the service and every task of it, at once (§9.6). Throws NotFoundError. */
export function removeServiceIn(tx: StoreTx, ref: string): { service: ServiceRecord; taskIds: string[] } {
  const service = resolveServiceIn(tx, ref);
  const taskIds = tx.list<TaskRecord>('task').filter((t) => t.ServiceID === service.ID).map((t) => t.ID);
  for (const id of taskIds) tx.delete('task', id);
  tx.delete('service', service.ID);
  return { service, taskIds };
}

/** ServiceStatus (§5.4): DesiredTasks = replicas or eligible nodes; RunningTasks = running tasks on nodes not down. */
export function serviceStatus(service: ServiceRecord, tasks: readonly TaskRecord[], nodes: readonly NodeInfo[]): ServiceStatus {
  const down = new Set(nodes.filter((n) => n.State === 'down').map((n) => n.ID));
  const known = new Set(nodes.map((n) => n.ID));
  const running = tasks.filter((t) => t.ServiceID === service.ID && t.Status.State === 'running' && t.DesiredState === 'running' && known.has(t.NodeID) && !down.has(t.NodeID)).length;
  const desired = 'Global' in service.Spec.Mode ? globalNodes(service, nodes).length : (service.Spec.Mode.Replicated.Replicas ?? 1);
  return { RunningTasks: running, DesiredTasks: desired, CompletedTasks: 0 };
}

/** `GET /services` filters (§9.5). Throws InvalidArgumentError for an unknown key. */
export function listServicesIn(reader: StoreReader, filters: ObjectFilters): ServiceRecord[] {
  checkFilterKeys(filters, SERVICE_FILTER_KEYS);
  return reader
    .list<ServiceRecord>('service')
    .filter((s) => serviceMatches(s, filters))
    .sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID));
}

/**
 * `GET /tasks` filters (§9.5): `id` prefix, `name` prefix of `<service>.<slot>`, `service`
 * (ID, name or unique ID prefix), `node` (ID, or a node ID `resolveNode` gives), `desired-state`,
 * `label` (the service's labels), `_up-to-date`. Throws InvalidArgumentError for an unknown key.
 */
export function listTasksIn(reader: StoreReader, filters: ObjectFilters, resolveNode: (ref: string) => string | undefined): TaskRecord[] {
  checkFilterKeys(filters, TASK_FILTER_KEYS);
  const services = new Map(reader.list<ServiceRecord>('service').map((s) => [s.ID, s]));
  const serviceIds = filters['service']?.length
    ? new Set(
        filters['service'].flatMap((ref) => {
          try {
            return [resolveServiceIn(reader, ref).ID];
          } catch {
            return [];
          }
        }),
      )
    : undefined;
  const nodeIds = filters['node']?.length ? new Set(filters['node'].flatMap((ref) => [ref, resolveNode(ref) ?? ref])) : undefined;
  const any = (values: readonly string[] | undefined, test: (v: string) => boolean): boolean => !values || values.length === 0 || values.some(test);
  return reader
    .list<TaskRecord>('task')
    .filter((t) => {
      const service = services.get(t.ServiceID);
      return (
        (!serviceIds || serviceIds.has(t.ServiceID)) &&
        (!nodeIds || nodeIds.has(t.NodeID)) &&
        any(filters['id'], (v) => t.ID.startsWith(v)) &&
        any(filters['name'], (v) => service !== undefined && taskName(service.Spec.Name, t).startsWith(v)) &&
        any(filters['desired-state'], (v) => t.DesiredState === v) &&
        any(filters['label'], (v) => service !== undefined && labelMatches(service.Spec.Labels, v)) &&
        any(filters['_up-to-date'], (v) => service !== undefined && isUpToDate(t, service) === (v === 'true' || v === '1'))
      );
    })
    .sort((a, b) => a.ServiceID.localeCompare(b.ServiceID) || a.Slot - b.Slot || a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID));
}

export interface ReconcileOptions extends TxContext {
  readonly nodes: readonly NodeInfo[];
  readonly historyLimit: number;
}

/**
 * One pass of orchestrator → allocator → scheduler in `tx`. Returns when the orchestrator
 * wants to look again (wall ms), if it does, and whether it must look again at once (an
 * automatic rollback was started).
 */
export function reconcileIn(tx: StoreTx, o: ReconcileOptions): { wakeAtMs: number | undefined; again: boolean } {
  const services = tx.list<ServiceRecord>('service');
  const result = orchestrate({ services, tasks: tx.list<TaskRecord>('task'), nodes: o.nodes, nowMs: o.nowMs, historyLimit: o.historyLimit, index: tx.index, newId: o.newId });
  for (const id of result.remove) tx.delete('task', id);
  for (const t of [...result.updated, ...result.create]) tx.put('task', t.ID, { ...t, Version: { Index: tx.index } });
  for (const { serviceId, status } of result.updateStatus) {
    const s = tx.get<ServiceRecord>('service', serviceId);
    if (s) tx.put('service', s.ID, { ...s, Version: { Index: tx.index }, UpdateStatus: status });
  }
  for (const { serviceId, message } of result.rollback) autoRollbackIn(tx, serviceId, message, o);

  const now = iso(o.nowMs);
  // Allocator: a new task gets an address on ingress and on each of its networks, then is pending.
  const networks = new Map(tx.list<NetworkRecord>('network').map((n) => [n.Id, n]));
  const ingress = ingressOf(tx);
  const reserved = new Map<string, Set<number>>();
  for (const t of tx.list<TaskRecord>('task')) {
    if (t.Status.State !== 'new' || t.DesiredState !== 'running') continue;
    try {
      const attachments: NetworkAttachment[] = [];
      for (const id of [...new Set([...(ingress ? [ingress.Id] : []), ...(t.Spec.Networks ?? []).map((n) => n.Target)])]) {
        const network = networks.get(id);
        if (!network) throw new NotFoundError(`network ${id} not found`);
        if (!reserved.has(id)) reserved.set(id, new Set());
        attachments.push({ Network: network, Addresses: [allocateTaskAddressIn(tx, network, reserved.get(id))] });
      }
      tx.put('task', t.ID, { ...t, Version: { Index: tx.index }, UpdatedAt: now, NetworksAttachments: attachments, Status: { ...t.Status, State: 'pending', Message: 'pending task scheduling', Timestamp: now } });
    } catch (error) {
      if (!(error instanceof CapacityError || error instanceof NotFoundError)) throw error;
      if (t.Status.Err !== error.message) tx.put('task', t.ID, { ...t, Version: { Index: tx.index }, Status: { ...t.Status, Err: error.message, Timestamp: now } });
    }
  }

  // Scheduler: pending tasks in service then slot order.
  const tasks = tx.list<TaskRecord>('task');
  const byService = new Map(tx.list<ServiceRecord>('service').map((s) => [s.ID, s]));
  const pending = tasks.filter((t) => t.Status.State === 'pending' && t.DesiredState === 'running').sort((a, b) => a.ServiceID.localeCompare(b.ServiceID) || a.Slot - b.Slot || a.ID.localeCompare(b.ID));
  const placements = schedule({ pending, tasks: tasks.filter((t) => t.Status.State !== 'pending'), services: byService, nodes: o.nodes });
  const byId = new Map(pending.map((t) => [t.ID, t]));
  for (const p of placements) {
    const t = byId.get(p.taskId)!;
    if ('nodeId' in p) {
      const { Err: _err, ...status } = t.Status;
      // Host-mode ports are the task's own on its node: `service ps` shows them from PortStatus.
      const hostPorts = (byService.get(t.ServiceID)?.Endpoint.Ports ?? []).filter((port) => port.PublishMode === 'host');
      const portStatus = hostPorts.length > 0 ? { Ports: hostPorts } : status.PortStatus;
      tx.put('task', t.ID, {
        ...t,
        Version: { Index: tx.index },
        UpdatedAt: now,
        NodeID: p.nodeId,
        Status: { ...status, State: 'assigned', Message: 'scheduler assigned task to node', Timestamp: now, PortStatus: portStatus },
      });
    } else if (t.Status.Err !== p.error) {
      tx.put('task', t.ID, { ...t, Version: { Index: tx.index }, Status: { ...t.Status, Err: p.error, Timestamp: now } });
    }
  }
  return { wakeAtMs: result.wakeAtMs, again: result.rollback.length > 0 };
}
