/**
 * The control calls the Docker API makes on a manager (swarm, nodes, services, tasks, networks,
 * logs): answered by the leader's Manager in process (`localControl`), or forwarded by another
 * manager to the leader over mTLS as `{Method, Args}` and checked there like any other
 * untrusted input (`callControl`).
 */
import { InvalidArgumentError } from '../lib/errors.js';
import type { Manager, NodeFilters } from '../cluster/manager.js';
import type { NodeView, SwarmView } from '../cluster/types.js';
import type { LogEntry } from '../cluster/log-broker.js';
import type { NetworkRecord, ObjectFilters, ServiceView, TaskRecord } from '../cluster/service-types.js';

/** One log line with the IDs `service logs` needs for its details (spec §8). */
export type { LogEntry };

/** Whose lines: a service's (every task of it) or one task's. IDs, already resolved. */
export interface LogSelector {
  readonly service?: string;
  readonly task?: string;
}

export interface LogOptions {
  /** Only the last `tail` lines of what is kept (absent: all). */
  readonly tail?: number;
  /** Only lines at or after this time (ms since the epoch). */
  readonly sinceMs?: number;
}

/**
 * The lines kept now and the lines to come: pushed by the leader's broker when the manager is
 * local; when forwarded, polled from the leader (see forwardingControl). Without `subscribe`
 * a follow ends after the lines kept.
 */
export interface LogStream {
  readonly entries: readonly LogEntry[];
  /** Calls `listener` with every new line until the returned function is called. */
  readonly subscribe?: (listener: (entry: LogEntry) => void) => () => void;
}

/** The control calls the Docker API makes on a manager; the leader answers them, other managers forward them. */
export interface ControlPlane {
  swarm(): Promise<SwarmView>;
  updateSwarm(version: number, spec: unknown, rotate: { worker: boolean; manager: boolean }): Promise<void>;
  listNodes(filters: NodeFilters): Promise<NodeView[]>;
  getNode(ref: string): Promise<NodeView>;
  updateNode(ref: string, version: number, spec: unknown): Promise<void>;
  removeNode(ref: string, force: boolean): Promise<void>;

  createService(spec: unknown): Promise<{ ID: string; Warnings: string[] | null }>;
  listServices(filters: ObjectFilters, options: { readonly status: boolean }): Promise<ServiceView[]>;
  getService(ref: string, options: { readonly insertDefaults: boolean }): Promise<ServiceView>;
  updateService(ref: string, version: number, spec: unknown, options: { readonly rollback: boolean }): Promise<{ Warnings: string[] | null }>;
  removeService(ref: string): Promise<void>;
  listTasks(filters: ObjectFilters): Promise<TaskRecord[]>;
  getTask(ref: string): Promise<TaskRecord>;
  listNetworks(filters: ObjectFilters): Promise<NetworkRecord[]>;
  getNetwork(ref: string): Promise<NetworkRecord>;
  createNetwork(body: unknown): Promise<{ Id: string; Warning: string }>;
  removeNetwork(ref: string): Promise<void>;
  /** Log lines of a service or task, selected by ID (resolve references with getService/getTask first). */
  logs(selector: LogSelector, options: LogOptions): Promise<LogStream>;
}

export function localControl(manager: Manager): ControlPlane {
  return {
    swarm: async () => manager.swarm(),
    updateSwarm: (version, spec, rotate) => manager.updateSwarm(version, spec, rotate),
    listNodes: async (filters) => manager.listNodes(filters),
    getNode: async (ref) => manager.getNode(ref),
    updateNode: (ref, version, spec) => manager.updateNode(ref, version, spec),
    removeNode: (ref, force) => manager.removeNode(ref, force),
    createService: (spec) => manager.createService(spec),
    listServices: async (filters, options) => manager.listServices(filters, options),
    getService: async (ref, options) => manager.getService(ref, options),
    updateService: (ref, version, spec, options) => manager.updateService(ref, version, spec, options),
    removeService: (ref) => manager.removeService(ref),
    listTasks: async (filters) => manager.listTasks(filters),
    getTask: async (ref) => manager.getTask(ref),
    listNetworks: async (filters) => manager.listNetworks(filters),
    getNetwork: async (ref) => manager.getNetwork(ref),
    createNetwork: (body) => manager.createNetwork(body),
    removeNetwork: (ref) => manager.removeNetwork(ref),
    // Entries and subscription come from one synchronous call: no line falls between them.
    logs: async (selector, options) => manager.logs(selector, options),
  };
}

