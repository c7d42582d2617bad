/**
 * The agent's executor (Swarm's agent/exec): runs the tasks the manager assigns to this node
 * as processes and reports what becomes of them.
 *
 * `reconcile(set)` takes the dispatcher's full assignment set (a state, not a delta: a lost
 * answer costs nothing) and is idempotent: it starts every task whose DesiredState is
 * `running` and that it does not run yet, and stops every task whose DesiredState is past
 * `running` or that left the set. It never restarts a task: in Swarm a task runs once, and the
 * manager's restart policy makes a new task (new ID, same slot).
 *
 * A task's life, reported through `events.status` in TASK_STATES order, never backwards:
 *
 * | state     | when                                                                       |
 * |-----------|----------------------------------------------------------------------------|
 * | accepted  | the executor took the assignment                                           |
 * | preparing | image, executable, working directory and ports are checked and allocated  |
 * | starting  | the process is spawned                                                     |
 * | running   | its first TCP port accepts connections (or it has none, or 10 s passed);   |
 * |           | with a health check: only once a check passed (Swarm gates on health)      |
 * | complete  | it exited 0                                                                |
 * | failed    | it exited non-zero or by a signal (`task: non-zero exit (137)`), or could  |
 * |           | not be spawned                                                             |
 * | shutdown  | it was stopped because the manager wants it stopped                        |
 * | rejected  | before starting: unknown image, missing executable, port taken…            |
 *
 * Images: `shoal/whoami`, `shoal/ping` (built-ins; tag and digest ignored) or an absolute path
 * to an executable. `Command` replaces the image's entrypoint, `Args` are appended to it.
 *
 * Environment: only what the spec gives (`Env`), a PATH, and what shoal adds — `PORT`,
 * `SHOAL_PORT_<target>`, `HOST` (and `SHOAL_HOST_<target>`), `SHOAL_SERVICE`, `SHOAL_TASK`
 * (`<service>.<slot>`, or `<service>.<node>` for a global task), `SHOAL_TASK_ID`,
 * `SHOAL_SLOT`, `SHOAL_NODE`, `SHOAL_PARENT_PID`. The agent's own environment is not passed
 * on, as a container does not inherit the daemon's.
 *
 * Ports: an ingress-mode target gets a free host port on `hostAddress` (the mesh relays to
 * it); a host-mode port is served on `publishHost:PublishedPort` itself (PORT is that port).
 *
 * Health (ContainerSpec.Healthcheck, Docker's defaults: Interval 30 s, Timeout 30 s, Retries
 * 3, StartPeriod 0): `["CMD", exe, …]` runs the executable, `["CMD-SHELL", "…"]` runs
 * `/bin/sh -c`, `["NONE"]` disables. Checks start once the task is reachable, the first one at
 * once (Docker waits one Interval: with its 30 s default, a task would take 30 s to enter the
 * mesh). A pass → `health(…, 'healthy')` (and `running` the first time); Retries consecutive
 * failures outside StartPeriod → `health(…, 'unhealthy')`, and then, as Swarm does (moby
 * daemon/cluster/executor/container/controller.go: `checkHealth` → `Shutdown`,
 * ErrContainerUnhealthy), the task is stopped and fails with `task: non-zero exit (143):
 * dockerexec: unhealthy container`, so the manager's restart policy replaces it. (Moby reports
 * such a task `complete` when it happens to exit 0 on SIGTERM; a task killed for being
 * unhealthy failed, so here it always is `failed`.) With `unhealthy: 'keep'` the task keeps
 * running instead, out of the mesh, as a standalone Docker container does, and a later pass
 * brings it back.
 *
 * Logs: each stdout/stderr line (cut at 16 KiB) goes to `events.logs` in batches, at most one
 * call per 100 ms and at most 1000 lines pending (further lines until the next batch are
 * dropped and counted); the last 1000 lines of each task are kept here too (`taskLogs`). A
 * task's lines are all sent before its terminal state is.
 */
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import type { Logger } from '../lib/logger.js';
import { renderCounters } from '../lib/metrics.js';
import { parseIpv4Address } from '../wire/address.js';
import type { Health, PortProtocol } from '../mesh/endpoint-codec.js';
import { type HealthCheckSpec, HealthChecker } from '../mesh/health.js';
import {
  type AssignmentSet,
  type HealthcheckSpec,
  TASK_STATES,
  type TaskAssignment,
  type TaskLogLine,
  type TaskState,
  type TaskStatusUpdate,
} from '../cluster/service-types.js';
import { builtinImageCommand } from './images/index.js';
import type { LocalTask, NodeMesh } from './node-mesh.js';
import { type ExitInfo, type TaskStream, TaskProcess, allocatePorts, exitCodeOf, freePort, isPortFree, portEnvironment } from './task-process.js';

