import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Server, createServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { nodeProbe } from '../../src/mesh/node-health-probe.js';

let http: Server;
let port: number;
let closedPort: number;

beforeAll(async () => {
  http = createServer((req, res) => {
    res.statusCode = req.url === '/health' ? 200 : 503;
    res.end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  port = (http.address() as AddressInfo).port;
  // A port that was free a moment ago: nothing listens there.
  const tmp = createTcpServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  closedPort = (tmp.address() as AddressInfo).port;
  await new Promise((r) => tmp.close(r));
});

afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
});

const signal = (): AbortSignal => new AbortController().signal;

describe('nodeProbe', () => {
  it('passes a TCP connect to a listener and fails one to a closed port', async () => {
    await expect(nodeProbe({ kind: 'tcp', host: '127.0.0.1', port, path: '/' }, signal())).resolves.toBeUndefined();
    await expect(nodeProbe({ kind: 'tcp', host: '127.0.0.1', port: closedPort, path: '/' }, signal())).rejects.toThrow(/ECONNREFUSED/);
  });

  it('passes an HTTP GET answered 200 and fails one answered 503', async () => {
    await expect(nodeProbe({ kind: 'http', host: '127.0.0.1', port, path: '/health' }, signal())).resolves.toBeUndefined();
    await expect(nodeProbe({ kind: 'http', host: '127.0.0.1', port, path: '/other' }, signal())).rejects.toThrow(/503/);
  });

  it('gives up when aborted', async () => {
    const c = new AbortController();
    const p = nodeProbe({ kind: 'tcp', host: '127.0.0.1', port, path: '/' }, c.signal);
    c.abort();
    await expect(p).rejects.toThrow();
  });
});
