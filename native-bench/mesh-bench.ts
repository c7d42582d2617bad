/**
 * The routing mesh (issue 5, "Benchmark"): HTTP through each path side by side in one run,
 * against the same built-in whoami app (src/agent/images/whoami.ts, `?size=N`):
 *
 * - direct: the load generator to the whoami task;
 * - HAProxy in TCP mode (one thread) in front of it;
 * - shoal, local endpoint: one agent whose catalog puts the task on its own node (kernel TCP relay);
 * - shoal, remote endpoint only: agent A (no task) → userspace TCP over userspace VXLAN → agent B,
 *   which relays to the task (two agents, loopback underlay);
 * - the kernel equivalent of that remote path: HAProxy in one namespace, whoami in another,
 *   kernel VXLAN (VNI 4096, MTU 1450) between them over a veth pair (needs root; left out with
 *   a note otherwise). The load generator runs in HAProxy's namespace.
 *
 * Generators: autocannon (c=50, what users run) and wrk (c=50, one thread; lighter, so the
 * proxy rather than the generator is what saturates). Bodies: 13 B and 64 KiB. Every point
 * `rounds` times, interleaved (round → body → path) so drift hits each path alike; medians
 * quoted. CPU per request is the proxy processes' CPU (utime+stime from /proc/<pid>/stat) ÷
 * requests completed: far less sensitive to the shared 2-core machine than the rates
 * (MACHINE-NOTES.md). For the remote path it is both agents together.
 *
 * When a target is missed (local < HAProxy's ratio, remote < 0.7 × kernel VXLAN), the path runs
 * once more with its agent(s) under `node --cpu-prof` (the remote path at both sizes, the local
 * path at the sizes it missed) and the top frames by self time go into the report.
 *
 * Addresses 127.0.0.80–99 and ports 18800–18899 only (other work shares this machine's loopback);
 * underlay 198.18.30.0/30 and overlay 100.64.1.0/24 inside the namespaces this file makes.
 *
 * Usage: `node --import tsx native-bench/mesh-bench.ts [seconds=5] [rounds=3]` (`make bench ONLY=mesh`).
 * Writes native-bench/results/mesh.md. Not a test: nothing passes or fails on a number.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const CLI = path.join(ROOT, 'src/cli/main.ts');
/** `make bench` builds first; the profile reads better without the TypeScript loader's frames. */
const BUILT_CLI = path.join(ROOT, 'dist/cli/main.js');
const WHOAMI = path.join(ROOT, 'src/agent/images/whoami.ts');
const AUTOCANNON = path.join(ROOT, 'node_modules/autocannon/autocannon.js');
const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
const CONNECTIONS = 50;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const IP = { whoami: '127.0.0.80', haproxy: '127.0.0.81', local: '127.0.0.82', remoteA: '127.0.0.83', remoteB: '127.0.0.84', profA: '127.0.0.85', profB: '127.0.0.86', profLocal: '127.0.0.87' } as const;
const PORT = { whoami: 18800, haproxy: 18801, published: 18802, dataPath: 18810, gossip: 18811 } as const;
const TAG = `mb${process.pid % 100000}`;
const KERNEL = { nsA: `${TAG}-a`, nsB: `${TAG}-b`, underlayA: '198.18.30.1', underlayB: '198.18.30.2', overlayA: '100.64.1.1', overlayB: '100.64.1.2' } as const;

const BODIES = [
  { label: '13 B', size: 13 },
  { label: '64 KiB', size: 65536 },
] as const;
type Generator = 'autocannon' | 'wrk';
const GENERATORS: readonly Generator[] = ['autocannon', 'wrk'];

type PathId = 'direct' | 'haproxy' | 'shoal-local' | 'shoal-remote' | 'kernel-vxlan';
interface BenchPath {
  readonly id: PathId;
  readonly label: string;
  /** Base URL the generator hits (no query). */
  readonly url: string;
  /** Processes whose CPU counts as the proxy's. */
  readonly pids: readonly number[];
  /** The namespace the generator must run in, if any. */
  readonly netns?: string;
}

interface Sample {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly errors: number;
  /** Proxy CPU µs per request; NaN when there is no proxy. */
  readonly cpuUsPerReq: number;
}

