/**
 * Names as a user meets them (issue 6, "Must show"): three real `shoal agent` processes on
 * loopback (127.0.0.124–126), the service `names-web` (whoami) running only on node-2 and
 * node-3. A host process asks node-1's DNS for `names-web` with `dig`, gets the VIP's mirror,
 * and fetches through it: node-1 runs no task, so every answer crossed the userspace overlay.
 * Only node-1 serves mirrors (`--mirrors on`); the others run with `--mirrors off`, as a
 * second agent on a host should.
 *
 * node-1's DNS is on its `--dns-addr` 127.0.0.124:24480, unless it was the first agent on
 * this machine to bind 127.0.0.11:53 (as root): the test asks there when 24480 refuses.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { describeInterop } from '../helpers/interop.js';
import { childrenOf } from '../helpers/mesh-cluster.js';
import { stopProcess } from '../helpers/netns.js';
import { httpGet } from '../mesh/mesh-helpers.js';

const run = promisify(execFile);
const GOSSIP_PORT = 24481;
const DATA_PATH_PORT = 24482;
const PUBLISHED = 24483;
const TARGET = 24484;
const DNS_PORT = 24480;
const NODES = [
  { name: 'node-1', address: '127.0.0.124', mirrors: 'on' },
  { name: 'node-2', address: '127.0.0.125', mirrors: 'off' },
  { name: 'node-3', address: '127.0.0.126', mirrors: 'off' },
];
const CATALOG = `
network: { subnet: 100.64.10.0/24 }
services:
  names-web:
    image: shoal/whoami
    ports: ["${PUBLISHED}:${TARGET}"]
nodes:
  node-1: []
  node-2:
    - service: names-web
  node-3:
    - service: names-web
`;
// Tasks take the upper half in file order (.128, .129); the catalog's only VIP is the top (.254).
const VIP_MIRROR = '127.64.10.254';

describeInterop(
  'agent: names through real agents (dig, then fetch by the VIP’s mirror, tasks on other hosts only)',
  ['dig'],
  () => {
    let dir: string;
    const agents: ChildProcess[] = [];
    let dns: { address: string; port: number } = { address: NODES[0]!.address, port: DNS_PORT };

    const dig = async (server: { address: string; port: number }, ...args: string[]): Promise<string[]> => {
      const { stdout } = await run('dig', [`@${server.address}`, '-p', String(server.port), '+short', '+tries=1', '+time=2', ...args]);
      return stdout.split('\n').filter((l) => l.length > 0 && !l.startsWith(';')).sort();
    };

    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-names-agents-'));
      const catalog = path.join(dir, 'catalog.yaml');
      await writeFile(catalog, CATALOG);
      for (const [i, n] of NODES.entries()) {
        const agent = await startAgent([
          '--node-name', n.name,
          '--advertise-addr', n.address,
          '--listen-addr', n.address,
          '--gossip-port', String(GOSSIP_PORT),
          '--data-path-port', String(DATA_PATH_PORT),
          '--catalog', catalog,
          '--dns-addr', `${n.address}:${DNS_PORT}`,
          '--mirrors', n.mirrors,
          '--api-socket', path.join(dir, `${n.name}.sock`),
          '--data-dir', path.join(dir, n.name),
          ...(i === 0 ? [] : ['--join', `${NODES[0]!.address}:${GOSSIP_PORT}`]),
        ]);
        agents.push(agent.child);
      }
      // Where node-1's DNS is: its --dns-addr, or 127.0.0.11:53 if it got there first.
      try {
        await dig(dns, 'names-web');
      } catch {
        dns = { address: '127.0.0.11', port: 53 };
      }
      // Converged: node-1 knows both tasks (bounded: 60 tries half a second apart).
      for (let i = 0; i < 60; i++) {
        if ((await dig(dns, 'tasks.names-web').catch(() => [])).length === 2) break;
        await new Promise((r) => setTimeout(r, 500));
      }
    }, 90_000);

    afterAll(async () => {
      await Promise.all(agents.map((a) => stopProcess(a, 5000)));
      if (dir) await rm(dir, { recursive: true, force: true });
    }, 30_000);

    it('node-1’s DNS answers the service with its VIP’s mirror and tasks.<service> with both tasks’ mirrors', async () => {
      expect(await dig(dns, 'names-web')).toEqual([VIP_MIRROR]);
      expect(await dig(dns, 'tasks.names-web')).toEqual(['127.64.10.128', '127.64.10.129']);
      expect(await dig(dns, '-x', VIP_MIRROR)).toEqual(['names-web.']);
    });

    it('node-1’s answer changes within a second of a task dying on node-3, and again when the task is back', async () => {
      const node3 = agents[2]!.pid!;
      let victim: number | undefined;
      for (const pid of await childrenOf(node3)) {
        const env = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
        if (env.split('\0').includes('SHOAL_TASK=names-web.2')) victim = pid;
      }
      expect(victim).toBeDefined();
      process.kill(victim!, 'SIGKILL');
      let answer: string[] = [];
      for (let i = 0; i < 20 && answer.length !== 1; i++) {
        answer = await dig(dns, 'tasks.names-web');
        if (answer.length !== 1) await new Promise((r) => setTimeout(r, 50));
      }
      expect(answer).toEqual(['127.64.10.128']);
      // The supervisor restarts it (Docker's backoff): the name comes back (bounded: 60 × 0.5 s).
      for (let i = 0; i < 60 && answer.length !== 2; i++) {
        await new Promise((r) => setTimeout(r, 500));
        answer = await dig(dns, 'tasks.names-web');
      }
      expect(answer).toEqual(['127.64.10.128', '127.64.10.129']);
    });

    it('a host process on node-1 fetches from both tasks through the VIP’s mirror, and from one through its task mirror', async () => {
      const seen = new Map<string, string>();
      let failed = 0;
      for (let i = 0; i < 60 && seen.size < 2; i++) {
        try {
          const a = JSON.parse((await httpGet(VIP_MIRROR, TARGET, '/json')).body) as { task: string; node: string };
          seen.set(a.task, a.node);
        } catch {
          failed++;
        }
      }
      expect(failed).toBe(0);
      expect(Object.fromEntries(seen)).toEqual({ 'names-web.1': 'node-2', 'names-web.2': 'node-3' });
      for (let i = 0; i < 3; i++) expect((JSON.parse((await httpGet('127.64.10.129', TARGET, '/json')).body) as { task: string }).task).toBe('names-web.2');
    });
  },
  { root: false },
);
