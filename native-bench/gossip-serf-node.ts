/**
 * One shoal gossip node for gossip-serf-bench.ts: like test/interop/gossip-node-runner.ts, but it
 * joins only when told (so the clock can start after every process has started, as the serf
 * side's `serf join` does) and stamps each line with the time it was written.
 *
 *   node --import tsx native-bench/gossip-serf-node.ts '{"name":"n1","port":47100}'
 *
 * stdin: `join host:port` (one line). stdout, JSON lines, each with `at` (ms since the epoch,
 * performance.timeOrigin + performance.now(): comparable across processes on one machine):
 *   {"type":"ready"} · {"type":"joined","count"} · {"type":"join-failed","error"}
 *   {"type":"event","event","member","state"}
 * Exits when stdin closes. Memberlist runs with its defaults: memberlist's LAN profile.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { RealClock } from '../src/lib/clock.js';
import { CryptoRng } from '../src/lib/rng.js';
import { Memberlist } from '../src/gossip/memberlist.js';
import { NodeTransport } from '../src/gossip/node-transport.js';

const config = JSON.parse(process.argv[2] ?? '{}') as { name: string; port: number; host?: string };

function out(line: object): void {
  process.stdout.write(`${JSON.stringify({ ...line, at: performance.timeOrigin + performance.now() })}\n`);
}

async function main(): Promise<void> {
  const clock = new RealClock();
  const transport = await NodeTransport.bind({ host: config.host ?? '127.0.0.1', port: config.port, clock });
  const ml = Memberlist.create({
    name: config.name,
    transport,
    clock,
    rng: new CryptoRng(),
    delegate: { notifyEvent: (e) => out({ type: 'event', event: e.type, member: e.member.name, state: e.member.state }) },
  });
  out({ type: 'ready' });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, seed] = line.trim().split(/\s+/);
    if (cmd !== 'join' || seed === undefined) return;
    ml.join([seed]).then(
      (count) => out({ type: 'joined', count }),
      (e: unknown) => out({ type: 'join-failed', error: e instanceof Error ? e.message : String(e) }),
    );
  });
  rl.on('close', () => {
    ml.shutdown();
    process.exit(0);
  });
}

main().catch((e: unknown) => {
  out({ type: 'fatal', error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