const children: ChildProcess[] = [];
const tmp = mkdtempSync(path.join(os.tmpdir(), `shoal-${TAG}-`));
const isRoot = process.getuid?.() === 0;

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function startProcess(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, netns?: string): ChildProcess {
  const argv = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  const child = spawn(argv[0] as string, argv[1] as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd: ROOT });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && code !== null && !stopping) process.stderr.write(`${cmd} exited ${code ?? signal}: ${stderr}\n`);
  });
  children.push(child);
  return child;
}

function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`No ready line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (b: Buffer): void => {
      buffered += b.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      const hit = lines.find(match);
      if (hit !== undefined) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(hit);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Exited (${code}) before it was ready`));
    });
  });
}

let stopping = false;
async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
  return Number(fields[11]) + Number(fields[12]);
}

function httpGet(host: string, port: number, urlPath = '/'): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: urlPath, timeout: 2000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

async function waitHttp(host: string, port: number, netns?: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (netns) {
      try {
        const code = sh('ip', ['netns', 'exec', netns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${host}:${port}/`]);
        if (code === '200') return;
      } catch {
        // not yet
      }
    } else if ((await httpGet(host, port)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Nothing answers 200 on ${host}:${port}${netns ? ` in ${netns}` : ''}`);
}

function startWhoami(host: string, netns?: string): ChildProcess {
  return startProcess(process.execPath, ['--import', 'tsx', WHOAMI], { HOST: host, PORT: String(PORT.whoami), SHOAL_SERVICE: 'whoami', SHOAL_TASK: 'whoami.1', SHOAL_NODE: 'bench' }, netns);
}

function startHaproxy(name: string, bind: string, server: string, netns?: string): ChildProcess {
  const cfg = path.join(tmp, `${name}.cfg`);
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4096',
      '  nbthread 1',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'listen bench',
      `  bind ${bind}`,
      `  server whoami ${server}`,
      '',
    ].join('\n'),
  );
  return startProcess('haproxy', ['-db', '-f', cfg], {}, netns);
}

/** A catalog publishing whoami on PORT.published, its one task at the whoami's address on `owner`. */
function writeCatalog(name: string, owner: string, others: readonly string[]): string {
  const file = path.join(tmp, `${name}.yaml`);
  const nodes = [`  ${owner}:\n    - service: whoami\n      address: "${IP.whoami}:${PORT.whoami}"`, ...others.map((n) => `  ${n}: []`)];
  writeFileSync(file, `services:\n  whoami:\n    ports:\n      - "${PORT.published}:80"\nnodes:\n${nodes.join('\n')}\n`);
  return file;
}

async function startAgent(node: string, address: string, catalog: string, join?: string, nodeFlags: readonly string[] = [], entry: readonly string[] = ['--import', 'tsx', CLI]): Promise<ChildProcess> {
  const args = [
    ...nodeFlags,
    ...entry,
    'agent',
    '--node-name',
    node,
    '--advertise-addr',
    address,
    '--data-path-port',
    String(PORT.dataPath),
    '--gossip-port',
    String(PORT.gossip),
    '--catalog',
    catalog,
    '--api-socket',
    path.join(tmp, `${node}.sock`),
    '--data-dir',
    path.join(tmp, node),
    ...(join ? ['--join', `${join}:${PORT.gossip}`] : []),
  ];
  const child = startProcess(process.execPath, args, { SHOAL_LOG_LEVEL: 'warn' });
  await waitForLine(child, (l) => l.startsWith('{"ready":true'));
  return child;
}

async function setUpKernel(): Promise<{ haproxy: ChildProcess } | undefined> {
  if (!isRoot) return undefined;
  const { nsA, nsB } = KERNEL;
  for (const ns of [nsA, nsB]) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      // absent
    }
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh('ip', ['link', 'add', `${TAG}a`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${TAG}b`, 'netns', nsB]);
  for (const [ns, dev, local, remote, overlay] of [
    [nsA, `${TAG}a`, KERNEL.underlayA, KERNEL.underlayB, KERNEL.overlayA],
    [nsB, `${TAG}b`, KERNEL.underlayB, KERNEL.underlayA, KERNEL.overlayB],
  ] as const) {
    sh('ip', ['-n', ns, 'addr', 'add', `${local}/30`, 'dev', dev]);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    sh('ip', ['-n', ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '4096', 'dstport', '4789', 'remote', remote, 'local', local, 'dev', dev]);
    sh('ip', ['-n', ns, 'addr', 'add', `${overlay}/24`, 'dev', 'vx0']);
    sh('ip', ['-n', ns, 'link', 'set', 'vx0', 'up']);
  }
  startWhoami(KERNEL.overlayB, nsB);
  const haproxy = startHaproxy('kernel', `127.0.0.1:${PORT.haproxy}`, `${KERNEL.overlayB}:${PORT.whoami}`, nsA);
  await waitHttp(KERNEL.overlayB, PORT.whoami, nsA);
  await waitHttp('127.0.0.1', PORT.haproxy, nsA);
  return { haproxy };
}

function parseWrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'];
  return Number(m[1]) * scale;
}

/** Runs the generator against `url` for `secs`; returns its numbers (latency in ms). */
function generate(generator: Generator, url: string, secs: number, netns?: string): Promise<Omit<Sample, 'cpuUsPerReq'>> {
  const [cmd, args] =
    generator === 'autocannon'
      ? [process.execPath, [AUTOCANNON, '-c', String(CONNECTIONS), '-d', String(secs), '-j', url]]
      : ['wrk', ['-t1', `-c${CONNECTIONS}`, `-d${secs}s`, '--latency', url]];
  const argv = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv[1] as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${generator} exited ${code}: ${err}`));
      if (generator === 'autocannon') {
        const r = JSON.parse(out) as { requests: { total: number }; latency: { p50: number; p99: number }; errors: number; timeouts: number; non2xx: number; duration: number };
        resolve({ rps: r.requests.total / r.duration, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, errors: r.errors + r.timeouts + r.non2xx });
      } else {
        const total = Number(/(\d+) requests in ([\d.]+)s/.exec(out)?.[1] ?? NaN);
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
        const pct = (p: string): number => parseWrkDuration(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
        const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
        const errs = errors ? errors.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
        resolve({ rps, p50: pct('50'), p99: pct('99'), requests: total, errors: errs + non2xx });
      }
    });
  });
}

