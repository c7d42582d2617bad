/**
 * The scheduler (swarmkit manager/scheduler): pending tasks → nodes. Pure: a snapshot in, a
 * decision per task out, so placement is table-tested without a store.
 *
 * A node is a candidate for a task when it passes, in swarmkit's pipeline order, the filters
 * ready (status ready, availability active), constraints (`node.id`, `node.hostname`,
 * `node.role`, `node.platform.os|arch`, `node.labels.<k>`, `engine.labels.<k>`; `==`, `!=`),
 * host-mode published ports (not already published on the node) and max replicas per node.
 * Among candidates it spreads: fewest tasks of the same service, then fewest tasks overall,
 * then the lowest node ID, so the same state always gives the same placement. A task no node
 * passes stays pending with swarmkit's explanation, counting each node under the first filter
 * it fails: `no suitable node (1 node not available for new tasks; scheduling constraints not
 * satisfied on 2 nodes)`.
 */
import { InvalidArgumentError } from '../lib/errors.js';
import type { ServiceRecord, TaskRecord, TaskState } from './service-types.js';
import { TASK_STATES } from './service-types.js';
import type { NodeAvailability, NodeRole, NodeState } from './types.js';

/** What the scheduler and orchestrator need to know of a node. */
export interface NodeInfo {
  readonly ID: string;
  readonly Hostname: string;
  readonly Role: NodeRole;
  readonly Availability: NodeAvailability;
  readonly State: NodeState;
  readonly Labels: Readonly<Record<string, string>>;
  readonly EngineLabels: Readonly<Record<string, string>>;
  readonly Platform: { readonly OS: string; readonly Architecture: string };
}

export type ConstraintOperator = '==' | '!=';

export interface Constraint {
  readonly key: string;
  readonly operator: ConstraintOperator;
  readonly value: string;
}

// swarmkit manager/constraint: keys and values it accepts.
const KEY_RE = /^[a-z_][a-z0-9\-_.]+$/i;
const VALUE_RE = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/]+$/i;

/** Parses `key==value` / `key!=value` (swarmkit constraint.Parse). Throws InvalidArgumentError for bad syntax. */
export function parseConstraint(text: string): Constraint {
  const at = text.search(/==|!=/);
  if (at < 0) throw new InvalidArgumentError(`constraint expected one operator from ==, != in ${JSON.stringify(text)}`);
  const operator = text.slice(at, at + 2) as ConstraintOperator;
  const key = text.slice(0, at).trim();
  const value = text.slice(at + 2).trim();
  if (/==|!=/.test(value)) throw new InvalidArgumentError(`constraint expected one operator from ==, != in ${JSON.stringify(text)}`);
  if (!KEY_RE.test(key)) throw new InvalidArgumentError(`key '${key}' is invalid in constraint ${JSON.stringify(text)}`);
  if (!VALUE_RE.test(value)) throw new InvalidArgumentError(`value '${value}' is invalid in constraint ${JSON.stringify(text)}`);
  return { key, operator, value };
}

/** Every constraint of a spec, parsed. Throws InvalidArgumentError naming the bad one. */
export function parseConstraints(constraints: readonly unknown[] | undefined): Constraint[] {
  if (constraints === undefined || constraints === null) return [];
  if (!Array.isArray(constraints)) throw new InvalidArgumentError('TaskTemplate.Placement.Constraints must be a list of strings');
  return constraints.map((c) => {
    if (typeof c !== 'string') throw new InvalidArgumentError('TaskTemplate.Placement.Constraints must be a list of strings');
    return parseConstraint(c);
  });
}

/**
 * Whether `node` meets one constraint. Values compare case-insensitively, as swarmkit's do;
 * a label the node lacks equals nothing, and an unknown key is never satisfied.
 */
export function constraintMet(c: Constraint, node: NodeInfo): boolean {
  const key = c.key.toLowerCase();
  let actual: string | undefined;
  if (key === 'node.id') actual = node.ID;
  else if (key === 'node.hostname') actual = node.Hostname;
  else if (key === 'node.role') actual = node.Role;
  else if (key === 'node.platform.os') actual = node.Platform.OS;
  else if (key === 'node.platform.arch') actual = node.Platform.Architecture;
  else if (key.startsWith('node.labels.')) actual = labelValue(node.Labels, c.key.slice('node.labels.'.length));
  else if (key.startsWith('engine.labels.')) actual = labelValue(node.EngineLabels, c.key.slice('engine.labels.'.length));
  else return false;
  const equal = actual !== undefined && actual.toLowerCase() === c.value.toLowerCase();
  return c.operator === '==' ? equal : !equal;
}

function labelValue(labels: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}

export function constraintsMet(constraints: readonly Constraint[], node: NodeInfo): boolean {
  return constraints.every((c) => constraintMet(c, node));
}

/** Parses a service's constraints, treating unparseable ones (stored before checking) as unsatisfiable. */
export function serviceConstraints(service: ServiceRecord): Constraint[] | undefined {
  try {
    return parseConstraints(service.Spec.TaskTemplate.Placement?.Constraints);
  } catch {
    return undefined;
  }
}

const ORDER = new Map<TaskState, number>(TASK_STATES.map((s, i) => [s, i]));
const RUNNING = ORDER.get('running')!;

