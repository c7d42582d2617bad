/**
 * `make demo`: a swarm on this machine, without root, built the way the Swarm docs build one.
 * Three agents on 127.0.0.2–4 join one gossip; node-1 runs `swarm init`, node-2 and node-3
 * join with the worker token; `service create --name web --replicas 3 -p 8080:80 shoal/whoami`
 * makes the managers schedule three tasks, one per node, which the agents' executors run.
 * Then `curl` through every node shows the routing mesh spreading requests over every task,
 * across the userspace VXLAN overlay. Every command is printed as a user would type it, with
 * shoal's own CLI (the docker CLI works the same against `--api-tcp`). Ctrl-C stops everything.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(HERE, 'main.js');
const NODES = [
  { name: 'node-1', addr: '127.0.0.2' },
  { name: 'node-2', addr: '127.0.0.3' },
  { name: 'node-3', addr: '127.0.0.4' },
] as const;
type DemoNode = (typeof NODES)[number];
const PUBLISHED = 8080;
const runDir = mkdtempSync(path.join(os.tmpdir(), 'shoal-demo-'));
const agents: ChildProcess[] = [];

const socketOf = (node: DemoNode): string => path.join(runDir, `${node.name}.sock`);

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function startAgent(node: DemoNode): Promise<void> {
  const args = [CLI, 'agent', '--node-name', node.name, '--advertise-addr', node.addr, '--join', NODES[0].addr, '--api-socket', socketOf(node), '--data-dir', path.join(runDir, node.name),
    ...(node === NODES[0] ? [] : ['--mirrors', 'off'])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHOAL_LOG_LEVEL: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' } });
  agents.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${node.name} exited with code ${code}`)));
    child.stdout?.once('data', () => resolve());
  });
}

/** Runs `shoal <args>` against `node`'s agent, printing the command and, unless `quiet`, its output. */
function shoal(node: DemoNode, args: readonly string[], quiet = false): Promise<string> {
  say(`$ shoal ${args.join(' ')}${' '.repeat(Math.max(1, 60 - args.join(' ').length))}# on ${node.name}`);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHOAL_API_SOCKET: socketOf(node) } });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (!quiet) process.stdout.write(chunk);
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`shoal ${args[0]} ${args[1]} failed with code ${code}`))));
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

/** Waits (bounded) until every node answers on the published port: the tables have spread. */
async function waitForMesh(): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    const answers = await Promise.all(NODES.map((n) => get(`http://${n.addr}:${PUBLISHED}/`).then(() => true, () => false)));
    if (answers.every(Boolean)) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    agents.map(
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
  say('shoal demo: a three-node swarm on this machine (no root needed)');
  say();
  await Promise.all(NODES.map(startAgent));
  for (const n of NODES) say(`  ${n.name}  shoal agent --advertise-addr ${n.addr}`);
  say();
  const [first, second, third] = NODES;
  await shoal(first, ['swarm', 'init', '--advertise-addr', first.addr]);
  const token = (await shoal(first, ['swarm', 'join-token', '-q', 'worker'])).trim();
  await shoal(second, ['swarm', 'join', '--token', token, `${first.addr}:2377`]);
  await shoal(third, ['swarm', 'join', '--token', token, `${first.addr}:2377`]);
  say();
  await shoal(first, ['node', 'ls']);
  say();
  await shoal(first, ['service', 'create', '--name', 'web', '--replicas', '3', '-p', `${PUBLISHED}:80`, 'shoal/whoami']);
  say();
  await shoal(first, ['service', 'ps', 'web']);
  say();
  if (!(await waitForMesh())) throw new Error(`the mesh did not answer on every node within 30 s`);
  for (const n of NODES) {
    const tasks: string[] = [];
    for (let i = 0; i < 6; i++) {
      const body = await get(`http://${n.addr}:${PUBLISHED}/`);
      tasks.push(`${/task: (\S+)/.exec(body)?.[1] ?? '?'}@${/node: (\S+)/.exec(body)?.[1] ?? '?'}`);
    }
    say(`  curl ${n.addr}:${PUBLISHED}  →  ${tasks.join(' ')}`);
  }
  say();
  say('Try it yourself (answers from tasks on other nodes cross the userspace VXLAN overlay):');
  for (const n of NODES) say(`  curl ${n.addr}:${PUBLISHED}/`);
  say(`  export SHOAL_API_SOCKET=${socketOf(first)}`);
  say('  node dist/cli/main.js service scale web=5');
  say('  node dist/cli/main.js service ps web');
  say('  node dist/cli/main.js service logs web');
  say(`  node dist/cli/main.js metrics --api-socket ${socketOf(third)} | grep mesh_`);
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
