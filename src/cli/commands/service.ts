/**
 * `shoal service create|ls|ps|inspect|update|rollback|scale|rm|logs`: docker's verbs, flags that matter,
 * columns and messages, as a client of an agent's Docker API (spec docker-api-swarm.md §5.3–§8),
 * including the convergence wait of `create`, `update` and `scale` (§7): the same three GETs
 * every 200 ms and the same verdicts as docker/cli's service progress.
 *
 * Output goes through a ServiceCliIo so that tests run the commands in process; the process
 * version writes to stdout/stderr, sets the exit status and ends waits on Ctrl-C.
 */
import type { Command } from 'commander';
import { apiRequest, apiStream } from '../api-client.js';
import { API_PREFIX, ApiCallError, capitalise, inspectJson, socketOf, table, withSocket } from './swarm-api.js';

/** Where a command writes, how it waits, and what time it is. */
export interface ServiceCliIo {
  out(text: string): void;
  err(text: string): void;
  /** The command failed: exit status 1. */
  fail(): void;
  /** Waits `ms`; resolves early when the user interrupts. */
  sleep(ms: number): Promise<void>;
  now(): number;
  /** Aborted when the user interrupts (Ctrl-C): ends waits and `logs --follow`. */
  readonly interrupt: AbortSignal;
  /** stdout is a terminal: progress lines are redrawn in place, as docker draws them. */
  readonly tty?: boolean;
}

let processInterrupt: AbortController | undefined;

/** The real terminal: stdout, stderr, process.exitCode, SIGINT. */
export const processIo: ServiceCliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  fail: () => void (process.exitCode = 1),
  sleep: (ms) =>
    new Promise((resolve) => {
      const interrupt = processIo.interrupt;
      // One listener per sleep, removed when the sleep ends: the progress loop sleeps every 200 ms.
      const wake = (): void => {
        clearTimeout(timer);
        interrupt.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      interrupt.addEventListener('abort', wake, { once: true });
    }),
  now: () => Date.now(),
  tty: process.stdout.isTTY === true,
  get interrupt(): AbortSignal {
    if (!processInterrupt) {
      const controller = new AbortController();
      processInterrupt = controller;
      process.once('SIGINT', () => controller.abort());
    }
    return processInterrupt.signal;
  },
};

// --- Shapes read from the API (only the fields used here) ------------------------------------

interface PortAnswer {
  Protocol: string;
  TargetPort: number;
  PublishedPort?: number;
  PublishMode?: string;
}

type Spec = Record<string, unknown> & {
  Name: string;
  Labels?: Record<string, string>;
  TaskTemplate: Record<string, unknown> & {
    ContainerSpec: Record<string, unknown> & { Image: string; Env?: string[]; Args?: string[] };
    Placement?: { Constraints?: string[]; MaxReplicas?: number };
    ForceUpdate?: number;
  };
  Mode: { Replicated?: { Replicas?: number }; Global?: object };
  UpdateConfig?: { Monitor?: number } & Record<string, unknown>;
  EndpointSpec?: { Mode?: string; Ports?: PortAnswer[] };
};

interface ServiceAnswer {
  ID: string;
  Version: { Index: number };
  Spec: Spec;
  Endpoint?: { Ports?: PortAnswer[] };
  UpdateStatus?: { State: string; Message?: string } | null;
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number };
}

interface TaskAnswer {
  ID: string;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  CreatedAt: string;
  DesiredState: string;
  Spec: { ContainerSpec?: { Image?: string } };
  Status: { State: string; Timestamp?: string; Err?: string; PortStatus?: { Ports?: PortAnswer[] } };
}

interface NodeAnswer {
  ID: string;
  Spec: { Name?: string };
  Description: { Hostname: string };
  Status: { State: string };
}

// --- API calls -----------------------------------------------------------------------------

class NotFound extends ApiCallError {}

/** One call; an error answer becomes `Error response from daemon: …` (NotFound for a 404). */
async function api(socket: string, method: string, route: string, body?: unknown): Promise<unknown> {
  const { status, text, json } = await apiRequest(socket, method, `${API_PREFIX}${route}`, body);
  if (status >= 200 && status < 300) return json;
  const message = (json as { message?: unknown } | undefined)?.message;
  const error = `Error response from daemon: ${typeof message === 'string' ? message.trim() : text.trim()}`;
  throw status === 404 ? new NotFound(error) : new ApiCallError(error);
}

const filtersQuery = (filters: Record<string, string[]>): string => {
  const map: Record<string, Record<string, boolean>> = {};
  for (const [k, values] of Object.entries(filters)) for (const v of values) (map[k] ??= {})[v] = true;
  return encodeURIComponent(JSON.stringify(map));
};

// --- Parsing flags -------------------------------------------------------------------------

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration (`1m30s`, `100ms`, `1.5s`, `0`) → integer nanoseconds. Throws ApiCallError. */
export function parseGoDuration(text: string): number {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    at = re.lastIndex;
  }
  if (at === 0 || at !== text.length) throw new ApiCallError(`invalid duration "${text}"`);
  return Math.round(total);
}

function parseCount(text: string, what: string): number {
  if (!/^\d{1,9}$/.test(text)) throw new ApiCallError(`invalid ${what} "${text}": expected a non-negative integer`);
  return Number(text);
}

/**
 * `-p` in docker's short form `[published:]target[/protocol]` or long form
 * `published=8080,target=80,protocol=udp,mode=host`. Throws ApiCallError.
 */
