/**
 * Userspace TCP over the overlay (issue 3, "Benchmark"): bulk throughput between two shoal stacks
 * in two processes on loopback (each a VTEP on 127.0.0.x, an overlay interface and TCP), at
 * overlay MTU 1450 and 8950, beside
 * - Linux's own kernel VXLAN between two network namespaces, measured with iperf3 (needs root
 *   and iperf3; left out with a note otherwise);
 * - Node's raw UDP ceiling: one process sending datagrams of the VXLAN size to another as fast
 *   as node:dgram allows (what any userspace VXLAN in Node sits under).
 * Each point runs `rounds` times and the table gives medians; CPU seconds per GB (process CPU ÷
 * bytes) are far less sensitive to a busy 2-core machine than the rates (MACHINE-NOTES.md).
 * Usage: `node --import tsx native-bench/tcp-bench.ts [seconds=5] [rounds=3]`.
 * Writes native-bench/results/tcp.md. Not a test: nothing passes or fails on a number.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PEER = path.join(HERE, 'tcp-peer.ts');
const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
const MTUS = [1450, 8950];

interface Point {
  readonly gbit: number;
  readonly senderCpuPerGb: number;
  readonly receiverCpuPerGb: number;
}

function start(args: readonly string[]): { child: ChildProcess; lines: Promise<string[]> } {
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buffered = '';
  child.stdout!.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') lines.push(p);
    for (const w of waiters.splice(0)) w();
  });
  const done = new Promise<string[]>((resolve) => child.on('exit', () => resolve(lines)));
  (child as ChildProcess & { waitLine?: () => Promise<void> }).waitLine = () => new Promise<void>((r) => (lines.length > 0 ? r() : waiters.push(r)));
  return { child, lines: done };
}

async function waitReady(p: { child: ChildProcess }): Promise<void> {
  await (p.child as ChildProcess & { waitLine: () => Promise<void> }).waitLine();
}

const last = (lines: string[]): Record<string, number> => JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, number>;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function shoalPoint(mtu: number): Promise<Point> {
  const sink = start(['sink', '127.0.0.3', '127.0.0.2', '100.64.0.2', String(mtu), '100.64.0.1']);
  await waitReady(sink);
  const source = start(['source', '127.0.0.2', '127.0.0.3', '100.64.0.1', String(mtu), '100.64.0.2', String(seconds)]);
  const [sinkLines, sourceLines] = await Promise.all([sink.lines, source.lines]);
  const r = last(sinkLines);
  const s = last(sourceLines);
  const gb = (r['bytes'] ?? 0) / 1e9;
  return { gbit: (gb * 8) / (r['seconds'] ?? 1), senderCpuPerGb: (s['cpu'] ?? 0) / gb, receiverCpuPerGb: (r['cpu'] ?? 0) / gb };
}

async function udpPoint(mtu: number): Promise<Point> {
  const size = mtu + 14 + 8; // inner Ethernet and VXLAN headers: the UDP payload a VTEP sends
  const recv = start(['udp-recv', '127.0.0.3', '24790']);
  await waitReady(recv);
  const send = start(['udp-send', '127.0.0.2', '24790', '127.0.0.3', '24790', String(size), String(seconds)]);
  const [recvLines, sendLines] = await Promise.all([recv.lines, send.lines]);
  const r = last(recvLines);
  void sendLines;
  const gb = (r['bytes'] ?? 0) / 1e9;
  return { gbit: (gb * 8) / (r['seconds'] ?? 1), senderCpuPerGb: NaN, receiverCpuPerGb: (r['cpu'] ?? 0) / gb };
}

function sh(cmd: string): string {
  return execFileSync('sh', ['-c', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function kernelAvailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    sh('command -v iperf3 && command -v ip');
  } catch {
    return 'needs iperf3';
  }
  return undefined;
}

/** Kernel VXLAN (VNI 4096) between two namespaces over a veth whose MTU leaves the overlay `mtu`. */
function kernelPoint(mtu: number): Point {
  const a = `shbk${process.pid % 10000}a`;
  const b = `shbk${process.pid % 10000}b`;
  const cleanup = (): void => {
    sh(`ip netns del ${a} 2>/dev/null || true; ip netns del ${b} 2>/dev/null || true`);
  };
  cleanup();
  try {
    sh(`ip netns add ${a} && ip netns add ${b}`);
    sh(`ip link add ${a}v netns ${a} type veth peer name ${b}v netns ${b}`);
    sh(`ip -n ${a} link set ${a}v mtu ${mtu + 50} up && ip -n ${b} link set ${b}v mtu ${mtu + 50} up && ip -n ${a} link set lo up && ip -n ${b} link set lo up`);
    sh(`ip -n ${a} addr add 198.18.30.1/30 dev ${a}v && ip -n ${b} addr add 198.18.30.2/30 dev ${b}v`);
    sh(`ip -n ${a} link add vx0 type vxlan id 4096 dstport 4789 remote 198.18.30.2 local 198.18.30.1 dev ${a}v`);
    sh(`ip -n ${b} link add vx0 type vxlan id 4096 dstport 4789 remote 198.18.30.1 local 198.18.30.2 dev ${b}v`);
    sh(`ip -n ${a} addr add 100.64.30.1/24 dev vx0 && ip -n ${b} addr add 100.64.30.2/24 dev vx0 && ip -n ${a} link set vx0 mtu ${mtu} up && ip -n ${b} link set vx0 mtu ${mtu} up`);
    const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-B', '100.64.30.2'], { stdio: 'ignore' });
    sh('sleep 0.5');
    const json = JSON.parse(sh(`ip netns exec ${a} iperf3 -J -c 100.64.30.2 -t ${seconds}`)) as {
      end: { sum_received: { bits_per_second: number; bytes: number }; cpu_utilization_percent: { host_total: number; remote_total: number } };
    };
    server.kill();
    const gbit = json.end.sum_received.bits_per_second / 1e9;
    const gb = json.end.sum_received.bytes / 1e9;
    // iperf3 reports CPU as a percentage of the run; turn it into seconds per GB.
    const cpu = json.end.cpu_utilization_percent;
    return { gbit, senderCpuPerGb: ((cpu.host_total / 100) * seconds) / gb, receiverCpuPerGb: ((cpu.remote_total / 100) * seconds) / gb };
  } finally {
    cleanup();
  }
}

