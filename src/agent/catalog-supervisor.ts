/**
 * Runs a node's catalog tasks: starts each `command` task (or built-in image) with a free port
 * in `PORT`, reports it once it listens, restarts it with exponential backoff when it exits,
 * and stops everything on shutdown. `address` tasks are already running: they are reported at
 * once and never touched.
 *
 * Restarts follow Docker's restart policy (`--restart always`): the delay starts at
 * `initialMs` (100 ms), doubles with every restart up to `maxMs`, and starts over once a
 * process has stayed up `resetAfterMs` (10 s). A task keeps its host port across restarts when
 * the port is still free, so its endpoint row does not change.
 *
 * The agent turns the events into endpoint table changes: `onRunning` → upsert the row (and
 * start its health check); `onExited` → mark it unhealthy, so every balancer in the cluster
 * stops choosing it before its passive health would notice.
 *
 * Processes are started, watched and stopped by task-process.ts, as the executor's are.
 */
import { type Clock, RealClock, type Timer } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { Catalog, CatalogTask } from './catalog.js';
import { serviceOf, tasksOf } from './catalog.js';
import { TaskProcess, allocatePorts, freePort, portEnvironment } from './task-process.js';

export interface TaskLocation {
  /** Where the task listens on this host. */
  readonly hostAddress: string;
  /** Target port → host port. */
  readonly hostPorts: ReadonlyMap<number, number>;
  readonly pid?: number;
}

export interface SupervisorEvents {
  /** The task listens (a process we started: its first TCP port accepts connections). */
  onRunning(task: CatalogTask, where: TaskLocation): void;
  /** The task's process exited; it is restarted after `restartInMs` (undefined when stopping). */
  onExited(task: CatalogTask, info: { readonly code: number | null; readonly signal: string | null; readonly restartInMs: number | undefined }): void;
}

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000, resetAfterMs: 10_000 };

export interface SupervisorOptions {
  readonly catalog: Catalog;
  readonly node: string;
  readonly events: SupervisorEvents;
  /** Where started tasks listen (default 127.0.0.1). */
  readonly hostAddress?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly backoff?: Partial<BackoffOptions>;
  /** How long a started task may take to listen before it is reported running anyway (its health check decides). */
  readonly readyTimeoutMs?: number;
  /** SIGTERM, then SIGKILL after this long. */
  readonly stopGraceMs?: number;
}

export type TaskState = 'starting' | 'running' | 'backoff' | 'stopped';

export interface TaskStatus {
  readonly taskId: string;
  readonly service: string;
  readonly state: TaskState;
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly hostPorts: ReadonlyMap<number, number>;
}

/** Docker's restart delay: `initial × 2^restarts`, at most `max`. */
export function restartDelayMs(restarts: number, b: BackoffOptions): number {
  return Math.min(b.maxMs, b.initialMs * 2 ** Math.min(restarts, 30));
}

interface Supervised {
  readonly task: CatalogTask;
  state: TaskState;
  proc: TaskProcess | undefined;
  startedAt: number;
  restarts: number;
  hostPorts: Map<number, number>;
  timer: Timer | undefined;
  exited: Promise<void> | undefined;
}

