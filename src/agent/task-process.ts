/**
 * One task process on this host: what the catalog supervisor and the executor share, so there
 * is one way to start, watch and stop a task.
 *
 * - ports: a free host port per target (the OS picks it), or a fixed one (host-mode publishing);
 * - environment: `PORT` (the first target's host port), `SHOAL_PORT_<target>` and the older
 *   `PORT_<target>` per target, `HOST`, `SHOAL_PARENT_PID` (built-in images exit when the
 *   agent is gone, so a crashed agent leaves no orphans), plus what the caller adds;
 * - output: stdout and stderr split into lines, each at most `maxLineBytes` (longer lines are
 *   cut there and the rest up to the newline dropped, as Docker's json-file driver splits them),
 *   so a task that never prints a newline cannot grow the agent's memory;
 * - readiness: `waitListening` polls a TCP connect until it succeeds, the process exits or a
 *   deadline passes;
 * - stop: a signal (SIGTERM by default) to the task's process, then SIGKILL after a grace period;
 * - like a container's processes, a task's are one group (its own session): whatever the task
 *   started dies with it (SIGKILL to the group once its main process exited, as the kernel
 *   kills a PID namespace with its init), so a `sh -c "server &"` leaves no server holding
 *   the port, and the final SIGKILL reaches every process of the task.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { type AddressInfo, connect, createServer } from 'node:net';
import type { Clock, Timer } from '../lib/clock.js';

/** Docker's json-file driver cuts lines at 16 KiB. */
export const MAX_LINE_BYTES = 16 * 1024;

export type TaskStream = 'stdout' | 'stderr';

export interface TaskPort {
  readonly protocol: 'tcp' | 'udp';
  readonly target: number;
}

export interface ExitInfo {
  /** The exit code, or null when a signal ended the process (or it never started). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (ENOENT, EACCES…). */
  readonly error?: Error;
}

/** Docker's exit code for a process ended by a signal: 128 + its number (SIGKILL → 137). */
export function exitCodeOf(exit: ExitInfo): number {
  if (exit.code !== null) return exit.code;
  if (exit.signal !== null) return 128 + (osConstants.signals[exit.signal] ?? 0);
  return 127;
}

/** A port the OS says is free on `host` now (bind to 0, read, close). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `host:port` can be bound now. */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Whether a TCP connect to `host:port` succeeds now. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A host port for each distinct target: the previous one when it is still free (a restarted
 * task keeps its endpoint row), else one the OS picks on `host`.
 */
export async function allocatePorts(host: string, targets: readonly TaskPort[], previous?: ReadonlyMap<number, number>): Promise<Map<number, number>> {
  const ports = new Map<number, number>();
  for (const t of targets) {
    if (ports.has(t.target)) continue;
    const before = previous?.get(t.target);
    ports.set(t.target, before !== undefined && (await isPortFree(host, before)) ? before : await freePort(host));
  }
  return ports;
}

/**
 * The environment a task's ports give it: `PORT` is the host port of the first target,
 * `SHOAL_PORT_<target>` (and `PORT_<target>`, the catalog's older name) each target's, `HOST`
 * where to listen.
 */
export function portEnvironment(host: string, hostPorts: ReadonlyMap<number, number>, first: number | undefined): Record<string, string> {
  const env: Record<string, string> = { HOST: host };
  for (const [target, port] of hostPorts) {
    env[`SHOAL_PORT_${target}`] = String(port);
    env[`PORT_${target}`] = String(port);
  }
  const firstPort = first === undefined ? undefined : hostPorts.get(first);
  if (firstPort !== undefined) env['PORT'] = String(firstPort);
  return env;
}

/**
 * Splits a byte stream into lines of at most `maxBytes` bytes (without the newline). A longer
 * line is cut at `maxBytes` (on a character boundary) and the rest up to its newline dropped;
 * `truncated` counts such lines. Memory is bounded by `maxBytes`.
 */
export class LineSplitter {
  readonly #maxBytes: number;
  readonly #onLine: (line: string) => void;
  #parts: Buffer[] = [];
  #bytes = 0;
  #dropping = false;
  truncated = 0;

