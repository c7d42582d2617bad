/**
 * `shoal service …` run in process against the real API server and a real Manager whose
 * agents are stand-ins (test/api/stand-in-swarm.ts: a loop that reports assigned tasks
 * running). Assertions are on what the user sees: docker's columns, the convergence progress,
 * messages and exit statuses. `service logs` runs against a stand-in control plane (the
 * manager's log broker is not wired yet) to prove the line format and the 404 fallbacks.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane, LogEntry } from '../../src/agent/control-plane.js';
import type { ApiBackend } from '../../src/api/docker.js';
import { type ApiServer, serveApi } from '../../src/api/server.js';
import { FrameReader, type ServiceCliIo, humanDuration, parseGoDuration, parsePublish, portsCell, progressBar, registerServiceCommands } from '../../src/cli/commands/service.js';
import { NotFoundError } from '../../src/lib/errors.js';
import { type StandInSwarm, startStandInSwarm } from '../api/stand-in-swarm.js';
import { CLI_ENTRY } from '../helpers/agent.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `shoal service <verb> --api-socket <socket> <rest…>` in process. */
async function shoal(socket: string, verb: string, rest: readonly string[], live?: { interrupt: AbortSignal; stdout: (text: string) => void }): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  const io: ServiceCliIo = {
    out: (t) => {
      stdout += t;
      live?.stdout(t);
    },
    err: (t) => void (stderr += t),
    fail: () => void (code = 1),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    interrupt: live?.interrupt ?? new AbortController().signal,
  };
  const program = new Command().exitOverride();
  registerServiceCommands(program, io);
  await program.parseAsync(['service', verb, '--api-socket', socket, ...rest], { from: 'user' });
  return { code, stdout, stderr };
}

