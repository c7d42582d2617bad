/**
 * Manager-side task logs for `docker service logs` and `docker task logs` (spec
 * docker-api-swarm.md §8): agents push their tasks' stdout/stderr lines here; the API reads
 * them back (`tail`, `since`) and follows new ones.
 *
 * Mirrors swarmkit's log broker (manager/logbroker), with one difference: swarmkit keeps no
 * logs itself and, for each `service logs`, asks every agent holding a matching task to stream
 * from its container's log file. Shoal's agents push lines as they are written and the leader
 * keeps a bounded window per task in memory, so `service logs` answers from one place, also
 * for tasks whose node is gone. The window is bounded in lines per task, bytes per line, tasks
 * and total bytes; what falls out is counted. Nothing is durable: after a leader change the
 * history starts again (docker's own `service logs` loses a node's logs with the node).
 */
import { Counters } from '../lib/counters.js';
import { CapacityError } from '../lib/errors.js';
import type { TaskLogLine } from './service-types.js';

export interface LogEntry extends TaskLogLine {
  readonly NodeID: string;
  readonly ServiceID: string;
}

export interface LogBrokerOptions {
  /** Lines kept per task; older ones fall out (default 1000). */
  readonly maxLinesPerTask?: number;
  /** Tasks kept; the one that logged least recently goes first (default 4096). */
  readonly maxTasks?: number;
  /** Longer lines are cut to this many UTF-8 bytes (default 16 KiB). */
  readonly maxLineBytes?: number;
  /** Bytes of line text kept in all (default 64 MiB); the least recently logging task loses lines first. */
  readonly maxBytes?: number;
  /** Followers at once (default 1024); more are refused with CapacityError. */
  readonly maxSubscribers?: number;
}

export const LOG_BROKER_COUNTERS = [
  'logs_lines_appended',
  'logs_lines_truncated',
  'logs_lines_dropped_unknown_task',
  'logs_lines_dropped_malformed',
  'logs_lines_evicted',
  'logs_tasks_evicted',
  'logs_listener_errors',
] as const;

/** RFC 3339 with up to nanoseconds, as Docker writes log timestamps. */
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

interface Stored {
  readonly entry: LogEntry;
  /** Milliseconds since the epoch, whole. */
  readonly ms: number;
  /** Nanoseconds within that millisecond. */
  readonly ns: number;
  /** Arrival order: ties in time keep it. */
  readonly seq: number;
  readonly bytes: number;
}

/** Oldest-first ring of one task's lines. */
class Ring {
  readonly #buf: (Stored | undefined)[];
  #head = 0;
  size = 0;

  constructor(capacity: number) {
    this.#buf = new Array<Stored | undefined>(capacity);
  }

  /** Adds a line; returns the oldest one when it had to make room. */
  push(s: Stored): Stored | undefined {
    const cap = this.#buf.length;
    if (this.size < cap) {
      this.#buf[(this.#head + this.size) % cap] = s;
      this.size++;
      return undefined;
    }
    const evicted = this.#buf[this.#head];
    this.#buf[this.#head] = s;
    this.#head = (this.#head + 1) % cap;
    return evicted;
  }

  shift(): Stored | undefined {
    if (this.size === 0) return undefined;
    const s = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.size--;
    return s;
  }

  *[Symbol.iterator](): IterableIterator<Stored> {
    for (let i = 0; i < this.size; i++) yield this.#buf[(this.#head + i) % this.#buf.length]!;
  }
}

interface TaskLog {
  readonly ring: Ring;
  bytes: number;
}

interface Subscriber {
  readonly taskIds: ReadonlySet<string>;
  readonly listener: (e: LogEntry) => void;
}

function parseTimestamp(text: string): { ms: number; ns: number } | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const fraction = (m[2] ?? '').padEnd(9, '0');
  const seconds = Date.parse(`${m[1]!}${m[3]!}`);
  if (Number.isNaN(seconds)) return undefined;
  return { ms: seconds + Number(fraction.slice(0, 3)), ns: Number(fraction.slice(3)) };
}