/** A task as it enters the mesh (NodeMesh.taskRunning). */
export type RunningTask = LocalTask;

export interface ExecutorEvents {
  /** A task's state moved forward. */
  status(u: TaskStatusUpdate): void;
  /** Output lines of the tasks, oldest first. */
  logs(lines: TaskLogLine[]): void;
  /** A task is reachable: publish it (NodeMesh.taskRunning). Its health is `none` or `starting`. */
  running(t: RunningTask): void;
  /** A published task's health changed (NodeMesh.setTaskHealth). */
  health(taskId: string, service: string, health: Health): void;
  /** A published task's process exited on its own (NodeMesh.taskExited). */
  exited(taskId: string, service: string): void;
  /** A published task is being stopped or forgotten (NodeMesh.taskRemoved). */
  removed(taskId: string, service: string): void;
}

/**
 * The executor's mesh events wired to a NodeMesh, as the agent wires them:
 * `new Executor({ …, events: { ...meshEvents(mesh), status, logs } })`.
 */
export function meshEvents(mesh: Pick<NodeMesh, 'taskRunning' | 'setTaskHealth' | 'taskExited' | 'taskRemoved'>): Pick<ExecutorEvents, 'running' | 'health' | 'exited' | 'removed'> {
  return {
    running: (t) => mesh.taskRunning(t),
    health: (taskId, service, health) => mesh.setTaskHealth(service, taskId, health),
    exited: (taskId, service) => mesh.taskExited(service, taskId),
    removed: (taskId, service) => mesh.taskRemoved(service, taskId),
  };
}

export interface ExecutorOptions {
  readonly nodeName: string;
  /** Where ingress-mode tasks listen (default 127.0.0.1): the mesh relays there. */
  readonly hostAddress?: string;
  /** Where host-mode published ports are served: the agent's listen address. */
  readonly publishHost: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: ExecutorEvents;
  /** How long a task may take to accept connections before it counts as running anyway (10 s). */
  readonly readyTimeoutMs?: number;
  /** Log batching period (100 ms). */
  readonly logBatchMs?: number;
  /** What an unhealthy task becomes: `fail` (stopped and failed, Swarm's way; the default) or `keep` (left running, out of the mesh). */
  readonly unhealthy?: 'fail' | 'keep';
}

/** What `tasks()` shows of one task. */
export interface ExecutorTask {
  readonly taskId: string;
  readonly serviceId: string;
  readonly service: string;
  readonly slot: number;
  readonly state: TaskState;
  readonly desiredState: TaskState;
  readonly pid: number | undefined;
  readonly exitCode: number | undefined;
  readonly err: string | undefined;
  readonly health: Health;
  /** Target port → the host port the task serves it on. */
  readonly hostPorts: ReadonlyMap<number, number>;
}

export const EXECUTOR_COUNTERS = [
  'executor_tasks_started',
  'executor_tasks_rejected',
  'executor_tasks_failed',
  'executor_log_lines',
  'executor_log_lines_dropped',
  'executor_health_checks',
  'executor_health_checks_failed',
] as const;