/** The state's position in Swarm's order (TASK_STATES). */
export function stateOrder(state: TaskState): number {
  return ORDER.get(state) ?? 0;
}

/** A task that occupies its node: wanted running and not yet ended. */
export function occupiesNode(task: TaskRecord): boolean {
  return task.NodeID !== '' && stateOrder(task.DesiredState) <= RUNNING && stateOrder(task.Status.State) <= RUNNING;
}

export type Placement = { readonly taskId: string; readonly nodeId: string } | { readonly taskId: string; readonly error: string };

export interface ScheduleInput {
  /** Tasks to place: state pending, desired running. A preset NodeID (global tasks) is the only node tried. */
  readonly pending: readonly TaskRecord[];
  /** Every other task: the load the spread counts and the ports and replicas the filters count. */
  readonly tasks: readonly TaskRecord[];
  readonly services: ReadonlyMap<string, ServiceRecord>;
  readonly nodes: readonly NodeInfo[];
}

type FilterName = 'ready' | 'constraints' | 'hostPort' | 'maxReplicas';
const FILTERS: readonly FilterName[] = ['ready', 'constraints', 'hostPort', 'maxReplicas'];

/** swarmkit's Explain() of each filter, for `count` nodes failing it. */
function explain(filter: FilterName, count: number): string {
  const nodes = count === 1 ? '1 node' : `${count} nodes`;
  switch (filter) {
    case 'ready':
      return `${nodes} not available for new tasks`;
    case 'constraints':
      return `scheduling constraints not satisfied on ${nodes}`;
    case 'hostPort':
      return `host-mode port already in use on ${nodes}`;
    case 'maxReplicas':
      return 'max replicas per node limit exceed';
    default: {
      const never: never = filter;
      return never;
    }
  }
}

interface NodeLoad {
  total: number;
  readonly byService: Map<string, number>;
  readonly hostPorts: Set<string>;
}

/**
 * Places `pending` tasks in order (callers sort them: service, then slot), counting each
 * placement before the next, so a batch spreads as evenly as tasks placed one by one.
 */
export function schedule(input: ScheduleInput): Placement[] {
  const loads = new Map<string, NodeLoad>(input.nodes.map((n) => [n.ID, { total: 0, byService: new Map(), hostPorts: new Set() }]));
  const count = (task: TaskRecord): void => {
    const load = loads.get(task.NodeID);
    if (!load) return;
    load.total++;
    load.byService.set(task.ServiceID, (load.byService.get(task.ServiceID) ?? 0) + 1);
    for (const p of hostPorts(input.services.get(task.ServiceID))) load.hostPorts.add(p);
  };
  for (const task of input.tasks) if (occupiesNode(task)) count(task);

  const nodes = [...input.nodes].sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
  const out: Placement[] = [];
  for (const task of input.pending) {
    const service = input.services.get(task.ServiceID);
    const constraints = service ? serviceConstraints(service) : [];
    const maxReplicas = service?.Spec.TaskTemplate.Placement?.MaxReplicas ?? 0;
    const ports = hostPorts(service);
    const failed = new Map<FilterName, number>();
    const candidates: NodeInfo[] = [];
    for (const node of nodes) {
      if (task.NodeID !== '' && node.ID !== task.NodeID) continue;
      const load = loads.get(node.ID)!;
      const fails = (f: FilterName): boolean => {
        switch (f) {
          case 'ready':
            return node.State !== 'ready' || node.Availability !== 'active';
          case 'constraints':
            return constraints === undefined || !constraintsMet(constraints, node);
          case 'hostPort':
            return ports.some((p) => load.hostPorts.has(p));
          case 'maxReplicas':
            return maxReplicas > 0 && (load.byService.get(task.ServiceID) ?? 0) >= maxReplicas;
          default: {
            const never: never = f;
            return never;
          }
        }
      };
      const first = FILTERS.find(fails);
      if (first) failed.set(first, (failed.get(first) ?? 0) + 1);
      else candidates.push(node);
    }
    if (candidates.length === 0) {
      const reasons = FILTERS.filter((f) => failed.has(f)).map((f) => explain(f, failed.get(f)!));
      out.push({ taskId: task.ID, error: reasons.length > 0 ? `no suitable node (${reasons.join('; ')})` : 'no suitable node' });
      continue;
    }
    let best = candidates[0]!;
    for (const node of candidates.slice(1)) if (lighter(loads.get(node.ID)!, loads.get(best.ID)!, task.ServiceID)) best = node;
    out.push({ taskId: task.ID, nodeId: best.ID });
    count({ ...task, NodeID: best.ID, DesiredState: 'running', Status: { ...task.Status, State: 'assigned' } });
  }
  return out;
}

/** Strictly fewer tasks of the service, or as many and fewer overall (ties keep the lower ID). */
function lighter(a: NodeLoad, b: NodeLoad, serviceId: string): boolean {
  const sa = a.byService.get(serviceId) ?? 0;
  const sb = b.byService.get(serviceId) ?? 0;
  return sa < sb || (sa === sb && a.total < b.total);
}

/** `proto/port` of every host-mode published port of a service. */
export function hostPorts(service: ServiceRecord | undefined): string[] {
  return (service?.Endpoint.Ports ?? []).filter((p) => p.PublishMode === 'host' && p.PublishedPort > 0).map((p) => `${p.Protocol}/${p.PublishedPort}`);
}
