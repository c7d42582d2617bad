/**
 * The stock docker CLI (28.2.2) drives services, tasks and networks through shoal's API on
 * tcp://127.0.0.101:24000. The manager, orchestrator, scheduler and API are real; the AGENTS
 * ARE STAND-INS (test/api/stand-in-swarm.ts): a loop in this process reports each assigned
 * task running and pushes one log line for it (`hello from web.1`), as an executor would; no
 * task process runs. The end-to-end run with real agents, processes and curl through the mesh
 * is the lead's test.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { describeInterop } from '../helpers/interop.js';
import { type StandInSwarm, startStandInSwarm } from './stand-in-swarm.js';

const HOST = '127.0.0.101';
const PORT = 24000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describeInterop(
  'docker CLI drives services, tasks and networks (stand-in agents)',
  ['docker'],
  () => {
    let tmp: string;
    let env: NodeJS.ProcessEnv;
    let swarm: StandInSwarm;

    const docker = (args: readonly string[]): Promise<Run> =>
      new Promise((resolve) => {
        execFile('docker', ['-H', `tcp://${HOST}:${PORT}`, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
          const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
          resolve({ code, stdout, stderr });
        });
      });
    const ok = async (args: readonly string[]): Promise<string> => {
      const r = await docker(args);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    };

    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-docker-services-'));
      env = { ...process.env, DOCKER_CONFIG: path.join(tmp, 'docker-config'), DOCKER_HOST: '', DOCKER_CONTEXT: '' };
      swarm = await startStandInSwarm(['node-1', 'node-2', 'node-3'], { host: HOST, port: PORT });
    });

    afterAll(async () => {
      await swarm?.close();
      await rm(tmp, { recursive: true, force: true });
    });

    it('service create --replicas 3 -p 8080:80 converges with docker\'s progress output', async () => {
      const r = await docker(['service', 'create', '--name', 'web', '--replicas', '3', '-p', '8080:80', 'shoal/whoami']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      const id = lines[0]!;
      expect(id).toMatch(/^[0-9a-z]{25}$/);
      expect(lines[1]).toBe('overall progress: 0 out of 3 tasks');
      expect(lines).toContain('overall progress: 3 out of 3 tasks');
      expect(lines).toContain('verify: Waiting 5 seconds to verify that tasks are stable...');
      expect(lines.at(-1)).toBe(`verify: Service ${id} converged`);
    });

    it('service ls shows 3/3 with the image and the published port', async () => {
      const rows = (await ok(['service', 'ls'])).trimEnd().split('\n');
      expect(rows[0]).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/);
      expect(rows[1]).toMatch(/^[0-9a-z]{12}\s+web\s+replicated\s+3\/3\s+shoal\/whoami(:latest)?\s+\*:8080->80\/tcp$/);
    });

    it('service ps web shows three running tasks on three nodes', async () => {
      const rows = (await ok(['service', 'ps', 'web'])).trimEnd().split('\n').slice(1);
      expect(rows).toHaveLength(3);
      const nodes = rows.map((row, i) => {
        const m = new RegExp(`^[0-9a-z]{12}\\s+web\\.${i + 1}\\s+shoal/whoami(:latest)?\\s+(node-\\d)\\s+Running\\s+Running .+ ago\\s*$`).exec(row);
        expect(m, row).not.toBeNull();
        return m![2];
      });
      expect(new Set(nodes).size).toBe(3);
    });

    it('service logs prints <service>.<slot>.<task>@<node>    | <line> for every task, and a task\'s own', async () => {
      const lines = (await ok(['service', 'logs', 'web'])).trimEnd().split('\n').sort();
      expect(lines).toHaveLength(3);
      lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^web\\.${i + 1}\\.[0-9a-z]{12}@node-\\d    \\| hello from web\\.${i + 1}$`)));
      const taskId = (await ok(['service', 'ps', '-q', '--no-trunc', '--filter', 'desired-state=running', 'web'])).trim().split('\n')[0]!;
      const own = (await ok(['service', 'logs', taskId])).trim();
      expect(own).toMatch(new RegExp(`^web\\.\\d\\.${taskId.slice(0, 12)}@node-\\d    \\| hello from web\\.\\d$`));
      const stamped = (await ok(['service', 'logs', '-t', '--raw', taskId])).trim();
      expect(stamped).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z hello from web\.\d$/);
      const missing = await docker(['service', 'logs', 'nosuch']);
      expect(missing.stderr.trim()).toBe('no such task or service: nosuch');
    });

    it('service inspect shows the spec with defaults, and [] plus an error for an unknown service', async () => {
      const [web] = JSON.parse(await ok(['service', 'inspect', 'web'])) as { Spec: { Mode: unknown; TaskTemplate: { RestartPolicy: unknown } }; Endpoint: { Ports: unknown[] } }[];
      expect(web?.Spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
      expect(web?.Spec.TaskTemplate.RestartPolicy).toEqual({ Condition: 'any', Delay: 5e9, MaxAttempts: 0 });
      expect(web?.Endpoint.Ports).toEqual([{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }]);
      const missing = await docker(['service', 'inspect', 'nosuch']);
      expect(missing).toMatchObject({ code: 1, stdout: '[]\n' });
      expect(missing.stderr.trim()).toBe('Error: no such service: nosuch');
    });

    it('service update --env-add rolls the tasks and converges', async () => {
      // docker stops waiting, successfully, as soon as it reads UpdateStatus "completed" (§7), which
      // the manager sets one Monitor after the last task runs: a Monitor of 1 s (five polls) lets
      // it see the convergence first, as a user's terminal would.
      const r = await docker(['service', 'update', '--env-add', 'GREETING=hi', '--update-monitor', '1s', 'web']);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe('web');
      expect(lines.at(-1)).toBe('verify: Service web converged');
      const [web] = JSON.parse(await ok(['service', 'inspect', 'web'])) as { Spec: { TaskTemplate: { ContainerSpec: { Env: string[] } } }; PreviousSpec: unknown }[];
      expect(web?.Spec.TaskTemplate.ContainerSpec.Env).toEqual(['GREETING=hi']);
      expect(web?.PreviousSpec).toBeDefined();
      const history = (await ok(['service', 'ps', 'web'])).split('\n').filter((row) => row.includes('\\_ web.'));
      expect(history).toHaveLength(3);
      for (const row of history) expect(row).toMatch(/\\_ web\.\d\s+shoal\/whoami(:latest)?\s+node-\d\s+Shutdown\s+Shutdown /);
    });

    it('service rollback restores the previous spec, with docker\'s rollback progress', async () => {
      const r = await docker(['service', 'rollback', 'web']);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe('web');
      expect(lines).toContain('rollback: manually requested rollback');
      expect(lines.some((l) => /^overall progress: rolling back update: \d out of 3 tasks$/.test(l))).toBe(true);
      expect(lines.at(-1)).toBe('verify: Service web converged');
      const [web] = JSON.parse(await ok(['service', 'inspect', 'web'])) as { Spec: { TaskTemplate: { ContainerSpec: { Env?: string[] } } } }[];
      expect(web?.Spec.TaskTemplate.ContainerSpec.Env).toBeUndefined();
    });

    it('service scale web=5 prints "web scaled to 5", converges and shows 5/5; logs -f shows the new tasks\' lines', async () => {
      const follower = spawn('docker', ['-H', `tcp://${HOST}:${PORT}`, 'service', 'logs', '-f', 'web'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let followed = '';
      follower.stdout.on('data', (c: Buffer) => (followed += c.toString()));
      // The follower is stopped whatever happens below.
      onTestFinished(() => void follower.kill());
      const r = await docker(['service', 'scale', 'web=5']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe('web scaled to 5');
      expect(r.stdout).toContain('overall progress: 5 out of 5 tasks\n');
      expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('verify: Service web converged');
      expect(await ok(['service', 'ls', '--format', '{{.Name}} {{.Replicas}}'])).toBe('web 5/5\n');
      for (let i = 0; i < 100 && !/hello from web\.5\n/.test(followed); i++) await new Promise((done) => setTimeout(done, 100));
      follower.kill();
      expect(followed).toMatch(/^web\.4\.[0-9a-z]{12}@node-\d {4}\| hello from web\.4$/m);
      expect(followed).toMatch(/^web\.5\.[0-9a-z]{12}@node-\d {4}\| hello from web\.5$/m);
    });

    it('service create --mode global puts one shoal/ping task on every node', async () => {
      const r = await docker(['service', 'create', '--mode', 'global', '--name', 'g', '--update-monitor', '100ms', 'shoal/ping', '127.0.0.1']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('overall progress: 3 out of 3 tasks\n');
      expect(await ok(['service', 'ls', '--filter', 'name=g', '--format', '{{.Name}} {{.Mode}} {{.Replicas}}'])).toBe('g global 3/3\n');
      const [g] = JSON.parse(await ok(['service', 'inspect', 'g'])) as { Spec: { TaskTemplate: { ContainerSpec: { Args: string[] } } } }[];
      expect(g?.Spec.TaskTemplate.ContainerSpec.Args).toEqual(['127.0.0.1']);
      const scale = await docker(['service', 'scale', 'g=2']);
      expect(scale.stderr).toContain('g: scale can only be used with replicated or replicated-job mode');
    });

    it('refuses bad specs with the daemon\'s message and creates nothing', async () => {
      const image = await docker(['service', 'create', '-d', '--name', 'bad', 'nginx']);
      expect(image.code).toBe(1);
      expect(image.stderr.trim()).toMatch(/^Error response from daemon: unknown image "nginx(:latest)?": shoal runs the built-in images \(shoal\/whoami, shoal\/ping\)/);
      const constraint = await docker(['service', 'create', '-d', '--name', 'bad', '--constraint', 'node.colour==red', 'shoal/whoami']);
      expect(constraint.stderr.trim()).toMatch(/^Error response from daemon: TaskTemplate\.Placement\.Constraints\[0\] "node\.colour==red" is not a constraint/);
      const port = await docker(['service', 'create', '-d', '--name', 'bad', '-p', '8080:80', 'shoal/whoami']);
      expect(port.stderr.trim()).toBe("Error response from daemon: port '8080' is already in use by another service");
      expect(await ok(['service', 'ls', '--format', '{{.Name}}'])).toBe('g\nweb\n');
    });

    it('accepts the spec docker builds from (nearly) every service create flag, and stores it as sent', async () => {
      const flags = [
        '--limit-memory', '64m', '--limit-cpu', '0.5', '--reserve-memory', '32m', '--limit-pids', '100', '--health-cmd', 'true', '--health-interval', '2s',
        '--health-retries', '2', '--health-timeout', '1s', '--health-start-period', '1s', '--health-start-interval', '1s', '--restart-condition', 'on-failure',
        '--restart-delay', '1s', '--restart-max-attempts', '3', '--restart-window', '10s', '--update-parallelism', '2', '--update-delay', '1s',
        '--update-failure-action', 'rollback', '--update-monitor', '2s', '--update-order', 'start-first', '--update-max-failure-ratio', '0.5',
        '--rollback-parallelism', '1', '--rollback-monitor', '1s', '--placement-pref', 'spread=node.labels.az', '--constraint', 'node.role==manager',
        '--replicas-max-per-node', '2', '--mount', 'type=bind,source=/tmp,target=/data', '--dns', '1.1.1.1', '--dns-search', 'x', '--dns-option', 'ndots:1',
        '--hostname', 'h', '--user', 'nobody', '--workdir', '/tmp', '--env', 'A=1', '--label', 'a=b', '--container-label', 'c=d', '--stop-grace-period', '3s',
        '--stop-signal', 'SIGINT', '--read-only', '--init', '--cap-add', 'NET_ADMIN', '--cap-drop', 'ALL', '--ulimit', 'nofile=1024:2048',
        '--sysctl', 'net.core.somaxconn=1024', '--host', 'h1:1.2.3.4', '--group', 'g', '--log-driver', 'json-file', '--log-opt', 'max-size=1m',
        '--endpoint-mode', 'vip', '-p', 'published=24100,target=90,protocol=udp,mode=host', '--no-resolve-image', '--oom-score-adj', '10', '--isolation', 'default',
      ];
      const id = (await ok(['service', 'create', '-d', '--name', 'full', ...flags, 'shoal/whoami', 'arg1'])).trim();
      expect(id).toMatch(/^[0-9a-z]{25}$/);
      const [full] = JSON.parse(await ok(['service', 'inspect', 'full'])) as { Spec: { TaskTemplate: { ContainerSpec: Record<string, unknown>; Resources: unknown; Placement: unknown }; UpdateConfig: unknown } }[];
      expect(full?.Spec.TaskTemplate.ContainerSpec).toMatchObject({ Args: ['arg1'], Env: ['A=1'], Init: true, ReadOnly: true, Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 2e9, Retries: 2 } });
      expect(full?.Spec.TaskTemplate.Resources).toEqual({ Limits: { NanoCPUs: 5e8, MemoryBytes: 67108864, Pids: 100 }, Reservations: { MemoryBytes: 33554432 } });
      expect(full?.Spec.TaskTemplate.Placement).toEqual({ Constraints: ['node.role==manager'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.az' } }], MaxReplicas: 2 });
      expect(full?.Spec.UpdateConfig).toEqual({ Parallelism: 2, Delay: 1e9, FailureAction: 'rollback', Monitor: 2e9, MaxFailureRatio: 0.5, Order: 'start-first' });
      expect(await ok(['service', 'update', '-d', '--image', 'shoal/ping', '--args', '127.0.0.1', 'full'])).toBe('full\n');
      expect(await ok(['service', 'rm', 'full'])).toBe('full\n');
    });

    it('network create, ls and rm', async () => {
      const id = (await ok(['network', 'create', '-d', 'overlay', 'net1'])).trim();
      expect(id).toMatch(/^[0-9a-z]{25}$/);
      const ls = (await ok(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'])).trim().split('\n');
      expect(ls).toEqual(expect.arrayContaining(['ingress overlay swarm', 'net1 overlay swarm']));
      const taken = await docker(['network', 'create', '-d', 'overlay', 'net1']);
      expect(taken.code).toBe(1);
      expect(taken.stderr.trim()).toMatch(/^Error response from daemon: .*net1.*/);
      // --network: the CLI looks the network up by name and sends its Id as the Target.
      const onNet = (await ok(['service', 'create', '-d', '--name', 'n1', '--network', 'net1', 'shoal/whoami'])).trim();
      const [n1] = JSON.parse(await ok(['service', 'inspect', onNet])) as { Spec: { TaskTemplate: { Networks: { Target: string }[] } } }[];
      expect(n1?.Spec.TaskTemplate.Networks.map((n) => n.Target)).toEqual([id]);
      const busy = await docker(['network', 'rm', 'net1']);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toContain('network net1 is in use by service n1');
      expect(await ok(['service', 'rm', 'n1'])).toBe('n1\n');
      expect(await ok(['network', 'rm', 'net1'])).toBe('net1\n');
      expect(await ok(['network', 'ls', '--format', '{{.Name}}'])).not.toContain('net1');
    });

    it('service rm removes both services; removing again is "not found"', async () => {
      expect(await ok(['service', 'rm', 'web', 'g'])).toBe('web\ng\n');
      expect(await ok(['service', 'ls', '-q'])).toBe('');
      const again = await docker(['service', 'rm', 'web']);
      expect(again.code).toBe(1);
      expect(again.stderr.trim()).toBe('Error response from daemon: service web not found');
    });
  },
  { root: false },
);
