/**
 * A loopback cluster of real `shoal agent` processes for the routing mesh's process-level
 * tests (issue 5): one catalog written to a temp dir, N agents on the given 127.0.0.x
 * addresses (one gossip port and one data path port for the whole cluster, each agent on its
 * own address), every one joined through the first. `start` resolves once every node answers
 * on the published port and, when asked, every table holds the expected rows; `stop` ends
 * every agent and every task they started, by PID, whatever happened.
 *
 * Also here: reading an agent's /metrics, finding its task processes (children of the agent,
 * named by the SHOAL_TASK their supervisor gave them), and a typed autocannon run.
 */
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile, readdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { apiRequest } from '../../src/cli/api-client.js';
import { type AgentProcess, startAgent } from './agent.js';
import { stopProcess } from './netns.js';

export interface MeshNodeSpec {
  readonly name: string;
  /** 127.0.0.x: the agent's advertise and listen address. */
  readonly address: string;
}

export interface MeshClusterOptions {
  /** Catalog YAML (format: src/agent/catalog.ts), written to the cluster's temp dir. */
  readonly catalog: string;
  readonly nodes: readonly MeshNodeSpec[];
  readonly gossipPort: number;
  readonly dataPathPort: number;
  /** A TCP published port every node must answer on (with a 2xx) before start resolves. */
  readonly publishedPort: number;
  /** Live rows every table must hold before start resolves (one per node plus one per task). */
  readonly expectedRows?: number;
  readonly readyTimeoutMs?: number;
}

export interface MeshNode extends MeshNodeSpec {
  readonly agent: AgentProcess;
  readonly pid: number;
}

export interface TaskProcess {
  readonly pid: number;
  readonly task: string;
}

export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** An agent's metrics: `get` sums every series of one name whose labels include `where`. */
export class Metrics {
  readonly samples: readonly MetricSample[];

  constructor(samples: readonly MetricSample[]) {
    this.samples = samples;
  }

  get(name: string, where: Readonly<Record<string, string>> = {}): number {
    let sum = 0;
    for (const s of this.samples) if (s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    return sum;
  }

  /** The sum of every series whose name starts with `prefix` (all drop reasons of a component). */
  sumPrefix(prefix: string): number {
    let sum = 0;
    for (const s of this.samples) if (s.name.startsWith(prefix)) sum += s.value;
    return sum;
  }
}

/** Parses Prometheus text (the subset renderCounters writes: `name{k="v",…} value`). */
export function parseMetrics(text: string): Metrics {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return new Metrics(samples);
}

export class MeshCluster {
  readonly dir: string;
  readonly catalogFile: string;
  readonly options: MeshClusterOptions;
  readonly nodes: MeshNode[] = [];
  /** Every task process ever seen under one of our agents, for cleanup after a crash. */
  readonly #tasksSeen = new Map<number, number>();

  private constructor(dir: string, options: MeshClusterOptions) {
    this.dir = dir;
    this.catalogFile = path.join(dir, 'catalog.yaml');
    this.options = options;
  }

  /**
   * Writes the catalog, starts every agent, and waits (bounded) until the mesh answers on every
   * node. On failure, stops what it started and rethrows.
   */
  static async start(options: MeshClusterOptions): Promise<MeshCluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-mesh-cluster-'));
    const cluster = new MeshCluster(dir, options);
    try {
      await writeFile(cluster.catalogFile, options.catalog);
      const seed = options.nodes[0]!.address;
      const started = await Promise.allSettled(
        options.nodes.map(async (spec) => {
          const agent = await startAgent([
            '--node-name', spec.name,
            '--advertise-addr', spec.address,
            '--listen-addr', spec.address,
            '--gossip-port', String(options.gossipPort),
            '--data-path-port', String(options.dataPathPort),
            '--catalog', cluster.catalogFile,
            '--api-socket', path.join(dir, `${spec.name}.sock`),
            '--data-dir', path.join(dir, spec.name),
            ...(spec.address === seed ? [] : ['--join', `${seed}:${options.gossipPort}`]),
          ]);
          const node: MeshNode = { ...spec, agent, pid: agent.child.pid! };
          cluster.nodes.push(node);
          return node;
        }),
      );
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      cluster.nodes.sort((a, b) => options.nodes.findIndex((n) => n.name === a.name) - options.nodes.findIndex((n) => n.name === b.name));
      await cluster.waitUntilReady(options.readyTimeoutMs ?? 30_000);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  node(name: string): MeshNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`No node ${name} in this cluster`);
    return n;
  }

  /** Nodes whose agent process is still running. */
  running(): MeshNode[] {
    return this.nodes.filter((n) => isRunning(n.agent.child));
  }

  async metrics(name: string): Promise<Metrics> {
    const { status, text } = await apiRequest(this.node(name).agent.apiSocket, 'GET', '/metrics');
    if (status !== 200) throw new Error(`GET /metrics on ${name} answered ${status}: ${text.slice(0, 200)}`);
    return parseMetrics(text);
  }

  /** Live rows in a node's endpoint table (the `mesh_table_rows` gauge). */
  async tableRows(name: string): Promise<number> {
    return (await this.metrics(name)).get('mesh_table_rows');
  }

  /** The task processes an agent started (its children that carry a SHOAL_TASK). */
  async tasks(name: string): Promise<TaskProcess[]> {
    const parent = this.node(name).pid;
    const out: TaskProcess[] = [];
    for (const pid of await childrenOf(parent)) {
      const env = await environOf(pid);
      const task = env.get('SHOAL_TASK');
      if (task === undefined) continue;
      out.push({ pid, task });
      this.#tasksSeen.set(pid, parent);
    }
    return out;
  }

