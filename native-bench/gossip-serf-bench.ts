/**
 * Gossip (issue 4, "Benchmark"): eight shoal gossip nodes against eight stock `serf agent`s
 * (Debian's serf 0.9.4, memberlist 0.2.2), each cluster alone on 127.0.0.1, both with
 * memberlist's LAN timers (serf's agent default; shoal's `LAN_CONFIG`). Two times per run:
 *
 * - all alive: from the last join until every member lists all eight alive;
 * - dead: from the SIGKILL of one member until every survivor lists it failed (serf) / dead (shoal).
 *
 * serf: eight agents started without -join, each waited for until it answers RPC; then seven
 * `serf join <first>` commands at once; the clock starts once the last of them is spawned. Every
 * agent is polled with `serf members -format=json` every 100 ms (so serf's times include up to
 * one poll period plus one CLI call; the median call duration is in the notes).
 * shoal: one node per process (gossip-serf-node.ts: Memberlist with its LAN defaults and the
 * real NodeTransport, as test/interop/gossip-node-runner.ts, but joining on command), all eight
 * started and waited for; then `join <first>` to seven of them at once, the clock starting once the
 * last is written. Times come from the nodes' member event lines, stamped by the node as it
 * writes them (wall clock, sub-ms; no polling delay).
 *
 * Rounds alternate which system goes first. Ports: serf 47000–47099 (16 a round), shoal
 * 47100–47199 (8 a round), the first ones free, 127.0.0.1 only. Every process is killed by PID when a round ends, on
 * error, on a signal and at exit; the whole run is bounded (DEADLINE_MS).
 *
 * Usage: `node --import tsx native-bench/gossip-serf-bench.ts [rounds=3]` (`make bench ONLY=gossip-serf`).
 * Writes native-bench/results/gossip-serf.md. Not a test: nothing passes or fails on a number.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const NODE = path.join(HERE, 'gossip-serf-node.ts');
const HOST = '127.0.0.1';
const N = 8;
/** Which member is SIGKILLed (the same in both systems; not the seed). */
const VICTIM = 5;
const POLL_MS = 100;
const WAIT_BOUND_MS = 60_000;
/** Quiet time between "all alive" and the SIGKILL, the same for both. */
const SETTLE_MS = 3_000;
const SERF_PORT_BASE = 47000;
const SHOAL_PORT_BASE = 47100;
const rounds = Number(process.argv[2] ?? 3);
const DEADLINE_MS = 20 * 60_000;

if (!(rounds >= 1 && rounds <= 20)) {
  process.stderr.write('gossip-serf-bench: rounds must be 1..20\n');
  process.exit(2);
}
try {
  execFileSync('sh', ['-c', 'command -v serf'], { stdio: 'ignore' });
} catch {
  process.stderr.write('gossip-serf-bench: needs serf on PATH (apt-get install serf); skipped\n');
  process.exit(0);
}

// ---------------------------------------------------------------- processes, killed by PID

const live = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function killAll(): void {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function killAllAndWait(): Promise<void> {
  const exits = [...live].map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()))));
  killAll();
  await Promise.race([Promise.all(exits), sleep(5_000)]);
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(1);
  });
}
setTimeout(() => {
  process.stderr.write(`gossip-serf-bench: still running after ${DEADLINE_MS / 1000} s; killing everything\n`);
  killAll();
  process.exit(1);
}, DEADLINE_MS).unref();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout });
    });
    track(child);
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => {
      const udp = createSocket('udp4');
      udp.once('error', () => {
        udp.close();
        server.close(() => resolve(false));
      });
      udp.bind({ address: HOST, port, exclusive: true }, () => {
        udp.close();
        server.close(() => resolve(true));
      });
    });
  });
}

/**
 * `count` ports of [from, from + 100) free for TCP and UDP right now. Loopback ephemeral ports
 * (other work's outgoing connections) land in these ranges too, so a fixed list would not do.
 */
async function freePorts(from: number, count: number): Promise<number[]> {
  const all = Array.from({ length: 100 }, (_, i) => from + i);
  const free = await Promise.all(all.map(portFree));
  const ports = all.filter((_, i) => free[i]);
  if (ports.length < count) throw new Error(`only ${ports.length} free ports in ${from}-${from + 99}`);
  return ports.slice(0, count);
}

// ---------------------------------------------------------------- serf

interface SerfMember {
  readonly name: string;
  readonly status: string;
}

/** Durations of every `serf members` call, for the notes. */
const cliMs: number[] = [];

