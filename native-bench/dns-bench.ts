/**
 * Embedded DNS (issue 6, "Benchmark"): dnsperf against shoal's DNS and against dnsmasq in the
 * same run, both serving the same records on UDP over loopback, both answering the host-side
 * (127.64.X.Y) forms. Each round runs both servers back to back, alternating which goes first;
 * the table gives medians over rounds.
 * - saturating: dnsperf with 4 clients and 100 queries outstanding, as fast as answers come;
 *   queries per second and the latency at that load;
 * - paced: a fixed 2000 queries per second, the latency a client sees at ordinary load.
 * The query mix is every record type the embedded DNS answers, plus NXDOMAIN and NODATA.
 * `shoal-nocache` is shoal without its answer cache (the agent's default until its records have
 * version()). A fourth server, node:dgram echoing every query back, measures what Node's UDP
 * path alone allows. Each saturating run also reads the server's CPU time from /proc (user and
 * system) and divides it by the queries answered: CPU per query is far less sensitive to the
 * machine's other load than queries/s (MACHINE-NOTES.md).
 * Usage: `node --import tsx native-bench/dns-bench.ts [seconds per run=10] [rounds=3]`.
 * Needs dnsperf and dnsmasq (Debian packages dnsperf and dnsmasq or dnsmasq-base).
 * Writes native-bench/results/dns.md. Not a test: nothing passes or fails on a number.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceRecord, TaskRecord } from '../src/dns/records.js';
import { formatIpv4, parseIpv4, toMirror } from '../src/dns/records.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const ADDRESS = '127.0.0.1';
const SHOAL_PORT = 19400;
const DNSMASQ_PORT = 19401;
const ECHO_PORT = 19402;
const NOCACHE_PORT = 19403;
/** `echo` is node:dgram answering each query with itself: the ceiling for any Node UDP server here. */
type ServerKind = 'shoal' | 'shoal-nocache' | 'dnsmasq' | 'echo';
const KINDS: readonly ServerKind[] = ['shoal', 'shoal-nocache', 'dnsmasq', 'echo'];
const PORTS: Record<ServerKind, number> = { shoal: SHOAL_PORT, 'shoal-nocache': NOCACHE_PORT, dnsmasq: DNSMASQ_PORT, echo: ECHO_PORT };
const seconds = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 3);

for (const tool of ['dnsperf', 'dnsmasq']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    process.stderr.write(`dns-bench: needs ${tool} on PATH (apt-get install dnsperf dnsmasq-base); skipped\n`);
    process.exit(0);
  }
}

// The records: a vip service with three tasks, a dnsrr service with four.
const ids = ['k5q3n9x2m7c4v8b1z6a0s3d5f', 'p0o9i8u7y6t5r4e3w2q1a2s3d', 'l1k2j3h4g5f6d7s8a9z0x1c2v', 'm3n4b5v6c7x8z9a0s1d2f3g4h', 'q7w8e9r0t1y2u3i4o5p6a7s8d', 'a1s2d3f4g5h6j7k8l9z0x1c2v', 'z9x8c7v6b5n4m3l2k1j0h9g8f'];
const services: ServiceRecord[] = [
  { name: 'web', endpointMode: 'vip', vip: '100.64.1.2', ports: [{ protocol: 'tcp', port: 80, name: 'http' }] },
  { name: 'db', endpointMode: 'dnsrr', ports: [{ protocol: 'tcp', port: 5432 }] },
];
const tasks: TaskRecord[] = [
  ...[0, 1, 2].map((i) => ({ service: 'web', slot: String(i + 1), taskId: ids[i]!, address: `100.64.1.${10 + i}`, healthy: true })),
  ...[0, 1, 2, 3].map((i) => ({ service: 'db', slot: String(i + 1), taskId: ids[3 + i]!, address: `100.64.1.${20 + i}`, healthy: true })),
];
const mirror = (overlay: string): string => formatIpv4(toMirror(parseIpv4(overlay)!));
const web1 = tasks[0]!;
const queries = [
  'web A',
  'tasks.web A',
  'db A',
  `web.1.${web1.taskId} A`,
  '_http._tcp.web SRV',
  `${mirror('100.64.1.2').split('.').reverse().join('.')}.in-addr.arpa PTR`,
  'web AAAA',
  'nosuch A',
];

const work = mkdtempSync(path.join(os.tmpdir(), 'shoal-dns-bench-'));
const queryFile = path.join(work, 'queries.txt');
writeFileSync(queryFile, `${queries.join('\n')}\n`);
const recordsFile = path.join(work, 'records.json');
writeFileSync(recordsFile, JSON.stringify({ services, tasks }));