  constructor(maxBytes: number, onLine: (line: string) => void) {
    this.#maxBytes = maxBytes;
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#dropping) {
        const room = this.#maxBytes - this.#bytes;
        const take = Math.min(room, end - at);
        if (take > 0) {
          this.#parts.push(chunk.subarray(at, at + take));
          this.#bytes += take;
        }
        if (end - at > room) {
          this.#dropping = true;
          this.truncated++;
        }
      }
      if (nl === -1) break;
      this.#emit();
      at = nl + 1;
    }
    // Keep our own copy of a partial line (at most maxBytes), not views of the stream's chunks.
    if (this.#parts.length > 0) this.#parts = [Buffer.concat(this.#parts, this.#bytes)];
  }

  /** Emits a last line without its newline (at end of stream). */
  end(): void {
    if (this.#bytes > 0 || this.#dropping) this.#emit();
  }

  #emit(): void {
    let line = Buffer.concat(this.#parts, this.#bytes).toString('utf8');
    // A cut inside a multi-byte character leaves U+FFFD at the end: drop it.
    if (this.#dropping && line.endsWith('\ufffd')) line = line.slice(0, -1);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.#parts = [];
    this.#bytes = 0;
    this.#dropping = false;
    this.#onLine(line);
  }
}

export interface TaskProcessOptions {
  /** `[executable, ...args]`. */
  readonly argv: readonly string[];
  /** The whole environment of the process (nothing is inherited unless the caller puts it here). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  readonly clock: Clock;
  /** Every line the task prints, without its newline. */
  readonly onLine?: (stream: TaskStream, line: string) => void;
  readonly maxLineBytes?: number;
}

/**
 * A running task process. `exited` resolves once, when the process is gone and its output
 * read to the end (also when it could not be started: then `error` is set).
 */
export class TaskProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  /** Resolves true once the process exists (it has a PID), false when it could not be started. */
  readonly spawned: Promise<boolean>;
  readonly #clock: Clock;
  #exit: ExitInfo | undefined;
  #killTimer: Timer | undefined;

  constructor(o: TaskProcessOptions) {
    this.#clock = o.clock;
    const [cmd, ...args] = o.argv;
    if (cmd === undefined) throw new RangeError('A task process needs an executable');
    const maxLineBytes = o.maxLineBytes ?? MAX_LINE_BYTES;
    const child = spawn(cmd, args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...(o.cwd !== undefined && { cwd: o.cwd }) });
    this.child = child;
    // The main process is gone: so is the rest of the task (and with it, the pipes it held open).
    child.once('exit', () => this.#killGroup());
    let startError: Error | undefined;
    this.spawned = new Promise((resolve) => {
      child.once('spawn', () => resolve(true));
      child.once('error', (error) => {
        startError ??= error;
        resolve(false);
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      const splitter = new LineSplitter(maxLineBytes, (line) => o.onLine?.(stream, line));
      const input = child[stream]!;
      input.on('data', (chunk: Buffer) => splitter.push(chunk));
      input.once('end', () => splitter.end());
    }
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.#killTimer?.cancel();
        this.#exit = { code, signal, ...(startError && { error: startError }) };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Undefined while it runs. */
  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  /** Sends `signal` to the task's main process now (a no-op once it is gone). */
  kill(signal: NodeJS.Signals): void {
    if (this.#exit === undefined && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** SIGKILL to every process of the task (its process group). */
  #killGroup(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ESRCH: nothing of the task is left.
    }
  }

  /**
   * Stops the process: `signal` (SIGTERM by default), then SIGKILL after `graceMs`. Resolves
   * with how it exited. Calling it again while it stops only waits.
   */
  stop(graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitInfo> {
    if (this.#exit === undefined && this.#killTimer === undefined) {
      this.kill(signal);
      this.#killTimer = this.#clock.setTimer(graceMs, () => this.#killGroup());
    }
    return this.exited;
  }

  /**
   * Polls a TCP connect to `host:port` every `pollMs` until it succeeds (true), or the process
   * exits or `timeoutMs` passes (false).
   */
  async waitListening(host: string, port: number, o: { timeoutMs: number; pollMs?: number }): Promise<boolean> {
    const deadline = this.#clock.now() + o.timeoutMs;
    for (;;) {
      if (this.#exit !== undefined) return false;
      if (await canConnect(host, port)) return this.#exit === undefined;
      if (this.#clock.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        this.#clock.setTimer(o.pollMs ?? 50, resolve);
      });
    }
  }
}
