/**
 * The stock docker CLI (28.2.2) against real shoal agents on 127.0.0.41–45 (2377 listeners on
 * 23771–23775, data path 23789, all unique to this file): swarm init, join tokens, joins,
 * node ls/update/promote/demote, refusals, mTLS on the manager port, a worker killed and
 * restarted, swarm leave. Assertions are on what the docker CLI prints.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ClusterCa } from '../../src/cluster/ca.js';
import { apiRequest } from '../../src/cli/api-client.js';
import { SeededRng } from '../../src/lib/rng.js';
import { type AgentProcess, CLI_ENTRY, startAgent } from '../helpers/agent.js';
import { describeInterop } from '../helpers/interop.js';
import { stopProcess } from '../helpers/netns.js';

const DATA_PATH_PORT = 23789;
const API_TCP_PORT = 23790;
const rpcPort = (n: number): number => 23730 + n; // .41 → 23771 …

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describeInterop(
  'docker CLI drives a shoal swarm',
  ['docker'],
  () => {
    let tmp: string;
    const agents = new Map<number, AgentProcess>();
    let env: NodeJS.ProcessEnv;

    const start = async (n: number): Promise<AgentProcess> => {
      const agent = await startAgent([
        '--node-name', `node-${n}`, '--advertise-addr', `127.0.0.${n}`, '--data-path-port', String(DATA_PATH_PORT),
        '--overlay-addr', `100.64.0.${n}/24`, '--api-socket', path.join(tmp, `${n}.sock`), '--data-dir', path.join(tmp, `data-${n}`),
        ...(n === 41 ? ['--api-tcp', `127.0.0.41:${API_TCP_PORT}`] : []),
      ]);
      // Keep reading the agent's output so that its logs can never fill a pipe and block it.
      agent.child.stdout?.resume();
      agent.child.stderr?.resume();
      agents.set(n, agent);
      return agent;
    };

    const docker = (n: number, args: readonly string[]): Promise<Run> =>
      new Promise((resolve) => {
        const host = n === 41 ? `tcp://127.0.0.41:${API_TCP_PORT}` : `unix://${path.join(tmp, `${n}.sock`)}`;
        execFile('docker', ['-H', host, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
          const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
          resolve({ code, stdout, stderr });
        });
      });

    const ok = async (n: number, args: readonly string[]): Promise<string> => {
      const r = await docker(n, args);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    };

    /** `docker node ls` rows as {hostname: [status, availability, manager status]}. */
    const nodeTable = async (n: number): Promise<Record<string, string[]>> => {
      const out = await ok(n, ['node', 'ls', '--format', '{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}']);
      return Object.fromEntries(out.trim().split('\n').map((l) => { const [h, ...rest] = l.split('|'); return [h!, rest]; }));
    };

    /** Polls `node ls` until `want` holds: at most `tries` × 250 ms. */
    const waitForTable = async (n: number, want: (t: Record<string, string[]>) => boolean, tries = 80): Promise<Record<string, string[]>> => {
      let table = await nodeTable(n);
      for (let i = 0; i < tries && !want(table); i++) {
        await new Promise((r) => setTimeout(r, 250));
        table = await nodeTable(n);
      }
      return table;
    };

    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-docker-swarm-'));
      env = { ...process.env, DOCKER_CONFIG: path.join(tmp, 'docker-config'), DOCKER_HOST: '', DOCKER_CONTEXT: '' };
      await Promise.all([41, 42, 43, 44, 45].map(start));
    });

    afterAll(async () => {
      await Promise.all([...agents.values()].map((a) => stopProcess(a.child)));
      await rm(tmp, { recursive: true, force: true });
    });

    let workerToken = '';

    it('swarm init refuses bad input with a clean 400 message', async () => {
      const badAddr = await docker(41, ['swarm', 'init', '--advertise-addr', '300.1.2.3']);
      expect(badAddr.code).toBe(1);
      expect(badAddr.stderr.trim()).toBe(
        'Error response from daemon: invalid AdvertiseAddr "300.1.2.3": expected an IPv4 address with an optional port (interface names are not supported)',
      );
      const shortCerts = await docker(41, ['swarm', 'init', '--listen-addr', `127.0.0.41:${rpcPort(41)}`, '--cert-expiry', '30m']);
      expect(shortCerts.stderr.trim()).toBe('Error response from daemon: node certificate expiry must be at least 1h0m0s');
      expect(await ok(41, ['info', '--format', '{{.Swarm.LocalNodeState}}'])).toBe('inactive\n');
    });

    it('swarm init makes the first manager and prints the worker join command', async () => {
      const out = await ok(41, ['swarm', 'init', '--advertise-addr', '127.0.0.41', '--listen-addr', `127.0.0.41:${rpcPort(41)}`, '--dispatcher-heartbeat', '2s']);
      expect(out).toMatch(/^Swarm initialized: current node \([0-9a-z]{25}\) is now a manager\.$/m);
      expect(out).toMatch(new RegExp(`^    docker swarm join --token SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} 127\\.0\\.0\\.41:${rpcPort(41)}$`, 'm'));
      const again = await docker(41, ['swarm', 'init']);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('This node is already part of a swarm');
    });

    it('swarm join-token worker prints the same command, -q only the token', async () => {
      const out = await ok(41, ['swarm', 'join-token', 'worker']);
      expect(out).toContain('To add a worker to this swarm, run the following command:');
      workerToken = (await ok(41, ['swarm', 'join-token', '-q', 'worker'])).trim();
      expect(workerToken).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
      expect(out).toContain(`docker swarm join --token ${workerToken} 127.0.0.41:${rpcPort(41)}`);
    });

    it('two agents join as workers; node ls shows three ready nodes, the manager as Leader', async () => {
      for (const n of [42, 43]) {
        const out = await ok(n, ['swarm', 'join', '--token', workerToken, '--listen-addr', `127.0.0.${n}:${rpcPort(n)}`, `127.0.0.41:${rpcPort(41)}`]);
        expect(out).toBe('This node joined a swarm as a worker.\n');
      }
      const out = await ok(41, ['node', 'ls']);
      const lines = out.trim().split('\n');
      expect(lines[0]).toMatch(/^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION$/);
      expect(lines.slice(1)).toHaveLength(3);
      expect(lines[1]).toMatch(/^[0-9a-z]{25} \*\s+node-41\s+Ready\s+Active\s+Leader\s+0\.1\.0$/);
      expect(lines[2]).toMatch(/^[0-9a-z]{25}\s+node-42\s+Ready\s+Active\s+0\.1\.0$/);
      expect(lines[3]).toMatch(/^[0-9a-z]{25}\s+node-43\s+Ready\s+Active\s+0\.1\.0$/);
      // shoal's own CLI prints the very same table.
      const shoal = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--import', 'tsx', CLI_ENTRY, 'node', 'ls', '--api-socket', path.join(tmp, '41.sock')], (error, stdout) => (error ? reject(error) : resolve(stdout))),
      );
      expect(shoal).toBe(out);
      expect(await ok(41, ['node', 'ls', '-f', 'role=manager', '--format', '{{.Hostname}}'])).toBe('node-41\n');
      expect(await ok(42, ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}'])).toBe('active false 127.0.0.42\n');
      expect(await ok(41, ['node', 'inspect', '--format', '{{.Description.Hostname}} {{.ManagerStatus.Addr}}', 'self'])).toBe(`node-41 127.0.0.41:${rpcPort(41)}\n`);
    });

    it('a worker cannot answer cluster questions', async () => {
      const r = await docker(42, ['node', 'ls']);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
      );
    });

    it('node update --availability drain and --label-add show in ls and inspect', async () => {
      expect(await ok(41, ['node', 'update', '--availability', 'drain', '--label-add', 'zone=b', 'node-42'])).toBe('node-42\n');
      expect((await nodeTable(41))['node-42']).toEqual(['Ready', 'Drain', '']);
      const spec = JSON.parse(await ok(41, ['node', 'inspect', '--format', '{{json .Spec}}', 'node-42'])) as unknown;
      expect(spec).toEqual({ Labels: { zone: 'b' }, Role: 'worker', Availability: 'drain' });
      expect(await ok(41, ['node', 'update', '--label-add', 'rack=7', '--label-rm', 'zone', 'node-42'])).toBe('node-42\n');
      expect(await ok(41, ['node', 'inspect', '--format', '{{json .Spec.Labels}}', 'node-42'])).toBe('{"rack":"7"}\n');
      const bad = await docker(41, ['node', 'update', '--availability', 'drain', 'no-such-node']);
      expect(bad.stderr.trim()).toBe('Error response from daemon: node no-such-node not found');
    });

    it('node promote makes a reachable manager that answers node ls; demote reverts it', async () => {
      expect(await ok(41, ['node', 'promote', 'node-43'])).toBe('Node node-43 promoted to a manager in the swarm.\n');
      const promoted = await waitForTable(41, (t) => t['node-43']?.[2] === 'Reachable');
      expect(promoted['node-43']).toEqual(['Ready', 'Active', 'Reachable']);
      // The promoted node renews its certificate as a manager and then serves the control API.
      let fromPromoted = await docker(43, ['node', 'ls']);
      for (let i = 0; i < 40 && fromPromoted.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        fromPromoted = await docker(43, ['node', 'ls']);
      }
      expect(fromPromoted.stdout).toMatch(/^[0-9a-z]{25} \*\s+node-43\s+Ready\s+Active\s+Reachable/m);
      expect(await ok(41, ['node', 'demote', 'node-43'])).toBe('Manager node-43 demoted in the swarm.\n');
      expect((await nodeTable(41))['node-43']).toEqual(['Ready', 'Active', '']);
      const last = await docker(41, ['node', 'demote', 'node-41']);
      expect(last.stderr.trim()).toBe('Error response from daemon: attempting to demote the last manager of the swarm');
    });

    it('refuses a wrong token, a token of the wrong role, and a manager whose CA does not match the token', async () => {
      const wrongSecret = workerToken.replace(/-[0-9a-z]{25}$/, '-0000000000000000000000000');
      const wrong = await docker(44, ['swarm', 'join', '--token', wrongSecret, `127.0.0.41:${rpcPort(41)}`]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr.trim()).toBe('Error response from daemon: A valid join token is necessary to join this cluster');

      const nobody = await docker(44, ['swarm', 'join', '--token', workerToken, '127.0.0.41:23799']);
      expect(nobody.stderr.trim()).toMatch(/^Error response from daemon: Cannot reach the manager at 127\.0\.0\.41:23799: connect ECONNREFUSED/);

      const malformed = await docker(44, ['swarm', 'join', '--token', 'SWMTKN-1-nonsense', `127.0.0.41:${rpcPort(41)}`]);
      expect(malformed.stderr.trim()).toBe('Error response from daemon: invalid join token');

      // The API takes an explicit Role beside the token (shoal's JoinRequest extension); a
      // worker token cannot make a manager.
      const roleRun = await apiRequest(path.join(tmp, '44.sock'), 'POST', '/v1.50/swarm/join', {
        ListenAddr: `127.0.0.44:${rpcPort(44)}`,
        RemoteAddrs: [`127.0.0.41:${rpcPort(41)}`],
        JoinToken: workerToken,
        Role: 'manager',
      });
      expect(roleRun.status).toBe(403);
      expect(roleRun.json).toEqual({ message: 'The join token is a worker token; it cannot join this node as a manager' });

      await ok(45, ['swarm', 'init', '--advertise-addr', '127.0.0.45', '--listen-addr', `127.0.0.45:${rpcPort(45)}`]);
      const otherToken = (await ok(45, ['swarm', 'join-token', '-q', 'worker'])).trim();
      const mismatch = await docker(44, ['swarm', 'join', '--token', otherToken, `127.0.0.41:${rpcPort(41)}`]);
      expect(mismatch.code).toBe(1);
      expect(mismatch.stderr.trim()).toMatch(/^Error response from daemon: remote CA does not match fingerprint\. Expected: [0-9a-f]{64}$/);
      expect(await docker(44, ['info', '--format', '{{.Swarm.LocalNodeState}}'])).toMatchObject({ stdout: 'inactive\n' });
    });

    it('an agent joins with the manager token as a manager, and can answer node ls', async () => {
      const managerToken = (await ok(41, ['swarm', 'join-token', '-q', 'manager'])).trim();
      expect(managerToken).not.toBe(workerToken);
      const out = await ok(44, ['swarm', 'join', '--token', managerToken, '--listen-addr', `127.0.0.44:${rpcPort(44)}`, `127.0.0.41:${rpcPort(41)}`]);
      expect(out).toBe('This node joined a swarm as a manager.\n');
      expect((await nodeTable(41))['node-44']).toEqual(['Ready', 'Active', 'Reachable']);
      expect((await nodeTable(44))['node-41']).toEqual(['Ready', 'Active', 'Leader']);
    });

    it('join-token --rotate replaces the worker token; the old one no longer joins', async () => {
      const out = await ok(41, ['swarm', 'join-token', '--rotate', 'worker']);
      expect(out).toMatch(/^Successfully rotated worker join token\.\n\nTo add a worker to this swarm/);
      const fresh = (await ok(41, ['swarm', 'join-token', '-q', 'worker'])).trim();
      expect(fresh).not.toBe(workerToken);
      expect(fresh.slice(0, 60)).toBe(workerToken.slice(0, 60)); // same CA, same digest
      const old = await docker(45, ['swarm', 'join', '--token', workerToken, `127.0.0.41:${rpcPort(41)}`]);
      expect(old.stderr.trim()).toBe('Error response from daemon: This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.');
      await ok(45, ['swarm', 'leave', '--force']);
      const refused = await docker(45, ['swarm', 'join', '--token', workerToken, `127.0.0.41:${rpcPort(41)}`]);
      expect(refused.stderr.trim()).toBe('Error response from daemon: A valid join token is necessary to join this cluster');

      // The other manager prints its own address in the join command, and a join sent there works.
      const fromSecond = await ok(44, ['swarm', 'join-token', 'worker']);
      expect(fromSecond).toContain(`docker swarm join --token ${fresh} 127.0.0.44:${rpcPort(44)}`);
      expect(await ok(45, ['swarm', 'join', '--token', fresh, `127.0.0.44:${rpcPort(44)}`])).toBe('This node joined a swarm as a worker.\n');
      expect((await nodeTable(41))['node-45']).toEqual(['Ready', 'Active', '']);
      workerToken = fresh;
    });

    it('port 2377 serves the CA to anyone but nothing else without a node certificate of this swarm', async () => {
      const call = (route: string, method: string, tls: https.RequestOptions = {}): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = https.request({ host: '127.0.0.41', port: rpcPort(41), path: route, method, rejectUnauthorized: false, agent: false, ...tls }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end(method === 'POST' ? '{}' : undefined);
        });
      const ca = await call('/ca', 'GET');
      expect(ca.status).toBe(200);
      expect(ca.body).toMatch(/^-----BEGIN CERTIFICATE-----/);

      const anonymous = await call('/heartbeat', 'POST');
      expect(anonymous.status).toBe(401);
      expect(JSON.parse(anonymous.body).message).toMatch(/^A node certificate issued by this swarm's CA is required/);

      // A certificate of the right shape from another CA (another cluster's, say).
      const foreign = ClusterCa.create('othercluster', Date.now(), new SeededRng(7));
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const cert = foreign.issue({ nodeId: 'intruder', role: 'manager', clusterId: 'othercluster' }, publicKey.export({ type: 'spki', format: 'pem' }).toString(), Date.now(), 3600_000, new SeededRng(8));
      const forged = await call('/control', 'POST', { cert, key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
      expect(forged.status).toBe(401);

      // A genuine worker certificate may heartbeat but not use the manager-only control calls.
      const certs = path.join(tmp, 'data-42', 'swarm', 'certificates');
      const worker = { cert: await readFile(path.join(certs, 'swarm-node.crt'), 'utf8'), key: await readFile(path.join(certs, 'swarm-node.key'), 'utf8') };
      expect((await call('/heartbeat', 'POST', worker)).status).toBe(200);
      const control = await call('/control', 'POST', worker);
      expect(control.status).toBe(403);
      expect(JSON.parse(control.body).message).toBe('Permission denied: remote certificate not part of OUs: [swarm-manager]');

      // The manager counts what it refused.
      const metrics = (await apiRequest(path.join(tmp, '41.sock'), 'GET', '/metrics')).text;
      expect(metrics).toMatch(/^cluster_rpc_refused_certificate\{node="node-41"\} [1-9]/m);
      expect(metrics).toMatch(/^cluster_joins_refused\{node="node-41"\} [1-9]/m);
    });

    it('a worker killed with SIGKILL goes Down, and Ready again when it comes back', async () => {
      const victim = agents.get(43)!;
      const exited = new Promise((r) => victim.child.once('exit', r));
      victim.child.kill('SIGKILL');
      await exited;
      const down = await waitForTable(41, (t) => t['node-43']?.[0] === 'Down');
      expect(down['node-43']?.[0]).toBe('Down');
      await start(43);
      const back = await waitForTable(41, (t) => t['node-43']?.[0] === 'Ready');
      expect(back['node-43']?.[0]).toBe('Ready');
      // It was demoted shortly before it was killed, perhaps before a heartbeat told it so: it
      // learns its role from its first heartbeats after the restart.
      const info = async (): Promise<string> => ok(43, ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']);
      let state = await info();
      for (let i = 0; i < 40 && state !== 'active false\n'; i++) {
        await new Promise((r) => setTimeout(r, 250));
        state = await info();
      }
      expect(state).toBe('active false\n');
    });

    it('swarm leave: a worker leaves; the last manager needs --force', async () => {
      expect(await ok(42, ['swarm', 'leave'])).toBe('Node left the swarm.\n');
      expect(await ok(42, ['info', '--format', '{{.Swarm.LocalNodeState}}'])).toBe('inactive\n');
      const down = await waitForTable(41, (t) => t['node-42']?.[0] === 'Down');
      expect(down['node-42']?.[0]).toBe('Down');
      expect(await ok(41, ['node', 'rm', 'node-42'])).toBe('node-42\n');
      expect(Object.keys(await nodeTable(41)).sort()).toEqual(['node-41', 'node-43', 'node-44', 'node-45']);

      const second = await docker(44, ['swarm', 'leave']);
      expect(second.stderr).toContain('It will stay in the node list as an unreachable manager until it is demoted');
      expect(await ok(44, ['swarm', 'leave', '--force'])).toBe('Node left the swarm.\n');
      const gone = await waitForTable(41, (t) => t['node-44']?.[0] === 'Down');
      expect(gone['node-44']).toEqual(['Down', 'Active', 'Unreachable']);

      const refused = await docker(41, ['swarm', 'leave']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('You are attempting to leave the swarm on a node that is participating as a manager.');
      expect(await ok(41, ['swarm', 'leave', '--force'])).toBe('Node left the swarm.\n');
      const after = await docker(41, ['node', 'ls']);
      expect(after.stderr.trim()).toBe(
        'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.',
      );
    });
  },
  { root: false },
);