async function measure(p: BenchPath, generator: Generator, size: number, secs: number): Promise<Sample> {
  const before = p.pids.map(cpuTicks);
  const r = await generate(generator, `${p.url}/?size=${size}`, secs, p.netns);
  const after = p.pids.map(cpuTicks);
  const cpuSeconds = after.reduce((s, t, i) => s + t - before[i]!, 0) / CLK_TCK;
  return { ...r, cpuUsPerReq: p.pids.length === 0 ? NaN : (cpuSeconds * 1e6) / Math.max(1, r.requests) };
}

const median = (xs: readonly number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
};

/**
 * Self time of a .cpuprofile within [fromUs, toUs] (V8's and process.hrtime's clocks are both
 * CLOCK_MONOTONIC on Linux), idle left out: the top functions, and the same grouped by file.
 */
function profileSummary(file: string, fromUs: number, toUs: number, count: number): { frames: string[]; files: string[]; busy: string } {
  interface Node {
    readonly id: number;
    readonly callFrame: { functionName: string; url: string; lineNumber: number };
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  let t = profile.startTime;
  let inWindow = 0;
  for (const [i, id] of profile.samples.entries()) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    inWindow++;
    hits.set(id, (hits.get(id) ?? 0) + 1);
  }
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  let busy = 0;
  for (const [id, n] of hits) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    busy += n;
    const url = frame.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
    const where = url ? `${url}:${frame.lineNumber + 1}` : 'native';
    const name = `${frame.functionName || '(anonymous)'} (${where})`;
    self.set(name, (self.get(name) ?? 0) + n);
    const group = url || frame.functionName;
    files.set(group, (files.get(group) ?? 0) + n);
  }
  const top = (m: Map<string, number>): string[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([k, v]) => `${((100 * v) / Math.max(1, busy)).toFixed(1).padStart(5)} %  ${k}`);
  return { frames: top(self), files: top(files), busy: `${((100 * busy) / Math.max(1, inWindow)).toFixed(0)} % of the load window's samples busy` };
}

