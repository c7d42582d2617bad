/**
 * The catalog supervisor with real child processes (shoal/whoami through its built-in image),
 * and the routing mesh in front of them as the agent will wire it: a task killed during a
 * bounded run of requests costs no request (retry on another task, passive ejection), and
 * comes back on the same port. Ingress port 18301 is this file's own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { parseIpv4Address } from '../../src/wire/address.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { IngressListeners } from '../../src/mesh/node-ingress.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { type CatalogTask, catalogTaskRow, parseCatalog, publishedPorts } from '../../src/agent/catalog.js';
import { CatalogSupervisor, type TaskLocation, restartDelayMs } from '../../src/agent/catalog-supervisor.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const CATALOG = parseCatalog(`
services:
  web:
    image: shoal/whoami
    ports: ["18301:80"]
  broken:
    command: [/nonexistent/shoal-test-binary]
nodes:
  a:
    - service: web
      replicas: 2
  b:
    - service: broken
`);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Seen {
  running: { task: CatalogTask; where: TaskLocation }[];
  exited: { taskId: string; signal: string | null; restartInMs: number | undefined }[];
}

function supervise(node: string, backoff = {}, onRunning?: (t: CatalogTask, w: TaskLocation) => void, onExited?: (t: CatalogTask) => void): { sup: CatalogSupervisor; seen: Seen } {
  const seen: Seen = { running: [], exited: [] };
  const sup = new CatalogSupervisor({
    catalog: CATALOG,
    node,
    backoff,
    events: {
      onRunning: (task, where) => {
        seen.running.push({ task, where });
        onRunning?.(task, where);
      },
      onExited: (task, info) => {
        seen.exited.push({ taskId: task.taskId, signal: info.signal, restartInMs: info.restartInMs });
        onExited?.(task);
      },
    },
  });
  cleanups.push(() => sup.stop());
  return { sup, seen };
}

describe('restartDelayMs', () => {
  it.each([
    [0, 100],
    [1, 200],
    [3, 800],
    [10, 10_000],
  ])('after %i restarts waits %i ms', (n, ms) => {
    expect(restartDelayMs(n, { initialMs: 100, maxMs: 10_000, resetAfterMs: 10_000 })).toBe(ms);
  });
});

describe('CatalogSupervisor', () => {
  it('starts each task with its own PORT, reports it once it listens, restarts it on the same port after a crash, and stops it', async () => {
    const { sup, seen } = supervise('a');
    await sup.start();
    await waitFor(() => seen.running.length === 2, 20_000, 'two tasks running');
    const ports = new Map(seen.running.map((r) => [r.task.taskId, r.where.hostPorts.get(80)!]));
    for (const [taskId, port] of ports) {
      const a = JSON.parse((await httpGet('127.0.0.1', port)).body) as { task: string; node: string; service: string };
      expect(a).toMatchObject({ task: taskId, node: 'a', service: 'web' });
    }
    const victim = sup.status().find((s) => s.taskId === 'web.1')!;
    process.kill(victim.pid!, 'SIGKILL');
    await waitFor(() => seen.running.length === 3, 20_000, 'web.1 restarted');
    expect(seen.exited).toEqual([{ taskId: 'web.1', signal: 'SIGKILL', restartInMs: 100 }]);
    expect(seen.running[2]!.where.hostPorts.get(80)).toBe(ports.get('web.1'));
    expect(sup.status().find((s) => s.taskId === 'web.1')).toMatchObject({ state: 'running', restarts: 1 });
    expect(JSON.parse((await httpGet('127.0.0.1', ports.get('web.1')!)).body)).toMatchObject({ task: 'web.1' });
    await sup.stop();
    expect(sup.status().map((s) => s.state)).toEqual(['stopped', 'stopped']);
    expect(seen.exited.slice(1).map((e) => e.restartInMs)).toEqual([undefined, undefined]);
  });

  it('keeps retrying a command that cannot start, with growing delays', async () => {
    const { sup, seen } = supervise('b', { initialMs: 20, maxMs: 80 });
    await sup.start();
    await waitFor(() => seen.exited.length >= 4, 10_000, 'four failed starts');
    expect(seen.exited.slice(0, 4).map((e) => e.restartInMs)).toEqual([20, 40, 80, 80]);
    expect(seen.running).toEqual([]);
  });
});

describe('a task killed behind the mesh', () => {
  it('costs no request: the connect is retried on the other task and the dead one ejected, then it comes back', async () => {
    const clock = new RealClock();
    const table = new EndpointTable({ nodeName: 'a', clock });
    cleanups.push(() => table.close());
    const router = new MeshRouter({ table, clock, rng: new SeededRng(9), connectLocal: localTcpConnector(), balancer: { baseEjectionMs: 500 } });
    cleanups.push(() => router.close());
    const ingress = new IngressListeners({ host: '127.0.0.1', router, clock });
    cleanups.push(() => ingress.close());
    await ingress.setPorts(publishedPorts(CATALOG));
    const hostAddress = (text: string): number => {
      const r = parseIpv4Address(text);
      if (!r.ok) throw new Error(r.error);
      return r.value;
    };
    // As the agent wires it — except that exits do not touch the row here: this is how a
    // *remote* node sees the task until the gossip carries the news, so only retry and
    // passive health can save the requests.
    const { sup, seen } = supervise('a', { initialMs: 3000 }, (task, where) =>
      table.upsertLocal(catalogTaskRow(CATALOG, task, { hostAddress: hostAddress(where.hostAddress), hostPorts: where.hostPorts, vtepAddress: 0x7f000001, vtepPort: 4789 })),
    );
    await sup.start();
    await waitFor(() => seen.running.length === 2, 20_000, 'two tasks running');

    const answered = new Map<string, number>();
    let failed = 0;
    const total = 150;
    for (let i = 0; i < total; i++) {
      if (i === 50) {
        const victim = sup.status().find((s) => s.taskId === 'web.2')!;
        process.kill(victim.pid!, 'SIGKILL');
        await waitFor(() => seen.exited.length === 1, 10_000, 'web.2 to die');
      }
      try {
        const r = await httpGet('127.0.0.1', 18301);
        if (r.status !== 200) failed++;
        else {
          const task = (JSON.parse(r.body) as { task: string }).task;
          answered.set(task, (answered.get(task) ?? 0) + 1);
        }
      } catch {
        failed++;
      }
    }
    expect(failed).toBe(0);
    expect(answered.get('web.1')! + answered.get('web.2')!).toBe(total);
    expect(router.counters.get('mesh_upstream_cx_connect_fail')).toBeGreaterThanOrEqual(1);
    expect(router.counters.get('mesh_upstream_cx_connect_attempts_exceeded')).toBe(0);
    // Restarted after its backoff on the same port, it answers through the mesh again.
    await waitFor(() => seen.running.length === 3, 20_000, 'web.2 restarted');
    const after = new Set<string>();
    for (let i = 0; i < 100 && after.size < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after.add((JSON.parse((await httpGet('127.0.0.1', 18301)).body) as { task: string }).task);
    }
    expect([...after].sort()).toEqual(['web.1', 'web.2']);
  });
});