// dnsmasq serves the same answers from a hosts file and srv-host lines; --local=/#/ makes it
// answer NXDOMAIN/NODATA itself instead of forwarding, as shoal does for Swarm names.
const hosts = [
  `${mirror('100.64.1.2')} web`,
  ...tasks.filter((t) => t.service === 'web').map((t) => `${mirror(t.address)} tasks.web web.${t.slot}.${t.taskId}`),
  ...tasks.filter((t) => t.service === 'db').map((t) => `${mirror(t.address)} db tasks.db db.${t.slot}.${t.taskId}`),
];
const hostsFile = path.join(work, 'hosts');
writeFileSync(hostsFile, `${hosts.join('\n')}\n`);
const dnsmasqArgs = [
  '--keep-in-foreground',
  '--no-hosts',
  '--no-resolv',
  `--addn-hosts=${hostsFile}`,
  `--listen-address=${ADDRESS}`,
  '--bind-interfaces',
  `--port=${DNSMASQ_PORT}`,
  '--pid-file=',
  '--local=/#/',
  '--local-ttl=1',
  '--cache-size=10000',
  '--log-facility=/dev/null',
  ...(process.getuid?.() === 0 ? ['--user=root'] : []),
  ...tasks.filter((t) => t.service === 'web').map((t) => `--srv-host=_http._tcp.web,web.${t.slot}.${t.taskId},80,0,1`),
];

function waitReady(child: ChildProcess, probePort: number): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`Server exited early (${code})`)));
    // Ready when one pass over the query file is answered in full.
    const deadline = Date.now() + 10_000;
    const probe = (): void => {
      try {
        const out = execFileSync('dnsperf', ['-s', ADDRESS, '-p', String(probePort), '-d', queryFile, '-n', '1', '-t', '1'], { encoding: 'utf8' });
        if (/Queries lost:\s+0 /.test(out)) return resolve();
      } catch {
        // not yet
      }
      if (Date.now() > deadline) reject(new Error(`No answer on port ${probePort}`));
      else setTimeout(probe, 200);
    };
    probe();
  });
}

async function start(kind: ServerKind): Promise<ChildProcess> {
  const node = (...extra: string[]): ChildProcess =>
    spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'dns-serve.ts'), ADDRESS, String(PORTS[kind]), recordsFile, ...extra], { cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'] });
  const child = kind === 'shoal' ? node() : kind === 'shoal-nocache' ? node('nocache') : kind === 'echo' ? node('echo') : spawn('dnsmasq', dnsmasqArgs, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitReady(child, PORTS[kind]);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

interface Run {
  readonly qps: number;
  readonly avgMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly stddevMs: number;
  readonly lostPct: number;
  readonly completed: number;
  readonly rcodes: string;
}

/** A process's user and system CPU seconds so far (/proc/<pid>/stat fields 14 and 15, in clock ticks). */
function cpuOf(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // USER_HZ: 100 on every Linux architecture Node runs on
  return { user: Number(fields[11]) / hz, system: Number(fields[12]) / hz };
}

interface Cpu {
  /** Microseconds of server CPU per answered query: user, system, total. */
  readonly userUs: number;
  readonly sysUs: number;
  readonly totalUs: number;
}

function dnsperf(port: number, extra: string[], runSeconds = seconds): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('dnsperf', ['-s', ADDRESS, '-p', String(port), '-d', queryFile, '-l', String(runSeconds), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', () => {
      const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
      const latency = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(out);
      resolve({
        qps: num(/Queries per second:\s+([\d.]+)/),
        avgMs: Number(latency?.[1] ?? NaN) * 1000,
        minMs: Number(latency?.[2] ?? NaN) * 1000,
        maxMs: Number(latency?.[3] ?? NaN) * 1000,
        stddevMs: num(/Latency StdDev \(s\):\s+([\d.]+)/) * 1000,
        lostPct: num(/Queries lost:\s+\d+ \(([\d.]+)%\)/),
        completed: num(/Queries completed:\s+(\d+)/),
        rcodes: (/Response codes:\s+(.*)/.exec(out)?.[1] ?? '').trim(),
      });
    });
  });
}

const SATURATING = ['-c', '4', '-q', '100'];
const PACED = ['-c', '4', '-q', '100', '-Q', '2000'];

