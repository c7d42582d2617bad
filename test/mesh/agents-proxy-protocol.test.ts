/**
 * Client source IP across hosts (issue 6, "Must show"): with PROXY protocol on a published
 * port, whoami on node C reports the original client address of a request that entered at
 * node A — the address of the curl client's own socket, not A's (Swarm loses it: moby#25526).
 *
 * Two real agents on 127.0.0.131 (A, no task) and 127.0.0.132 (C, the only whoami task), so
 * every request crosses the overlay; the client binds 127.0.0.137. Ports 24610–24615.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { MeshCluster } from '../helpers/mesh-cluster.js';

const V2 = 24610;
const V1 = 24611;
const PLAIN = 24612;
const GOSSIP_PORT = 24613;
const DATA_PATH_PORT = 24614;
const CLIENT = '127.0.0.137';
const NODES = [
  { name: 'node-a', address: '127.0.0.131' },
  { name: 'node-c', address: '127.0.0.132' },
];
const CATALOG = `
services:
  whoami:
    image: shoal/whoami
    ports:
      - { published: ${V2}, target: 80, proxy_protocol: v2 }
      - { published: ${V1}, target: 80, proxy_protocol: v1, app_protocol: http }
      - "${PLAIN}:80"
nodes:
  node-a: []
  node-c:
    - service: whoami
`;

interface Answer {
  readonly node: string;
  readonly client: { readonly address: string; readonly port: number };
}

/** curl from CLIENT to `host:port`/json; resolves with whoami's answer and the port curl's socket used. */
function curl(host: string, port: number): Promise<{ answer: Answer; localPort: number }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '5', '--interface', CLIENT, '-w', '\n%{local_port}', `http://${host}:${port}/json`], (error, stdout) => {
      if (error) {
        reject(error);
        return;
      }
      const lines = stdout.trim().split('\n');
      resolve({ answer: JSON.parse(lines[0]!) as Answer, localPort: Number(lines.at(-1)) });
    });
  });
}

/** The same with Node's http client, several requests on one keep-alive connection bound to CLIENT. */
function keepAliveGets(host: string, port: number, n: number): Promise<{ answers: Answer[]; localPort: number }> {
  return new Promise((resolve, reject) => {
    const answers: Answer[] = [];
    let localPort = 0;
    const target = { host, port, localAddress: CLIENT, path: '/json', headers: { connection: 'keep-alive' } };
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const one = (): void => {
      const req = request({ ...target, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          answers.push(JSON.parse(body) as Answer);
          if (answers.length < n) one();
          else {
            agent.destroy();
            resolve({ answers, localPort });
          }
        });
      });
      req.on('socket', (s) => s.once('connect', () => (localPort = s.localPort ?? 0)));
      req.setTimeout(5000, () => req.destroy(new Error('timed out')));
      req.on('error', (e) => {
        agent.destroy();
        reject(e);
      });
      req.end();
    };
    one();
  });
}

let cluster: MeshCluster;

beforeAll(async () => {
  cluster = await MeshCluster.start({ catalog: CATALOG, nodes: NODES, gossipPort: GOSSIP_PORT, dataPathPort: DATA_PATH_PORT, publishedPort: PLAIN, expectedRows: 3, readyTimeoutMs: 60_000 });
}, 75_000);

afterAll(async () => {
  if (cluster) expect(await cluster.stop()).toEqual([]);
});

describe('PROXY protocol toward the task, across hosts', () => {
  it.each([
    ['v2', V2],
    ['v1', V1],
  ])('%s: a request entering at node A reaches whoami on node C, which reports the curl client’s address and port', async (_mode, port) => {
    for (let i = 0; i < 3; i++) {
      const { answer, localPort } = await curl('127.0.0.131', port);
      expect(answer.node).toBe('node-c');
      expect(answer.client).toEqual({ address: CLIENT, port: localPort });
    }
  });

  it('every request of a keep-alive connection reports the same client', async () => {
    const { answers, localPort } = await keepAliveGets('127.0.0.131', V2, 5);
    expect(answers.map((a) => a.client)).toEqual(Array.from({ length: 5 }, () => ({ address: CLIENT, port: localPort })));
  });

  it('without PROXY protocol, whoami sees the mesh, not the client (what Swarm does)', async () => {
    const { answer } = await curl('127.0.0.131', PLAIN);
    expect(answer.node).toBe('node-c');
    expect(answer.client.address).not.toBe(CLIENT);
  });
});