export class CatalogSupervisor {
  readonly #o: SupervisorOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: BackoffOptions;
  readonly #host: string;
  readonly #tasks = new Map<string, Supervised>();
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? new RealClock();
    this.#log = (options.logger ?? silentLogger).child({ component: 'catalog-supervisor' });
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#host = options.hostAddress ?? '127.0.0.1';
  }

  /** Starts (or reports) every task of this node. Resolves once each was spawned, not once each listens. */
  async start(): Promise<void> {
    for (const task of tasksOf(this.#o.catalog, this.#o.node)) {
      if (task.run.kind === 'address') {
        const service = serviceOf(this.#o.catalog, task.service);
        const target = service?.targets[0]?.target;
        const hostPorts = new Map(target === undefined ? [] : [[target, task.run.port]]);
        this.#tasks.set(task.taskId, { task, state: 'running', proc: undefined, startedAt: this.#clock.now(), restarts: 0, hostPorts, timer: undefined, exited: undefined });
        const host = task.run.host;
        this.#emit(() => this.#o.events.onRunning(task, { hostAddress: host, hostPorts }));
        continue;
      }
      const s: Supervised = { task, state: 'starting', proc: undefined, startedAt: 0, restarts: 0, hostPorts: new Map(), timer: undefined, exited: undefined };
      this.#tasks.set(task.taskId, s);
      await this.#spawn(s);
    }
  }

  status(): TaskStatus[] {
    return [...this.#tasks.values()].map((s) => ({ taskId: s.task.taskId, service: s.task.service, state: s.state, pid: s.proc?.pid, restarts: s.restarts, hostPorts: s.hostPorts }));
  }

  /** Stops every process: SIGTERM, then SIGKILL after the grace time. Resolves when all have exited. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const waits: Promise<void>[] = [];
    for (const s of this.#tasks.values()) {
      s.timer?.cancel();
      s.timer = undefined;
      const proc = s.proc;
      if (!proc || !s.exited) {
        s.state = 'stopped';
        continue;
      }
      void proc.stop(this.#o.stopGraceMs ?? 5_000);
      waits.push(s.exited);
    }
    await Promise.all(waits);
  }

  async #spawn(s: Supervised): Promise<void> {
    if (this.#stopping || s.task.run.kind !== 'command') return;
    const run = s.task.run;
    const service = serviceOf(this.#o.catalog, s.task.service);
    const targets = service?.targets ?? [];
    // Keep each port across restarts when nobody took it meanwhile.
    s.hostPorts = await allocatePorts(this.#host, targets, s.hostPorts);
    if (this.#stopping) return;
    const env = {
      ...process.env,
      ...run.environment,
      ...portEnvironment(this.#host, s.hostPorts, targets[0]?.target),
      SHOAL_SERVICE: s.task.service,
      SHOAL_TASK: s.task.taskId,
      SHOAL_NODE: s.task.node,
      SHOAL_SLOT: String(s.task.slot),
      SHOAL_PARENT_PID: String(process.pid),
    };
    s.state = 'starting';
    s.startedAt = this.#clock.now();
    const log = this.#log.child({ task: s.task.taskId });
    const proc = new TaskProcess({
      argv: run.argv,
      env,
      clock: this.#clock,
      onLine: (stream, line) => (stream === 'stdout' ? log.debug({ stream }, line.slice(0, 1000)) : log.warn({ stream }, line.slice(0, 1000))),
    });
    s.proc = proc;
    s.exited = proc.exited.then((exit) => {
      if (exit.error) log.warn({ err: exit.error }, 'Task could not be started');
      if (s.proc === proc) s.proc = undefined;
      this.#onExit(s, exit.code, exit.signal);
    });
    log.info({ pid: proc.pid, ports: Object.fromEntries(s.hostPorts) }, 'Task started');
    const tcp = targets.find((t) => t.protocol === 'tcp');
    const readyPort = tcp && s.hostPorts.get(tcp.target);
    if (readyPort === undefined) {
      // Nothing to connect to (a UDP-only service): running once the process exists.
      if ((await proc.spawned) && s.proc === proc && !this.#stopping) this.#markRunning(s, proc);
      return;
    }
    // Not listening in time: reported running anyway, its health check decides.
    await proc.waitListening(this.#host, readyPort, { timeoutMs: this.#o.readyTimeoutMs ?? 10_000 });
    if (s.proc === proc && proc.exit === undefined && !this.#stopping) this.#markRunning(s, proc);
  }

  /** Runs an event handler; its failure (a full endpoint table, say) is logged, never thrown into process events. */
  #emit(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log.error({ err: error }, 'Catalog task event handler failed');
    }
  }

  #markRunning(s: Supervised, proc: TaskProcess): void {
    s.state = 'running';
    const pid = proc.pid;
    this.#emit(() => this.#o.events.onRunning(s.task, { hostAddress: this.#host, hostPorts: new Map(s.hostPorts), ...(pid !== undefined && { pid }) }));
  }

  #onExit(s: Supervised, code: number | null, signal: NodeJS.Signals | null): void {
    s.timer?.cancel();
    s.timer = undefined;
    if (this.#stopping) {
      s.state = 'stopped';
      this.#emit(() => this.#o.events.onExited(s.task, { code, signal, restartInMs: undefined }));
      return;
    }
    if (this.#clock.now() - s.startedAt >= this.#backoff.resetAfterMs) s.restarts = 0;
    const delay = restartDelayMs(s.restarts, this.#backoff);
    s.restarts++;
    s.state = 'backoff';
    this.#log.warn({ task: s.task.taskId, code, signal, restartInMs: delay }, 'Task exited; restarting');
    this.#emit(() => this.#o.events.onExited(s.task, { code, signal, restartInMs: delay }));
    s.timer = this.#clock.setTimer(delay, () => {
      s.timer = undefined;
      void this.#spawn(s);
    });
  }
}

/** Re-exported for the tests and callers that found it here first. */
export { freePort };