/**
 * A forwarded control call, checked like any other untrusted input: every argument's type is
 * checked here, bodies (specs) by the Manager's own parsers. Throws InvalidArgumentError.
 */
export async function callControl(control: ControlPlane, method: unknown, args: unknown): Promise<unknown> {
  if (!Array.isArray(args)) throw new InvalidArgumentError('Args must be an array');
  switch (method) {
    case 'swarm':
      return control.swarm();
    case 'updateSwarm': {
      const rotate = asObject(args[2], 'rotate');
      return control.updateSwarm(int(args[0]), args[1], { worker: rotate['worker'] === true, manager: rotate['manager'] === true });
    }
    case 'listNodes':
      return control.listNodes(filtersArg(args[0]));
    case 'getNode':
      return control.getNode(str(args[0]));
    case 'updateNode':
      return control.updateNode(str(args[0]), int(args[1]), args[2]);
    case 'removeNode':
      return control.removeNode(str(args[0]), args[1] === true);
    case 'createService':
      return control.createService(args[0]);
    case 'listServices':
      return control.listServices(filtersArg(args[0]), { status: asObject(args[1] ?? {}, 'options')['status'] === true });
    case 'getService':
      return control.getService(str(args[0]), { insertDefaults: asObject(args[1] ?? {}, 'options')['insertDefaults'] === true });
    case 'updateService':
      return control.updateService(str(args[0]), int(args[1]), args[2], { rollback: asObject(args[3] ?? {}, 'options')['rollback'] === true });
    case 'removeService':
      return control.removeService(str(args[0]));
    case 'listTasks':
      return control.listTasks(filtersArg(args[0]));
    case 'getTask':
      return control.getTask(str(args[0]));
    case 'listNetworks':
      return control.listNetworks(filtersArg(args[0]));
    case 'getNetwork':
      return control.getNetwork(str(args[0]));
    case 'createNetwork':
      return control.createNetwork(args[0]);
    case 'removeNetwork':
      return control.removeNetwork(str(args[0]));
    case 'logs': {
      const stream = await control.logs(logSelectorArg(args[0]), logOptionsArg(args[1]));
      // Only the lines kept travel back: a subscription cannot cross the 2377 channel.
      return { entries: stream.entries };
    }
    default:
      throw new InvalidArgumentError(`unknown control method ${JSON.stringify(method)}`);
  }
}

/** How often a forwarded `logs --follow` asks the leader for new lines. */
export const FORWARDED_FOLLOW_POLL_MS = 1000;
/**
 * A forwarded follow asks for lines from this long before the newest it has seen: agents'
 * clocks differ, and a line stamped a little earlier may reach the leader a little later.
 */
export const FORWARDED_FOLLOW_SLACK_MS = 5000;

export interface ForwardingOptions {
  readonly followPollMs?: number;
}

/**
 * The control plane of a manager that does not hold the store: every call forwarded to the
 * leader. The 2377 channel carries one answer per call, not a stream, so `logs --follow` polls
 * the leader every `followPollMs` for the lines since the newest seen (less a slack for skewed
 * clocks) and passes on those not seen yet. A line stamped more than the slack before the
 * newest one seen when it reaches the leader is missed; the leader's own follow misses none.
 */