export function parsePublish(text: string): PortAnswer {
  const port = (v: string | undefined, what: string): number => {
    if (v === undefined || !/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new ApiCallError(`invalid ${what} port in "${text}"`);
    return Number(v);
  };
  if (text.includes('=')) {
    const fields: Record<string, string> = {};
    for (const part of text.split(',')) {
      const eq = part.indexOf('=');
      if (eq < 1) throw new ApiCallError(`invalid field "${part}" in "${text}": expected key=value`);
      Object.defineProperty(fields, part.slice(0, eq), { value: part.slice(eq + 1), enumerable: true });
    }
    for (const k of Object.keys(fields)) if (!['published', 'target', 'protocol', 'mode'].includes(k)) throw new ApiCallError(`invalid field key "${k}" in "${text}"`);
    return {
      Protocol: fields['protocol'] ?? 'tcp',
      TargetPort: port(fields['target'], 'target'),
      PublishedPort: fields['published'] === undefined ? 0 : port(fields['published'], 'published'),
      PublishMode: fields['mode'] ?? 'ingress',
    };
  }
  const m = /^(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(text);
  if (!m) throw new ApiCallError(`invalid publish "${text}": expected [published:]target[/tcp|udp]`);
  return { Protocol: m[3] ?? 'tcp', TargetPort: port(m[2], 'target'), PublishedPort: m[1] === undefined ? 0 : port(m[1], 'published'), PublishMode: 'ingress' };
}

function keyOf(pair: string): string {
  const eq = pair.indexOf('=');
  return eq < 0 ? pair : pair.slice(0, eq);
}

function labelsOf(pairs: readonly string[], into: Record<string, string> = {}): Record<string, string> {
  const labels = { ...into };
  for (const l of pairs) Object.defineProperty(labels, keyOf(l), { value: l.includes('=') ? l.slice(l.indexOf('=') + 1) : '', enumerable: true, writable: true, configurable: true });
  return labels;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface SpecFlags {
  replicas?: string;
  env: string[];
  label: string[];
  constraint: string[];
  publish: string[];
  replicasMaxPerNode?: string;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateMonitor?: string;
  updateFailureAction?: string;
  updateOrder?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  noHealthcheck?: boolean;
  endpointMode?: string;
  detach?: boolean;
  quiet?: boolean;
  apiSocket?: string;
}

/** Flags create and update share, with docker's names. */
function withSpecFlags(cmd: Command, update: boolean): Command {
  const add = update ? '-add' : '';
  return withSocket(cmd)
    .option('--replicas <n>', 'number of tasks')
    .option(`${update ? '' : '-e, '}--env${add} <K=V>`, 'set an environment variable (repeatable)', collect, [])
    .option(`--label${add} <key=value>`, 'service label (repeatable)', collect, [])
    .option(`--constraint${add} <expr>`, 'placement constraint, e.g. node.role==manager (repeatable)', collect, [])
    .option(`${update ? '' : '-p, '}--publish${add} <[published:]target[/proto]>`, 'publish a port through the routing mesh (repeatable)', collect, [])
    .option('--replicas-max-per-node <n>', 'most tasks per node (0 = unlimited)')
    .option('--restart-condition <none|on-failure|any>', 'restart when')
    .option('--restart-delay <duration>', 'delay between restarts (ns|us|ms|s|m|h)')
    .option('--restart-max-attempts <n>', 'restarts before giving up (0 = unlimited)')
    .option('--update-parallelism <n>', 'tasks updated at once (0 = all)')
    .option('--update-delay <duration>', 'delay between updates')
    .option('--update-monitor <duration>', 'how long to watch each updated task for failure')
    .option('--update-failure-action <pause|continue|rollback>', 'on update failure')
    .option('--update-order <stop-first|start-first>', 'update order')
    .option('--health-cmd <command>', 'command to run to check health')
    .option('--health-interval <duration>', 'time between health checks')
    .option('--health-timeout <duration>', 'longest a check may run')
    .option('--health-retries <n>', 'failures in a row to be unhealthy')
    .option('--health-start-period <duration>', 'grace before failures count')
    .option('--no-healthcheck', 'disable the image health check')
    .option('--endpoint-mode <vip|dnsrr>', 'endpoint mode')
    .option('-d, --detach', 'exit at once instead of waiting for the service to converge')
    .option('-q, --quiet', 'suppress progress output');
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Applies the flags create and update share to a spec (in place), as docker/cli does. */
function applySpecFlags(spec: Spec, o: SpecFlags, update: boolean): void {
  const t = spec.TaskTemplate;
  const c = t.ContainerSpec;
  if (o.replicas !== undefined) {
    if (!spec.Mode.Replicated) throw new ApiCallError('replicas can only be used with replicated or replicated-job mode');
    spec.Mode = { Replicated: { Replicas: parseCount(o.replicas, 'replicas') } };
  }
  if (o.env.length > 0) {
    const keys = new Set(o.env.map(keyOf));
    c.Env = [...(c.Env ?? []).filter((e) => !keys.has(keyOf(e))), ...o.env];
  }
  if (o.label.length > 0) spec.Labels = labelsOf(o.label, spec.Labels ?? {});
  const placement: Mutable<NonNullable<Spec['TaskTemplate']['Placement']>> = { ...t.Placement };
  if (o.constraint.length > 0) placement.Constraints = [...(placement.Constraints ?? []).filter((x) => !o.constraint.includes(x)), ...o.constraint];
  if (o.replicasMaxPerNode !== undefined) placement.MaxReplicas = parseCount(o.replicasMaxPerNode, 'replicas-max-per-node');
  if (placement.Constraints !== undefined || placement.MaxReplicas !== undefined || t.Placement) t.Placement = placement;
  if (o.publish.length > 0) {
    const ports = o.publish.map(parsePublish);
    const kept = (spec.EndpointSpec?.Ports ?? []).filter((p) => !ports.some((n) => n.TargetPort === p.TargetPort && n.Protocol === p.Protocol));
    spec.EndpointSpec = { ...spec.EndpointSpec, Ports: [...kept, ...ports] };
  }
  if (o.endpointMode !== undefined) spec.EndpointSpec = { ...spec.EndpointSpec, Mode: o.endpointMode };
  if (o.restartCondition !== undefined || o.restartDelay !== undefined || o.restartMaxAttempts !== undefined) {
    const before = (t['RestartPolicy'] as Record<string, unknown> | undefined) ?? (update ? {} : { Condition: 'any', Delay: 5e9, MaxAttempts: 0 });
    t['RestartPolicy'] = {
      ...before,
      ...(o.restartCondition !== undefined ? { Condition: o.restartCondition } : {}),
      ...(o.restartDelay !== undefined ? { Delay: parseGoDuration(o.restartDelay) } : {}),
      ...(o.restartMaxAttempts !== undefined ? { MaxAttempts: parseCount(o.restartMaxAttempts, 'restart-max-attempts') } : {}),
    };
  }
  const updateFlags = [o.updateParallelism, o.updateDelay, o.updateMonitor, o.updateFailureAction, o.updateOrder];
  if (updateFlags.some((f) => f !== undefined)) {
    // docker sends a complete UpdateConfig as soon as one --update-* flag is given (§5.3).
    const before = spec.UpdateConfig ?? { Parallelism: 1, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' };
    spec.UpdateConfig = {
      ...before,
      ...(o.updateParallelism !== undefined ? { Parallelism: parseCount(o.updateParallelism, 'update-parallelism') } : {}),
      ...(o.updateDelay !== undefined ? { Delay: parseGoDuration(o.updateDelay) } : {}),
      ...(o.updateMonitor !== undefined ? { Monitor: parseGoDuration(o.updateMonitor) } : {}),
      ...(o.updateFailureAction !== undefined ? { FailureAction: o.updateFailureAction } : {}),
      ...(o.updateOrder !== undefined ? { Order: o.updateOrder } : {}),
    };
  }
  // commander turns --no-healthcheck into healthcheck: false.
  const noHealth = (o as { healthcheck?: boolean }).healthcheck === false;
  const health = [o.healthCmd, o.healthInterval, o.healthTimeout, o.healthRetries, o.healthStartPeriod];
  if (noHealth && health.some((h) => h !== undefined)) throw new ApiCallError('--no-healthcheck conflicts with --health-* options');
  if (noHealth) c['Healthcheck'] = { Test: ['NONE'] };
  else if (health.some((h) => h !== undefined)) {
    c['Healthcheck'] = {
      ...(c['Healthcheck'] as object | undefined),
      ...(o.healthCmd !== undefined ? { Test: ['CMD-SHELL', o.healthCmd] } : {}),
      ...(o.healthInterval !== undefined ? { Interval: parseGoDuration(o.healthInterval) } : {}),
      ...(o.healthTimeout !== undefined ? { Timeout: parseGoDuration(o.healthTimeout) } : {}),
      ...(o.healthRetries !== undefined ? { Retries: parseCount(o.healthRetries, 'health-retries') } : {}),
      ...(o.healthStartPeriod !== undefined ? { StartPeriod: parseGoDuration(o.healthStartPeriod) } : {}),
    };
  }
}

// --- Table cells ---------------------------------------------------------------------------

const shortId = (id: string): string => id.slice(0, 12);

/** The IMAGE column: the digest dropped, the tag kept. */
function imageCell(image: string | undefined, noTrunc = false): string {
  if (!image) return '';
  return noTrunc ? image : image.split('@')[0]!;
}

/** `*:8080->80/tcp`; consecutive ports grouped into ranges, sorted by protocol then published port. */
export function portsCell(ports: readonly PortAnswer[] | undefined, mode: 'ingress' | 'host'): string {
  const list = (ports ?? []).filter((p) => (p.PublishMode ?? 'ingress') === mode).sort((a, b) => a.Protocol.localeCompare(b.Protocol) || (a.PublishedPort ?? 0) - (b.PublishedPort ?? 0));
  const out: string[] = [];
  for (let i = 0; i < list.length; ) {
    const first = list[i]!;
    let j = i;
    while (
      j + 1 < list.length &&
      list[j + 1]!.Protocol === first.Protocol &&
      list[j + 1]!.PublishedPort === (list[j]!.PublishedPort ?? 0) + 1 &&
      list[j + 1]!.TargetPort === list[j]!.TargetPort + 1
    )
      j++;
    const last = list[j]!;
    out.push(j === i ? `*:${first.PublishedPort}->${first.TargetPort}/${first.Protocol}` : `*:${first.PublishedPort}-${last.PublishedPort}->${first.TargetPort}-${last.TargetPort}/${first.Protocol}`);
    i = j + 1;
  }
  return out.join(', ');
}

/** go-units HumanDuration, which `service ps` uses for CURRENT STATE. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

const nodeName = (n: NodeAnswer): string => n.Spec.Name || n.Description.Hostname;

// --- Convergence progress (§7; docker/cli cli/command/service/progress) ----------------------

/** Task states the progress knows, numbered as docker/cli numbers them. */
const NUMBERED_STATES: Readonly<Record<string, number>> = {
  new: 1, allocated: 2, pending: 3, assigned: 4, accepted: 5, preparing: 6, ready: 7, starting: 8, running: 9,
  complete: 10, shutdown: 11, failed: 12, rejected: 13,
};
const RUNNING = 9;
const LONGEST_STATE = 9;
const MAX_PROGRESS = 9;
const MAX_PROGRESS_BARS = 20;
export const PROGRESS_POLL_MS = 200;
const DEFAULT_MONITOR_MS = 5000;

/** Docker's progress bar at terminal width: 50 cells, `=` up to the share done, then `>`. */
export function progressBar(current: number, total = MAX_PROGRESS): string {
  const done = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  return `[${'='.repeat(done)}>${' '.repeat(Math.max(0, 50 - done))}]`;
}

function stateProgress(state: string, rollback: boolean): number {
  const n = NUMBERED_STATES[state] ?? 0;
  return rollback ? Object.keys(NUMBERED_STATES).length - n : n;
}

/** One progress event: a line `<id>: <text>`; only changes of a line are printed. */
type Emit = (id: string, text: string) => void;

function slotLine(task: TaskAnswer, rollback: boolean): string {
  const text = `${task.Status.State.padEnd(LONGEST_STATE)} ${progressBar(stateProgress(task.Status.State, rollback))}`;
  return task.Status.Err ? `${text} ${task.Status.Err}` : text;
}

function overall(emit: Emit, running: number, total: number, rollback: boolean): void {
  emit('overall progress', rollback ? `rolling back update: ${running} out of ${total} tasks` : `${running} out of ${total} tasks`);
}

/** Keeps one task per key: the lowest desired state, ties to the lowest observed state. */
function pickPerKey(tasks: readonly TaskAnswer[], key: (t: TaskAnswer) => string, active: ReadonlySet<string>): Map<string, TaskAnswer> {
  const out = new Map<string, TaskAnswer>();
  for (const task of tasks) {
    const desired = NUMBERED_STATES[task.DesiredState];
    const observed = NUMBERED_STATES[task.Status.State];
    if (desired === undefined || observed === undefined) continue;
    if (task.NodeID && !active.has(task.NodeID)) continue;
    const k = key(task);
    const existing = out.get(k);
    if (existing) {
      const ed = NUMBERED_STATES[existing.DesiredState]!;
      if (ed < desired || (ed === desired && NUMBERED_STATES[existing.Status.State]! <= observed)) continue;
    }
    out.set(k, task);
  }
  return out;
}

/** docker/cli's replicatedProgressUpdater and globalProgressUpdater, as one stateful object. */
export class ProgressUpdater {
  #initialized = false;
  #done = false;
  readonly #slotMap = new Map<string, number>();

  constructor(readonly mode: 'replicated' | 'global') {}

  /** Emits this poll's progress; true when every task is running. */
  update(service: ServiceAnswer, tasks: readonly TaskAnswer[], active: ReadonlySet<string>, rollback: boolean, emit: Emit): boolean {
    return this.mode === 'replicated' ? this.#replicated(service, tasks, active, rollback, emit) : this.#global(tasks, active, rollback, emit);
  }

  #replicated(service: ServiceAnswer, tasks: readonly TaskAnswer[], active: ReadonlySet<string>, rollback: boolean, emit: Emit): boolean {
    const replicas = service.Spec.Mode.Replicated?.Replicas;
    if (replicas === undefined) throw new ApiCallError('no replica count');
    if (!this.#initialized) {
      overall(emit, 0, replicas, rollback);
      if (replicas <= MAX_PROGRESS_BARS) for (let i = 1; i <= replicas; i++) emit(`${i}/${replicas}`, '');
      this.#initialized = true;
    }
    const bySlot = pickPerKey(tasks, (t) => String(t.Slot ?? 0), active);
    if (this.#done && [...bySlot.values()].some((t) => t.Status.State !== 'running')) this.#done = false;
    let running = 0;
    for (const [slot, task] of bySlot) {
      let mapped = this.#slotMap.get(slot);
      if (mapped === undefined) {
        mapped = this.#slotMap.size + 1;
        this.#slotMap.set(slot, mapped);
      }
      if (!this.#done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas) emit(`${mapped}/${replicas}`, slotLine(task, rollback));
      if (task.Status.State === 'running' && NUMBERED_STATES[task.DesiredState]! <= RUNNING) running++;
    }
    if (!this.#done) {
      overall(emit, running, replicas, rollback);
      if (running === replicas) this.#done = true;
    }
    return running === replicas;
  }

  #global(tasks: readonly TaskAnswer[], active: ReadonlySet<string>, rollback: boolean, emit: Emit): boolean {
    const byNode = pickPerKey(tasks, (t) => t.NodeID ?? '', active);
    const nodeCount = byNode.size;
    if (!this.#initialized) {
      if (nodeCount === 0) {
        emit('overall progress', 'waiting for new tasks');
        return false;
      }
      overall(emit, 0, nodeCount, rollback);
      this.#initialized = true;
    }
    if (this.#done && [...byNode.values()].some((t) => t.Status.State !== 'running')) this.#done = false;
    let running = 0;
    for (const [node, task] of byNode) {
      if (!active.has(node)) continue;
      if (!this.#done && nodeCount <= MAX_PROGRESS_BARS) emit(shortId(node), slotLine(task, rollback));
      if (task.Status.State === 'running' && NUMBERED_STATES[task.DesiredState]! <= RUNNING) running++;
    }
    if (!this.#done) {
      overall(emit, running, nodeCount, rollback);
      if (running === nodeCount) this.#done = true;
    }
    return running === nodeCount;
  }
}

/**
 * Waits until `ref` has converged, printing docker's progress (§7): polls the service, its
 * up-to-date tasks and the nodes every 200 ms; converged for Monitor (default 5 s) → `verify:
 * Service <ref> converged`. On a terminal each line is redrawn in place, as docker does;
 * otherwise a line is printed each time it changes. Throws ApiCallError on a paused update
 * or a failed call; returns early, successfully, on Ctrl-C.
 */
export async function waitOnService(socket: string, ref: string, io: ServiceCliIo, quiet: boolean): Promise<void> {
  const last = new Map<string, string>();
  /** Lines in the order they were first drawn (a terminal redraws each in place). */
  const drawn: string[] = [];
  const emit: Emit = (id, text) => {
    if (last.get(id) === text || quiet) return;
    last.set(id, text);
    const line = `${id}: ${text}`.trimEnd();
    const index = drawn.indexOf(id);
    if (io.tty && index >= 0) {
      // docker's jsonmessage: up to the line, clear it, write, and back down.
      const up = drawn.length - index;
      io.out(`\x1b[${up}A\r\x1b[2K${line}\r\x1b[${up}B`);
      return;
    }
    if (index < 0) drawn.push(id);
    io.out(`${line}\n`);
  };
  let updater: ProgressUpdater | undefined;
  let converged = false;
  let convergedAt: number | undefined;
  let rollback = false;
  let rollbackMessage: string | undefined;
  for (;;) {
    const service = (await api(socket, 'GET', `/services/${encodeURIComponent(ref)}?insertDefaults=false`)) as ServiceAnswer;
    const monitorMs = service.Spec.UpdateConfig?.Monitor ? service.Spec.UpdateConfig.Monitor / 1e6 : DEFAULT_MONITOR_MS;
    if (!updater) {
      if (service.Spec.Mode.Replicated?.Replicas !== undefined) updater = new ProgressUpdater('replicated');
      else if (service.Spec.Mode.Global) updater = new ProgressUpdater('global');
      else throw new ApiCallError('unrecognized service mode');
    }
    const status = service.UpdateStatus;
    if (status) {
      switch (status.State) {
        case 'updating':
          rollback = false;
          break;
        case 'completed':
          if (!converged) return;
          break;
        case 'paused':
          throw new ApiCallError(`service update paused: ${status.Message ?? ''}`);
        case 'rollback_started':
          if (!rollback && status.Message) emit('rollback', status.Message);
          rollback = true;
          break;
        case 'rollback_paused':
          throw new ApiCallError(`service rollback paused: ${status.Message ?? ''}`);
        case 'rollback_completed':
          if (!converged && status.Message) rollbackMessage = status.Message;
          break;
      }
    }
    if (converged && convergedAt !== undefined && io.now() - convergedAt >= monitorMs) {
      emit('verify', `Service ${ref} converged`);
      if (rollbackMessage) emit('rollback', rollbackMessage);
      return;
    }
    const tasks = (await api(socket, 'GET', `/tasks?filters=${filtersQuery({ '_up-to-date': ['true'], service: [service.ID] })}`)) as TaskAnswer[];
    const nodes = (await api(socket, 'GET', '/nodes')) as NodeAnswer[];
    const active = new Set(nodes.filter((n) => n.Status.State !== 'down').map((n) => n.ID));
    converged = updater.update(service, tasks, active, rollback, emit);
    if (converged) {
      convergedAt ??= io.now();
      const wait = monitorMs - (io.now() - convergedAt);
      // Go computes wait/time.Second+1 a few nanoseconds after convergedAt: 5 s shows as 5, not 6.
      if (wait >= 0) emit('verify', `Waiting ${Math.max(1, Math.ceil(wait / 1000))} seconds to verify that tasks are stable...`);
    } else {
      if (convergedAt !== undefined) emit('verify', 'Detected task failure');
      convergedAt = undefined;
    }
    await io.sleep(PROGRESS_POLL_MS);
    if (io.interrupt.aborted) {
      if (!converged) {
        io.out('Operation continuing in background.\n');
        io.out(`Use \`shoal service ps ${ref}\` to check progress.\n`);
      }
      return;
    }
  }
}

// --- Logs (§8) -----------------------------------------------------------------------------

/** Splits Docker's multiplexed stream into frames, across chunk boundaries. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 8) {
      const size = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + size) break;
      this.onFrame(this.#pending[0]!, this.#pending.subarray(8, 8 + size));
      this.#pending = this.#pending.subarray(8 + size);
    }
  }
}

interface LogsOptions {
  follow?: boolean;
  timestamps?: boolean;
  tail?: string;
  since?: string;
  raw?: boolean;
  apiSocket?: string;
}

/** `service logs`: docker's requests and line format `<svc>.<slot>.<task>@<node>    | <line>`. */
async function serviceLogs(socket: string, ref: string, o: LogsOptions, io: ServiceCliIo): Promise<void> {
  let route: string;
  let padding = 1;
  try {
    const service = (await api(socket, 'GET', `/services/${encodeURIComponent(ref)}?insertDefaults=false`)) as ServiceAnswer;
    route = `/services/${encodeURIComponent(ref)}/logs`;
    padding = String(service.Spec.Mode.Replicated?.Replicas ?? 1).length;
  } catch (error) {
    if (!(error instanceof NotFound)) throw error;
    try {
      await api(socket, 'GET', `/tasks/${encodeURIComponent(ref)}`);
    } catch (inner) {
      if (inner instanceof NotFound) throw new ApiCallError(`no such task or service: ${ref}`);
      throw inner;
    }
    route = `/tasks/${encodeURIComponent(ref)}/logs`;
  }
  const q = new URLSearchParams({ stdout: '1', stderr: '1', tail: o.tail ?? 'all' });
  if (!o.raw) q.set('details', '1');
  if (o.timestamps) q.set('timestamps', '1');
  if (o.follow) q.set('follow', '1');
  if (o.since) q.set('since', sinceParam(o.since, io.now()));

  const names = new Map<string, Promise<string>>();
  const prefixOf = (details: string): Promise<string> => {
    let name = names.get(details);
    if (!name) {
      name = (async () => {
        const attrs = new Map(details.split(',').map((kv) => [decodeURIComponent(keyOf(kv).replace(/\+/g, ' ')), decodeURIComponent(kv.slice(kv.indexOf('=') + 1).replace(/\+/g, ' '))]));
        const nodeId = attrs.get('com.docker.swarm.node.id');
        const serviceId = attrs.get('com.docker.swarm.service.id');
        const taskId = attrs.get('com.docker.swarm.task.id');
        if (!nodeId) throw new ApiCallError(`missing node id in details: ${details}`);
        if (!serviceId) throw new ApiCallError(`missing service id in details: ${details}`);
        if (!taskId) throw new ApiCallError(`missing task id in details: ${details}`);
        const node = await api(socket, 'GET', `/nodes/${nodeId}`).then((n) => nodeName(n as NodeAnswer), () => nodeId);
        const service = (await api(socket, 'GET', `/services/${serviceId}`)) as ServiceAnswer;
        const task = (await api(socket, 'GET', `/tasks/${taskId}`)) as TaskAnswer;
        const slot = task.Slot ?? 0;
        return `${service.Spec.Name}.${slot}.${shortId(task.ID)}@${node}${' '.repeat(Math.max(0, padding - String(slot).length))}`;
      })();
      names.set(details, name);
    }
    return name;
  };

  // Frames are printed in order: each waits for the one before (names resolve asynchronously).
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown;
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  io.interrupt.addEventListener('abort', onInterrupt, { once: true });
  const reader = new FrameReader((stream, payload) => {
    const text = payload.toString('utf8');
    chain = chain.then(async () => {
      if (failure) return;
      if (stream === 3) throw new ApiCallError(text.trim());
      const write = stream === 2 ? io.err : io.out;
      if (o.raw) {
        write(text);
        return;
      }
      const line = text.endsWith('\n') ? text.slice(0, -1) : text;
      const parts = splitN(line, ' ', o.timestamps ? 3 : 2);
      if (parts.length !== (o.timestamps ? 3 : 2)) throw new ApiCallError(`invalid context in log message: ${line}`);
      const details = parts[o.timestamps ? 1 : 0]!;
      const prefix = await prefixOf(details);
      write(`${o.timestamps ? `${parts[0]} ` : ''}${prefix}    | ${parts.at(-1)}\n`);
    }).catch((error: unknown) => {
      failure ??= error;
      controller.abort();
    });
  });
  try {
    const answer = await apiStream(socket, `${API_PREFIX}${route}?${q.toString()}`, (c) => reader.push(c), controller.signal);
    if (answer.status < 200 || answer.status >= 300) {
      let message = answer.text.trim();
      try {
        const m = (JSON.parse(answer.text) as { message?: unknown }).message;
        if (typeof m === 'string') message = m.trim();
      } catch {
        // not JSON: the raw text, as docker prints it
      }
      throw new ApiCallError(`Error response from daemon: ${message}`);
    }
    await chain;
    if (failure) throw failure;
  } finally {
    io.interrupt.removeEventListener('abort', onInterrupt);
  }
}

/** Go's bytes.SplitN. */
function splitN(s: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf(sep);
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + sep.length);
  }
  out.push(rest);
  return out;
}

/** `--since`: a Unix timestamp, an RFC 3339 time, or a Go duration before now → Unix seconds. */
function sinceParam(text: string, nowMs: number): string {
  if (/^\d+(\.\d+)?$/.test(text)) return text;
  const time = Date.parse(text);
  if (!Number.isNaN(time)) return (time / 1000).toFixed(9);
  return ((nowMs - parseGoDuration(text) / 1e6) / 1000).toFixed(9);
}

// --- The commands ----------------------------------------------------------------------------

/** `-f key=value` flags → API filters. Throws ApiCallError for a flag without `=`. */
function parseFilterFlags(flags: readonly string[]): Record<string, string[]> {
  const filters: Record<string, string[]> = {};
  for (const f of flags) {
    const eq = f.indexOf('=');
    if (eq < 1) throw new ApiCallError(`bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    if (!Object.hasOwn(filters, key)) Object.defineProperty(filters, key, { value: [], enumerable: true });
    filters[key]!.push(f.slice(eq + 1));
  }
  return filters;
}

/** Runs a verb, printing a failure as docker does (message on stderr, exit status 1). */
function run<A extends unknown[]>(io: ServiceCliIo, fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      io.err(`${error instanceof Error ? error.message : String(error)}\n`);
      io.fail();
    }
  };
}

async function getService(socket: string, ref: string): Promise<ServiceAnswer> {
  return (await api(socket, 'GET', `/services/${encodeURIComponent(ref)}?insertDefaults=false`)) as ServiceAnswer;
}

export function registerServiceCommands(program: Command, io: ServiceCliIo = processIo): void {
  // Words after the image are the task's arguments, flags included (docker stops parsing there).
  program.enablePositionalOptions();
  const service = program.command('service').description('manage swarm services (as docker service)').enablePositionalOptions();

  withSpecFlags(service.command('create').description('create a service'), false)
    .argument('<image>', 'shoal/whoami, shoal/ping or an absolute path to an executable')
    .argument('[args...]', 'arguments of the task')
    .option('--name <name>', 'service name')
    .option('--mode <replicated|global>', 'service mode', 'replicated')
    .passThroughOptions()
    .action(
      run(io, async (image: string, args: string[], o: SpecFlags & { name?: string; mode: string }) => {
        const socket = socketOf(o);
        if (o.mode !== 'replicated' && o.mode !== 'global') throw new ApiCallError(`invalid mode "${o.mode}": use replicated or global`);
        if (o.mode === 'global' && o.replicas !== undefined) throw new ApiCallError('replicas can only be used with replicated or replicated-job mode');
        const spec: Spec = {
          Name: o.name ?? '',
          Labels: {},
          TaskTemplate: { ContainerSpec: { Image: image, ...(args.length > 0 ? { Args: args } : {}), Init: false, DNSConfig: {} }, ForceUpdate: 0 },
          Mode: o.mode === 'global' ? { Global: {} } : { Replicated: {} },
          EndpointSpec: { Mode: 'vip' },
        };
        applySpecFlags(spec, o, false);
        const created = (await api(socket, 'POST', '/services/create', spec)) as { ID: string; Warnings: string[] | null };
        for (const w of created.Warnings ?? []) io.err(`${w}\n`);
        io.out(`${created.ID}\n`);
        if (!o.detach) await waitOnService(socket, created.ID, io, o.quiet === true);
      }),
    );

  withSocket(service.command('ls').alias('list').description('list services'))
    .option('-q, --quiet', 'only print IDs')
    .option('-f, --filter <key=value>', 'filter (id, label, mode, name)', collect, [])
    .action(
      run(io, async (o: { apiSocket?: string; quiet?: boolean; filter: string[] }) => {
        const socket = socketOf(o);
        const filters = parseFilterFlags(o.filter);
        const query = [...(Object.keys(filters).length > 0 ? [`filters=${filtersQuery(filters)}`] : []), ...(o.quiet ? [] : ['status=true'])].join('&');
        const services = (await api(socket, 'GET', `/services${query ? `?${query}` : ''}`)) as ServiceAnswer[];
        services.sort((a, b) => naturalCompare(a.Spec.Name, b.Spec.Name));
        if (o.quiet) {
          io.out(services.map((s) => `${s.ID}\n`).join(''));
          return;
        }
        const rows = services.map((s) => {
          const max = s.Spec.TaskTemplate.Placement?.MaxReplicas;
          const counts = s.ServiceStatus ? `${s.ServiceStatus.RunningTasks}/${s.ServiceStatus.DesiredTasks}` : '';
          return [
            shortId(s.ID),
            s.Spec.Name,
            s.Spec.Mode.Global ? 'global' : 'replicated',
            max ? `${counts} (max ${max} per node)` : counts,
            imageCell(s.Spec.TaskTemplate.ContainerSpec.Image),
            portsCell(s.Endpoint?.Ports, 'ingress'),
          ];
        });
        io.out(table(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], rows));
      }),
    );

  withSocket(service.command('ps').description('list the tasks of services'))
    .argument('<service...>', 'service names or IDs')
    .option('-q, --quiet', 'only print task IDs')
    .option('--no-trunc', 'do not truncate IDs, images and errors')
    .option('-f, --filter <key=value>', 'filter (desired-state, id, name, node)', collect, [])
    .action(
      run(io, async (refs: string[], o: { apiSocket?: string; quiet?: boolean; trunc: boolean; filter: string[] }) => {
        const socket = socketOf(o);
        const services = new Map<string, ServiceAnswer>();
        for (const ref of refs) {
          try {
            const s = await getService(socket, ref);
            services.set(s.ID, s);
          } catch (error) {
            if (error instanceof NotFound) throw new ApiCallError(`no such service: ${ref}`);
            throw error;
          }
        }
        const filters = parseFilterFlags(o.filter);
        const tasks = (await api(socket, 'GET', `/tasks?filters=${filtersQuery({ ...filters, service: [...services.keys()] })}`)) as TaskAnswer[];
        if (o.quiet) {
          io.out(tasks.map((t) => `${t.ID}\n`).join(''));
          return;
        }
        const nodes = new Map<string, string>();
        for (const id of new Set(tasks.map((t) => t.NodeID).filter((n): n is string => !!n))) {
          nodes.set(id, await api(socket, 'GET', `/nodes/${id}`).then((n) => nodeName(n as NodeAnswer), () => id));
        }
        const named = tasks.map((t) => ({ task: t, name: `${services.get(t.ServiceID)?.Spec.Name ?? t.ServiceID}.${t.Slot ? t.Slot : (t.NodeID ?? '')}` }));
        named.sort((a, b) => (a.name === b.name ? b.task.CreatedAt.localeCompare(a.task.CreatedAt) : naturalCompare(a.name, b.name)));
        const now = io.now();
        const rows = named.map(({ task: t, name }, i) => {
          const ts = t.Status.Timestamp ? Date.parse(t.Status.Timestamp) : NaN;
          const err = t.Status.Err ?? '';
          return [
            o.trunc ? shortId(t.ID) : t.ID,
            i > 0 && named[i - 1]!.name === name ? ` \\_ ${name}` : name,
            imageCell(t.Spec.ContainerSpec?.Image, !o.trunc),
            t.NodeID ? (nodes.get(t.NodeID) ?? t.NodeID) : '',
            capitalise(t.DesiredState),
            Number.isNaN(ts) ? capitalise(t.Status.State) : `${capitalise(t.Status.State)} ${humanDuration(Math.max(0, now - ts))} ago`,
            err === '' ? '' : JSON.stringify(o.trunc && err.length > 30 ? `${err.slice(0, 29)}…` : err),
            portsCell(t.Status.PortStatus?.Ports, 'host'),
          ];
        });
        io.out(table(['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS'], rows));
      }),
    );

  withSocket(service.command('inspect').description('show services (JSON)'))
    .argument('<service...>', 'service names or IDs')
    .action(
      run(io, async (refs: string[], o: { apiSocket?: string }) => {
        const socket = socketOf(o);
        const found: unknown[] = [];
        for (const ref of refs) {
          try {
            found.push(await api(socket, 'GET', `/services/${encodeURIComponent(ref)}?insertDefaults=true`));
          } catch (error) {
            if (!(error instanceof NotFound)) throw error;
            io.out(inspectJson(found));
            throw new ApiCallError(`Error: no such service: ${ref}`);
          }
        }
        io.out(inspectJson(found));
      }),
    );

  withSpecFlags(service.command('update').description("change a service's spec"), true)
    .argument('<service>', 'service name or ID')
    .option('--image <image>', 'new image')
    .option('--args <words>', 'new task arguments (space-separated)')
    .option('--env-rm <key>', 'remove an environment variable (repeatable)', collect, [])
    .option('--label-rm <key>', 'remove a label (repeatable)', collect, [])
    .option('--constraint-rm <expr>', 'remove a constraint (repeatable)', collect, [])
    .option('--publish-rm <target[/proto]>', 'stop publishing a target port (repeatable)', collect, [])
    .option('--force', 'replace every task even if nothing changed')
    .option('--rollback', 'go back to the previous spec')
    .action(
      run(
        io,
        async (
          ref: string,
          o: SpecFlags & { envAdd: string[]; labelAdd: string[]; constraintAdd: string[]; publishAdd: string[]; image?: string; args?: string; envRm: string[]; labelRm: string[]; constraintRm: string[]; publishRm: string[]; force?: boolean; rollback?: boolean },
        ) => {
          const socket = socketOf(o);
          const current = await getService(socket, ref);
          const spec = structuredClone(current.Spec);
          const t = spec.TaskTemplate;
          const c = t.ContainerSpec;
          if (o.image !== undefined) c.Image = o.image;
          if (o.args !== undefined) c.Args = o.args.split(/\s+/).filter((w) => w !== '');
          if (o.envRm.length > 0) c.Env = (c.Env ?? []).filter((e) => !o.envRm.includes(keyOf(e)));
          if (o.labelRm.length > 0 && spec.Labels) spec.Labels = Object.fromEntries(Object.entries(spec.Labels).filter(([k]) => !o.labelRm.includes(k)));
          if (o.constraintRm.length > 0 && t.Placement?.Constraints) t.Placement = { ...t.Placement, Constraints: t.Placement.Constraints.filter((x) => !o.constraintRm.includes(x)) };
          if (o.publishRm.length > 0 && spec.EndpointSpec?.Ports) {
            const gone = o.publishRm.map((p) => parsePublish(p));
            spec.EndpointSpec = { ...spec.EndpointSpec, Ports: spec.EndpointSpec.Ports.filter((p) => !gone.some((g) => g.TargetPort === p.TargetPort && g.Protocol === p.Protocol)) };
          }
          applySpecFlags(spec, { ...o, env: o.envAdd, label: o.labelAdd, constraint: o.constraintAdd, publish: o.publishAdd }, true);
          if (o.force) t.ForceUpdate = (t.ForceUpdate ?? 0) + 1;
          const query = `version=${current.Version.Index}${o.rollback ? '&rollback=previous' : ''}`;
          const answer = (await api(socket, 'POST', `/services/${current.ID}/update?${query}`, spec)) as { Warnings: string[] | null };
          for (const w of answer.Warnings ?? []) io.err(`${w}\n`);
          io.out(`${ref}\n`);
          if (!o.detach) await waitOnService(socket, ref, io, o.quiet === true);
        },
      ),
    );

  withSocket(service.command('rollback').description("go back to a service's previous spec"))
    .argument('<service>', 'service name or ID')
    .option('-d, --detach', 'exit at once instead of waiting for the service to converge')
    .option('-q, --quiet', 'suppress progress output')
    .action(
      run(io, async (ref: string, o: { apiSocket?: string; detach?: boolean; quiet?: boolean }) => {
        const socket = socketOf(o);
        const current = await getService(socket, ref);
        // As docker: the current spec goes along, and the manager ignores it (§9.3).
        const answer = (await api(socket, 'POST', `/services/${current.ID}/update?rollback=previous&version=${current.Version.Index}`, current.Spec)) as { Warnings: string[] | null };
        for (const w of answer.Warnings ?? []) io.err(`${w}\n`);
        io.out(`${ref}\n`);
        if (!o.detach) await waitOnService(socket, ref, io, o.quiet === true);
      }),
    );

  withSocket(service.command('scale').description('set the number of tasks of replicated services'))
    .argument('<service=replicas...>', 'services and their new replica counts')
    .option('-d, --detach', 'exit at once instead of waiting for the services to converge')
    .action(
      run(io, async (pairs: string[], o: { apiSocket?: string; detach?: boolean }) => {
        const socket = socketOf(o);
        const scaled: string[] = [];
        let failed = false;
        for (const pair of pairs) {
          const m = /^([^=]+)=(\d{1,9})$/.exec(pair);
          if (!m) throw new ApiCallError(`invalid scale specifier '${pair}'.\nSee 'shoal service scale --help'.`);
          const [, ref, replicas] = m as unknown as [string, string, string];
          try {
            const current = await getService(socket, ref);
            if (!current.Spec.Mode.Replicated) throw new ApiCallError('scale can only be used with replicated or replicated-job mode');
            const spec = { ...current.Spec, Mode: { Replicated: { Replicas: Number(replicas) } } };
            await api(socket, 'POST', `/services/${current.ID}/update?version=${current.Version.Index}`, spec);
            io.out(`${ref} scaled to ${replicas}\n`);
            scaled.push(ref);
          } catch (error) {
            io.err(`${ref}: ${error instanceof Error ? error.message : String(error)}\n`);
            failed = true;
          }
        }
        if (!o.detach) for (const ref of scaled) await waitOnService(socket, ref, io, false);
        if (failed) io.fail();
      }),
    );

  withSocket(service.command('rm').alias('remove').description('remove services'))
    .argument('<service...>', 'service names or IDs')
    .action(
      run(io, async (refs: string[], o: { apiSocket?: string }) => {
        const socket = socketOf(o);
        const errors: string[] = [];
        for (const ref of refs) {
          try {
            await api(socket, 'DELETE', `/services/${encodeURIComponent(ref)}`);
            io.out(`${ref}\n`);
          } catch (error) {
            errors.push(error instanceof Error ? error.message : String(error));
          }
        }
        if (errors.length > 0) throw new ApiCallError(errors.join('\n'));
      }),
    );

  withSocket(service.command('logs').description('show the logs of a service or task'))
    .argument('<service|task>', 'service name or ID, or task ID')
    .option('-f, --follow', 'keep printing new lines')
    .option('-t, --timestamps', 'show timestamps')
    .option('-n, --tail <n>', 'only the last n lines (or all)', 'all')
    .option('--since <time>', 'only lines since a Unix or RFC 3339 time, or a duration ago (10m)')
    .option('--raw', 'print the lines as the tasks wrote them')
    .action(run(io, async (ref: string, o: LogsOptions) => serviceLogs(socketOf(o), ref, o, io)));
}
