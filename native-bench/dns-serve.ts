/**
 * The shoal side of dns-bench.ts, in a process of its own so the harness never shares its event
 * loop: the embedded DNS resolver over an in-memory copy of the benchmark's records, on UDP.
 * Usage: `node --import tsx native-bench/dns-serve.ts <address> <port> <records.json>`.
 * Prints `ready` once listening; exits on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { MemoryRecords } from '../src/dns/memory-records.js';
import { startUdpDnsServer } from '../src/dns/node-udp-server.js';
import type { ServiceRecord, TaskRecord } from '../src/dns/records.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { CryptoRng, SeededRng } from '../src/lib/rng.js';

const [address = '127.0.0.1', port = '19400', file = ''] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(file, 'utf8')) as { services: ServiceRecord[]; tasks: TaskRecord[] };
const records = new MemoryRecords();
for (const service of spec.services) records.setService(service);
for (const task of spec.tasks) records.setTask(task);

// As startEmbeddedDns does: shuffling needs speed, not secrecy (CryptoRng costs microseconds a call).
const resolver = new DnsResolver({ records, rng: new SeededRng(new CryptoRng().u32()) });
const server = await startUdpDnsServer({ address, port: Number(port), handler: resolver, view: 'host' });
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void server.close().then(() => {
    process.stderr.write(`${JSON.stringify({ ...resolver.counters.snapshot(), ...server.counters.snapshot() })}\n`);
    process.exit(0);
  });
});
