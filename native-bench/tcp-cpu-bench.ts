/**
 * The CPU cost of shoal's TCP per byte (issue 3, "Benchmark", the profile half), both stacks in
 * one process, one bulk transfer pushed through as fast as the code allows:
 * - `memory` (default): the stacks joined by a lossless in-memory queue, time frozen. What is left
 *   is segment building and parsing, checksums, buffer copies and the state machine: the ceiling
 *   the UDP path sits under.
 * - `udp`: the whole overlay path over real loopback UDP — two VTEPs (node:dgram on 127.0.0.2 and
 *   .3), two overlay interfaces, attachTcp and TcpSocket streams, as the agent wires them — and
 *   the datagrams each way (ACKs included). Process CPU counts both ends and the kernel's
 *   loopback work, so it is CPU per byte for the pair, far steadier on a shared machine than
 *   the rate.
 * Usage: `node --import tsx native-bench/tcp-cpu-bench.ts [megabytes=200] [mtu=1450] [memory|udp]`
 * (add --cpu-prof to see where the time goes). Not a test: prints a line, writes nothing.
 */
import { ManualClock, RealClock } from '../src/lib/clock.js';
import { SeededRng } from '../src/lib/rng.js';
import { macForIpv4, parseIpv4Address } from '../src/wire/address.js';
import { OverlayInterface } from '../src/netstack/interface.js';
import { attachTcp } from '../src/netstack/tcp/attach.js';
import { TcpStack } from '../src/netstack/tcp/stack.js';
import { ForwardingTable } from '../src/overlay/forwarding-table.js';
import { openUdpSocket } from '../src/overlay/node-udp.js';
import { Vtep } from '../src/overlay/vtep.js';

const megabytes = Number(process.argv[2] ?? 200);
const mtu = Number(process.argv[3] ?? 1450);
const mode = process.argv[4] ?? 'memory';
if (mode === 'udp') {
  await overUdp();
  process.exit(0);
}
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

/** The `udp` mode: see the top of the file. */
async function overUdp(): Promise<void> {
  const VNI = 4096;
  const ip = (text: string): number => {
    const r = parseIpv4Address(text);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  const side = async (underlay: string, peerUnderlay: string, addr: string, peerAddr: string, port: number, peerPort: number) => {
    const clock = new RealClock();
    const socket = await openUdpSocket({ address: underlay, port, recvBufferSize: 32 << 20, sendBufferSize: 32 << 20 });
    const vtep = new Vtep({ socket, fdb: new ForwardingTable() });
    vtep.fdb.set(VNI, macForIpv4(ip(peerAddr)), { address: peerUnderlay, port: peerPort });
    const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: ip(addr), prefixLen: 24, link, clock, mtu }));
    iface.addStaticNeighbor(ip(peerAddr));
    const tcp = attachTcp(iface, { clock, rng: new SeededRng(port), config: { sendBufferSize: 4 << 20, receiveBufferSize: 4 << 20 } });
    return { vtep, tcp };
  };
  const a = await side('127.0.0.2', '127.0.0.3', '100.64.0.1', '100.64.0.2', 24801, 24802);
  const b = await side('127.0.0.3', '127.0.0.2', '100.64.0.2', '100.64.0.1', 24802, 24801);
  const total = megabytes * 1024 * 1024;
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  let received = 0;
  let cpuStart = process.cpuUsage();
  let start = process.hrtime.bigint();
  const done = new Promise<void>((resolve) => {
    b.tcp.sockets.listen(5001, (s) => {
      s.on('data', (d: Buffer) => (received += d.length));
      s.on('end', () => {
        s.end();
        resolve();
      });
    });
  });
  const s = a.tcp.sockets.connect({ address: '100.64.0.2', port: 5001 });
  let written = 0;
  const write = (): void => {
    while (written < total) {
      written += chunk.length;
      if (!s.write(chunk)) {
        s.once('drain', write);
        return;
      }
    }
    s.end();
  };
  s.on('connect', () => {
    cpuStart = process.cpuUsage();
    start = process.hrtime.bigint();
    write();
  });
  s.resume();
  await done;
  const cpu = process.cpuUsage(cpuStart);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const data = a.vtep.counters.get('vtep_tx_datagrams');
  const acks = b.vtep.counters.get('vtep_tx_datagrams');
  process.stdout.write(
    `tcp-cpu udp: ${megabytes} MB at MTU ${mtu} over loopback UDP: ${cpuSeconds.toFixed(2)} s CPU (${seconds.toFixed(2)} s wall), ${(cpuSeconds / (received / 1e9)).toFixed(2)} CPU s/GB for both ends, ${data} datagrams out and ${acks} back (${(data / Math.max(1, acks)).toFixed(1)} per ACK), ${s.connection.stats.retransmits} retransmitted\n`,
  );
}