async function serfMembers(rpcPort: number): Promise<SerfMember[] | undefined> {
  const t = performance.now();
  const r = await run('serf', ['members', `-rpc-addr=${HOST}:${rpcPort}`, '-format=json']);
  cliMs.push(performance.now() - t);
  if (r.code !== 0 || r.stdout.trim() === '') return undefined;
  try {
    return (JSON.parse(r.stdout) as { members: SerfMember[] }).members;
  } catch {
    return undefined;
  }
}

/**
 * Polls one agent every POLL_MS (start to start) until `ok`, bounded by `until`. `seen`: when
 * the first matching answer came back (performance.now()); `notBefore`: when the last call
 * that did not match was started, a lower bound on when the agent got there.
 */
async function pollUntil(rpcPort: number, ok: (m: readonly SerfMember[]) => boolean, until: number, what: string): Promise<{ seen: number; notBefore: number }> {
  let notBefore = performance.now();
  for (;;) {
    const started = performance.now();
    const members = await serfMembers(rpcPort);
    const now = performance.now();
    if (members && ok(members)) return { seen: now, notBefore };
    notBefore = started;
    if (now > until) throw new Error(`serf at ${rpcPort}: ${what} not seen within ${WAIT_BOUND_MS / 1000} s; last: ${JSON.stringify(members)}`);
    await sleep(Math.max(0, started + POLL_MS - now));
  }
}

interface Times {
  readonly allAliveMs: number;
  readonly deadMs: number;
  /** serf only: when the last `serf join` command returned, after the clock started. */
  readonly joinReturnedMs?: number;
  /** serf only: lower bounds from polling (the last calls that did not yet see it were started then). */
  readonly allAliveNotBeforeMs?: number;
  readonly deadNotBeforeMs?: number;
  /** shoal only: what completed "all alive" (node ← member, event), and suspect/dead events before it. */
  readonly lastStep?: string;
}

async function serfRound(round: number): Promise<Times> {
  const ports = await freePorts(SERF_PORT_BASE, 2 * N);
  const bind = ports.slice(0, N);
  const rpc = ports.slice(N);
  const names = Array.from({ length: N }, (_, i) => `serf${round}-${i}`);
  const agents = names.map((name, i) =>
    track(spawn('serf', ['agent', `-node=${name}`, `-bind=${HOST}:${bind[i]}`, `-rpc-addr=${HOST}:${rpc[i]}`, '-log-level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] })),
  );
  const stderr = agents.map(() => '');
  agents.forEach((a, i) => a.stderr?.on('data', (c: Buffer) => (stderr[i] = (stderr[i] + c.toString()).slice(-2000))));
  try {
    // Every agent up on its own (it lists itself), before any join.
    const upBy = performance.now() + 20_000;
    await Promise.all(
      rpc.map((p, i) =>
        pollUntil(p, (m) => m.length === 1, upBy, 'itself').catch((e: unknown) => {
          throw new Error(`${e instanceof Error ? e.message : String(e)}; stderr: ${stderr[i]}`);
        }),
      ),
    );
    const joins: Promise<{ code: number; stdout: string }>[] = [];
    for (let i = 1; i < N; i++) joins.push(run('serf', ['join', `-rpc-addr=${HOST}:${rpc[i]}`, `${HOST}:${bind[0]}`]));
    const t0 = performance.now();
    const joined = Promise.all(joins).then((rs) => {
      const bad = rs.find((r) => r.code !== 0);
      if (bad) throw new Error(`serf join failed: ${bad.stdout}`);
      return performance.now();
    });
    const allAlive = (m: readonly SerfMember[]): boolean => names.every((n) => m.some((x) => x.name === n && x.status === 'alive'));
    const until = t0 + WAIT_BOUND_MS;
    const seen = await Promise.all(rpc.map((p) => pollUntil(p, allAlive, until, 'all alive')));
    const joinReturned = await joined;
    const allAliveMs = Math.max(...seen.map((x) => x.seen)) - t0;
    const allAliveNotBeforeMs = Math.max(...seen.map((x) => x.notBefore)) - t0;

    await sleep(SETTLE_MS);
    const victim = agents[VICTIM]!;
    const tKill = performance.now();
    process.kill(victim.pid!, 'SIGKILL');
    const failed = (m: readonly SerfMember[]): boolean => m.some((x) => x.name === names[VICTIM] && x.status === 'failed');
    const survivors = rpc.filter((_, i) => i !== VICTIM);
    const dead = await Promise.all(survivors.map((p) => pollUntil(p, failed, tKill + WAIT_BOUND_MS, `${names[VICTIM]} failed`)));
    return {
      allAliveMs,
      allAliveNotBeforeMs,
      deadMs: Math.max(...dead.map((x) => x.seen)) - tKill,
      deadNotBeforeMs: Math.max(...dead.map((x) => x.notBefore)) - tKill,
      joinReturnedMs: joinReturned - t0,
    };
  } finally {
    await killAllAndWait();
  }
}

// ---------------------------------------------------------------- shoal

/** Wall-clock ms with sub-ms precision, as gossip-serf-node.ts stamps its lines. */
const wallNow = (): number => performance.timeOrigin + performance.now();

/** One gossip-serf-node.ts process: its view of each member (from event lines), stamped by the node. */
class ShoalNode {
  readonly view = new Map<string, string>();
  readyAt: number | undefined;
  stderr = '';
  readonly child: ChildProcess;

  constructor(
    readonly name: string,
    port: number,
    onLine: (node: ShoalNode, line: Record<string, unknown>, at: number) => void,
  ) {
    this.child = track(
      spawn(process.execPath, ['--import', 'tsx', NODE, JSON.stringify({ name, port, host: HOST })], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, SHOAL_LOG_LEVEL: 'warn' },
      }),
    );
    let partial = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        if (p.trim() === '') continue;
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(p) as Record<string, unknown>;
        } catch {
          continue;
        }
        const at = typeof line['at'] === 'number' ? line['at'] : wallNow();
        if (line['type'] === 'ready') this.readyAt = at;
        if (line['type'] === 'event' && typeof line['member'] === 'string' && typeof line['state'] === 'string') this.view.set(line['member'], line['state']);
        onLine(this, line, at);
      }
    });
    this.child.stderr?.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString()).slice(-2000)));
  }
}

