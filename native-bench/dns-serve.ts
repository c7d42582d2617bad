/**
 * The shoal side of dns-bench.ts, in a process of its own so the harness never shares its event
 * loop: the embedded DNS resolver over an in-memory copy of the benchmark's records, on UDP.
 * Usage: `node --import tsx native-bench/dns-serve.ts <address> <port> <records.json> [dns|nocache|echo]`.
 * `dns` (default) runs the resolver with its answer cache, as the agent does when its records
 * have `version()`; `nocache` without it. With `echo` it does no DNS work at all, only sends
 * each query back with QR set: what plain node:dgram costs, to read shoal's number against.
 * Prints `ready` once listening; exits on SIGTERM.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { MemoryRecords } from '../src/dns/memory-records.js';
import { literalLookup, startUdpDnsServer } from '../src/dns/node-udp-server.js';
import type { ServiceRecord, TaskRecord } from '../src/dns/records.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { RealClock } from '../src/lib/clock.js';
import { CryptoRng, SeededRng } from '../src/lib/rng.js';

const [address = '127.0.0.1', port = '19400', file = '', mode = 'dns'] = process.argv.slice(2);

if (mode === 'echo') {
  // The same send path as shoal's listener (its synchronous lookup for IP literals).
  const socket = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  socket.on('message', (msg, rinfo) => {
    if (msg.length >= 3) msg[2] = msg[2]! | 0x80;
    socket.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(Number(port), address, resolve));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => socket.close(() => process.exit(0)));
  await new Promise(() => {});
}

const spec = JSON.parse(readFileSync(file, 'utf8')) as { services: ServiceRecord[]; tasks: TaskRecord[] };
const records = new MemoryRecords();
for (const service of spec.services) records.setService(service);
for (const task of spec.tasks) records.setTask(task);

// As startEmbeddedDns does: shuffling needs speed, not secrecy (CryptoRng costs microseconds a call).
const resolver = new DnsResolver({
  records,
  rng: new SeededRng(new CryptoRng().u32()),
  ...(mode !== 'nocache' && { answerCache: { clock: new RealClock() } }),
});
const server = await startUdpDnsServer({ address, port: Number(port), handler: resolver, view: 'host' });
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void server.close().then(() => {
    process.stderr.write(`${JSON.stringify({ ...resolver.counters.snapshot(), ...server.counters.snapshot() })}\n`);
    process.exit(0);
  });
});