const results = Object.fromEntries(KINDS.map((k) => [k, { saturating: [] as Run[], paced: [] as Run[], cpu: [] as Cpu[] }])) as Record<ServerKind, { saturating: Run[]; paced: Run[]; cpu: Cpu[] }>;
const loadBefore = os.loadavg();
try {
  for (let round = 0; round < rounds; round++) {
    const order: ServerKind[] = round % 2 === 0 ? [...KINDS] : [...KINDS].reverse();
    for (const kind of order) {
      const child = await start(kind);
      try {
        const port = PORTS[kind];
        // Warm-up, discarded: V8's JIT for shoal, the same treatment for dnsmasq.
        await dnsperf(port, SATURATING, 2);
        const before = cpuOf(child.pid!);
        const run = await dnsperf(port, SATURATING);
        const after = cpuOf(child.pid!);
        results[kind].saturating.push(run);
        const per = (s: number): number => (s * 1e6) / Math.max(1, run.completed);
        const cpu = { userUs: per(after.user - before.user), sysUs: per(after.system - before.system), totalUs: per(after.user - before.user + after.system - before.system) };
        results[kind].cpu.push(cpu);
        results[kind].paced.push(await dnsperf(port, PACED));
        process.stdout.write(`round ${round + 1} ${kind}: ${run.qps.toFixed(0)} q/s, ${cpu.totalUs.toFixed(2)} µs CPU/query (load ${os.loadavg()[0]!.toFixed(2)})\n`);
      } finally {
        await stop(child);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const loadAfter = os.loadavg();

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const row = (kind: ServerKind): string => {
  const sat = results[kind].saturating;
  const paced = results[kind].paced;
  const cpu = results[kind].cpu;
  return `| ${kind} | ${median(sat.map((r) => r.qps)).toFixed(0)} | ${median(cpu.map((c) => c.totalUs)).toFixed(2)} (${median(cpu.map((c) => c.userUs)).toFixed(2)} + ${median(cpu.map((c) => c.sysUs)).toFixed(2)}) | ${median(sat.map((r) => r.avgMs)).toFixed(3)} | ${median(sat.map((r) => r.lostPct)).toFixed(2)} % | ${median(paced.map((r) => r.avgMs)).toFixed(3)} | ${median(paced.map((r) => r.stddevMs)).toFixed(3)} | ${median(paced.map((r) => r.maxMs)).toFixed(3)} |`;
};
const cpuPerQuery = (kind: ServerKind): number => median(results[kind].cpu.map((c) => c.totalUs));
const perRound = (kind: ServerKind): string => results[kind].saturating.map((r, i) => `${r.qps.toFixed(0)} q/s ${results[kind].cpu[i]!.totalUs.toFixed(2)} µs`).join('; ');
const qps = (kind: ServerKind): number => median(results[kind].saturating.map((r) => r.qps));
const ratio = qps('shoal') / qps('dnsmasq');
const echoRatio = qps('shoal') / qps('echo');
const nocacheRatio = qps('shoal-nocache') / qps('dnsmasq');
const version = (cmd: string, args: string[]): string => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const line = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').find((l) => /[Vv]ersion \d+\.\d+/.test(l)) ?? '?';
  return `${cmd} ${/\d+\.\d+(?:\.\d+)?/.exec(line)?.[0] ?? '?'}`;
};

const table = `## Embedded DNS: shoal vs dnsmasq under dnsperf (UDP, loopback)

Same records in both (a vip service with 3 tasks, a dnsrr service with 4), same query mix cycled:
${queries.map((q) => `\`${q}\``).join(', ')}. Median of ${rounds} rounds of ${seconds} s per server and load;
each round runs every server back to back (order reversed every other round).

| server | queries/s (saturating) | server CPU per query, µs (user + sys) | avg latency, saturating (ms) | lost | avg latency at 2000 q/s (ms) | stddev at 2000 q/s (ms) | max at 2000 q/s (ms) |
|---|---|---|---|---|---|---|---|
${KINDS.map(row).join('\n')}

shoal / dnsmasq, saturating queries/s: **${ratio.toFixed(2)}×** (target ≥ 1.0×); without the answer cache ${nocacheRatio.toFixed(2)}×. shoal / echo: ${echoRatio.toFixed(2)}×.
CPU per query, dnsmasq / shoal: **${(cpuPerQuery('dnsmasq') / cpuPerQuery('shoal')).toFixed(2)}×** (without the cache ${(cpuPerQuery('dnsmasq') / cpuPerQuery('shoal-nocache')).toFixed(2)}×; echo ${(cpuPerQuery('dnsmasq') / cpuPerQuery('echo')).toFixed(2)}×).
\`echo\` is not a DNS server: node:dgram sending each query straight back (QR set), on the same
send path as shoal's listener — the least CPU per query any server on node:dgram spends here.

Every round (saturating queries/s, server CPU per query):
${KINDS.map((k) => `- ${k}: ${perRound(k)}`).join('\n')}

Load average (1, 5, 15 min): ${loadBefore.map((l) => l.toFixed(2)).join(', ')} before, ${loadAfter.map((l) => l.toFixed(2)).join(', ')} after (2 cores, shared with other work).

Response codes, last saturating run — shoal: ${results.shoal.saturating.at(-1)?.rcodes ?? '?'}; dnsmasq: ${results.dnsmasq.saturating.at(-1)?.rcodes ?? '?'}.

Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}; Node ${process.version}; ${version('dnsmasq', ['--version'])}; ${version('dnsperf', ['-h'])}.
dnsperf: \`-c 4 -q 100\` (saturating), \`-c 4 -q 100 -Q 2000\` (paced), after a discarded 2 s warm-up; dnsperf shares the machine with the server under test.
`;

const dir = path.join(HERE, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'dns.md'), table);
process.stdout.write(`\n${table}`);