/** Resolves with the stamp of the line after which `cond` first holds; rejects after `ms`. */
function waitFor(register: (check: (at: number) => void) => void, cond: () => boolean, ms: number, what: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`shoal: ${what()} not seen within ${ms / 1000} s`));
    }, ms);
    register((at) => {
      if (done || !cond()) return;
      done = true;
      clearTimeout(timer);
      resolve(at);
    });
  });
}

async function shoalRound(round: number): Promise<Times> {
  const ports = await freePorts(SHOAL_PORT_BASE, N);
  const names = Array.from({ length: N }, (_, i) => `shoal${round}-${i}`);
  let checks: ((at: number) => void)[] = [];
  let last = '';
  let flaps = 0;
  const onLine = (node: ShoalNode, line: Record<string, unknown>, at: number): void => {
    if (line['type'] === 'fatal' || line['type'] === 'join-failed') process.stderr.write(`${node.name}: ${JSON.stringify(line)}\n`);
    if (line['type'] === 'event') {
      last = `${node.name} ← ${String(line['member'])} (${String(line['event'])})`;
      if (line['state'] === 'suspect' || line['state'] === 'dead') flaps++;
    }
    for (const c of checks) c(at);
  };
  const nodes: ShoalNode[] = [];
  try {
    // Every node up on its own, before any join.
    for (let i = 0; i < N; i++) nodes.push(new ShoalNode(names[i]!, ports[i]!, onLine));
    const allReady = (): boolean => nodes.every((n) => n.readyAt !== undefined);
    await waitFor((c) => checks.push(c), allReady, 60_000, () => `all ready; ${nodes.map((n) => n.stderr).join(' ')}`);
    const seesAll = (n: ShoalNode): boolean => names.every((m) => m === n.name || n.view.get(m) === 'alive');
    checks = [];
    const aliveAt = waitFor((c) => checks.push(c), () => nodes.every(seesAll), WAIT_BOUND_MS, () => `all alive (views: ${JSON.stringify(nodes.map((n) => [...n.view]))})`);
    for (let i = 1; i < N; i++) nodes[i]!.child.stdin?.write(`join ${HOST}:${ports[0]}\n`);
    const t0 = wallNow();
    const allAliveMs = (await aliveAt) - t0;
    const lastStep = `last: ${last}; suspect/dead events before: ${flaps}`;

    await sleep(SETTLE_MS);
    checks = [];
    const victim = nodes[VICTIM]!;
    const survivors = nodes.filter((n) => n !== victim);
    const deadAt = waitFor((c) => checks.push(c), () => survivors.every((n) => n.view.get(victim.name) === 'dead'), WAIT_BOUND_MS, () => `${victim.name} dead everywhere`);
    const tKill = wallNow();
    process.kill(victim.child.pid!, 'SIGKILL');
    const deadMs = (await deadAt) - tKill;
    return { allAliveMs, deadMs, lastStep };
  } finally {
    checks = [];
    for (const n of nodes) n.child.stdin?.end();
    await killAllAndWait();
  }
}