/** Runs the remote path once more with both agents under --cpu-prof (the built dist/ when present: no loader hooks in the profile). */
async function profileRemote(size: number): Promise<{ a: ReturnType<typeof profileSummary>; b: ReturnType<typeof profileSummary>; rps: number }> {
  const dirA = path.join(tmp, `prof-a-${size}`);
  const dirB = path.join(tmp, `prof-b-${size}`);
  const catalog = writeCatalog('profile', 'prof-b', ['prof-a']);
  const entry = existsSync(BUILT_CLI) ? [BUILT_CLI] : undefined;
  const b = await startAgent('prof-b', IP.profB, catalog, undefined, ['--cpu-prof', '--cpu-prof-dir', dirB], entry);
  const a = await startAgent('prof-a', IP.profA, catalog, IP.profB, ['--cpu-prof', '--cpu-prof-dir', dirA], entry);
  await waitHttp(IP.profA, PORT.published);
  await generate('wrk', `http://${IP.profA}:${PORT.published}/?size=${size}`, 1);
  const from = Number(process.hrtime.bigint() / 1000n);
  const r = await generate('autocannon', `http://${IP.profA}:${PORT.published}/?size=${size}`, seconds);
  const to = Number(process.hrtime.bigint() / 1000n);
  await stop(a, 15_000);
  await stop(b, 15_000);
  const summaryOf = (dir: string): ReturnType<typeof profileSummary> => {
    const f = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
    return f ? profileSummary(path.join(dir, f), from, to, 15) : { frames: ['(no profile written)'], files: [], busy: '' };
  };
  return { a: summaryOf(dirA), b: summaryOf(dirB), rps: r.rps };
}

/** The local path once more with its agent under --cpu-prof (autocannon, `size` bytes). */
async function profileLocal(size: number): Promise<{ agent: ReturnType<typeof profileSummary>; rps: number }> {
  const dir = path.join(tmp, `prof-local-${size}`);
  const entry = existsSync(BUILT_CLI) ? [BUILT_CLI] : undefined;
  const agent = await startAgent('prof-local', IP.profLocal, writeCatalog('profile-local', 'prof-local', []), undefined, ['--cpu-prof', '--cpu-prof-dir', dir], entry);
  await waitHttp(IP.profLocal, PORT.published);
  await generate('wrk', `http://${IP.profLocal}:${PORT.published}/?size=${size}`, 1);
  const from = Number(process.hrtime.bigint() / 1000n);
  const r = await generate('autocannon', `http://${IP.profLocal}:${PORT.published}/?size=${size}`, seconds);
  const to = Number(process.hrtime.bigint() / 1000n);
  await stop(agent, 15_000);
  const f = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
  return { agent: f ? profileSummary(path.join(dir, f), from, to, 15) : { frames: ['(no profile written)'], files: [], busy: '' }, rps: r.rps };
}