export function forwardingControl(forward: (method: string, args: unknown[]) => Promise<unknown>, options: ForwardingOptions = {}): ControlPlane {
  const fetchLogs = async (selector: LogSelector, o: LogOptions): Promise<LogEntry[]> => {
    const answer = asObject(await forward('logs', [selector, o]), 'logs answer');
    return Array.isArray(answer['entries']) ? (answer['entries'] as LogEntry[]) : [];
  };
  const pollMs = options.followPollMs ?? FORWARDED_FOLLOW_POLL_MS;
  return {
    swarm: () => forward('swarm', []) as Promise<SwarmView>,
    updateSwarm: (version, spec, rotate) => forward('updateSwarm', [version, spec, rotate]).then(() => undefined),
    listNodes: (filters) => forward('listNodes', [filters]) as Promise<NodeView[]>,
    getNode: (ref) => forward('getNode', [ref]) as Promise<NodeView>,
    updateNode: (ref, version, spec) => forward('updateNode', [ref, version, spec]).then(() => undefined),
    removeNode: (ref, force) => forward('removeNode', [ref, force]).then(() => undefined),
    createService: (spec) => forward('createService', [spec]) as Promise<{ ID: string; Warnings: string[] | null }>,
    listServices: (filters, options) => forward('listServices', [filters, options]) as Promise<ServiceView[]>,
    getService: (ref, options) => forward('getService', [ref, options]) as Promise<ServiceView>,
    updateService: (ref, version, spec, options) => forward('updateService', [ref, version, spec, options]) as Promise<{ Warnings: string[] | null }>,
    removeService: (ref) => forward('removeService', [ref]).then(() => undefined),
    listTasks: (filters) => forward('listTasks', [filters]) as Promise<TaskRecord[]>,
    getTask: (ref) => forward('getTask', [ref]) as Promise<TaskRecord>,
    listNetworks: (filters) => forward('listNetworks', [filters]) as Promise<NetworkRecord[]>,
    getNetwork: (ref) => forward('getNetwork', [ref]) as Promise<NetworkRecord>,
    createNetwork: (body) => forward('createNetwork', [body]) as Promise<{ Id: string; Warning: string }>,
    removeNetwork: (ref) => forward('removeNetwork', [ref]).then(() => undefined),
    logs: async (selector, o) => {
      const entries = await fetchLogs(selector, o);
      const subscribe = (listener: (entry: LogEntry) => void): (() => void) => {
        const seen = new Map<string, number>();
        let newest = Date.now();
        const note = (e: LogEntry): boolean => {
          const key = `${e.TaskID}\n${e.Stream}\n${e.Timestamp}\n${e.Line}`;
          if (seen.has(key)) return false;
          const ms = Date.parse(e.Timestamp);
          seen.set(key, Number.isNaN(ms) ? newest : ms);
          if (ms > newest) newest = ms;
          return true;
        };
        for (const e of entries) note(e);
        let stopped = false;
        let timer: NodeJS.Timeout | undefined;
        const poll = async (): Promise<void> => {
          try {
            for (const e of await fetchLogs(selector, { sinceMs: newest - FORWARDED_FOLLOW_SLACK_MS })) if (!stopped && note(e)) listener(e);
          } catch {
            // The leader is away for now: the next poll asks again.
          }
          // Forget what is older than any later answer can hold.
          for (const [key, ms] of seen) if (ms < newest - 2 * FORWARDED_FOLLOW_SLACK_MS) seen.delete(key);
          if (!stopped) timer = setTimeout(() => void poll(), pollMs);
        };
        timer = setTimeout(() => void poll(), pollMs);
        return () => {
          stopped = true;
          clearTimeout(timer);
        };
      };
      return { entries, subscribe };
    },
  };
}

export function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw new InvalidArgumentError('expected a string argument');
  return v;
}

function int(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidArgumentError('expected an integer argument');
  return v;
}

/** Filters as parsed by the API (key → strings). Keys are defined, never assigned, so `__proto__` stays a key. */
function filtersArg(v: unknown): Record<string, string[]> {
  const filters = asObject(v ?? {}, 'filters');
  const clean: Record<string, string[]> = {};
  for (const [k, values] of Object.entries(filters)) {
    if (!Array.isArray(values)) throw new InvalidArgumentError(`invalid filter '${k}'`);
    Object.defineProperty(clean, k, { value: values.map(str), enumerable: true, writable: true, configurable: true });
  }
  return clean;
}

function logSelectorArg(v: unknown): LogSelector {
  const o = asObject(v, 'log selector');
  const service = o['service'];
  const task = o['task'];
  if (service !== undefined && typeof service !== 'string') throw new InvalidArgumentError('log selector service must be a string');
  if (task !== undefined && typeof task !== 'string') throw new InvalidArgumentError('log selector task must be a string');
  if ((service === undefined) === (task === undefined)) throw new InvalidArgumentError('log selector must name one service or one task');
  return service !== undefined ? { service } : { task: task as string };
}

function logOptionsArg(v: unknown): LogOptions {
  const o = asObject(v ?? {}, 'log options');
  const tail = o['tail'];
  const sinceMs = o['sinceMs'];
  if (tail !== undefined && (typeof tail !== 'number' || !Number.isSafeInteger(tail) || tail < 0)) throw new InvalidArgumentError('log option tail must be a non-negative integer');
  if (sinceMs !== undefined && (typeof sinceMs !== 'number' || !Number.isFinite(sinceMs))) throw new InvalidArgumentError('log option sinceMs must be a number');
  return { ...(tail !== undefined ? { tail } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) };
}
