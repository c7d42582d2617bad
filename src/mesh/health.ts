/**
 * Active health checks, run only by the agent that owns a task, against that task; the result
 * travels to every other agent in the endpoint table row (ARCHITECTURE.md). Semantics follow
 * Docker's HEALTHCHECK, which Swarm uses to keep a task out of the load balancer:
 *
 * - a task with a check starts `starting`; the first passing probe makes it `healthy`;
 * - `retries` consecutive failures make it `unhealthy` (failures within `startPeriodMs` of
 *   adding it do not count, Docker's `start_period`); one pass makes it `healthy` again;
 * - a probe that has not passed within `timeoutMs` has failed.
 *
 * Unlike Docker, the first probe runs at once rather than after one interval, so a task that
 * starts listening is routable within a probe's time. Probes never overlap for one task: the
 * next is scheduled `intervalMs` after the previous one finished.
 *
 * The probe itself is injected (`Probe`): node-health-probe.ts has the real TCP connect and
 * HTTP GET; tests pass a scripted one and drive time with a ManualClock.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { Health } from './endpoint-codec.js';

export type HealthCheckKind = 'tcp' | 'http';

export interface HealthCheckSpec {
  /** TCP connect, or an HTTP GET of `path` that must answer 2xx or 3xx. */
  readonly kind: HealthCheckKind;
  readonly path?: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly startPeriodMs?: number;
}

export const DEFAULT_HEALTH_CHECK: HealthCheckSpec = { kind: 'tcp', intervalMs: 5_000, timeoutMs: 2_000, retries: 3, startPeriodMs: 0 };

export interface ProbeTarget {
  readonly kind: HealthCheckKind;
  readonly host: string;
  readonly port: number;
  /** For `http`: the request path, `/` by default. */
  readonly path: string;
}

/**
 * Runs one probe: resolves when the task passed, rejects (with the reason) when it failed.
 * `signal` aborts when the checker gave up waiting (timeout, or the task was removed): the
 * probe should then release its socket.
 */
export type Probe = (target: ProbeTarget, signal: AbortSignal) => Promise<void>;

export interface HealthCheckerOptions {
  readonly clock: Clock;
  readonly probe: Probe;
  /** Called on every change of a task's health (never for the initial `starting`). */
  readonly report: (service: string, taskId: string, health: Health) => void;
  readonly logger?: Logger;
  /** Tasks checked at most. */
  readonly maxTasks?: number;
}

export const HEALTH_COUNTERS = ['health_probes', 'health_probes_failed', 'health_probes_timed_out', 'health_transitions'] as const;

interface CheckedTask {
  readonly service: string;
  readonly taskId: string;
  readonly target: ProbeTarget;
  readonly spec: HealthCheckSpec;
  readonly addedAt: number;
  health: Health;
  failures: number;
  timer: Timer | undefined;
  abort: AbortController | undefined;
  removed: boolean;
}

export class HealthChecker {
  readonly counters = new Counters(HEALTH_COUNTERS);
  readonly #clock: Clock;
  readonly #probe: Probe;
  readonly #report: HealthCheckerOptions['report'];
  readonly #log: Logger;
  readonly #maxTasks: number;
  readonly #tasks = new Map<string, CheckedTask>();

  constructor(options: HealthCheckerOptions) {
    this.#clock = options.clock;
    this.#probe = options.probe;
    this.#report = options.report;
    this.#log = (options.logger ?? silentLogger).child({ component: 'health' });
    this.#maxTasks = options.maxTasks ?? 4096;
  }

  /**
   * Starts checking a local task listening on `host:port`. Its health is `starting` until the
   * first probe passes. Replaces a check of the same task. Throws InvalidArgumentError for a
   * spec that cannot run, or when `maxTasks` tasks are already checked.
   */
  add(service: string, taskId: string, address: { host: string; port: number }, spec: HealthCheckSpec): void {
    if (!(spec.intervalMs > 0) || !(spec.timeoutMs > 0) || !Number.isInteger(spec.retries) || spec.retries < 1) {
      throw new InvalidArgumentError(`Health check of ${service}/${taskId}: interval and timeout must be positive and retries at least 1`);
    }
    const key = `${service}\u0000${taskId}`;
    this.remove(service, taskId);
    if (this.#tasks.size >= this.#maxTasks) throw new InvalidArgumentError(`Cannot check more than ${this.#maxTasks} tasks`);
    const task: CheckedTask = {
      service,
      taskId,
      target: { kind: spec.kind, host: address.host, port: address.port, path: spec.path ?? '/' },
      spec,
      addedAt: this.#clock.now(),
      health: 'starting',
      failures: 0,
      timer: undefined,
      abort: undefined,
      removed: false,
    };
    this.#tasks.set(key, task);
    this.#run(task);
  }

  /** Stops checking a task (it stopped, or left the catalog). */
  remove(service: string, taskId: string): void {
    const key = `${service}\u0000${taskId}`;
    const task = this.#tasks.get(key);
    if (!task) return;
    this.#tasks.delete(key);
    task.removed = true;
    task.timer?.cancel();
    task.abort?.abort();
  }

  health(service: string, taskId: string): Health | undefined {
    return this.#tasks.get(`${service}\u0000${taskId}`)?.health;
  }

  close(): void {
    for (const t of [...this.#tasks.values()]) this.remove(t.service, t.taskId);
  }

  #run(task: CheckedTask): void {
    if (task.removed) return;
    this.counters.inc('health_probes');
    const abort = new AbortController();
    task.abort = abort;
    let settled = false;
    const finish = (passed: boolean, reason?: string): void => {
      if (settled || task.removed) return;
      settled = true;
      task.timer?.cancel();
      task.abort = undefined;
      this.#record(task, passed, reason);
      task.timer = this.#clock.setTimer(task.spec.intervalMs, () => this.#run(task));
    };
    task.timer = this.#clock.setTimer(task.spec.timeoutMs, () => {
      this.counters.inc('health_probes_timed_out');
      finish(false, 'timed out');
      abort.abort();
    });
    let pending: Promise<void>;
    try {
      pending = this.#probe(task.target, abort.signal);
    } catch (error) {
      pending = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    pending.then(
      () => finish(true),
      (error: unknown) => finish(false, error instanceof Error ? error.message : String(error)),
    );
  }

  #record(task: CheckedTask, passed: boolean, reason: string | undefined): void {
    let next = task.health;
    if (passed) {
      task.failures = 0;
      next = 'healthy';
    } else {
      this.counters.inc('health_probes_failed');
      const inStartPeriod = this.#clock.now() - task.addedAt < (task.spec.startPeriodMs ?? 0);
      if (!inStartPeriod) task.failures++;
      if (task.failures >= task.spec.retries) next = 'unhealthy';
    }
    if (next === task.health) return;
    this.counters.inc('health_transitions');
    this.#log.info({ service: task.service, task: task.taskId, from: task.health, to: next, reason }, 'Task health changed');
    task.health = next;
    this.#report(task.service, task.taskId, next);
  }
}
