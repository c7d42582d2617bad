/**
 * NodeMesh, the dynamic core of a node's routing mesh, with real sockets: ingress listeners
 * that follow the service set, and local task rows that make a published port reach a whoami
 * server (or stop reaching it). No overlay: one node. Addresses 127.0.0.111–112 and ports
 * 24200–24219 are this file's own.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Server, connect, createServer } from 'node:net';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { NodeMesh } from '../../src/agent/node-mesh.js';
import { parseCatalog } from '../../src/agent/catalog.js';
import { CatalogMesh } from '../../src/agent/catalog-mesh.js';
import { type WhoamiServer, startWhoami } from '../../src/agent/images/whoami.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const LISTEN = '127.0.0.111';
const TASK_HOST = '127.0.0.112';
const TASK_HOST_NUM = 0x7f000070;
const clock = new RealClock();
let whoami: WhoamiServer;

beforeAll(async () => {
  whoami = await startWhoami({ host: TASK_HOST, port: 0, service: 'web', task: 'web.1', node: 'n1' });
});

afterAll(async () => {
  await whoami.close();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startMesh(seed: number): Promise<NodeMesh> {
  const mesh = await NodeMesh.start({ nodeName: 'n1', listenHost: LISTEN, vtep: { address: LISTEN, port: 4789 }, clock, rng: new SeededRng(seed), vni: 4096, connectTimeoutMs: 1000 });
  cleanups.push(() => mesh.close());
  return mesh;
}

const web = (published: number): { name: string; ports: { service: string; protocol: 'tcp'; published: number; target: number }[] } => ({
  name: 'web',
  ports: [{ service: 'web', protocol: 'tcp', published, target: 80 }],
});

/** Resolves when a TCP connect to host:port succeeds, rejects with the connect error. */
function tcpConnect(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

function webTask(health: 'none' | 'starting' = 'none'): Parameters<NodeMesh['taskRunning']>[0] {
  return {
    service: 'web',
    taskId: 'task-1',
    slot: 1,
    overlayAddress: 0x64400082,
    hostAddress: TASK_HOST_NUM,
    hostPorts: new Map([[80, whoami.port]]),
    targets: [{ protocol: 'tcp', target: 80 }],
    health,
  };
}

describe('NodeMesh listeners', () => {
  it('listen on every published port of the service set, with no task anywhere, and close when a service goes', async () => {
    const mesh = await startMesh(1);
    await expect(tcpConnect(LISTEN, 24200)).rejects.toThrow(/ECONNREFUSED/);
    await mesh.setServices([web(24200), { name: 'api', ports: [{ service: 'api', protocol: 'tcp', published: 24201, target: 8080 }] }]);
    await tcpConnect(LISTEN, 24200);
    await tcpConnect(LISTEN, 24201);
    // No task: the connection is accepted and closed at once, counted, not left hanging.
    await expect(httpGet(LISTEN, 24200)).rejects.toThrow(/socket hang up|ECONNRESET/);
    await mesh.setServices([web(24200)]);
    await tcpConnect(LISTEN, 24200);
    await expect(tcpConnect(LISTEN, 24201)).rejects.toThrow(/ECONNREFUSED/);
    await mesh.setServices([]);
    await expect(tcpConnect(LISTEN, 24200)).rejects.toThrow(/ECONNREFUSED/);
    expect(mesh.ingress.ports()).toEqual([]);
  });

  it('a port that cannot be bound is counted and listed, the others still listen, and a later set binds it once free', async () => {
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(24202, LISTEN, r));
    const mesh = await startMesh(2);
    await mesh.setServices([web(24202), { name: 'api', ports: [{ service: 'api', protocol: 'tcp', published: 24203, target: 80 }] }]);
    await tcpConnect(LISTEN, 24203);
    expect(mesh.unboundPorts().map((u) => [u.port.published, u.port.service])).toEqual([[24202, 'web']]);
    expect(mesh.unboundPorts()[0]!.error.message).toMatch(/EADDRINUSE/);
    expect(mesh.metrics({ node: 'n1' })).toMatch(/^mesh_ingress_bind_fail\{node="n1"\} 1$/m);
    await new Promise((r) => squatter.close(r));
    await mesh.setServices([web(24202), { name: 'api', ports: [{ service: 'api', protocol: 'tcp', published: 24203, target: 80 }] }]);
    expect(mesh.unboundPorts()).toEqual([]);
    mesh.taskRunning(webTask());
    expect(JSON.parse((await httpGet(LISTEN, 24202)).body)).toMatchObject({ service: 'web', task: 'web.1' });
  });

  it('listens while any source publishes a port: the same service’s port from two sources is one listener, no conflict', async () => {
    const mesh = await startMesh(10);
    await mesh.setServices([web(24213)], 'catalog');
    await mesh.setServices([web(24213)], 'manager');
    expect(mesh.ingress.ports()).toHaveLength(1);
    expect(mesh.counters.get('mesh_ingress_port_conflict')).toBe(0);
    await mesh.setServices([], 'catalog');
    await tcpConnect(LISTEN, 24213);
    await mesh.setServices([], 'manager');
    await expect(tcpConnect(LISTEN, 24213)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('moves a published port to the service that publishes it now', async () => {
    const mesh = await startMesh(3);
    await mesh.setServices([{ name: 'old', ports: [{ service: 'old', protocol: 'tcp', published: 24204, target: 80 }] }]);
    mesh.taskRunning(webTask());
    await expect(httpGet(LISTEN, 24204)).rejects.toThrow(/socket hang up|ECONNRESET/);
    await mesh.setServices([web(24204)]);
    expect(mesh.ingress.ports()).toEqual([{ service: 'web', protocol: 'tcp', published: 24204, target: 80 }]);
    expect(JSON.parse((await httpGet(LISTEN, 24204)).body)).toMatchObject({ task: 'web.1' });
  });
});

describe('NodeMesh local tasks', () => {
  it('a running task takes the published port; an exited one is unhealthy and not chosen; a removed one leaves the table', async () => {
    const mesh = await startMesh(4);
    await mesh.setServices([web(24205)]);
    mesh.taskRunning(webTask());
    expect(mesh.table.get('web', 'task-1')).toMatchObject({ node: 'n1', slot: 1, vni: 4096, hostAddress: TASK_HOST_NUM, ports: [{ protocol: 'tcp', target: 80, hostPort: whoami.port }], health: 'none' });
    const a = JSON.parse((await httpGet(LISTEN, 24205)).body) as { service: string; task: string; client: { address: string } };
    expect(a).toMatchObject({ service: 'web', task: 'web.1' });

    mesh.taskExited('web', 'task-1');
    expect(mesh.table.get('web', 'task-1')?.health).toBe('unhealthy');
    // The process behind it still answers: only the row keeps the mesh from choosing it.
    await expect(httpGet(LISTEN, 24205)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(mesh.router.counters.get('mesh_upstream_cx_connect_fail')).toBe(0);

    mesh.taskRunning(webTask());
    expect(JSON.parse((await httpGet(LISTEN, 24205)).body)).toMatchObject({ task: 'web.1' });
    mesh.taskRemoved('web', 'task-1');
    expect(mesh.table.get('web', 'task-1')).toBeUndefined();
    await expect(httpGet(LISTEN, 24205)).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it('a task with a health check takes traffic only once healthy, and not once unhealthy', async () => {
    const mesh = await startMesh(5);
    await mesh.setServices([web(24206)]);
    mesh.taskRunning(webTask('starting'));
    await expect(httpGet(LISTEN, 24206)).rejects.toThrow(/socket hang up|ECONNRESET/);
    mesh.setTaskHealth('web', 'task-1', 'healthy');
    expect(JSON.parse((await httpGet(LISTEN, 24206)).body)).toMatchObject({ task: 'web.1' });
    mesh.setTaskHealth('web', 'task-1', 'unhealthy');
    await expect(httpGet(LISTEN, 24206)).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it('the catalog-style active health check (HTTP GET) moves the row by itself', async () => {
    const mesh = await startMesh(6);
    await mesh.setServices([web(24207)]);
    mesh.taskRunning(webTask('starting'));
    mesh.health.add('web', 'task-1', { host: TASK_HOST, port: whoami.port }, { kind: 'http', path: '/health', intervalMs: 100, timeoutMs: 1000, retries: 1 });
    await waitFor(() => mesh.table.get('web', 'task-1')?.health === 'healthy', 5000, 'healthy');
    expect(JSON.parse((await httpGet(LISTEN, 24207)).body)).toMatchObject({ task: 'web.1' });
  });

  it('withdraw deletes our rows and ignores later running tasks; close leaves nothing listening and no row', async () => {
    const mesh = await startMesh(7);
    await mesh.setServices([web(24208)]);
    mesh.taskRunning(webTask());
    mesh.withdraw();
    expect(mesh.table.get('web', 'task-1')).toBeUndefined();
    mesh.taskRunning(webTask());
    expect(mesh.table.size).toBe(0);
    // Still listening: ingress keeps routing to other nodes' tasks while we drain.
    await tcpConnect(LISTEN, 24208);
    await mesh.close();
    await expect(tcpConnect(LISTEN, 24208)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('needs a VTEP address peers can reach', async () => {
    await expect(NodeMesh.start({ nodeName: 'n1', listenHost: LISTEN, vtep: { address: '0.0.0.0', port: 4789 }, clock, rng: new SeededRng(8), vni: 4096 })).rejects.toThrow(/VTEP address/);
  });
});

describe('a catalog attached to a NodeMesh', () => {
  it('is one more source: its ports and tasks join the manager’s, a port both publish stays with the first, and closing it takes away only what it brought', async () => {
    const mesh = await startMesh(9);
    await mesh.setServices([web(24211)], 'manager');
    mesh.taskRunning(webTask());
    const catalog = parseCatalog(`
services:
  legacy:
    ports: ["24212:80"]
  clash:
    ports: ["24211:80"]
nodes:
  n1:
    - service: legacy
      address: ${TASK_HOST}:${whoami.port}
`);
    const source = await CatalogMesh.attach(mesh, { catalog, nodeName: 'n1', clock });
    cleanups.push(() => source.close());
    expect(mesh.ingress.ports().map((p) => [p.published, p.service]).sort()).toEqual([
      [24211, 'web'],
      [24212, 'legacy'],
    ]);
    expect(mesh.counters.get('mesh_ingress_port_conflict')).toBeGreaterThanOrEqual(1);
    expect(mesh.table.get('legacy', 'legacy.1')).toMatchObject({ node: 'n1', health: 'none' });
    expect(JSON.parse((await httpGet(LISTEN, 24212)).body)).toMatchObject({ task: 'web.1' });
    expect(JSON.parse((await httpGet(LISTEN, 24211)).body)).toMatchObject({ task: 'web.1' });

    await source.close();
    expect(mesh.table.get('legacy', 'legacy.1')).toBeUndefined();
    expect(mesh.table.get('web', 'task-1')).toBeDefined();
    expect(mesh.ingress.ports().map((p) => p.published)).toEqual([24211]);
    await expect(tcpConnect(LISTEN, 24212)).rejects.toThrow(/ECONNREFUSED/);
    expect(JSON.parse((await httpGet(LISTEN, 24211)).body)).toMatchObject({ task: 'web.1' });
  });
});
