/**
 * UDP published ports as a user meets them: two real `shoal agent` processes on loopback
 * (127.0.0.161–162, catalog mode). node-b runs a UDP echo task (a node:dgram process the agent
 * starts with `command:`) published as 25001:9000/udp; node-a runs none, so a client talking
 * to node-a's published port is answered over the overlay. Clients on 127.0.0.163:25100–25103.
 */
import { type Socket, createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshCluster } from '../helpers/mesh-cluster.js';

const UDP_PUBLISHED = 25001;
const TCP_PUBLISHED = 25002;
const NODES = [
  { name: 'node-a', address: '127.0.0.161' },
  { name: 'node-b', address: '127.0.0.162' },
];
const CLIENT_HOST = '127.0.0.163';
const ECHO = `const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send([Buffer.from(process.env.SHOAL_TASK + '|' + r.port + '|'), m], r.port, r.address));
s.bind(Number(process.env.PORT), '127.0.0.1');`;
const CATALOG = `
services:
  whoami:
    image: shoal/whoami
    ports: ["${TCP_PUBLISHED}:80"]
  echo:
    command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(ECHO)}]
    ports: ["${UDP_PUBLISHED}:9000/udp"]
nodes:
  node-a:
    - service: whoami
  node-b:
    - service: echo
`;

let cluster: MeshCluster;
const clients: { socket: Socket; answers: string[]; from: Set<string> }[] = [];

beforeAll(async () => {
  // Ready: both nodes answer on the TCP port, and both tables hold two node rows and two tasks.
  cluster = await MeshCluster.start({ catalog: CATALOG, nodes: NODES, gossipPort: 25003, dataPathPort: 25004, publishedPort: TCP_PUBLISHED, expectedRows: 4, readyTimeoutMs: 60_000 });
  for (let i = 0; i < 4; i++) {
    const socket = createSocket('udp4');
    const c = { socket, answers: [] as string[], from: new Set<string>() };
    socket.on('message', (msg, r) => {
      c.answers.push(msg.toString());
      c.from.add(`${r.address}:${r.port}`);
    });
    await new Promise<void>((resolve) => socket.bind(25100 + i, CLIENT_HOST, resolve));
    clients.push(c);
  }
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.socket.close();
  if (cluster) expect(await cluster.stop()).toEqual([]);
});

/** Sends `text` to `address`'s published UDP port until its echo arrives (UDP may drop; the task may still be binding): bounded. */
async function ask(c: (typeof clients)[number], address: string, text: string): Promise<string> {
  for (let attempt = 0; attempt < 40; attempt++) {
    c.socket.send(text, UDP_PUBLISHED, address);
    const deadline = performance.now() + 250;
    while (performance.now() < deadline) {
      const a = c.answers.find((x) => x.endsWith(`|${text}`));
      if (a) return a;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error(`No echo of ${text} through ${address}`);
}

describe('agents: UDP published ports', () => {
  it('the node without the task echoes every client, each from its own flow, from the published port', async () => {
    const through = NODES[0]!.address;
    for (const [i, c] of clients.entries()) expect(await ask(c, through, `hello-${i}`)).toMatch(new RegExp(`^echo\\.1\\|\\d+\\|hello-${i}$`));
    const rounds = 10;
    for (let r = 0; r < rounds; r++) for (const [i, c] of clients.entries()) c.socket.send(`c${i}-${r}`, UDP_PUBLISHED, through);
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && !clients.every((c) => c.answers.length >= rounds + 1)) await new Promise((r) => setTimeout(r, 20));
    const taskPorts = new Set<string>();
    for (const [i, c] of clients.entries()) {
      expect(c.from).toEqual(new Set([`${through}:${UDP_PUBLISHED}`]));
      const mine = c.answers.filter((x) => x.includes(`|c${i}-`));
      // Loopback UDP may drop under load: most echoes arrive, and none belongs to another client.
      expect(mine.length).toBeGreaterThanOrEqual(rounds / 2);
      expect(c.answers.every((x) => x.endsWith(`|hello-${i}`) || x.includes(`|c${i}-`))).toBe(true);
      const ports = new Set(c.answers.map((x) => x.split('|')[1]));
      expect(ports.size).toBe(1);
      taskPorts.add([...ports][0]!);
    }
    // The task saw one kernel socket per client: node-b relays each overlay flow on its own.
    expect(taskPorts.size).toBe(clients.length);
    const a = await cluster.metrics('node-a');
    const b = await cluster.metrics('node-b');
    expect(a.get('mesh_udp_overlay_tx_datagrams')).toBeGreaterThanOrEqual(clients.length * (rounds / 2 + 1));
    expect(b.get('mesh_udp_task_rx_datagrams')).toBeGreaterThanOrEqual(clients.length * (rounds / 2 + 1));
    expect(b.get('mesh_udp_task_tx_datagrams')).toBeGreaterThanOrEqual(clients.length * (rounds / 2 + 1));
  });

  it('the node with the task answers too, locally', async () => {
    expect(await ask(clients[0]!, NODES[1]!.address, 'local')).toMatch(/^echo\.1\|\d+\|local$/);
  });
});
