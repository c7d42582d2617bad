import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { type WhoamiServer, startWhoami } from '../../src/agent/images/whoami.js';
import { builtinImageCommand } from '../../src/agent/images/index.js';
import { freePort } from '../../src/agent/catalog-supervisor.js';
import { connect } from 'node:net';
import { parseIpv4Address } from '../../src/wire/address.js';
import { encodeProxyHeader } from '../../src/wire/proxy-protocol.js';

/** Raw bytes to whoami on one connection; resolves with everything it answered before closing. */
function raw(port: number, ...chunks: (Uint8Array | string)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (text += c));
    s.on('close', () => resolve(text));
    s.on('error', reject);
    s.once('connect', () => {
      // One write per chunk, a tick apart: a header split across reads must still be found.
      const next = (i: number): void => {
        if (i === chunks.length) return;
        s.write(chunks[i]!);
        setTimeout(() => next(i + 1), 5);
      };
      next(0);
    });
  });
}

const ip = (t: string): number => {
  const r = parseIpv4Address(t);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const REQUEST = 'GET /json HTTP/1.0\r\nHost: x\r\n\r\n';
const bodyOf = (answer: string): Record<string, unknown> => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;

interface Reply {
  status: number;
  type: string;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let w: WhoamiServer;

beforeAll(async () => {
  w = await startWhoami({ port: 0, service: 'web', task: 'web.3', node: 'n2' });
});

afterAll(async () => {
  await w.close();
});

describe('shoal/whoami', () => {
  it('answers in text with service, task, node and the client address it saw', async () => {
    const r = await get(w.port, '/');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    const lines = Object.fromEntries(r.body.trim().split('\n').map((l) => l.split(': ') as [string, string]));
    expect(lines).toMatchObject({ service: 'web', task: 'web.3', node: 'n2', request: 'GET /', bodyBytes: '0' });
    expect(lines['client']).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it.each([
    ['Accept: application/json', '/', { accept: 'application/json' }],
    ['?format=json', '/?format=json', {}],
    ['/json', '/json', {}],
  ])('answers JSON for %s', async (_what, path, headers) => {
    const r = await get(w.port, path, headers);
    expect(r.type).toBe('application/json');
    const a = JSON.parse(r.body) as Record<string, unknown>;
    expect(a).toMatchObject({ service: 'web', task: 'web.3', node: 'n2', method: 'GET', path });
    expect((a['client'] as { address: string }).address).toBe('127.0.0.1');
  });

  it('serves a health endpoint, sized bodies for benchmarks, and counts request bodies', async () => {
    expect(await get(w.port, '/health')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(w.port, '/?size=13')).body).toBe('a'.repeat(13));
    expect((await get(w.port, '/?size=65536')).body.length).toBe(65536);
    expect((await get(w.port, '/?size=-1')).status).toBe(400);
    expect(JSON.parse((await get(w.port, '/json', {}, 'x'.repeat(1000))).body)).toMatchObject({ method: 'POST', bodyBytes: 1000 });
  });

  it('runs as a process from its built-in image command, configured by PORT and SHOAL_*, and exits cleanly on SIGTERM', async () => {
    const argv = builtinImageCommand('shoal/whoami')!;
    const port = await freePort('127.0.0.1');
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, PORT: String(port), SHOAL_SERVICE: 'svc', SHOAL_TASK: 'svc.1', SHOAL_NODE: 'node-x' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (c: Buffer) => resolve(c.toString()));
        child.once('exit', (code) => reject(new Error(`whoami exited with ${code}`)));
      });
      expect(JSON.parse(line)).toEqual({ whoami: 'listening', port });
      expect(JSON.parse((await get(port, '/json')).body)).toMatchObject({ service: 'svc', task: 'svc.1', node: 'node-x' });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it.each([1, 2] as const)('reports the client a PROXY v%s header names, even when the header arrives in pieces', async (version) => {
    const header = encodeProxyHeader({ version, addresses: { sourceAddress: ip('127.0.0.135'), sourcePort: 40404, destinationAddress: ip('127.0.0.136'), destinationPort: 24601 } });
    const answer = await raw(w.port, header.subarray(0, 5), header.subarray(5), REQUEST);
    expect(answer).toMatch(/^HTTP\/1\.[01] 200/);
    expect(bodyOf(answer)['client']).toEqual({ address: '127.0.0.135', port: 40404 });
    // The header and the request in one write.
    const together = await raw(w.port, Buffer.concat([header, Buffer.from(REQUEST)]));
    expect(bodyOf(together)['client']).toEqual({ address: '127.0.0.135', port: 40404 });
  });

  it('a PROXY header without addresses (UNKNOWN / LOCAL) leaves the connection’s own peer', async () => {
    for (const version of [1, 2] as const) {
      const answer = await raw(w.port, encodeProxyHeader({ version }), REQUEST);
      expect((bodyOf(answer)['client'] as { address: string }).address).toBe('127.0.0.1');
    }
  });

  it('a malformed PROXY header closes the connection unanswered', async () => {
    expect(await raw(w.port, 'PROXY TCP4 1.2.3.4 nonsense\r\n', REQUEST)).toBe('');
  });

  it('knows no other image', () => {
    expect(builtinImageCommand('nginx')).toBeUndefined();
  });
});
