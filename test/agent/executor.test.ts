/**
 * The executor with real processes: built-in images and host executables run from an
 * assignment set, their states as the manager would see them, their ports, health checks and
 * log lines; and the executor wired to a NodeMesh as the agent wires it. Addresses
 * 127.0.0.114–117 and ports 24220–24239 are this file's own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { Health } from '../../src/mesh/endpoint-codec.js';
import type { AssignmentSet, ContainerSpec, EndpointPort, TaskAssignment, TaskLogLine, TaskState, TaskStatusUpdate } from '../../src/cluster/service-types.js';
import { TASK_STATES } from '../../src/cluster/service-types.js';
import { Executor, type ExecutorEvents, type RunningTask, healthOf, meshEvents, rfc3339Nano } from '../../src/agent/executor.js';
import { NodeMesh, meshServices } from '../../src/agent/node-mesh.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const TASK_HOST = '127.0.0.114';
const PUBLISH_HOST = '127.0.0.115';
const clock = new RealClock();

interface Seen {
  status: TaskStatusUpdate[];
  logs: TaskLogLine[];
  logCalls: number;
  running: RunningTask[];
  health: [string, Health][];
  exited: string[];
  removed: string[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function executor(extra: Partial<ExecutorEvents> = {}, options: { unhealthy?: 'fail' | 'keep' } = {}): { ex: Executor; seen: Seen } {
  const seen: Seen = { status: [], logs: [], logCalls: 0, running: [], health: [], exited: [], removed: [] };
  const ex = new Executor({
    nodeName: 'n1',
    hostAddress: TASK_HOST,
    publishHost: PUBLISH_HOST,
    clock,
    logger: silentLogger,
    ...options,
    events: {
      status: (u) => seen.status.push(u),
      logs: (lines) => {
        seen.logCalls++;
        seen.logs.push(...lines);
      },
      running: (t) => {
        seen.running.push(t);
        extra.running?.(t);
      },
      health: (taskId, service, h) => {
        seen.health.push([taskId, h]);
        extra.health?.(taskId, service, h);
      },
      exited: (taskId, service) => {
        seen.exited.push(taskId);
        extra.exited?.(taskId, service);
      },
      removed: (taskId, service) => {
        seen.removed.push(taskId);
        extra.removed?.(taskId, service);
      },
    },
  });
  cleanups.push(() => ex.close());
  return { ex, seen };
}

let nextSlot = 1;
function task(id: string, spec: Partial<ContainerSpec> & { Image: string }, o: { ports?: EndpointPort[]; desired?: TaskState; service?: string } = {}): TaskAssignment {
  return {
    TaskID: id,
    ServiceID: `svc-${o.service ?? 'web'}`,
    ServiceName: o.service ?? 'web',
    Slot: nextSlot++,
    DesiredState: o.desired ?? 'running',
    Spec: { ContainerSpec: spec },
    Ports: o.ports ?? [],
    OverlayAddress: '100.64.0.130',
  };
}

function set(...tasks: TaskAssignment[]): AssignmentSet {
  return { Index: 1, Tasks: tasks, Services: [], Ingress: { Vni: 4096, Subnet: '100.64.0.0/24' } };
}

const statesOf = (seen: Seen, id: string): TaskState[] => seen.status.filter((u) => u.TaskID === id).map((u) => u.State);
const last = (seen: Seen, id: string): TaskStatusUpdate | undefined => seen.status.filter((u) => u.TaskID === id).at(-1);
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const ingressPort = (target: number, published: number): EndpointPort => ({ Protocol: 'tcp', TargetPort: target, PublishedPort: published, PublishMode: 'ingress' });

describe('Executor: a task from an assignment set', () => {
  it('runs shoal/whoami: accepted → preparing → starting → running with a PID, answers on its PORT as service/task/node, and is shut down when it leaves the set', async () => {
    const { ex, seen } = executor();
    const web = task('t-whoami', { Image: 'shoal/whoami:latest' }, { ports: [ingressPort(80, 24220)] });
    const s = set(web);
    ex.reconcile(s);
    ex.reconcile(s);
    await waitFor(() => last(seen, 't-whoami')?.State === 'running', 20_000, 'whoami running');
    expect(statesOf(seen, 't-whoami')).toEqual(['accepted', 'preparing', 'starting', 'running']);
    const running = last(seen, 't-whoami')!;
    expect(running).toMatchObject({ Message: 'started', PID: expect.any(Number) as unknown });
    expect(running.Timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(isAlive(running.PID!)).toBe(true);

    expect(seen.running).toHaveLength(1);
    const published = seen.running[0]!;
    expect(published).toMatchObject({ service: 'web', taskId: 't-whoami', slot: web.Slot, overlayAddress: 0x64400082, hostAddress: 0x7f000072, targets: [{ protocol: 'tcp', target: 80 }], health: 'none' });
    const port = published.hostPorts.get(80)!;
    expect(ex.tasks()).toEqual([expect.objectContaining({ taskId: 't-whoami', state: 'running', pid: running.PID, hostPorts: new Map([[80, port]]) })]);
    const answer = JSON.parse((await httpGet(TASK_HOST, port)).body) as { service: string; task: string; node: string };
    expect(answer).toEqual(expect.objectContaining({ service: 'web', task: `web.${web.Slot}`, node: 'n1' }));

    ex.reconcile(set());
    await waitFor(() => last(seen, 't-whoami')?.State === 'shutdown', 20_000, 'whoami shut down');
    expect(last(seen, 't-whoami')).toMatchObject({ Message: 'shutdown', ExitCode: 0 });
    expect(seen.removed).toEqual(['t-whoami']);
    expect(seen.exited).toEqual([]);
    expect(isAlive(running.PID!)).toBe(false);
    expect(ex.tasks()).toEqual([]);
    await expect(httpGet(TASK_HOST, port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('stops a task whose desired state moves past running, with SIGKILL once its grace period is over', async () => {
    const { ex, seen } = executor();
    // Ignores SIGTERM: only the SIGKILL after StopGracePeriod (200 ms) ends it.
    const stubborn = task('t-stubborn', { Image: '/bin/sh', Args: ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], StopGracePeriod: 200_000_000 });
    ex.reconcile(set(stubborn));
    await waitFor(() => seen.logs.some((l) => l.TaskID === 't-stubborn' && l.Line === 'ready'), 20_000, 'the task to trap SIGTERM');
    ex.reconcile(set({ ...stubborn, DesiredState: 'shutdown' }));
    await waitFor(() => last(seen, 't-stubborn')?.State === 'shutdown', 20_000, 'shut down');
    expect(last(seen, 't-stubborn')).toMatchObject({ ExitCode: 137 });
    // Still in the set (desired shutdown): not reported again, not started again.
    ex.reconcile(set({ ...stubborn, DesiredState: 'shutdown' }));
    ex.reconcile(set({ ...stubborn, DesiredState: 'shutdown' }));
    expect(statesOf(seen, 't-stubborn').filter((s) => s === 'shutdown')).toHaveLength(1);
  });

  it('reports exit 0 as complete, exit 3 and a signal as failed with Docker’s message, and never restarts a task', async () => {
    const { ex, seen } = executor();
    const ok = task('t-ok', { Image: '/bin/sh', Args: ['-c', 'exit 0'] });
    const bad = task('t-bad', { Image: '/bin/sh', Args: ['-c', 'exit 3'] });
    const killed = task('t-killed', { Image: '/bin/sh', Args: ['-c', 'kill -KILL $$'] });
    const s = set(ok, bad, killed);
    ex.reconcile(s);
    const done = (id: string): boolean => ['complete', 'failed'].includes(last(seen, id)?.State ?? '');
    await waitFor(() => done('t-ok') && done('t-bad') && done('t-killed'), 20_000, 'three tasks to end');
    expect(last(seen, 't-ok')).toMatchObject({ State: 'complete', Message: 'finished', ExitCode: 0 });
    expect(last(seen, 't-bad')).toMatchObject({ State: 'failed', ExitCode: 3, Err: 'task: non-zero exit (3)' });
    expect(last(seen, 't-killed')).toMatchObject({ State: 'failed', ExitCode: 137, Err: 'task: non-zero exit (137)' });
    for (const id of ['t-ok', 't-bad', 't-killed']) {
      const states = statesOf(seen, id);
      expect(states.slice(0, 3)).toEqual(['accepted', 'preparing', 'starting']);
      // In TASK_STATES order, each once.
      expect(states.map((st) => TASK_STATES.indexOf(st))).toEqual([...states.map((st) => TASK_STATES.indexOf(st))].sort((x, y) => x - y));
      expect(new Set(states).size).toBe(states.length);
    }
    const reports = seen.status.length;
    ex.reconcile(s);
    ex.reconcile(s);
    expect(seen.status.length).toBe(reports);
    expect(ex.tasks().map((t) => t.state).sort()).toEqual(['complete', 'failed', 'failed']);
    // Desired shutdown now: finished tasks are forgotten, with no report (they are already terminal).
    ex.reconcile(set(...s.Tasks.map((t) => ({ ...t, DesiredState: 'shutdown' as const }))));
    expect(ex.tasks()).toEqual([]);
    expect(seen.status.length).toBe(reports);
  });

  it('a task’s leftover processes die with it, as a container’s do: its end is seen at once, and nothing it started keeps running', async () => {
    const { ex, seen } = executor();
    // The shell exits 0 at once; its background child still holds stdout open.
    ex.reconcile(set(task('t-leftover', { Image: '/bin/sh', Args: ['-c', 'sleep 60 & echo child=$!; exit 0'] })));
    await waitFor(() => last(seen, 't-leftover')?.State === 'complete', 20_000, 'complete (not after the 60 s sleep)');
    const child = Number(/^child=(\d+)$/.exec(seen.logs.find((l) => l.TaskID === 't-leftover')!.Line)![1]);
    await waitFor(() => !isAlive(child), 5000, 'the background child gone');
    // Stopped: the shell's child goes too.
    ex.reconcile(set(task('t-wrapper', { Image: '/bin/sh', Args: ['-c', 'sleep 60 & echo child=$!; wait'] })));
    await waitFor(() => seen.logs.some((l) => l.TaskID === 't-wrapper'), 20_000, 'the wrapper to start its child');
    const grandchild = Number(/^child=(\d+)$/.exec(seen.logs.find((l) => l.TaskID === 't-wrapper')!.Line)![1]);
    expect(isAlive(grandchild)).toBe(true);
    ex.reconcile(set());
    await waitFor(() => last(seen, 't-wrapper')?.State === 'shutdown', 20_000, 'shut down');
    await waitFor(() => !isAlive(grandchild), 5000, 'the wrapper’s child gone');
  });

  it.each([
    ['an unknown image', { Image: 'alpine:3.20' }, 'No such image: alpine:3.20'],
    ['a missing executable as image', { Image: '/nonexistent/shoal-test-binary' }, 'No such image: /nonexistent/shoal-test-binary'],
    ['a Command not on PATH', { Image: 'shoal/whoami', Command: ['shoal-no-such-command'] }, 'starting container failed: exec: "shoal-no-such-command": executable file not found in $PATH'],
    ['a missing working directory', { Image: '/bin/sh', Dir: '/nonexistent/shoal-dir' }, 'starting container failed: chdir to cwd ("/nonexistent/shoal-dir"): no such directory'],
  ])('rejects %s before starting anything', async (_what, spec, err) => {
    const { ex, seen } = executor();
    ex.reconcile(set(task('t-rejected', spec)));
    await waitFor(() => last(seen, 't-rejected')?.State === 'rejected', 10_000, 'rejected');
    expect(statesOf(seen, 't-rejected')).toEqual(['accepted', 'preparing', 'rejected']);
    expect(last(seen, 't-rejected')).toMatchObject({ Err: err });
    expect(seen.running).toEqual([]);
  });

  it('names a global task (slot 0) after its node, as Swarm names it <service>.<node>', async () => {
    const { ex, seen } = executor();
    ex.reconcile(set({ ...task('t-global', { Image: 'shoal/whoami' }, { ports: [ingressPort(80, 24229)], service: 'g' }), Slot: 0 }));
    await waitFor(() => last(seen, 't-global')?.State === 'running', 20_000, 'running');
    const port = seen.running[0]!.hostPorts.get(80)!;
    expect(JSON.parse((await httpGet(TASK_HOST, port)).body)).toMatchObject({ service: 'g', task: 'g.n1', node: 'n1' });
  });

  it('reports a task cancelled before it reached this node as shut down, once', async () => {
    const { ex, seen } = executor();
    const t = task('t-cancelled', { Image: 'shoal/whoami' }, { desired: 'shutdown' });
    ex.reconcile(set(t));
    ex.reconcile(set(t));
    expect(seen.status).toEqual([expect.objectContaining({ TaskID: 't-cancelled', State: 'shutdown' })]);
    expect(ex.tasks()).toEqual([]);
  });

  it('serves a host-mode port on the publish host itself, and rejects one that is taken', async () => {
    const { ex, seen } = executor();
    const t = task('t-host', { Image: 'shoal/whoami' }, { ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 24221, PublishMode: 'host' }] });
    ex.reconcile(set(t));
    await waitFor(() => last(seen, 't-host')?.State === 'running', 20_000, 'running');
    expect(JSON.parse((await httpGet(PUBLISH_HOST, 24221)).body)).toMatchObject({ service: 'web', task: `web.${t.Slot}` });
    // Not in the mesh's ports: host-mode publishing bypasses the routing mesh.
    expect(seen.running[0]).toMatchObject({ targets: [], hostPorts: new Map() });

    // Host mode without a published port: a free one on the publish host.
    ex.reconcile(set(t, task('t-host-any', { Image: 'shoal/whoami' }, { ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 0, PublishMode: 'host' }] })));
    await waitFor(() => last(seen, 't-host-any')?.State === 'running', 20_000, 'running');
    const anyPort = ex.tasks().find((x) => x.taskId === 't-host-any')!.hostPorts.get(80)!;
    expect(anyPort).toBeGreaterThan(0);
    expect(JSON.parse((await httpGet(PUBLISH_HOST, anyPort)).body)).toMatchObject({ service: 'web' });

    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(24222, PUBLISH_HOST, r));
    cleanups.push(() => new Promise((r) => squatter.close(() => r())));
    ex.reconcile(set(t, task('t-taken', { Image: 'shoal/whoami' }, { ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 24222, PublishMode: 'host' }] })));
    await waitFor(() => last(seen, 't-taken')?.State === 'rejected', 10_000, 'rejected');
    expect(last(seen, 't-taken')?.Err).toBe(`Bind for ${PUBLISH_HOST}:24222 failed: port is already allocated`);
  });
});

describe('Executor: health checks', () => {
  it('a failing CMD-SHELL check keeps the task starting; once unhealthy it is stopped and failed, as Swarm does', async () => {
    const { ex, seen } = executor();
    const t = task('t-sick', { Image: 'shoal/whoami', Healthcheck: { Test: ['CMD-SHELL', 'exit 1'], Interval: 50_000_000, Retries: 2 } }, { ports: [ingressPort(80, 24226)] });
    ex.reconcile(set(t));
    await waitFor(() => last(seen, 't-sick')?.State === 'failed', 20_000, 'failed');
    expect(statesOf(seen, 't-sick')).toEqual(['accepted', 'preparing', 'starting', 'failed']);
    // whoami exits 0 on SIGTERM; a non-zero exit would read `task: non-zero exit (N): dockerexec: unhealthy container`.
    expect(last(seen, 't-sick')).toMatchObject({ Err: 'dockerexec: unhealthy container', ExitCode: 0 });
    expect(seen.running).toEqual([expect.objectContaining({ taskId: 't-sick', health: 'starting' })]);
    expect(seen.health).toEqual([['t-sick', 'unhealthy']]);
    expect(seen.exited).toEqual(['t-sick']);
    expect(ex.tasks()[0]).toMatchObject({ state: 'failed', health: 'unhealthy', err: 'dockerexec: unhealthy container' });
    expect(isAlive(ex.tasks()[0]!.pid!)).toBe(false);
  });

  it('with unhealthy: keep, a failing check leaves the task starting and unhealthy, its process running', async () => {
    const { ex, seen } = executor({}, { unhealthy: 'keep' });
    const t = task('t-sick', { Image: 'shoal/whoami', Healthcheck: { Test: ['CMD-SHELL', 'echo nope; exit 1'], Interval: 50_000_000, Timeout: 5_000_000_000, Retries: 2 } }, { ports: [ingressPort(80, 24223)] });
    ex.reconcile(set(t));
    await waitFor(() => seen.health.some(([, h]) => h === 'unhealthy'), 20_000, 'unhealthy');
    expect(seen.running).toEqual([expect.objectContaining({ taskId: 't-sick', health: 'starting' })]);
    expect(seen.health).toEqual([['t-sick', 'unhealthy']]);
    expect(statesOf(seen, 't-sick')).toEqual(['accepted', 'preparing', 'starting']);
    const info = ex.tasks()[0]!;
    expect(info).toMatchObject({ state: 'starting', health: 'unhealthy' });
    expect(isAlive(info.pid!)).toBe(true);
    expect(ex.counters.get('executor_health_checks_failed')).toBeGreaterThanOrEqual(2);
  });

  it('a passing check makes the task running and healthy; CMD runs an executable with the task’s environment', async () => {
    const { ex, seen } = executor();
    const t = task('t-well', { Image: 'shoal/whoami', Env: ['GREETING=hi'], Healthcheck: { Test: ['CMD', '/bin/sh', '-c', 'test "$GREETING" = hi && test -n "$PORT"'], Interval: 100_000_000 } }, { ports: [ingressPort(80, 24224)] });
    ex.reconcile(set(t));
    await waitFor(() => last(seen, 't-well')?.State === 'running', 20_000, 'running');
    expect(seen.health).toEqual([['t-well', 'healthy']]);
    expect(ex.tasks()[0]).toMatchObject({ state: 'running', health: 'healthy' });
  });

  it('a check that outlives its Timeout fails, and is killed with what it started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-executor-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { ex, seen } = executor({}, { unhealthy: 'keep' });
    const check = `sleep 30 & echo $! >> ${dir}/pids; wait`;
    ex.reconcile(set(task('t-slow-check', { Image: 'shoal/whoami', Healthcheck: { Test: ['CMD-SHELL', check], Interval: 50_000_000, Timeout: 200_000_000, Retries: 2 } }, { ports: [ingressPort(80, 24230)] })));
    await waitFor(() => seen.health.some(([, h]) => h === 'unhealthy'), 20_000, 'unhealthy');
    const pids = (await readFile(join(dir, 'pids'), 'utf8')).trim().split('\n').map(Number);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    for (const pid of pids.slice(0, 2)) await waitFor(() => !isAlive(pid), 5000, `the timed-out check's sleep ${pid} to be killed`);
    expect(ex.tasks()[0]).toMatchObject({ state: 'starting', health: 'unhealthy' });
  });

  it.each([
    [undefined, undefined],
    [{ Test: ['NONE'] }, undefined],
    [{ Test: [] }, undefined],
    [{ Test: ['CMD-SHELL', 'curl -f localhost'] }, { argv: ['/bin/sh', '-c', 'curl -f localhost'], spec: { kind: 'tcp', intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } }],
    [{ Test: ['CMD', 'true'], Interval: 2e9, Timeout: 1e9, Retries: 5, StartPeriod: 3e9 }, { argv: ['true'], spec: { kind: 'tcp', intervalMs: 2000, timeoutMs: 1000, retries: 5, startPeriodMs: 3000 } }],
  ])('healthOf(%j) uses Docker’s defaults', (spec, want) => {
    expect(healthOf(spec)).toEqual(want);
  });
});

describe('Executor: logs', () => {
  it('sends every stdout and stderr line, in batches, cut at 16 KiB, and keeps them per task', async () => {
    const { ex, seen } = executor();
    const t = task('t-logs', { Image: '/bin/sh', Args: ['-c', 'echo one; echo two >&2; head -c 20000 /dev/zero | tr "\\0" x; echo; printf "no newline"'] });
    ex.reconcile(set(t));
    await waitFor(() => last(seen, 't-logs')?.State === 'complete', 20_000, 'complete');
    // Every line was sent before the terminal state.
    expect(seen.logs).toHaveLength(4);
    // In order within each stream (two pipes: no order between them, as with Docker).
    const lines = (stream: string): string[] => seen.logs.filter((l) => l.Stream === stream).map((l) => (l.Line.length > 100 ? `x×${l.Line.length}` : l.Line));
    expect(lines('stdout')).toEqual(['one', 'x×16384', 'no newline']);
    expect(lines('stderr')).toEqual(['two']);
    expect(seen.logs.every((l) => l.TaskID === 't-logs' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/.test(l.Timestamp))).toBe(true);
    expect(seen.logCalls).toBeLessThanOrEqual(seen.logs.length);
    expect(ex.taskLogs('t-logs')).toEqual(seen.logs);
  });

  it('shoal/ping pings the host of its Args, one line per second, like alpine ping', async () => {
    const { ex, seen } = executor();
    ex.reconcile(set(task('t-ping', { Image: 'shoal/ping', Args: ['127.0.0.116'] }, { service: 'g' })));
    await waitFor(() => seen.logs.filter((l) => l.TaskID === 't-ping').length >= 3, 20_000, 'two pings');
    const lines = seen.logs.map((l) => l.Line);
    expect(lines[0]).toBe('PING 127.0.0.116 (127.0.0.116): TCP port 7');
    expect(lines[1]).toMatch(/^tcp from 127\.0\.0\.116:7: seq=0 time=\d+\.\d{3} ms$/);
    expect(lines[2]).toMatch(/^tcp from 127\.0\.0\.116:7: seq=1 time=/);
    expect(last(seen, 't-ping')?.State).toBe('running');
    await ex.close();
    expect(last(seen, 't-ping')).toMatchObject({ State: 'shutdown' });
    expect(seen.logs.map((l) => l.Line)).toContain('--- 127.0.0.116 ping statistics ---');
  });

  it('formats timestamps as RFC 3339 with nanoseconds (a double holds epoch milliseconds to about a microsecond)', () => {
    expect(rfc3339Nano(Date.UTC(2026, 11, 7, 14, 37, 10, 123) + 0.5)).toBe('2026-12-07T14:37:10.123500000Z');
    expect(rfc3339Nano(Date.UTC(2026, 0, 1))).toBe('2026-01-01T00:00:00.000000000Z');
  });
});

describe('Executor wired to a NodeMesh', () => {
  it('a task it runs takes the published port on every listener; its health gates it; it leaves the mesh when stopped', async () => {
    const LISTEN = '127.0.0.117';
    const mesh = await NodeMesh.start({ nodeName: 'n1', listenHost: LISTEN, vtep: { address: LISTEN, port: 4789 }, clock, rng: new SeededRng(1), vni: 4096, connectTimeoutMs: 1000 });
    cleanups.push(() => mesh.close());
    const routes = [
      {
        ID: 'svc-web',
        Name: 'web',
        EndpointMode: 'vip' as const,
        VirtualIP: '100.64.0.2',
        Ports: [ingressPort(80, 24225), { Protocol: 'tcp' as const, TargetPort: 81, PublishedPort: 24227, PublishMode: 'host' as const }, { Protocol: 'sctp' as const, TargetPort: 82, PublishedPort: 24228, PublishMode: 'ingress' as const }],
      },
    ];
    // Only the ingress-mode TCP/UDP port gets a listener on every node.
    expect(meshServices(routes)).toEqual([{ name: 'web', ports: [{ service: 'web', protocol: 'tcp', published: 24225, target: 80 }] }]);
    await mesh.setServices(meshServices(routes));
    const { ex, seen } = executor(meshEvents(mesh));
    const t = task('t-mesh', { Image: 'shoal/whoami', Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 100_000_000 } }, { ports: [ingressPort(80, 24225)] });
    ex.reconcile(set(t));
    await waitFor(() => last(seen, 't-mesh')?.State === 'running', 20_000, 'running');
    expect(mesh.table.get('web', 't-mesh')?.health).toBe('healthy');
    expect(JSON.parse((await httpGet(LISTEN, 24225)).body)).toMatchObject({ service: 'web', task: `web.${t.Slot}`, node: 'n1' });
    expect(ex.metrics({ node: 'n1' })).toMatch(/^executor_tasks\{node="n1",state="running"\} 1$/m);
    expect(ex.metrics({ node: 'n1' })).toMatch(/^executor_tasks_started\{node="n1"\} 1$/m);
    ex.reconcile(set());
    await waitFor(() => last(seen, 't-mesh')?.State === 'shutdown', 20_000, 'shut down');
    expect(mesh.table.get('web', 't-mesh')).toBeUndefined();
    await expect(httpGet(LISTEN, 24225)).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});