function before(a: Stored, b: Stored): number {
  return a.ms - b.ms || a.ns - b.ns || a.seq - b.seq;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `line` cut to at most `max` UTF-8 bytes, never inside a character; and its byte length. */
function cut(line: string, max: number): { text: string; bytes: number; truncated: boolean } {
  if (line.length * 3 <= max) return { text: line, bytes: encoder.encode(line).length, truncated: false };
  const bytes = encoder.encode(line);
  if (bytes.length <= max) return { text: line, bytes: bytes.length, truncated: false };
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return { text: decoder.decode(bytes.subarray(0, end)), bytes: end, truncated: true };
}

export class LogBroker {
  readonly counters = new Counters(LOG_BROKER_COUNTERS);
  readonly #maxLines: number;
  readonly #maxTasks: number;
  readonly #maxLineBytes: number;
  readonly #maxBytes: number;
  readonly #maxSubscribers: number;
  /** Least recently appended first (a Map keeps insertion order; appending re-inserts). */
  readonly #tasks = new Map<string, TaskLog>();
  readonly #subscribers = new Set<Subscriber>();
  #bytes = 0;
  #seq = 0;

  constructor(o: LogBrokerOptions = {}) {
    this.#maxLines = Math.max(1, o.maxLinesPerTask ?? 1000);
    this.#maxTasks = Math.max(1, o.maxTasks ?? 4096);
    this.#maxLineBytes = Math.max(1, o.maxLineBytes ?? 16 * 1024);
    this.#maxBytes = Math.max(1, o.maxBytes ?? 64 * 1024 * 1024);
    this.#maxSubscribers = Math.max(1, o.maxSubscribers ?? 1024);
  }

  /** Bytes of line text held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Takes lines an agent sent for tasks on `nodeId`. `serviceOf` names a task's service, or
   * undefined for a task the manager does not know (or that is not the node's): those lines are
   * dropped and counted, as are malformed ones (a TaskID, a Stream of stdout or stderr, an RFC
   * 3339 Timestamp and a string Line are required). Never throws on hostile input.
   */
  append(nodeId: string, serviceOf: (taskId: string) => string | undefined, lines: readonly TaskLogLine[]): void {
    if (!Array.isArray(lines)) {
      this.counters.inc('logs_lines_dropped_malformed');
      return;
    }
    for (const raw of lines as readonly unknown[]) {
      const line = raw as Partial<Record<keyof TaskLogLine, unknown>> | null;
      if (typeof line !== 'object' || line === null || typeof line.TaskID !== 'string' || typeof line.Line !== 'string' || typeof line.Timestamp !== 'string') {
        this.counters.inc('logs_lines_dropped_malformed');
        continue;
      }
      const stream = line.Stream;
      const time = parseTimestamp(line.Timestamp);
      if ((stream !== 'stdout' && stream !== 'stderr') || !time) {
        this.counters.inc('logs_lines_dropped_malformed');
        continue;
      }
      const serviceId = serviceOf(line.TaskID);
      if (serviceId === undefined) {
        this.counters.inc('logs_lines_dropped_unknown_task');
        continue;
      }
      const { text, bytes, truncated } = cut(line.Line, this.#maxLineBytes);
      if (truncated) this.counters.inc('logs_lines_truncated');
      const entry: LogEntry = Object.freeze({ NodeID: nodeId, ServiceID: serviceId, TaskID: line.TaskID, Stream: stream, Timestamp: line.Timestamp, Line: text });
      this.#store(entry, { entry, ms: time.ms, ns: time.ns, seq: this.#seq++, bytes });
      this.counters.inc('logs_lines_appended');
      this.#publish(entry);
    }
  }

  /**
   * The selected tasks' lines at or after `sinceMs` (ms since the epoch), oldest first by
   * Timestamp (ties in arrival order); `tail` keeps the last N of the whole selection, as
   * docker's `--tail` does for a service. A negative or absent tail means all.
   */
  read(taskIds: ReadonlySet<string>, o: { readonly tail?: number; readonly sinceMs?: number } = {}): LogEntry[] {
    const picked: Stored[] = [];
    for (const id of taskIds) {
      const log = this.#tasks.get(id);
      if (!log) continue;
      for (const s of log.ring) if (o.sinceMs === undefined || s.ms >= o.sinceMs) picked.push(s);
    }
    picked.sort(before);
    const tail = o.tail;
    const from = tail !== undefined && tail >= 0 ? Math.max(0, picked.length - Math.floor(tail)) : 0;
    return picked.slice(from).map((s) => s.entry);
  }

  /**
   * Calls `listener` with every line appended from now on for the selected tasks, in arrival
   * order. Returns the unsubscribe function. A listener that throws is counted, never unhooked
   * by it. Throws CapacityError beyond `maxSubscribers` followers.
   */
  subscribe(taskIds: ReadonlySet<string>, listener: (e: LogEntry) => void): () => void {
    if (this.#subscribers.size >= this.#maxSubscribers) throw new CapacityError(`too many log followers (${this.#maxSubscribers})`);
    const sub: Subscriber = { taskIds, listener };
    this.#subscribers.add(sub);
    return () => {
      this.#subscribers.delete(sub);
    };
  }

  /** Drops a task's lines (the task was removed from the store). */
  forget(taskId: string): void {
    const log = this.#tasks.get(taskId);
    if (!log) return;
    this.#bytes -= log.bytes;
    this.#tasks.delete(taskId);
  }

  #store(entry: LogEntry, s: Stored): void {
    let log = this.#tasks.get(entry.TaskID);
    if (log) {
      this.#tasks.delete(entry.TaskID);
    } else {
      if (this.#tasks.size >= this.#maxTasks) this.#evictTask();
      log = { ring: new Ring(this.#maxLines), bytes: 0 };
    }
    this.#tasks.set(entry.TaskID, log);
    const evicted = log.ring.push(s);
    log.bytes += s.bytes;
    this.#bytes += s.bytes;
    if (evicted) {
      log.bytes -= evicted.bytes;
      this.#bytes -= evicted.bytes;
      this.counters.inc('logs_lines_evicted');
    }
    // Over the byte budget: the least recently logging tasks give up their oldest lines.
    while (this.#bytes > this.#maxBytes && this.#tasks.size > 0) {
      const [id, oldest] = this.#tasks.entries().next().value as [string, TaskLog];
      const dropped = oldest.ring.shift();
      if (!dropped) {
        this.#tasks.delete(id);
        continue;
      }
      oldest.bytes -= dropped.bytes;
      this.#bytes -= dropped.bytes;
      this.counters.inc('logs_lines_evicted');
      if (oldest.ring.size === 0) this.#tasks.delete(id);
    }
  }

  #evictTask(): void {
    const first = this.#tasks.keys().next();
    if (first.done) return;
    const log = this.#tasks.get(first.value)!;
    this.counters.inc('logs_lines_evicted', log.ring.size);
    this.counters.inc('logs_tasks_evicted');
    this.#bytes -= log.bytes;
    this.#tasks.delete(first.value);
  }

  #publish(entry: LogEntry): void {
    for (const sub of [...this.#subscribers]) {
      if (!sub.taskIds.has(entry.TaskID)) continue;
      try {
        sub.listener(entry);
      } catch {
        this.counters.inc('logs_listener_errors');
      }
    }
  }
}
