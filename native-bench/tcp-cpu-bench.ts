/**
 * The CPU cost of shoal's TCP alone (issue 3, "Benchmark", the profile half): two stacks joined
 * by a lossless in-memory queue in one process, time frozen, one bulk transfer pushed through
 * as fast as the code allows. What is left is segment building and parsing, checksums, buffer
 * copies and the state machine: the ceiling the UDP path sits under.
 * Usage: `node --import tsx native-bench/tcp-cpu-bench.ts [megabytes=200] [mtu=1450]`
 * (add --cpu-prof to see where the time goes). Not a test: prints a line, writes nothing.
 */
import { ManualClock } from '../src/lib/clock.js';
import { SeededRng } from '../src/lib/rng.js';
import { TcpStack } from '../src/netstack/tcp/stack.js';

const megabytes = Number(process.argv[2] ?? 200);
const mtu = Number(process.argv[3] ?? 1450);
const A = 0x64400001;
const B = 0x64400002;
const clock = new ManualClock();
const queue: { to: TcpStack; src: number; dst: number; seg: Uint8Array }[] = [];
const config = { mss: mtu - 40, sendBufferSize: 4 << 20, receiveBufferSize: 4 << 20 };
let packets = 0;
const make = (addr: number, peer: () => TcpStack): TcpStack =>
  new TcpStack({
    rng: new SeededRng(addr),
    localAddress: addr,
    config,
    transmit: (src, dst, len, write) => {
      const buf = new Uint8Array(len + 50);
      write(buf, 50);
      packets++;
      queue.push({ to: peer(), src, dst, seg: buf.subarray(50) });
    },
  });
const hosts: { b?: TcpStack } = {};
const a = make(A, () => hosts.b!);
const b = (hosts.b = make(B, () => a));

const total = megabytes * 1024 * 1024;
const chunk = new SeededRng(1).fill(new Uint8Array(256 * 1024));
let received = 0;
b.listen(80, (conn) => {
  conn.events = { onData: () => (received += conn.read().length) };
});
const conn = a.connect({ remoteAddress: B, remotePort: 80 }, clock.now());
let sent = 0;
const pump = (): void => {
  while (sent < total) {
    const n = conn.send(chunk.subarray(0, Math.min(chunk.length, total - sent)));
    if (n === 0) break;
    sent += n;
  }
};
conn.events = { onConnect: pump, onDrain: pump };

const start = process.hrtime.bigint();
const cpuStart = process.cpuUsage();
for (let guard = 0; received < total && guard < 1e9; guard++) {
  a.poll(clock.now());
  b.poll(clock.now());
  for (let i = 0; i < queue.length; i++) {
    const p = queue[i]!;
    p.to.receive(p.src, p.dst, p.seg, clock.now());
  }
  queue.length = 0;
  clock.advance(0.01);
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
// CPU time, not wall time: the machine is shared, and the CPU a byte costs is what limits us.
const gbit = (total * 8) / cpuSeconds / 1e9;
process.stdout.write(
  `tcp-cpu: ${megabytes} MB at MTU ${mtu}: ${cpuSeconds.toFixed(2)} s CPU (${seconds.toFixed(2)} s wall), ${gbit.toFixed(2)} Gbit/s of payload per CPU, ${packets} segments (${((cpuSeconds / packets) * 1e6).toFixed(2)} µs CPU each)\n`,
);