async function main(): Promise<void> {
  log(`mesh-bench: ${seconds} s per point, ${rounds} rounds, c=${CONNECTIONS}`);
  const whoami = startWhoami(IP.whoami);
  await waitHttp(IP.whoami, PORT.whoami);
  const haproxy = startHaproxy('local', `${IP.haproxy}:${PORT.haproxy}`, `${IP.whoami}:${PORT.whoami}`);
  await waitHttp(IP.haproxy, PORT.haproxy);
  const local = await startAgent('bench-local', IP.local, writeCatalog('local', 'bench-local', []));
  await waitHttp(IP.local, PORT.published);
  const remoteCatalog = writeCatalog('remote', 'bench-b', ['bench-a']);
  const remoteB = await startAgent('bench-b', IP.remoteB, remoteCatalog);
  const remoteA = await startAgent('bench-a', IP.remoteA, remoteCatalog, IP.remoteB);
  await waitHttp(IP.remoteA, PORT.published);
  const kernel = await setUpKernel();

  const paths: BenchPath[] = [
    { id: 'direct', label: 'direct to the whoami task', url: `http://${IP.whoami}:${PORT.whoami}`, pids: [] },
    { id: 'haproxy', label: 'HAProxy, TCP mode, 1 thread', url: `http://${IP.haproxy}:${PORT.haproxy}`, pids: [haproxy.pid!] },
    { id: 'shoal-local', label: 'shoal, local endpoint', url: `http://${IP.local}:${PORT.published}`, pids: [local.pid!] },
    { id: 'shoal-remote', label: 'shoal, remote endpoint only (userspace overlay, 2 agents)', url: `http://${IP.remoteA}:${PORT.published}`, pids: [remoteA.pid!, remoteB.pid!] },
    ...(kernel ? [{ id: 'kernel-vxlan' as const, label: 'HAProxy → kernel VXLAN → task (2 namespaces)', url: `http://127.0.0.1:${PORT.haproxy}`, pids: [kernel.haproxy.pid!], netns: KERNEL.nsA }] : []),
  ];
  void whoami;

  // Warm-up: JIT, connection pools, ARP and forwarding entries.
  for (const p of paths) for (const b of BODIES) await measure(p, 'wrk', b.size, 1);

  const samples = new Map<string, Sample[]>();
  const key = (g: Generator, size: number, id: PathId): string => `${g}/${size}/${id}`;
  for (let round = 1; round <= rounds; round++) {
    for (const g of GENERATORS) {
      for (const b of BODIES) {
        for (const p of paths) {
          const s = await measure(p, g, b.size, seconds);
          const k = key(g, b.size, p.id);
          samples.set(k, [...(samples.get(k) ?? []), s]);
          log(`round ${round} ${g.padEnd(10)} ${b.label.padEnd(6)} ${p.id.padEnd(13)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  ${Number.isNaN(s.cpuUsPerReq) ? '' : `${s.cpuUsPerReq.toFixed(1)} µs CPU/req`}  errors ${s.errors}`);
        }
      }
    }
  }

  const med = (g: Generator, size: number, id: PathId, f: (s: Sample) => number): number => median((samples.get(key(g, size, id)) ?? []).map(f));
  const fmt = (x: number, digits = 0): string => (Number.isNaN(x) ? '–' : x.toFixed(digits));
  const lines: string[] = [];
  const verdicts: string[] = [];
  let missedRemote = false;
  const missedLocal = new Set<number>();
  const date = new Date().toISOString().slice(0, 10);
  lines.push(`# The routing mesh: HTTP through each path (${date}, ${seconds} s per point, median of ${rounds})`, '');
  lines.push('Targets (issue 5): shoal local path ratio ≥ HAProxy’s; shoal remote path ≥ 0.7 × the kernel VXLAN path.', '');
  for (const g of GENERATORS) {
    lines.push(`## ${g} (c=${CONNECTIONS}${g === 'wrk' ? ', 1 thread' : ''})`, '');
    lines.push('| body | path | req/s | ratio to direct | p50 ms | p99 ms | proxy CPU µs/req | errors |', '|---|---|---|---|---|---|---|---|');
    for (const b of BODIES) {
      const direct = med(g, b.size, 'direct', (s) => s.rps);
      for (const p of paths) {
        const rps = med(g, b.size, p.id, (s) => s.rps);
        const errors = (samples.get(key(g, b.size, p.id)) ?? []).reduce((n, s) => n + s.errors, 0);
        lines.push(`| ${b.label} | ${p.label} | ${fmt(rps)} | ${fmt(rps / direct, 2)} | ${fmt(med(g, b.size, p.id, (s) => s.p50), 2)} | ${fmt(med(g, b.size, p.id, (s) => s.p99), 2)} | ${fmt(med(g, b.size, p.id, (s) => s.cpuUsPerReq), 1)} | ${errors} |`);
      }
      const ratio = (id: PathId): number => med(g, b.size, id, (s) => s.rps) / direct;
      const localOk = ratio('shoal-local') >= ratio('haproxy');
      if (!localOk) missedLocal.add(b.size);
      verdicts.push(`- ${g}, ${b.label}: local ${fmt(ratio('shoal-local'), 2)} vs HAProxy ${fmt(ratio('haproxy'), 2)} → ${localOk ? 'met' : 'missed'}`);
      if (kernel) {
        const k = med(g, b.size, 'shoal-remote', (s) => s.rps) / med(g, b.size, 'kernel-vxlan', (s) => s.rps);
        missedRemote ||= k < 0.7;
        verdicts.push(`- ${g}, ${b.label}: remote / kernel VXLAN = ${fmt(k, 2)} (target ≥ 0.70) → ${k >= 0.7 ? 'met' : 'missed'}`);
      }
    }
    lines.push('');
  }
  lines.push('## Targets', '', ...verdicts, '');
  if (!kernel) lines.push('The kernel VXLAN row needs root (network namespaces): left out of this run.', '');
  lines.push(
    '## How to read it',
    '',
    '- One machine with 2 cores runs the generator, the proxy (or two agents) and the whoami task (a single Node process),',
    '  so only ratios within one run mean much; CPU µs per request (proxy process CPU ÷ requests completed) is the',
    '  steadier number. For the remote path it is both agents (ingress side + owner side) together; for the kernel',
    '  row it is HAProxy alone (the kernel’s VXLAN work runs in softirq, charged to whichever process is current).',
    '- HAProxy runs with `nbthread 1`, like the agent’s one event loop. The kernel row’s generator runs inside',
    '  HAProxy’s namespace (loopback there), the task in a second namespace behind kernel VXLAN over a veth pair.',
    '- Each generator keeps its 50 connections open (HTTP keep-alive): this measures the relays, not connection setup.',
    '- The local-vs-HAProxy verdict is inside the noise: in two full runs on 2026-11-25 it flipped at both body',
    '  sizes (13 B missed then met, 64 KiB met then missed). CPU per request did not move: the agent costs',
    '  1.4–1.6× HAProxy’s at 13 B and about 1.8× at 64 KiB (one write(2) per chunk read, plus GC).',
    `- Load average when the run ended: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}.`,
    '',
  );
  lines.push(
    '## What limits the remote path (hand-written notes, 2026-11-25; the profiles below are from this run)',
    '',
    '- Syscalls per segment, not TCP logic: in both agents the top self-time frames are `writeBuffer` (one',
    '  write(2) on the kernel socket per overlay segment received: the relay forwards each 1398-byte segment',
    '  as its own chunk) and node:dgram `doSend` (one sendto(2) per VXLAN datagram, ACKs included). The',
    '  userspace TCP state machine, checksums and VXLAN framing are a few % each.',
    '- Latency-bound as much as CPU-bound: at 13 B the agents are busy only about half of the load window;',
    '  tcpdump of one keep-alive connection fetching 64 KiB through agent A shows B sending in ACK-clocked',
    '  bursts while A acknowledges every second segment 0.2–0.5 ms apart (one segment handled per ~0.25 ms',
    '  on this loaded 2-core machine): 6–30 ms per 64 KiB request against 0.3 ms direct.',
    '- Tried and not enough: corking the relay’s kernel socket until setImmediate (one writev per event-loop',
    '  turn instead of a write per segment) gave no gain at 64 KiB and lost at 13 B: the agents are not',
    '  backlogged, so a turn rarely holds more than one segment of a connection.',
    '- Next steps, by expected gain: fewer datagrams per byte (stretch ACKs: one per burst rather than per two',
    '  segments; a larger overlay MTU between shoal peers, as tcp-bench shows 3.5× the throughput at 8950);',
    '  batched UDP sends (no sendmmsg in node:dgram: a native addon or io_uring); then the allocation and GC',
    '  work the profile shows.',
    '',
  );
  const section = (title: string, p: ReturnType<typeof profileSummary>): string[] => [
    `${title} — ${p.busy}; top functions by self time, then by file (% of busy samples):`,
    '',
    ...p.frames.map((l) => `    ${l}`),
    '',
    ...p.files.map((l) => `    ${l}`),
    '',
  ];
  if (missedRemote) {
    for (const b of BODIES) {
      log(`a target was missed: profiling the remote path (node --cpu-prof, autocannon, ${b.label})`);
      const prof = await profileRemote(b.size);
      lines.push(
        `## Profile of the remote path, ${b.label} (node --cpu-prof, autocannon c=${CONNECTIONS}, ${seconds} s, ${prof.rps.toFixed(0)} req/s under the profiler)`,
        '',
        ...section('Ingress agent A (downstream kernel TCP → userspace TCP over the overlay)', prof.a),
        ...section('Owning agent B (userspace TCP from the overlay → kernel TCP to the task)', prof.b),
      );
    }
  }
  for (const b of BODIES.filter((x) => missedLocal.has(x.size))) {
    log(`a target was missed: profiling the local path (node --cpu-prof, autocannon, ${b.label})`);
    const prof = await profileLocal(b.size);
    lines.push(
      `## Profile of the local path, ${b.label} (node --cpu-prof, autocannon c=${CONNECTIONS}, ${seconds} s, ${prof.rps.toFixed(0)} req/s under the profiler)`,
      '',
      ...section('The agent (downstream kernel TCP → kernel TCP to the task on loopback)', prof.agent),
    );
  }
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  writeFileSync(path.join(HERE, 'results', 'mesh.md'), lines.join('\n'));
  log(lines.join('\n'));
}

async function cleanup(): Promise<void> {
  stopping = true;
  await Promise.all(children.map((c) => stop(c)));
  if (isRoot) {
    for (const ns of [KERNEL.nsA, KERNEL.nsB]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // absent
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

main()
  .then(cleanup, async (error: unknown) => {
    process.stderr.write(`mesh-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await cleanup();
    process.exitCode = 1;
  })
  .catch(() => undefined);
