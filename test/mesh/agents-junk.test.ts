/**
 * Junk never crashes an agent (issue 5, "Must show"): three real agents on loopback
 * (127.0.0.67–69) get random bytes, half-open connections and a flood of connects that close
 * at once on the published port; random datagrams and truncated or wrong VXLAN on the data
 * path port (the VTEP); random UDP datagrams and TCP bytes on the gossip port. Afterwards every
 * agent still answers through the mesh, and the drop counters say what was thrown away.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshCluster, type Metrics, httpGet, pollUntil } from '../helpers/mesh-cluster.js';

const PUBLISHED = 18620;
const GOSSIP_PORT = 18621;
const DATA_PATH_PORT = 18622;
const NODES = [
  { name: 'node-1', address: '127.0.0.67' },
  { name: 'node-2', address: '127.0.0.68' },
  { name: 'node-3', address: '127.0.0.69' },
];
const TASKS = ['whoami.1', 'whoami.2'];
const CATALOG = `
network:
  subnet: 100.64.0.0/24
  vni: 4096
services:
  whoami:
    image: shoal/whoami
    ports: ["${PUBLISHED}:80"]
nodes:
  node-1:
    - service: whoami
  node-2:
    - service: whoami
  node-3: []
`;

let cluster: MeshCluster;

beforeAll(async () => {
  cluster = await MeshCluster.start({ catalog: CATALOG, nodes: NODES, gossipPort: GOSSIP_PORT, dataPathPort: DATA_PATH_PORT, publishedPort: PUBLISHED, expectedRows: NODES.length + TASKS.length, readyTimeoutMs: 75_000 });
}, 90_000);

afterAll(async () => {
  if (cluster) expect(await cluster.stop()).toEqual([]);
});

/**
 * Every agent still runs and answers through the mesh, and every task answers through some
 * node. Not every task through every node: junk relayed to a task makes it reset the
 * connection (an HTTP parse error), and passive health ejects an endpoint that resets, with a
 * backoff that grows to 30 s — so the node that relayed the junk may avoid that task for a while
 * (seen in about two runs of five; see the report).
 */
async function everyAgentAnswers(): Promise<void> {
  const tasks = new Set<string>();
  for (const n of cluster.nodes) {
    expect(n.agent.child.exitCode, `${n.name} exited`).toBeNull();
    for (let i = 0; i < 20; i++) {
      const r = await httpGet(n.address, PUBLISHED);
      expect(r.status, n.name).toBe(200);
      tasks.add((JSON.parse(r.body) as { task: string }).task);
    }
  }
  expect([...tasks].sort()).toEqual(TASKS);
}

async function allMetrics(): Promise<Metrics[]> {
  return Promise.all(cluster.nodes.map((n) => cluster.metrics(n.name)));
}

function sendUdp(host: string, port: number, datagrams: readonly Uint8Array[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    let left = datagrams.length;
    for (const d of datagrams) {
      s.send(d, port, host, (error) => {
        if (error) reject(error);
        if (--left === 0) s.close(() => resolve());
      });
    }
  });
}

/** Opens a TCP connection; resolves once connected (or failed: junk may be refused, that is fine). */
function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

/** Writes bytes and waits (bounded) for the other end to close or answer. */
async function sendTcp(host: string, port: number, bytes: Uint8Array, halfClose: boolean): Promise<void> {
  const s = await open(host, port);
  if (s.destroyed) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      s.destroy();
      resolve();
    }, 1000);
    s.on('data', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.write(bytes);
    if (halfClose) s.end();
  });
}

/** A VXLAN header (RFC 7348 §5): flags, 24-bit VNI. */
function vxlan(flags: number, vni: number, payload: Uint8Array): Uint8Array {
  const b = Buffer.alloc(8 + payload.length);
  b[0] = flags;
  b.writeUIntBE(vni, 4, 3);
  b.set(payload, 8);
  return b;
}