/** tcp-cpu-bench.ts's one line: both ends in one process, over memory (the TCP code alone) or loopback UDP. */
function cpuOnly(mtu: number, mode: 'memory' | 'udp'): string {
  return execFileSync(process.execPath, ['--import', 'tsx', path.join(HERE, 'tcp-cpu-bench.ts'), mode === 'udp' ? '100' : '200', String(mtu), mode], { encoding: 'utf8' }).trim();
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const cpuLines = MTUS.map((mtu) => cpuOnly(mtu, 'memory'));
  const udpCpuLines = MTUS.map((mtu) => cpuOnly(mtu, 'udp'));
  const kernelMissing = kernelAvailable();
  const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '–');
  for (const mtu of MTUS) {
    const measure = async (name: string, f: () => Promise<Point> | Point): Promise<void> => {
      const points: Point[] = [];
      for (let i = 0; i < rounds; i++) {
        points.push(await f());
        process.stdout.write(`  ${name} MTU ${mtu} round ${i + 1}: ${fmt(points[i]!.gbit)} Gbit/s\n`);
      }
      rows.push(`| ${mtu} | ${name} | ${fmt(median(points.map((p) => p.gbit)))} | ${fmt(median(points.map((p) => p.senderCpuPerGb)))} | ${fmt(median(points.map((p) => p.receiverCpuPerGb)))} |`);
    };
    await measure('shoal ↔ shoal (userspace TCP over userspace VXLAN, 2 processes)', () => shoalPoint(mtu));
    if (kernelMissing === undefined) await measure('Linux kernel VXLAN, iperf3 (2 namespaces)', () => kernelPoint(mtu));
    else rows.push(`| ${mtu} | Linux kernel VXLAN, iperf3 | (${kernelMissing}) | | |`);
    await measure(`Node raw UDP ceiling (${mtu + 22}-byte datagrams)`, () => udpPoint(mtu));
  }
  const table = [
    `# TCP over the overlay: throughput (${new Date().toISOString().slice(0, 10)}, ${seconds} s per run, median of ${rounds})`,
    '',
    'Targets (issue 3): shoal ↔ shoal ≥ 1 Gbit/s at MTU 1450 and ≥ 4 Gbit/s at 8950.',
    '',
    '| overlay MTU | path | Gbit/s | sender CPU s/GB | receiver CPU s/GB |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    'Machine: 2 cores shared by sender, receiver and (for shoal) both event loops; CPU s/GB is process CPU',
    'over payload bytes. The raw UDP row counts datagram bytes received by one Node process from another.',
    `Load average when the run ended: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (other work on the machine skews every rate).`,
    '',
    '## The TCP code alone (tcp-cpu-bench.ts: both stacks in one process, lossless in-memory link, no UDP)',
    '',
    ...cpuLines.map((l) => `    ${l}`),
    '',
    '## The whole overlay path in one process (tcp-cpu-bench.ts udp: two VTEPs on loopback UDP, CPU of both ends)',
    '',
    ...udpCpuLines.map((l) => `    ${l}`),
    '',
    '## Since 2026-12-07: one answer per run of received datagrams',
    '',
    '- The VTEP socket marks the end of each run of datagrams one event-loop turn delivered; TCP',
    '  then acknowledges a run of in-order data once (duplicate ACKs for out-of-order data still go at',
    '  once), hands it to the reader in one push, and sends the data a run of ACKs released in one',
    '  burst. Same machine, loopback, MTU 1450, 100 MB, A/B interleaved at load ≈ 14: ACK datagrams',
    '  38 975 → ≈ 5 100 per 75 000 data datagrams; CPU for both ends 27.5 → 20.6 s/GB (medians of 3).',
    '  In this table, run before and after back to back at load ≈ 10: sender 13.9 → 9.6 and',
    '  receiver 13.5 → 8.8 s/GB at MTU 1450, 3.8 → 1.9 and 3.9 → 2.0 s/GB at 8950.',
    '- What is left is mostly one send syscall per data datagram (node:dgram has no sendmmsg/GSO):',
    '  `doSend` ≈ 24 % of the samples of the in-process run, GC ≈ 5 % (was 13 % with an ACK per two',
    '  segments), checksums ≈ 3 %, ring copies ≈ 3 %.',
    '',
    '## Where the time goes (node --cpu-prof of tcp-peer.ts, MTU 1450, 2026-11-25, before the change above)',
    '',
    '- Sender: node:dgram `doSend` ≈ 23 % of samples (one send syscall and libuv request per',
    '  segment), GC ≈ 5 %, the interface zero-filling a fresh packet buffer (`allocPacket`) ≈ 4 %,',
    '  ring-buffer copies ≈ 4 %, the TCP checksum ≈ 2 %; the TCP state machine itself ≈ 1–2 %.',
    '- Receiver: `doSend` for ACKs ≈ 13 %, GC ≈ 6 %, the checksum ≈ 3 %, the stream machinery',
    '  (nextTick, emit, Buffer views) a few %.',
    '- Both sides spend 28–43 % of samples idle: on this shared, loaded 2-core machine the pair is',
    '  latency-bound rather than CPU-bound (SRTT 10–200 ms through loopback, socket queues full).',
    '- The TCP code alone costs ≈ 3 µs per segment per side (the CPU-only line above): most of the',
    '  ≈ 17 µs per segment per side measured over UDP is node:dgram, VXLAN/IPv4 framing and',
    '  allocation. At MTU 1450 even raw node:dgram tops out near 1 Gbit/s here, so that target',
    '  needs fewer syscalls per byte, not a faster TCP.',
    '- Next steps, in order of gain: fewer syscalls (batch datagrams per event-loop turn: no',
    '  sendmmsg in node:dgram, so a native addon or io_uring would be needed), stretch ACKs (one',
    '  per burst rather than per two segments), pooled packet buffers in the interface instead of',
    '  zero-filled allocations, and checksum offload between shoal peers (a VXLAN peer that is',
    '  shoal could skip the inner checksum as the kernel does with CHECKSUM_UNNECESSARY).',
    '',
  ].join('\n');
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  writeFileSync(path.join(HERE, 'results', 'tcp.md'), table);
  process.stdout.write(`\n${table}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
