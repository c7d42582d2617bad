/**
 * The agent's end of the dispatcher (swarmkit's agent session): while this node is in a swarm,
 * long-poll the manager for this node's assignments and hand each new set to the executor;
 * send the executor's task status reports and log lines back in small batches.
 *
 * swarmkit keeps one gRPC stream per session; shoal long-polls over HTTPS instead (each answer
 * is the whole set, so a lost answer costs nothing: the next poll brings the state again).
 * While the managers cannot be reached the tasks keep running, as in Swarm; the poll retries.
 * Leaving the swarm hands the executor an empty set, which stops every task.
 */
import type { Logger } from '../lib/logger.js';
import { INGRESS_SUBNET, INGRESS_VNI } from '../cluster/networks.js';
import type { AssignmentSet, TaskLogLine, TaskStatusUpdate } from '../cluster/service-types.js';
import type { DispatcherLink } from './cluster-node.js';

/** How long one poll may wait on the manager for a change. */
const POLL_MS = 10_000;
/** Pause before polling again after a failure, or while not in a swarm. */
const RETRY_MS = 500;
/** Reports are sent this long after the first one queued, so a burst goes as one call. */
const FLUSH_DELAY_MS = 50;
/** Queued reports and log lines kept at most while the manager cannot be reached (oldest dropped). */
const MAX_QUEUED_UPDATES = 4096;
const MAX_QUEUED_LINES = 8192;
const MAX_LINES_PER_CALL = 1024;

export interface DispatcherSessionOptions {
  /** The current link (it changes when the node joins, leaves or changes role). */
  readonly link: () => DispatcherLink | undefined;
  readonly onAssignments: (set: AssignmentSet) => void;
  readonly logger: Logger;
}

/** What a node outside any swarm runs: nothing (leaving the swarm stops every task). */
export const EMPTY_ASSIGNMENTS: AssignmentSet = { Index: -1, Tasks: [], Services: [], Ingress: { Vni: INGRESS_VNI, Subnet: INGRESS_SUBNET } };

export class DispatcherSession {
  readonly #o: DispatcherSessionOptions;
  readonly #abort = new AbortController();
  #updates: TaskStatusUpdate[] = [];
  #lines: TaskLogLine[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing = false;
  #last: AssignmentSet | undefined;
  #loop: Promise<void> | undefined;
  #droppedUpdates = 0;
  #droppedLines = 0;

  constructor(o: DispatcherSessionOptions) {
    this.#o = o;
  }

  /** Starts polling; idempotent. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Queues a task status report for the manager. */
  report(update: TaskStatusUpdate): void {
    this.#updates.push(update);
    if (this.#updates.length > MAX_QUEUED_UPDATES) {
      this.#updates.shift();
      this.#droppedUpdates++;
    }
    this.#scheduleFlush(FLUSH_DELAY_MS);
  }

  /** Queues task log lines for the manager's log broker. */
  logs(lines: readonly TaskLogLine[]): void {
    this.#lines.push(...lines);
    const excess = this.#lines.length - MAX_QUEUED_LINES;
    if (excess > 0) {
      this.#lines.splice(0, excess);
      this.#droppedLines += excess;
    }
    this.#scheduleFlush(FLUSH_DELAY_MS);
  }

  counters(): Readonly<Record<string, number>> {
    return { dispatcher_updates_dropped: this.#droppedUpdates, dispatcher_log_lines_dropped: this.#droppedLines };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#flushTimer);
    await this.#loop;
    await this.#flush().catch(() => undefined);
  }

  async #run(): Promise<void> {
    let nodeId = '';
    let since = -1;
    while (!this.#abort.signal.aborted) {
      const link = this.#o.link();
      if (!link) {
        if (this.#last && this.#last.Tasks.length + this.#last.Services.length > 0) this.#deliver(EMPTY_ASSIGNMENTS);
        nodeId = '';
        await sleep(RETRY_MS, this.#abort.signal);
        continue;
      }
      if (link.nodeId !== nodeId) {
        nodeId = link.nodeId;
        since = -1;
      }
      // A poll outstanding when the node leaves the swarm (or rejoins as another node) is
      // abandoned at once, so the executor hears of it without waiting out the poll.
      const poll = new AbortController();
      const stop = (): void => poll.abort();
      this.#abort.signal.addEventListener('abort', stop, { once: true });
      const watch = setInterval(() => {
        if (this.#o.link()?.nodeId !== nodeId) poll.abort();
      }, RETRY_MS);
      watch.unref();
      try {
        const set = await link.waitAssignments(since, POLL_MS, poll.signal);
        if (set.Index !== since && !poll.signal.aborted) {
          since = set.Index;
          this.#deliver(set);
        }
      } catch (error) {
        if (!poll.signal.aborted) {
          this.#o.logger.debug({ reason: (error as Error).message }, 'dispatcher poll failed; retrying');
          await sleep(RETRY_MS, this.#abort.signal);
        }
      } finally {
        clearInterval(watch);
        this.#abort.signal.removeEventListener('abort', stop);
      }
    }
  }

  #deliver(set: AssignmentSet): void {
    this.#last = set;
    try {
      this.#o.onAssignments(set);
    } catch (error) {
      this.#o.logger.error({ err: error }, 'the executor failed to take new assignments');
    }
  }

  #scheduleFlush(delayMs: number): void {
    if (this.#flushTimer !== undefined || this.#flushing) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#flush();
    }, delayMs);
    this.#flushTimer.unref();
  }

  /** Sends what is queued; on failure puts it back (bounded) and tries again later. */
  async #flush(): Promise<void> {
    const link = this.#o.link();
    if (!link || this.#flushing) return;
    this.#flushing = true;
    const updates = this.#updates;
    const lines = this.#lines.splice(0, MAX_LINES_PER_CALL);
    this.#updates = [];
    let failed = false;
    try {
      if (updates.length > 0) await link.reportStatus(updates);
    } catch (error) {
      failed = true;
      this.#updates = [...updates, ...this.#updates].slice(-MAX_QUEUED_UPDATES);
      this.#o.logger.debug({ reason: (error as Error).message }, 'cannot report task status yet');
    }
    try {
      if (lines.length > 0) await link.appendLogs(lines);
    } catch {
      failed = true;
      this.#lines = [...lines, ...this.#lines].slice(-MAX_QUEUED_LINES);
    }
    this.#flushing = false;
    if (this.#abort.signal.aborted) return;
    if (failed) this.#scheduleFlush(RETRY_MS);
    else if (this.#updates.length > 0 || this.#lines.length > 0) this.#scheduleFlush(0);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