  /** Every node answers a GET on the published port; with `expectedRows`, every table is complete. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    const { publishedPort, expectedRows } = this.options;
    await pollUntil(
      async () => {
        const nodes = this.running();
        const answers = await Promise.all(nodes.map((n) => httpGet(n.address, publishedPort, '/json', 2000).then((r) => r.status >= 200 && r.status < 300, () => false)));
        if (!answers.every(Boolean)) return false;
        if (expectedRows === undefined) return true;
        const rows = await Promise.all(nodes.map((n) => this.tableRows(n.name)));
        return rows.every((r) => r === expectedRows);
      },
      timeoutMs,
      `every node to answer on ${publishedPort}${expectedRows === undefined ? '' : ` with ${expectedRows} rows in its table`}`,
    );
    for (const n of this.running()) await this.tasks(n.name);
  }

  /** Sends `signal` to one agent (by PID) and resolves once it has exited. */
  async kill(name: string, signal: NodeJS.Signals): Promise<void> {
    const { child } = this.node(name).agent;
    await this.tasks(name).catch(() => undefined);
    if (!isRunning(child)) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /**
   * Stops every agent (SIGTERM, SIGKILL after a grace), waits a bounded while for every task
   * process we saw to exit (a stopped agent stops its tasks; a crashed agent's tasks notice and
   * exit within a second or so), SIGKILLs any still there, and removes the temp dir. Resolves
   * with the PIDs it had to kill (none, when nothing leaked). Never throws.
   */
  async stop(leftoverWaitMs = 5000): Promise<number[]> {
    for (const n of this.running()) await this.tasks(n.name).catch(() => undefined);
    await Promise.all(this.nodes.map((n) => stopProcess(n.agent.child, 8000).catch(() => undefined)));
    await pollUntil(async () => (await this.#aliveTasks()).length === 0, leftoverWaitMs, 'task processes to exit').catch(() => undefined);
    const leftover = await this.#aliveTasks();
    for (const pid of leftover) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    return leftover;
  }

  /** Task processes we saw that are still alive: only those that still name their agent, never a reused PID. */
  async #aliveTasks(): Promise<number[]> {
    const out: number[] = [];
    for (const [pid, parent] of this.#tasksSeen) {
      const env = await environOf(pid).catch(() => new Map<string, string>());
      if (env.get('SHOAL_PARENT_PID') === String(parent) && !(await isZombie(pid))) out.push(pid);
    }
    return out;
  }
}

async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** PIDs whose parent is `ppid`, from /proc (field 4 of /proc/<pid>/stat). */
export async function childrenOf(ppid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && Number(fields[1]) === ppid) out.push(Number(entry));
  }
  return out;
}

async function environOf(pid: number): Promise<Map<string, string>> {
  const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
  const env = new Map<string, string>();
  for (const kv of raw.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return env;
}

/** Polls `cond` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function pollUntil(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** One GET on a fresh connection (no keep-alive), so each request is a new downstream connection. */
export function httpGet(host: string, port: number, urlPath = '/json', timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

// ---- autocannon (no type declarations ship with it) ------------------------------------------

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  /** Seconds. */
  readonly duration: number;
  /** Seconds before a request without an answer counts as a timeout (autocannon's default is 10). */
  readonly timeout?: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  /** non-2xx + errors + timeouts: what a user counts as failed. */
  readonly failed: number;
  /** When each failure was seen (ms since the run started), for "failures only inside the window". */
  readonly failureTimesMs: readonly number[];
  /** Distinct error messages (a few), to say what failed. */
  readonly errorKinds: readonly string[];
}

interface AutocannonResult {
  readonly requests: { readonly total: number };
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly '2xx': number;
}

interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, statusCode: number) => void): void;
  on(event: 'reqError', fn: (error: Error) => void): void;
}

type Autocannon = (opts: Record<string, unknown>, cb: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

/** A bounded autocannon run; `during` (if given) runs alongside it, started once the load is. */
export async function runLoad(o: LoadOptions, during?: (elapsedMs: () => number) => Promise<void>): Promise<LoadResult> {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  const failureTimesMs: number[] = [];
  const errorKinds = new Set<string>();
  let duringDone: Promise<unknown> = Promise.resolve();
  const result = new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon({ url: o.url, connections: o.connections, duration: o.duration, timeout: o.timeout ?? 10 }, (error, r) => (error ? reject(error) : resolve(r)));
    // Errors and timeouts both (autocannon treats a timeout as an error).
    instance.on('reqError', (error) => {
      failureTimesMs.push(elapsed());
      const kind = (error as { code?: string }).code ?? error.message;
      if (errorKinds.size < 10) errorKinds.add(kind);
    });
    instance.on('response', (_client, statusCode) => {
      if (statusCode < 200 || statusCode > 299) failureTimesMs.push(elapsed());
    });
  });
  // Settled either way, so that a failing `during` is reported after the load, not left unhandled.
  if (during) duringDone = during(elapsed).then(() => undefined, (error: unknown) => error);
  const r = await result;
  const duringError = await duringDone;
  if (duringError !== undefined) throw duringError;
  return {
    requests: r.requests.total,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors - r.timeouts,
    timeouts: r.timeouts,
    failed: r.non2xx + r.errors,
    failureTimesMs,
    errorKinds: [...errorKinds],
  };
}