// ---------------------------------------------------------------- report

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (ms: number): string => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const loadStart = os.loadavg();
  const serf: Times[] = [];
  const shoal: Times[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['serf', 'shoal'] as const) : (['shoal', 'serf'] as const);
    for (const which of order) {
      process.stdout.write(`round ${r + 1}: ${which} … `);
      const once = (): Promise<Times> => (which === 'serf' ? serfRound(r) : shoalRound(r));
      // One retry: a port found free can still be taken by another process's connection before bind.
      const t = await once().catch((e: unknown) => {
        process.stdout.write(`failed (${e instanceof Error ? e.message : String(e)}), once more … `);
        return once();
      });
      (which === 'serf' ? serf : shoal).push(t);
      process.stdout.write(`all alive ${sec(t.allAliveMs)} s, dead ${sec(t.deadMs)} s${t.lastStep ? ` (${t.lastStep})` : ''}\n`);
    }
  }
  const loadEnd = os.loadavg();

  const row = (label: string, xs: readonly number[]): string => `| ${label} | **${sec(median(xs))}** | ${xs.map(sec).join(' / ')} |`;
  const serfVersion = (() => {
    try {
      return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'serf']).toString().trim();
    } catch {
      return execFileSync('serf', ['version']).toString().split('\n')[0] ?? '?';
    }
  })();
  const cpus = os.cpus();
  const md = `## Gossip: 8 shoal nodes vs 8 serf agents (loopback, memberlist LAN timers)

Both clusters alone on 127.0.0.1, one process per member, memberlist's LAN profile on both sides
(probe 1 s, probe timeout 500 ms, gossip 200 ms to 3 nodes, suspicion mult 4 / max mult 6,
push/pull 30 s). Seven members join the first. Then member ${VICTIM} (0-based; 0 is the seed) is SIGKILLed after ${SETTLE_MS / 1000} s of quiet.
Seconds; median of ${rounds} rounds, then the individual rounds (rounds alternate which system runs first).

| measure | median (s) | rounds (s) |
|---|---|---|
${row('serf: all 8 see all 8 alive, after the last join', serf.map((t) => t.allAliveMs))}
${row('serf, the same, lower bound from polling', serf.map((t) => t.allAliveNotBeforeMs ?? 0))}
${row('shoal: all 8 see all 8 alive, after the last join', shoal.map((t) => t.allAliveMs))}
${row('serf: all 7 survivors show the killed agent failed', serf.map((t) => t.deadMs))}
${row('serf, the same, lower bound from polling', serf.map((t) => t.deadNotBeforeMs ?? 0))}
${row('shoal: all 7 survivors see the killed node dead', shoal.map((t) => t.deadMs))}

How each is measured:
- serf: eight \`serf agent\`s started without \`-join\`, each waited for until it answers RPC;
  then seven \`serf join 127.0.0.1:<first>\` at once, the clock starting when the last is spawned
  (the last of them returned after a median ${sec(median(serf.map((t) => t.joinReturnedMs ?? 0)))} s). Each agent is polled with
  \`serf members -format=json\` every ${POLL_MS} ms; a time is when the last agent's matching answer
  came back, so serf's times include up to one poll period plus one CLI call
  (median \`serf members\` call here: ${cliMs.length > 0 ? median(cliMs).toFixed(0) : '?'} ms, over ${cliMs.length} calls). The "lower bound"
  rows are when the last answers that did not yet show it were asked for: the true time lies between the two rows.
- shoal: native-bench/gossip-serf-node.ts per node (Memberlist with its \`LAN_CONFIG\` defaults and
  NodeTransport, as test/interop/gossip-node-runner.ts but joining on command): eight started and
  waited for, then \`join 127.0.0.1:<first>\` written to seven of them at once, the clock starting
  when the last is written. Times are from the nodes' member event lines (join/alive/dead), stamped
  by each node as it writes them: no polling delay. The event that completed "all alive", by round:
  ${shoal.map((t) => t.lastStep ?? '?').join(' · ')}.
- dead: from the \`kill -9\` of member ${VICTIM} (not the seed) until every survivor lists it \`failed\` (serf)
  or \`dead\` (shoal). Both sides need a failed probe, then the Lifeguard suspicion timeout
  (4 s at the minimum for 8 members, shortened from 24 s by independent confirmations), then the dead gossip.

Machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? '?'}; Node ${process.version}; serf ${serfVersion}.
Load average (1/5/15 min) at the start: ${loadStart.map((x) => x.toFixed(2)).join(' / ')}; at the end: ${loadEnd.map((x) => x.toFixed(2)).join(' / ')}
(the machine is shared with other work; the load is not this bench's alone).
`;
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  writeFileSync(path.join(HERE, 'results', 'gossip-serf.md'), md);
  process.stdout.write(`\n${md}`);
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`gossip-serf-bench: ${e instanceof Error ? e.message : String(e)}\n`);
    killAll();
    process.exit(1);
  },
);