describe('junk never crashes an agent', () => {
  it('random bytes, half-open connections and a flood of short connects on the published port', async () => {
    const host = NODES[2]!.address;
    // Random bytes, some with the write side closed after them (the task answers 400 or closes).
    for (let i = 0; i < 20; i++) await sendTcp(host, PUBLISHED, randomBytes(1 + (i * 97) % 4000), i % 2 === 0);
    // Half-open: connected, nothing sent, left hanging while the rest goes on.
    const idle = await Promise.all(Array.from({ length: 30 }, () => open(host, PUBLISHED)));
    const halfClosed = await Promise.all(Array.from({ length: 30 }, () => open(host, PUBLISHED)));
    for (const s of halfClosed) s.end();
    // A flood of connects that close at once, half of them with a reset.
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const s = await open(NODES[round % 3]!.address, PUBLISHED);
          if (i % 2 === 0) s.resetAndDestroy();
          else s.destroy();
        }),
      );
    }
    for (const s of [...idle, ...halfClosed]) s.destroy();
    // Every one of those connections ends: none stays counted active. (A bug fixed: a client that
    // closed while its upstream was being connected had its 'end' emitted before the relay
    // listened, so the relay never passed the half-close on and the connection stayed active
    // until the task timed it out — node-1: 94 of 200 flood connections; power-of-two-choices
    // over outstanding connections then kept avoiding that task.) Looked at before the answers
    // below, since open connections rightly steer the balancer away from the task holding them.
    await pollUntil(async () => (await allMetrics()).every((m) => m.get('mesh_downstream_cx_active', { path: 'ingress' }) === 0), 15_000, 'no active ingress connection on any node');
    await everyAgentAnswers();
    const m = await cluster.metrics('node-3');
    // Every one of those connections reached the mesh.
    expect(m.get('mesh_downstream_cx_total', { path: 'ingress' })).toBeGreaterThanOrEqual(20 + 60 + 100);
  });

  it('random datagrams, truncated and wrong VXLAN on the data path port', async () => {
    const before = await allMetrics();
    const frame = randomBytes(60);
    const junk: Uint8Array[] = [
      ...Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 29)),
      ...Array.from({ length: 8 }, (_, i) => vxlan(0x08, 4096, frame).subarray(0, i)), // truncated headers
      vxlan(0x00, 4096, frame), // I flag missing
      vxlan(0x08, 4097, frame), // a VNI nobody uses
      vxlan(0x08, 4096, randomBytes(5)), // a runt frame
      vxlan(0x08, 4096, randomBytes(1400)), // a random "Ethernet frame"
    ];
    for (const n of NODES) await sendUdp(n.address, DATA_PATH_PORT, junk);
    await everyAgentAnswers();
    const after = await allMetrics();
    for (let i = 0; i < NODES.length; i++) {
      expect(after[i]!.get('vtep_rx_dropped_truncated') - before[i]!.get('vtep_rx_dropped_truncated'), NODES[i]!.name).toBeGreaterThanOrEqual(8);
      expect(after[i]!.get('vtep_rx_dropped_bad_flags') - before[i]!.get('vtep_rx_dropped_bad_flags')).toBeGreaterThanOrEqual(1);
      expect(after[i]!.get('vtep_rx_dropped_unknown_vni') - before[i]!.get('vtep_rx_dropped_unknown_vni')).toBeGreaterThanOrEqual(1);
      expect(after[i]!.get('vtep_rx_dropped_runt_frame') - before[i]!.get('vtep_rx_dropped_runt_frame')).toBeGreaterThanOrEqual(1);
    }
  });

  it('random UDP datagrams and random TCP streams on the gossip port', async () => {
    const before = await allMetrics();
    for (const n of NODES) {
      await sendUdp(n.address, GOSSIP_PORT, Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 23)));
      for (let i = 0; i < 10; i++) await sendTcp(n.address, GOSSIP_PORT, randomBytes(1 + i * 301), i % 2 === 0);
    }
    await everyAgentAnswers();
    const after = await allMetrics();
    for (let i = 0; i < NODES.length; i++) {
      expect(after[i]!.sumPrefix('gossip_rx_dropped_') - before[i]!.sumPrefix('gossip_rx_dropped_'), NODES[i]!.name).toBeGreaterThanOrEqual(50);
    }
    // The gossip itself carried on: every node still sees the same table.
    for (const m of after) expect(m.get('mesh_table_rows')).toBe(NODES.length + TASKS.length);
  });
});