describe('shoal service against a manager (stand-in agents)', () => {
  let swarm: StandInSwarm;
  const run = (verb: string, ...rest: string[]): Promise<Run> => shoal(swarm.server.socketPath, verb, rest);

  beforeAll(async () => {
    swarm = await startStandInSwarm(['node-1', 'node-2', 'node-3']);
  });

  afterAll(async () => {
    await swarm?.close();
  });

  it('create prints the ID, then docker\'s progress until the service converged', async () => {
    const r = await run('create', '--name', 'web', '--replicas', '3', '-p', '8080:80', '--update-monitor', '100ms', 'shoal/whoami');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const id = lines[0]!;
    expect(id).toMatch(/^[0-9a-z]{25}$/);
    expect(lines.slice(1, 5)).toEqual(['overall progress: 0 out of 3 tasks', '1/3:', '2/3:', '3/3:']);
    for (const slot of ['1/3', '2/3', '3/3']) expect(lines).toContain(`${slot}: running   [==================================================>]`);
    expect(lines).toContain('overall progress: 3 out of 3 tasks');
    expect(lines.at(-2)).toBe('verify: Waiting 1 seconds to verify that tasks are stable...');
    expect(lines.at(-1)).toBe(`verify: Service ${id} converged`);
  });

  it('ls shows docker\'s columns: 3/3 and the published port', async () => {
    const r = await run('ls');
    const [header, row, ...more] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS$/);
    expect(row).toMatch(/^[0-9a-z]{12} {3}web {7}replicated {3}3\/3 {8}shoal\/whoami {3}\*:8080->80\/tcp$/);
    expect(more).toEqual([]);
    expect((await run('ls', '-q')).stdout).toMatch(/^[0-9a-z]{25}\n$/);
  });

  it('ps shows three running tasks spread over the three nodes', async () => {
    const r = await run('ps', 'web');
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/);
    expect(rows).toHaveLength(3);
    const nodes = rows.map((row, i) => {
      const m = new RegExp(`^[0-9a-z]{12}\\s+web\\.${i + 1}\\s+shoal/whoami\\s+(node-\\d)\\s+Running\\s+Running (Less than a second|\\d+ seconds?) ago$`).exec(row);
      expect(m, row).not.toBeNull();
      return m![1];
    });
    expect(new Set(nodes).size).toBe(3);
    const missing = await run('ps', 'nosuch');
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'no such service: nosuch\n' });
  });

  it('scale prints "web scaled to 5" and waits for 5 running tasks', async () => {
    const r = await run('scale', 'web=5');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('web scaled to 5');
    expect(r.stdout).toContain('overall progress: 5 out of 5 tasks\n');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('verify: Service web converged');
    expect((await run('ls')).stdout).toMatch(/\sreplicated {3}5\/5 /);
    const bad = await run('scale', 'web');
    expect(bad).toMatchObject({ code: 1, stderr: "invalid scale specifier 'web'.\nSee 'shoal service scale --help'.\n" });
  });

  it('logs prints every task\'s lines; -f follows until interrupted (Ctrl-C)', async () => {
    const lines = (await run('logs', 'web')).stdout.trimEnd().split('\n').sort();
    expect(lines).toHaveLength(5);
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^web\\.${i + 1}\\.[0-9a-z]{12}@node-\\d {4}\\| hello from web\\.${i + 1}$`)));
    const interrupt = new AbortController();
    let seen = '';
    const following = shoal(swarm.server.socketPath, 'logs', ['-f', 'web'], { interrupt: interrupt.signal, stdout: (t) => (seen += t) });
    for (let i = 0; i < 100 && seen.split('\n').length <= 5; i++) await new Promise((r) => setTimeout(r, 20));
    const task = swarm.manager.listTasks({ service: ['web'], 'desired-state': ['running'] }).find((t) => t.Slot === 2)!;
    swarm.manager.appendLogs(task.NodeID, [{ TaskID: task.ID, Stream: 'stdout', Timestamp: new Date().toISOString(), Line: 'a later line' }]);
    for (let i = 0; i < 100 && !seen.includes('a later line'); i++) await new Promise((r) => setTimeout(r, 20));
    interrupt.abort();
    const r = await following;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`web.2.${task.ID.slice(0, 12)}@`);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(/^web\.2\.[0-9a-z]{12}@node-\d {4}\| a later line$/);
  });

  it('update --env-add rolls every task and keeps the old ones as indented history', async () => {
    // As docker, the wait ends at UpdateStatus "completed", set one Monitor after the last task
    // runs: 1 s (five polls) lets the progress see the convergence first.
    const r = await run('update', '--env-add', 'GREETING=hi', '--update-monitor', '1s', 'web');
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toBe('web');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('verify: Service web converged');
    const [inspected] = JSON.parse((await run('inspect', 'web')).stdout) as { Spec: { TaskTemplate: { ContainerSpec: { Env: string[] } } }; PreviousSpec?: unknown }[];
    expect(inspected?.Spec.TaskTemplate.ContainerSpec.Env).toEqual(['GREETING=hi']);
    const rows = (await run('ps', 'web')).stdout.trimEnd().split('\n').slice(1);
    expect(rows.filter((row) => /\sRunning\s+Running /.test(row))).toHaveLength(5);
    const history = rows.filter((row) => row.includes(' \\_ web.'));
    expect(history.length).toBe(5);
    for (const row of history) expect(row).toMatch(/^[0-9a-z]{12} {4}\\_ web\.\d\s+shoal\/whoami\s+node-\d\s+Shutdown\s+Shutdown /);
    const running = (await run('ps', '-f', 'desired-state=running', '-q', 'web')).stdout.trim().split('\n');
    expect(running).toHaveLength(5);
  });

  it('rollback goes back to the spec before the update, with docker\'s rollback progress', async () => {
    const r = await run('rollback', 'web');
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.slice(0, 2)).toEqual(['web', 'rollback: manually requested rollback']);
    expect(lines).toContain('overall progress: rolling back update: 5 out of 5 tasks');
    expect(lines.at(-1)).toBe('verify: Service web converged');
    const [web] = JSON.parse((await run('inspect', 'web')).stdout) as { Spec: { TaskTemplate: { ContainerSpec: { Env?: string[] } } } }[];
    expect(web?.Spec.TaskTemplate.ContainerSpec.Env).toBeUndefined();
  });

  it('inspect fills defaults (insertDefaults) and answers [] plus an error for an unknown service', async () => {
    const [web] = JSON.parse((await run('inspect', 'web')).stdout) as { Spec: { TaskTemplate: { RestartPolicy: unknown } } }[];
    expect(web?.Spec.TaskTemplate.RestartPolicy).toEqual({ Condition: 'any', Delay: 5e9, MaxAttempts: 0 });
    expect(await run('inspect', 'nosuch')).toEqual({ code: 1, stdout: '[]\n', stderr: 'Error: no such service: nosuch\n' });
  });

  it('refuses bad specs with the daemon\'s 400 message and creates nothing', async () => {
    const cases: [string[], string][] = [
      [['--name', 'bad', 'nginx'], 'Error response from daemon: unknown image "nginx": shoal runs the built-in images (shoal/whoami, shoal/ping) or an executable given by its absolute path\n'],
      [['--name', 'bad', '-p', '8080:80', 'shoal/whoami'], "Error response from daemon: port '8080' is already in use by another service\n"],
      [['--name', 'bad', '--constraint', 'node.colour==red', 'shoal/whoami'], /^Error response from daemon: TaskTemplate\.Placement\.Constraints\[0\] "node\.colour==red" is not a constraint/ as unknown as string],
      [['--name', 'bad', '-e', 'NOEQUALS', 'shoal/whoami'], 'Error response from daemon: TaskTemplate.ContainerSpec.Env[0] must be KEY=VALUE, not "NOEQUALS"\n'],
      [['--name', 'bad', '-p', '99999:80', 'shoal/whoami'], 'invalid published port in "99999:80"\n'],
      [['--name', 'bad', '--replicas', '-1', 'shoal/whoami'], 'invalid replicas "-1": expected a non-negative integer\n'],
      [['--name', 'bad', '--mode', 'global', '--replicas', '2', 'shoal/whoami'], 'replicas can only be used with replicated or replicated-job mode\n'],
    ];
    for (const [args, message] of cases) {
      const r = await run('create', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      if (typeof message === 'string') expect(r.stderr).toBe(message);
      else expect(r.stderr).toMatch(message);
    }
    expect((await run('ls', '-q')).stdout.trim().split('\n')).toHaveLength(1);
  });

  it('create --mode global puts one task on every node, with its args', async () => {
    const r = await run('create', '--mode', 'global', '--name', 'g', '--update-monitor', '100ms', 'shoal/ping', '127.0.0.1', '-c', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('overall progress: 3 out of 3 tasks\n');
    const [g] = JSON.parse((await run('inspect', 'g')).stdout) as { Spec: { TaskTemplate: { ContainerSpec: { Args: string[] } } } }[];
    expect(g?.Spec.TaskTemplate.ContainerSpec.Args).toEqual(['127.0.0.1', '-c', '1']);
    expect((await run('ls')).stdout).toMatch(/\sg\s+global\s+3\/3\s+shoal\/ping\s*\n/);
    const rows = (await run('ps', 'g')).stdout.trimEnd().split('\n').slice(1);
    expect(rows.map((row) => /\sg\.([0-9a-z]{25})\s/.exec(row)?.[1]).sort()).toEqual([...swarm.nodes.values()].sort());
    expect((await run('scale', 'g=2')).stderr).toBe('g: scale can only be used with replicated or replicated-job mode\n');
  });

  it('is registered in the shoal command: `shoal service ls` as a process', async () => {
    const r = await new Promise<Run>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CLI_ENTRY, 'service', 'ls', '--api-socket', swarm.server.socketPath], { timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? 1 : 0, stdout, stderr }),
      );
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\n[0-9a-z]{12}\s+g\s+global\s+3\/3\s+shoal\/ping\s*\n[0-9a-z]{12}\s+web\s+replicated\s+5\/5\s+shoal\/whoami\s+\*:8080->80\/tcp\n$/);
  });

  it('rm removes services by name and reports unknown ones', async () => {
    expect(await run('rm', 'web', 'g')).toEqual({ code: 0, stdout: 'web\ng\n', stderr: '' });
    expect((await run('ls')).stdout).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\n$/);
    expect(await run('rm', 'web')).toEqual({ code: 1, stdout: '', stderr: 'Error response from daemon: service web not found\n' });
  });
});

describe('shoal service logs (stand-in control plane)', () => {
  let tmp: string;
  let server: ApiServer;
  const SVC = 'svcaaaaaaaaaaaaaaaaaaaaa1';
  const TASK = 'tskbbbbbbbbbbbbbbbbbbbbb1';
  const NODE = 'nodcccccccccccccccccccccc';
  const line = (text: string, stream: 'stdout' | 'stderr' = 'stdout'): LogEntry => ({ TaskID: TASK, ServiceID: SVC, NodeID: NODE, Stream: stream, Timestamp: '2026-12-07T10:00:00.000000001Z', Line: text });

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-cli-logs-'));
    const service = (ref: string): never => {
      if (ref !== 'web' && ref !== SVC) throw new NotFoundError(`service ${ref} not found`);
      return { ID: SVC, Spec: { Name: 'web', Mode: { Replicated: { Replicas: 12 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } } } } as never;
    };
    const control: Partial<ControlPlane> = {
      getService: async (ref) => service(ref),
      getTask: async (ref) => {
        if (ref !== TASK) throw new NotFoundError(`task ${ref} not found`);
        return { ID: TASK, ServiceID: SVC, Slot: 3, NodeID: NODE } as never;
      },
      getNode: async () => ({ ID: NODE, Spec: {}, Description: { Hostname: 'node-2' } }) as never,
      logs: async () => ({ entries: [line('hello world'), line('oops', 'stderr')] }),
    };
    const backend: ApiBackend = {
      nodeName: 'n',
      cluster: { swarmHeader: () => 'active/manager', info: async () => ({}) as never, control: () => control as ControlPlane, init: async () => '', join: async () => undefined, leave: async () => undefined },
    };
    server = await serveApi(backend, path.join(tmp, 'api.sock'));
  });

  afterAll(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('prints <service>.<slot>.<task>@<node>, padded to the replica count\'s digits, stderr lines on stderr', async () => {
    const r = await shoal(server.socketPath, 'logs', ['web']);
    expect(r).toEqual({ code: 0, stdout: `web.3.${TASK.slice(0, 12)}@node-2     | hello world\n`, stderr: `web.3.${TASK.slice(0, 12)}@node-2     | oops\n` });
    const t = await shoal(server.socketPath, 'logs', ['-t', TASK]);
    expect(t.stdout).toBe(`2026-12-07T10:00:00.000000001Z web.3.${TASK.slice(0, 12)}@node-2    | hello world\n`);
    expect((await shoal(server.socketPath, 'logs', ['--raw', 'web'])).stdout).toBe('hello world\n');
  });

  it('falls back from service to task and says so when neither exists', async () => {
    expect(await shoal(server.socketPath, 'logs', ['nosuch'])).toEqual({ code: 1, stdout: '', stderr: 'no such task or service: nosuch\n' });
  });
});

describe('the pieces docker\'s output is made of', () => {
  it('parses Go durations', () => {
    expect([parseGoDuration('100ms'), parseGoDuration('1m30s'), parseGoDuration('1.5s'), parseGoDuration('0'), parseGoDuration('2h')]).toEqual([1e8, 90e9, 1.5e9, 0, 7200e9]);
    for (const bad of ['', '5', 's', '5x', '1s ']) expect(() => parseGoDuration(bad)).toThrow(`invalid duration "${bad}"`);
  });

  it('parses -p in short and long form', () => {
    expect(parsePublish('8080:80')).toEqual({ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' });
    expect(parsePublish('53/udp')).toEqual({ Protocol: 'udp', TargetPort: 53, PublishedPort: 0, PublishMode: 'ingress' });
    expect(parsePublish('published=8081,target=81,mode=host')).toEqual({ Protocol: 'tcp', TargetPort: 81, PublishedPort: 8081, PublishMode: 'host' });
    expect(() => parsePublish('a:b')).toThrow('invalid publish "a:b"');
  });

  it('groups consecutive ports into ranges and shows only ingress ports', () => {
    const p = (published: number, target: number, mode = 'ingress', proto = 'tcp'): { Protocol: string; TargetPort: number; PublishedPort: number; PublishMode: string } => ({ Protocol: proto, TargetPort: target, PublishedPort: published, PublishMode: mode });
    expect(portsCell([p(8081, 81), p(8080, 80), p(9000, 90), p(53, 53, 'ingress', 'udp'), p(7000, 70, 'host')], 'ingress')).toBe('*:8080-8081->80-81/tcp, *:9000->90/tcp, *:53->53/udp');
  });

  it('draws docker\'s bars and durations', () => {
    expect(progressBar(9)).toBe(`[${'='.repeat(50)}>]`);
    expect(progressBar(3)).toBe(`[${'='.repeat(16)}>${' '.repeat(34)}]`);
    expect([humanDuration(500), humanDuration(1000), humanDuration(59_000), humanDuration(61_000), humanDuration(3 * 3600_000)]).toEqual(['Less than a second', '1 second', '59 seconds', 'About a minute', '3 hours']);
  });

  it('reads frames split anywhere across chunks', () => {
    const frames: [number, string][] = [];
    const reader = new FrameReader((s, p) => frames.push([s, p.toString()]));
    const data = Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 3]), Buffer.from('ab\n'), Buffer.from([2, 0, 0, 0, 0, 0, 0, 2]), Buffer.from('c\n')]);
    for (const b of data) reader.push(Buffer.from([b]));
    expect(frames).toEqual([[1, 'ab\n'], [2, 'c\n']]);
  });
});