/** Lines of each task kept by the agent. */
export const TASK_LOG_LINES = 1000;
/** Lines waiting for the next `logs` batch, at most. */
export const MAX_PENDING_LOG_LINES = 1000;
/** Docker's defaults (api/types/container HealthConfig; daemon/health.go). */
export const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 30_000;
export const DEFAULT_HEALTH_RETRIES = 3;
/** Docker keeps this much of a health check's output. */
export const HEALTH_OUTPUT_BYTES = 4096;
/** Docker's default stop grace period (ContainerSpec.StopGracePeriod). */
export const DEFAULT_STOP_GRACE_MS = 10_000;

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const RUNNING_INDEX = TASK_STATES.indexOf('running');
const TERMINAL: ReadonlySet<TaskState> = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);
const stateIndex = (s: TaskState): number => TASK_STATES.indexOf(s);

interface Prepared {
  readonly argv: readonly string[];
  readonly env: Record<string, string>;
  readonly cwd: string | undefined;
  readonly hostPorts: Map<number, number>;
  /** The first TCP port, where readiness is checked. */
  readonly ready: { readonly host: string; readonly port: number } | undefined;
  readonly health: HealthCheckSpec | undefined;
  readonly healthArgv: readonly string[] | undefined;
  readonly meshTargets: readonly { readonly protocol: PortProtocol; readonly target: number }[];
}

interface Run {
  assignment: TaskAssignment;
  state: TaskState;
  proc: TaskProcess | undefined;
  pid: number | undefined;
  exitCode: number | undefined;
  err: string | undefined;
  hostPorts: Map<number, number>;
  health: Health;
  checker: HealthChecker | undefined;
  /** The running event was sent (and no removed event since). */
  published: boolean;
  stopRequested: boolean;
  /** Stopped because its health check failed (Swarm's ErrContainerUnhealthy). */
  unhealthyStop: boolean;
  readonly logs: TaskLogLine[];
  /** Settles once the task is in a terminal state and its process gone. */
  done: Promise<void>;
}

export class Executor {
  readonly counters = new Counters(EXECUTOR_COUNTERS);
  readonly #o: ExecutorOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #host: string;
  readonly #hostNumber: number;
  readonly #wallOffsetMs: number;
  readonly #runs = new Map<string, Run>();
  /** Tasks finished and forgotten, still in the last set: never started again nor reported again. */
  #settled = new Set<string>();
  #pendingLogs: TaskLogLine[] = [];
  #logTimer: Timer | undefined;
  #closed = false;

