/**
 * Network namespaces a test makes for itself, and the processes it starts in them. Everything
 * is torn down by the test (namespaces by name, processes by PID), whatever happened.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a command and returns its stdout; rejects with stderr on a non-zero exit. */
export async function run(cmd: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}\n${e.stdout ?? ''}`, { cause: error });
  }
}

export class Netns {
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /** Creates the namespace (deleting a stale one of the same name) with loopback up. */
  static async create(name: string): Promise<Netns> {
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(cmd: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], options);
  }

  /** Starts a long-running process in the namespace; stop it with stopProcess(). */
  spawn(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  }

  async destroy(): Promise<void> {
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}

/** Connects two namespaces with a veth pair and gives each end an address (a.b.c.d/len). */
export async function linkNamespaces(a: Netns, aIf: string, aAddr: string, b: Netns, bIf: string, bAddr: string): Promise<void> {
  await run('ip', ['link', 'add', aIf, 'netns', a.name, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  await a.exec('ip', ['addr', 'add', aAddr, 'dev', aIf]);
  await b.exec('ip', ['addr', 'add', bAddr, 'dev', bIf]);
  await a.exec('ip', ['link', 'set', aIf, 'up']);
  await b.exec('ip', ['link', 'set', bIf, 'up']);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopProcess(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves with the first stdout line that `match` accepts; rejects on exit or after `timeoutMs`. */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (match(line)) {
          cleanup();
          resolve(line);
          return;
        }
      }
    };
    const onErr = (chunk: Buffer): void => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`Process exited (${code}) before the expected line. stderr:\n${stderr}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`No expected line within ${timeoutMs} ms. stderr:\n${stderr}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
