/**
 * `make demo`: what shoal can show today, on this machine, without root. Three agents on
 * 127.0.0.2–4 form a VXLAN overlay (100.64.0.2–4/24) with userspace interfaces; every agent
 * pings every other overlay address through its own ARP/IPv4/ICMP stack and VTEP. The agents
 * keep running, with the commands to try printed, until Ctrl-C stops them all.
 *
 * This grows with the product: the routing mesh (`curl any-node:8080`) replaces it as the
 * demo's main act when it lands.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiRequest } from './api-client.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const NODES = [2, 3, 4].map((n) => ({ name: `node-${n - 1}`, underlay: `127.0.0.${n}`, overlay: `100.64.0.${n}` }));
const runDir = mkdtempSync(path.join(os.tmpdir(), 'shoal-demo-'));
const children: ChildProcess[] = [];

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function startAgent(node: (typeof NODES)[number]): Promise<string> {
  const peers = NODES.filter((p) => p !== node).flatMap((p) => ['--peer', `${p.overlay}@${p.underlay}`]);
  const socket = path.join(runDir, `${node.name}.sock`);
  const args = [CLI, 'agent', '--node-name', node.name, '--advertise-addr', node.underlay, '--overlay-addr', `${node.overlay}/24`, ...peers, '--api-socket', socket];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHOAL_LOG_LEVEL: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' } });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${node.name} exited with code ${code}`)));
    child.stdout?.once('data', () => resolve(socket));
  });
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
  rmSync(runDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  say('shoal demo — stage 1: a userspace VXLAN overlay between three agents (no root needed)\n');
  const sockets = await Promise.all(NODES.map(startAgent));
  NODES.forEach((n, i) => say(`  ${n.name}: VTEP ${n.underlay}:4789, overlay ${n.overlay}/24, API ${sockets[i]}`));
  say('');
  let failures = 0;
  for (const [i, from] of NODES.entries()) {
    for (const to of NODES.filter((n) => n !== from)) {
      const { status, json } = await apiRequest(sockets[i]!, 'POST', '/shoal/overlay/ping', { address: to.overlay, count: 3, intervalMs: 100 });
      const replies = status === 200 ? (json as { replies: { rttMs?: number; error?: string }[] }).replies : [];
      const ok = replies.filter((r) => r.rttMs !== undefined);
      if (ok.length !== 3) failures++;
      const rtts = ok.map((r) => r.rttMs!.toFixed(2)).join(' / ');
      say(`  ${from.name} (${from.overlay}) → ${to.overlay}: ${ok.length}/3 echo replies${rtts ? `, rtt ${rtts} ms` : ''}`);
    }
  }
  say(`\nTry it yourself while the agents run:\n  node ${path.relative(process.cwd(), CLI)} ping 100.64.0.3 --api-socket ${sockets[0]}\n  node ${path.relative(process.cwd(), CLI)} metrics --api-socket ${sockets[1]}\n`);
  if (failures > 0 || process.env['SHOAL_DEMO_EXIT'] === '1') {
    await stopAll();
    process.exit(failures > 0 ? 1 : 0);
  }
  say('Ctrl-C stops the agents.');
}

process.once('SIGINT', () => {
  say('\nstopping the agents');
  void stopAll().then(() => process.exit(0));
});

main().catch(async (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