  constructor(o: ExecutorOptions) {
    this.#o = o;
    this.#clock = o.clock;
    this.#log = o.logger.child({ component: 'executor' });
    this.#host = o.hostAddress ?? '127.0.0.1';
    const parsed = parseIpv4Address(this.#host);
    this.#hostNumber = parsed.ok ? parsed.value : 0x7f000001;
    // Timestamps are wall-clock time; `clock` is monotonic from an arbitrary origin.
    this.#wallOffsetMs = Date.now() - o.clock.now();
  }

  /** Brings this node's tasks to `set`. Idempotent; returns at once (tasks start and stop in the background). */
  reconcile(set: AssignmentSet): void {
    if (this.#closed) return;
    const wanted = new Map(set.Tasks.map((t) => [t.TaskID, t]));
    for (const a of set.Tasks) {
      const run = this.#runs.get(a.TaskID);
      const stopWanted = stateIndex(a.DesiredState) > RUNNING_INDEX;
      if (run) {
        if (stopWanted) this.#stop(run);
        continue;
      }
      if (this.#settled.has(a.TaskID)) continue;
      if (a.DesiredState === 'running') this.#start(a);
      else if (stopWanted) {
        // Assigned, then cancelled before it reached us: it ends here, never started.
        this.#settled.add(a.TaskID);
        this.#emitStatus({ TaskID: a.TaskID, State: 'shutdown', Message: 'shutdown', Timestamp: this.#timestamp() });
      }
      // A desired state before running (`ready` during a start-first update): nothing to do yet.
    }
    for (const run of this.#runs.values()) if (!wanted.has(run.assignment.TaskID)) this.#stop(run);
    this.#settled = new Set([...this.#settled].filter((id) => wanted.has(id)));
  }

  /** Every task this executor runs or ran and has not forgotten yet. */
  tasks(): readonly ExecutorTask[] {
    return [...this.#runs.values()].map((r) => ({
      taskId: r.assignment.TaskID,
      serviceId: r.assignment.ServiceID,
      service: r.assignment.ServiceName,
      slot: r.assignment.Slot,
      state: r.state,
      desiredState: r.assignment.DesiredState,
      pid: r.pid,
      exitCode: r.exitCode,
      err: r.err,
      health: r.health,
      hostPorts: r.hostPorts,
    }));
  }

  /** The executor's counters in Prometheus text, and a gauge of the tasks it knows per state. */
  metrics(labels: Readonly<Record<string, string>> = {}): string {
    const byState = new Map<TaskState, number>();
    for (const r of this.#runs.values()) byState.set(r.state, (byState.get(r.state) ?? 0) + 1);
    const lines = [...byState].map(([state, n]) => {
      const l = Object.entries({ ...labels, state }).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
      return `executor_tasks{${l.join(',')}} ${n}\n`;
    });
    return renderCounters(this.counters.snapshot(), labels) + (lines.length > 0 ? `# TYPE executor_tasks gauge\n${lines.join('')}` : '');
  }

  /** The last TASK_LOG_LINES lines of a task this executor still knows, oldest first. */
  taskLogs(taskId: string): readonly TaskLogLine[] {
    return [...(this.#runs.get(taskId)?.logs ?? [])];
  }

  /** Stops every task (reported `shutdown`), sends the last log lines, and resolves once every process is gone. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const runs = [...this.#runs.values()];
    for (const run of runs) this.#stop(run);
    await Promise.all(runs.map((r) => r.done));
    this.#flushLogs();
  }

  #start(a: TaskAssignment): void {
    const run: Run = {
      assignment: a,
      state: 'assigned',
      proc: undefined,
      pid: undefined,
      exitCode: undefined,
      err: undefined,
      hostPorts: new Map(),
      health: 'none',
      checker: undefined,
      published: false,
      stopRequested: false,
      unhealthyStop: false,
      logs: [],
      done: Promise.resolve(),
    };
    this.#runs.set(a.TaskID, run);
    run.done = this.#run(run).catch((error: unknown) => {
      // A bug here must not leave the task unreported nor crash the agent.
      this.#log.error({ err: error, task: a.TaskID }, 'Task runner failed');
      this.#report(run, 'failed', 'failed', { Err: `executor: ${error instanceof Error ? error.message : String(error)}` });
    });
  }

  async #run(run: Run): Promise<void> {
    const a = run.assignment;
    const log = this.#log.child({ task: a.TaskID, service: a.ServiceName });
    this.#report(run, 'accepted', 'accepted');
    this.#report(run, 'preparing', 'preparing');
    const prepared = await this.#prepare(a).catch((error: unknown) => `preparing failed: ${error instanceof Error ? error.message : String(error)}`);
    if (run.stopRequested) {
      this.#finish(run, 'shutdown', 'shutdown');
      return;
    }
    if (typeof prepared === 'string') {
      this.counters.inc('executor_tasks_rejected');
      log.warn({ err: prepared }, 'Task rejected');
      this.#finish(run, 'rejected', 'rejected', { Err: prepared });
      return;
    }
    run.hostPorts = prepared.hostPorts;
    this.#report(run, 'starting', 'starting');
    const proc = new TaskProcess({
      argv: prepared.argv,
      env: prepared.env,
      ...(prepared.cwd !== undefined && { cwd: prepared.cwd }),
      clock: this.#clock,
      onLine: (stream, line) => this.#onLine(run, stream, line),
    });
    run.proc = proc;
    this.counters.inc('executor_tasks_started');
    const spawned = await proc.spawned;
    if (spawned) {
      run.pid = proc.pid;
      log.info({ pid: proc.pid, argv: prepared.argv.slice(-3), ports: Object.fromEntries(prepared.hostPorts) }, 'Task started');
      void this.#whenReady(run, proc, prepared);
    }
    const exit = await proc.exited;
    this.#onExit(run, exit, log);
  }

  /** Everything that can be refused before a process exists. Returns the reason (Docker's words) when the task is rejected. */
  async #prepare(a: TaskAssignment): Promise<Prepared | string> {
    const spec = a.Spec.ContainerSpec;
    const entry = builtinImageCommand(spec.Image) ?? (isAbsolute(spec.Image) && (await isExecutable(spec.Image)) ? [spec.Image] : undefined);
    if (!entry) return `No such image: ${spec.Image}`;
    const argv = [...(spec.Command && spec.Command.length > 0 ? spec.Command : entry), ...(spec.Args ?? [])];
    const userEnv = parseEnv(spec.Env ?? []);
    const path = userEnv['PATH'] ?? process.env['PATH'] ?? DEFAULT_PATH;
    const exe = argv[0]!;
    if (!(await findExecutable(exe, path))) return `starting container failed: exec: "${exe}": executable file not found in $PATH`;
    if (spec.Dir !== undefined && spec.Dir !== '') {
      const dir = await stat(spec.Dir).catch(() => undefined);
      if (!dir?.isDirectory()) return `starting container failed: chdir to cwd ("${spec.Dir}"): no such directory`;
    }
    // Ports: distinct targets; ingress mode → a free host port, host mode → the published port itself.
    const hostPorts = new Map<number, number>();
    const hosts = new Map<number, string>();
    const ingress = a.Ports.filter((p) => p.PublishMode !== 'host' && (p.Protocol === 'tcp' || p.Protocol === 'udp'));
    for (const p of a.Ports) {
      if (p.PublishMode !== 'host' || hostPorts.has(p.TargetPort)) continue;
      if (p.Protocol === 'tcp' && p.PublishedPort > 0 && !(await isPortFree(this.#o.publishHost, p.PublishedPort))) {
        return `Bind for ${this.#o.publishHost}:${p.PublishedPort} failed: port is already allocated`;
      }
      // No published port in host mode: Docker picks a free one on the host.
      hostPorts.set(p.TargetPort, p.PublishedPort > 0 ? p.PublishedPort : await freePort(this.#o.publishHost));
      hosts.set(p.TargetPort, this.#o.publishHost);
    }
    const free = await allocatePorts(
      this.#host,
      ingress.filter((p) => !hostPorts.has(p.TargetPort)).map((p) => ({ protocol: p.Protocol as PortProtocol, target: p.TargetPort })),
    );
    for (const [target, port] of free) {
      hostPorts.set(target, port);
      hosts.set(target, this.#host);
    }
    const first = a.Ports[0]?.TargetPort;
    const firstHost = (first !== undefined && hosts.get(first)) || this.#host;
    const hostEnv: Record<string, string> = {};
    for (const [target, host] of hosts) hostEnv[`SHOAL_HOST_${target}`] = host;
    const env: Record<string, string> = {
      PATH: path,
      ...(spec.Hostname !== undefined && spec.Hostname !== '' && { HOSTNAME: spec.Hostname }),
      ...userEnv,
      ...portEnvironment(firstHost, hostPorts, first),
      ...hostEnv,
      SHOAL_SERVICE: a.ServiceName,
      SHOAL_TASK: `${a.ServiceName}.${a.Slot > 0 ? a.Slot : this.#o.nodeName}`,
      SHOAL_TASK_ID: a.TaskID,
      SHOAL_SLOT: String(a.Slot),
      SHOAL_NODE: this.#o.nodeName,
      // Built-in images exit when the agent is gone, so a crashed agent leaves no orphans.
      SHOAL_PARENT_PID: String(process.pid),
    };
    const tcp = a.Ports.find((p) => p.Protocol === 'tcp');
    const readyPort = tcp && hostPorts.get(tcp.TargetPort);
    const meshTargets: { protocol: PortProtocol; target: number }[] = [];
    for (const p of ingress) {
      // A target also published in host mode is served there only: the mesh cannot relay to it.
      if (hosts.get(p.TargetPort) !== this.#host) continue;
      if (!meshTargets.some((t) => t.protocol === p.Protocol && t.target === p.TargetPort)) meshTargets.push({ protocol: p.Protocol as PortProtocol, target: p.TargetPort });
    }
    const check = healthOf(spec.Healthcheck);
    return {
      argv,
      env,
      cwd: spec.Dir !== undefined && spec.Dir !== '' ? spec.Dir : undefined,
      hostPorts,
      ready: tcp && readyPort !== undefined ? { host: hosts.get(tcp.TargetPort)!, port: readyPort } : undefined,
      health: check?.spec,
      healthArgv: check?.argv,
      meshTargets,
    };
  }

  /** Once the task accepts connections (or has nothing to connect to): publish it, and either report it running or start its health check. */
  async #whenReady(run: Run, proc: TaskProcess, p: Prepared): Promise<void> {
    if (p.ready) await proc.waitListening(p.ready.host, p.ready.port, { timeoutMs: this.#o.readyTimeoutMs ?? 10_000 });
    if (proc.exit !== undefined || run.stopRequested) return;
    const a = run.assignment;
    run.health = p.health ? 'starting' : 'none';
    const overlay = parseIpv4Address(a.OverlayAddress);
    if (overlay.ok && overlay.value !== 0) {
      run.published = true;
      this.#emit(() =>
        this.#o.events.running({
          service: a.ServiceName,
          taskId: a.TaskID,
          slot: a.Slot,
          overlayAddress: overlay.value,
          hostAddress: this.#hostNumber,
          hostPorts: new Map([...run.hostPorts].filter(([target]) => p.meshTargets.some((t) => t.target === target))),
          targets: p.meshTargets,
          health: run.health,
        }),
      );
    }
    if (!p.health || !p.healthArgv) {
      this.#report(run, 'running', 'started', run.pid !== undefined ? { PID: run.pid } : {});
      return;
    }
    const argv = p.healthArgv;
    const checker = new HealthChecker({
      clock: this.#clock,
      probe: (_target, signal) => this.#healthProbe(argv, p, signal),
      report: (_service, _taskId, health) => this.#onHealth(run, health),
      logger: this.#log,
    });
    run.checker = checker;
    checker.add(a.ServiceName, a.TaskID, { host: this.#host, port: 0 }, p.health);
  }

  #onHealth(run: Run, health: Health): void {
    if (run.stopRequested || run.unhealthyStop || TERMINAL.has(run.state)) return;
    run.health = health;
    if (health === 'healthy') this.#report(run, 'running', 'started', run.pid !== undefined ? { PID: run.pid } : {});
    if (run.published) this.#emit(() => this.#o.events.health(run.assignment.TaskID, run.assignment.ServiceName, health));
    if (health === 'unhealthy' && this.#o.unhealthy !== 'keep' && run.proc) {
      run.unhealthyStop = true;
      run.checker?.close();
      run.checker = undefined;
      this.#log.warn({ task: run.assignment.TaskID, service: run.assignment.ServiceName }, 'Task unhealthy; stopping it');
      void run.proc.stop(stopGraceOf(run.assignment), stopSignalOf(run.assignment.Spec.ContainerSpec.StopSignal));
    }
  }

  /**
   * One health check: the command exits 0 (healthy) or not. Its output is kept up to
   * HEALTH_OUTPUT_BYTES (Docker's limit) for the reason; a check the checker gives up on is
   * killed with everything it started (its own process group).
   */
  #healthProbe(argv: readonly string[], p: Prepared, signal: AbortSignal): Promise<void> {
    this.counters.inc('executor_health_checks');
    let output = '';
    const proc = new TaskProcess({
      argv,
      env: p.env,
      ...(p.cwd !== undefined && { cwd: p.cwd }),
      clock: this.#clock,
      maxLineBytes: HEALTH_OUTPUT_BYTES,
      onLine: (_stream, line) => {
        if (output.length < HEALTH_OUTPUT_BYTES) output += `${output ? '\n' : ''}${line}`.slice(0, HEALTH_OUTPUT_BYTES - output.length);
      },
    });
    const onAbort = (): void => void proc.stop(0, 'SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    return proc.exited.then((exit) => {
      signal.removeEventListener('abort', onAbort);
      if (exit.code === 0) return;
      this.counters.inc('executor_health_checks_failed');
      const how = exit.error ? exit.error.message : exit.signal !== null ? `killed by ${exit.signal}` : `exit ${exit.code}`;
      throw new Error(`${how}${output.trim() ? `: ${output.trim()}` : ''}`);
    });
  }

  #onExit(run: Run, exit: ExitInfo, log: Logger): void {
    run.checker?.close();
    run.checker = undefined;
    run.proc = undefined;
    if (exit.code !== null || exit.signal !== null) run.exitCode = exitCodeOf(exit);
    if (run.published && !run.stopRequested) this.#emit(() => this.#o.events.exited(run.assignment.TaskID, run.assignment.ServiceName));
    const withCode = run.exitCode !== undefined ? { ExitCode: run.exitCode } : {};
    if (run.stopRequested) {
      log.info({ exitCode: run.exitCode }, 'Task stopped');
      this.#finish(run, 'shutdown', 'shutdown', withCode);
    } else if (run.unhealthyStop) {
      this.counters.inc('executor_tasks_failed');
      log.warn({ exitCode: run.exitCode }, 'Task stopped as unhealthy');
      const code = run.exitCode ?? 0;
      this.#finish(run, 'failed', 'failed', { ...withCode, Err: `${code !== 0 ? `task: non-zero exit (${code}): ` : ''}dockerexec: unhealthy container` });
    } else if (exit.error && run.pid === undefined) {
      // Never ran (ENOENT, EACCES… after the checks of preparing passed: a race with the file system).
      this.counters.inc('executor_tasks_failed');
      log.warn({ err: exit.error }, 'Task could not be started');
      this.#finish(run, 'failed', 'failed', { Err: `starting container failed: ${exit.error.message}` });
    } else if (run.exitCode === 0) {
      log.info('Task completed');
      this.#finish(run, 'complete', 'finished', withCode);
    } else {
      this.counters.inc('executor_tasks_failed');
      log.warn({ exitCode: run.exitCode, signal: exit.signal }, 'Task failed');
      this.#finish(run, 'failed', 'failed', { ...withCode, Err: `task: non-zero exit (${run.exitCode ?? 'unknown'})` });
    }
  }

  /** Stops a task because the manager wants it stopped: out of the mesh first, then its stop signal, SIGKILL after its grace period. */
  #stop(run: Run): void {
    const a = run.assignment;
    if (!run.stopRequested) {
      run.stopRequested = true;
      run.checker?.close();
      run.checker = undefined;
      this.#unpublish(run);
      void run.proc?.stop(stopGraceOf(a), stopSignalOf(a.Spec.ContainerSpec.StopSignal));
    }
    // Finished (or rejected) and no longer wanted: forget it once it is quite done.
    if (TERMINAL.has(run.state)) this.#forget(run);
  }

  #unpublish(run: Run): void {
    if (!run.published) return;
    run.published = false;
    this.#emit(() => this.#o.events.removed(run.assignment.TaskID, run.assignment.ServiceName));
  }

  /** Reports the terminal state; a task the manager no longer wants is then forgotten. */
  #finish(run: Run, state: TaskState, message: string, extra: Partial<TaskStatusUpdate> = {}): void {
    if (extra.Err !== undefined) run.err = extra.Err;
    // Every line of the task (all read: its pipes closed) goes out before its terminal state.
    this.#flushLogs();
    this.#report(run, state, message, extra);
    if (run.stopRequested) this.#forget(run);
  }

  #forget(run: Run): void {
    this.#unpublish(run);
    if (this.#runs.get(run.assignment.TaskID) !== run) return;
    this.#runs.delete(run.assignment.TaskID);
    this.#settled.add(run.assignment.TaskID);
  }

  /** Reports `state` if it is after the task's current one (never backwards, never twice). */
  #report(run: Run, state: TaskState, message: string, extra: Partial<TaskStatusUpdate> = {}): void {
    if (TERMINAL.has(run.state) || stateIndex(state) <= stateIndex(run.state)) return;
    run.state = state;
    this.#emitStatus({ ...extra, TaskID: run.assignment.TaskID, State: state, Message: message, Timestamp: this.#timestamp() });
  }

  #emitStatus(u: TaskStatusUpdate): void {
    this.#emit(() => this.#o.events.status(u));
  }

  #onLine(run: Run, stream: TaskStream, line: string): void {
    const entry: TaskLogLine = { TaskID: run.assignment.TaskID, Stream: stream, Timestamp: this.#timestamp(), Line: line };
    this.counters.inc('executor_log_lines');
    run.logs.push(entry);
    if (run.logs.length > TASK_LOG_LINES) run.logs.shift();
    if (this.#pendingLogs.length >= MAX_PENDING_LOG_LINES) {
      this.counters.inc('executor_log_lines_dropped');
      return;
    }
    this.#pendingLogs.push(entry);
    this.#logTimer ??= this.#clock.setTimer(this.#o.logBatchMs ?? 100, () => this.#flushLogs());
  }

  #flushLogs(): void {
    this.#logTimer?.cancel();
    this.#logTimer = undefined;
    if (this.#pendingLogs.length === 0) return;
    const batch = this.#pendingLogs;
    this.#pendingLogs = [];
    this.#emit(() => this.#o.events.logs(batch));
  }

  /** Runs an event handler; its failure is logged, never thrown into process events. */
  #emit(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log.error({ err: error }, 'Executor event handler failed');
    }
  }

