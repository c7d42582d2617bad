/**
 * `make demo`: the routing mesh on this machine, without root. Three agents on 127.0.0.2–4
 * join one gossip and read compose/whoami.yaml: `shoal/whoami` tasks run on node-1 (two) and
 * node-2 (one), published on 8080 on every node; node-3 runs none, so `curl 127.0.0.4:8080`
 * crosses the userspace VXLAN overlay to a task on another host. The demo shows a few answers,
 * prints the commands to try, and stops every agent and task on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, 'main.js');
const CATALOG = path.resolve(HERE, '../../compose/whoami.yaml');
const NODES = [
  { name: 'node-1', addr: '127.0.0.2', tasks: 'whoami ×2' },
  { name: 'node-2', addr: '127.0.0.3', tasks: 'whoami ×1' },
  { name: 'node-3', addr: '127.0.0.4', tasks: 'no task' },
];
const runDir = mkdtempSync(path.join(os.tmpdir(), 'shoal-demo-'));
const children: ChildProcess[] = [];

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function startAgent(node: (typeof NODES)[number]): Promise<void> {
  const args = [CLI, 'agent', '--node-name', node.name, '--advertise-addr', node.addr, '--join', NODES[0]!.addr, '--catalog', CATALOG,
    '--api-socket', path.join(runDir, `${node.name}.sock`), '--data-dir', path.join(runDir, node.name)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHOAL_LOG_LEVEL: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' } });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${node.name} exited with code ${code}`)));
    child.stdout?.once('data', () => resolve());
  });
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Waits (bounded) until every node answers on 8080: the tasks are up and the tables have spread. */
async function waitForMesh(): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    const answers = await Promise.all(NODES.map((n) => get(`http://${n.addr}:8080/`).then(() => true, () => false)));
    if (answers.every(Boolean)) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
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
  say('shoal demo: the routing mesh on three agents (no root needed)');
  say();
  await Promise.all(NODES.map(startAgent));
  for (const n of NODES) say(`  ${n.name}  ${n.addr}  ${n.tasks}`);
  say();
  if (!(await waitForMesh())) throw new Error('the mesh did not answer on every node within 30 s');
  for (const n of NODES) {
    const tasks: string[] = [];
    for (let i = 0; i < 6; i++) {
      const body = await get(`http://${n.addr}:8080/`);
      tasks.push(/task: (\S+)/.exec(body)?.[1] ?? '?');
    }
    say(`  curl ${n.addr}:8080  →  ${tasks.join(' ')}${n.tasks === 'no task' ? '   (over the overlay)' : ''}`);
  }
  say();
  say('Try it yourself:');
  for (const n of NODES) say(`  curl ${n.addr}:8080/${n.tasks === 'no task' ? '        # runs no task: answered over the userspace VXLAN overlay' : ''}`);
  say(`  node dist/cli/main.js metrics --api-socket ${path.join(runDir, 'node-3.sock')} | grep mesh_`);
  say();
  if (process.env['SHOAL_DEMO_EXIT'] === '1') {
    await stopAll();
    process.exit(0);
  }
  say('Ctrl-C stops the agents and their tasks.');
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
