/**
 * One node's CatalogMesh without an overlay (the shape the agent runs until it wires the
 * overlay TCP): an `address` task behind an HTTP health check, metrics, a clean close, and a
 * published port that is taken. Ports 18430–18439 on 127.0.0.5 are this file's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { RealClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { parseCatalog } from '../../src/agent/catalog.js';
import { CatalogMesh } from '../../src/agent/catalog-mesh.js';
import { type WhoamiServer, startWhoami } from '../../src/agent/images/whoami.js';
import { httpGet, waitFor } from '../mesh/mesh-helpers.js';

const HOST = '127.0.0.5';
let task: WhoamiServer;

beforeAll(async () => {
  task = await startWhoami({ host: HOST, port: 0, service: 'legacy', task: 'outside', node: 'n1' });
});

afterAll(async () => {
  await task.close();
});

function catalog(published: number, taskPort: number): ReturnType<typeof parseCatalog> {
  return parseCatalog(`
services:
  legacy:
    ports: ["${published}:80"]
    healthcheck: { type: http, path: /health, interval: 100ms, timeout: 1s, retries: 1 }
nodes:
  n1:
    - service: legacy
      address: ${HOST}:${taskPort}
`);
}

describe('CatalogMesh on one node', () => {
  it('fronts a running process once its health check passes, reports metrics, and leaves nothing behind', async () => {
    const mesh = await CatalogMesh.start({ catalog: catalog(18430, task.port), nodeName: 'n1', listenHost: HOST, vtep: { address: HOST, port: 4789 }, clock: new RealClock(), rng: new SeededRng(1) });
    try {
      expect(mesh.table.get('legacy', 'legacy.1')).toMatchObject({ health: 'starting', hostAddress: 0x7f000005, ports: [{ protocol: 'tcp', target: 80, hostPort: task.port }] });
      await waitFor(() => mesh.table.get('legacy', 'legacy.1')?.health === 'healthy', 5000, 'healthy');
      const r = await httpGet(HOST, 18430);
      expect(JSON.parse(r.body)).toMatchObject({ service: 'legacy', task: 'outside' });
      const text = mesh.metrics({ node: 'n1' });
      expect(text).toMatch(/^mesh_downstream_cx_total\{node="n1",path="ingress"\} 1$/m);
      expect(text).toMatch(/^mesh_table_rows\{node="n1"\} 1$/m);
      expect(text).toMatch(/^health_probes\{node="n1"\} \d+$/m);
    } finally {
      await mesh.close();
    }
    expect(mesh.table.size).toBe(0);
    await expect(httpGet(HOST, 18430)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses to start when a published port is taken, and starts nothing', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(18431, HOST, r));
    try {
      await expect(
        CatalogMesh.start({ catalog: catalog(18431, task.port), nodeName: 'n1', listenHost: HOST, vtep: { address: HOST, port: 4789 }, clock: new RealClock(), rng: new SeededRng(2) }),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('needs a VTEP address peers can reach', async () => {
    await expect(
      CatalogMesh.start({ catalog: catalog(18432, task.port), nodeName: 'n1', listenHost: HOST, vtep: { address: '0.0.0.0', port: 4789 }, clock: new RealClock(), rng: new SeededRng(3) }),
    ).rejects.toThrow(/VTEP address/);
  });
});