  /** RFC 3339 with nanoseconds, as Docker's log timestamps. */
  #timestamp(): string {
    return rfc3339Nano(this.#wallOffsetMs + this.#clock.now());
  }
}

/**
 * `2026-12-07T14:37:10.123456000Z` (RFC 3339 with nanoseconds, as Docker writes log
 * timestamps) from milliseconds since the epoch. A double holds those to about a microsecond,
 * so the last three digits are always 0 rather than noise.
 */
export function rfc3339Nano(ms: number): string {
  const whole = Math.floor(ms);
  const us = Math.min(999, Math.floor((ms - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(us).padStart(3, '0')}000Z`;
}

/** The health check a spec asks for, with Docker's defaults; undefined for none (absent, empty or `NONE`). */
export function healthOf(h: HealthcheckSpec | undefined): { spec: HealthCheckSpec; argv: string[] } | undefined {
  const test = h?.Test;
  if (!h || !test || test.length === 0) return undefined;
  let argv: string[];
  switch (test[0]) {
    case 'CMD':
      if (test.length < 2) return undefined;
      argv = test.slice(1);
      break;
    case 'CMD-SHELL':
      if (test.length < 2) return undefined;
      argv = ['/bin/sh', '-c', test.slice(1).join(' ')];
      break;
    default:
      // NONE, or a form Docker does not know either.
      return undefined;
  }
  const ms = (ns: number | undefined, dflt: number): number => (ns !== undefined && ns > 0 ? ns / 1e6 : dflt);
  return {
    argv,
    spec: {
      kind: 'tcp',
      intervalMs: ms(h.Interval, DEFAULT_HEALTH_INTERVAL_MS),
      timeoutMs: ms(h.Timeout, DEFAULT_HEALTH_TIMEOUT_MS),
      retries: h.Retries !== undefined && h.Retries > 0 ? h.Retries : DEFAULT_HEALTH_RETRIES,
      startPeriodMs: ms(h.StartPeriod, 0),
    },
  };
}

function parseEnv(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    // Docker passes a bare `NAME` from the client's environment; the agent has none to give.
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

/** ContainerSpec.StopGracePeriod (ns) in ms, Docker's 10 s when absent. */
function stopGraceOf(a: TaskAssignment): number {
  const ns = a.Spec.ContainerSpec.StopGracePeriod;
  return ns !== undefined && ns >= 0 ? ns / 1e6 : DEFAULT_STOP_GRACE_MS;
}

function stopSignalOf(name: string | undefined): NodeJS.Signals {
  if (!name) return 'SIGTERM';
  const upper = name.toUpperCase();
  const full = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
  return full in osConstants.signals ? full : 'SIGTERM';
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Whether `exe` runs: an absolute or relative path that is executable, or a name found on `path`. */
async function findExecutable(exe: string, path: string): Promise<boolean> {
  if (exe.includes('/')) return isExecutable(exe);
  for (const dir of path.split(delimiter)) if (dir && (await isExecutable(join(dir, exe)))) return true;
  return false;
}
