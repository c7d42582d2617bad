/**
 * Simulated large cluster (issue 4, "Benchmark"): N shoal Memberlist nodes with memberlist's LAN
 * timers on the in-memory network, in simulated time. Measures
 * - convergence: joins staggered over a few seconds (each to a random node already up), then the
 *   simulated time from the last join until every node sees every node alive;
 * - load: packets and bytes per node per second in steady state, and push/pull streams;
 * - failure detection: a node killed, the time until every node has it dead, beside the
 *   suspicion bounds (min, max) the Lifeguard formula gives for N.
 * Usage: `node --import tsx native-bench/gossip-sim-bench.ts [nodes=1000] [seed=1]`.
 * Writes native-bench/results/gossip-sim.md. Not a test: nothing passes or fails on a number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock, Timer } from '../src/lib/clock.js';
import { SeededRng } from '../src/lib/rng.js';
import { suspicionBounds } from '../src/gossip/formulas.js';
import { LAN_CONFIG, Memberlist } from '../src/gossip/memberlist.js';
import { MemoryNetwork } from '../src/gossip/memory-transport.js';
import type { GossipAddress } from '../src/gossip/transport.js';

/**
 * A manual clock on a binary heap: src/lib's ManualClock scans every timer per step, fine for
 * tests, quadratic for thousands of nodes with packets in flight.
 */
interface HeapTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

class HeapClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: HeapTimer[] = [];

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const t: HeapTimer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, fn, cancelled: false };
    this.#push(t);
    return { cancel: () => void (t.cancelled = true) };
  }

  advanceTo(target: number): void {
    for (;;) {
      const top = this.#heap[0];
      if (!top || top.at > target) break;
      this.#pop();
      if (top.cancelled) continue;
      this.#now = Math.max(this.#now, top.at);
      top.fn();
    }
    this.#now = Math.max(this.#now, target);
  }

  #less(i: number, j: number): boolean {
    const a = this.#heap[i]!;
    const b = this.#heap[j]!;
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    [this.#heap[i], this.#heap[j]] = [this.#heap[j]!, this.#heap[i]!];
  }

  #push(t: HeapTimer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(l, m)) m = l;
      if (r < h.length && this.#less(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
  }
}

const N = Number(process.argv[2] ?? 1000);
const SEED = Number(process.argv[3] ?? 1);
const JOIN_SPREAD_MS = 10_000;
const STEADY_MS = 60_000;

const clock = new HeapClock();
const rng = new SeededRng(SEED);
const net = new MemoryNetwork({ clock, rng: rng.fork() });
const address = (i: number): GossipAddress => ({ host: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 7946 });
const nodes: Memberlist[] = [];
const wall0 = performance.now();

function step(ms: number): void {
  clock.advanceTo(clock.now() + ms);
}

function allSee(pred: (m: Memberlist) => boolean, live: readonly Memberlist[]): boolean {
  return live.every(pred);
}

function runUntil(maxMs: number, cond: () => boolean, stepMs = 250): number | undefined {
  const start = clock.now();
  while (clock.now() - start <= maxMs) {
    if (cond()) return clock.now() - start;
    step(stepMs);
  }
  return undefined;
}

// Staggered start: node i starts at a random moment and joins a random node already up.
const startAt = Array.from({ length: N }, (_, i) => (i === 0 ? 0 : Math.floor(rng.float() * JOIN_SPREAD_MS)));
const order = [...startAt.keys()].sort((a, b) => startAt[a]! - startAt[b]!);
let joinFailures = 0;
for (const i of order) {
  clock.advanceTo(startAt[i]!);
  const ml = Memberlist.create({ name: `n${i}`, transport: net.bind(address(i)), clock, rng: rng.fork() });
  if (nodes.length > 0) {
    const seed = nodes[rng.int(nodes.length)]!;
    ml.join([seed.localMember.address]).catch(() => joinFailures++);
  }
  nodes.push(ml);
}
const converged = runUntil(300_000, () => allSee((m) => m.members().length === N, nodes));
const convergeWallMs = performance.now() - wall0;

// Steady state.
const before = { ...net.stats };
const wall1 = performance.now();
step(STEADY_MS);
const steadyWallMs = performance.now() - wall1;
const sent = net.stats.packetsSent - before.packetsSent;
const bytes = net.stats.packetBytesSent - before.packetBytesSent;
const streams = net.stats.streamsOpened - before.streamsOpened;
const perNodeSec = sent / N / (STEADY_MS / 1000);
const bytesPerNodeSec = bytes / N / (STEADY_MS / 1000);

// Failure detection.
const victim = nodes[Math.floor(N / 2)]!;
const victimName = victim.name;
victim.shutdown();
const live = nodes.filter((m) => m !== victim);
const detected = runUntil(300_000, () => allSee((m) => m.member(victimName)?.state === 'dead', live), 100);
const firstDead = Math.min(...live.map((m) => m.member(victimName)?.stateChangeAt ?? Infinity));
const killedAt = clock.now() - (detected ?? 0);
const bounds = suspicionBounds(LAN_CONFIG.suspicionMult, LAN_CONFIG.suspicionMaxTimeoutMult, N, LAN_CONFIG.probeIntervalMs);
for (const m of nodes) m.shutdown();

const s = (ms: number | undefined): string => (ms === undefined ? 'did not happen within 300 s' : `${(ms / 1000).toFixed(1)} s`);
const table = [
  `## Gossip: simulated ${N}-node cluster (memberlist LAN timers, in-memory network, seed ${SEED})`,
  '',
  '| measure | value |',
  '|---|---|',
  `| joins (staggered over ${JOIN_SPREAD_MS / 1000} s, each to a random node up) | ${N - 1}, ${joinFailures} failed |`,
  `| all see all alive, after the last join | ${s(converged)} |`,
  `| UDP packets per node per second, steady state | ${perNodeSec.toFixed(2)} |`,
  `| UDP bytes per node per second, steady state | ${bytesPerNodeSec.toFixed(0)} |`,
  `| push/pull streams per second, whole cluster | ${(streams / (STEADY_MS / 1000)).toFixed(2)} |`,
  `| killed node: first declared dead after | ${s(Number.isFinite(firstDead) ? firstDead - killedAt : undefined)} |`,
  `| killed node: dead at every node after | ${s(detected)} |`,
  `| suspicion bounds for N (min / max) | ${s(bounds.minMs)} / ${s(bounds.maxMs)} |`,
  `| wall time: start + convergence / 60 s steady state | ${(convergeWallMs / 1000).toFixed(1)} s / ${(steadyWallMs / 1000).toFixed(1)} s |`,
  '',
].join('\n');
process.stdout.write(`${table}\n`);
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'gossip-sim.md'), table);
