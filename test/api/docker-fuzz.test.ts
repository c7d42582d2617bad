/**
 * Fuzzed requests never crash the manager: random methods, paths, queries and bodies go
 * through handleApiRequest of a real ClusterNode (initialised as a manager on 127.0.0.48, its
 * 2377 on an ephemeral port), and raw requests with hostile headers through the HTTP server.
 * Every answer must be a Docker-style answer, and the manager must serve normally afterwards.
 */
import https from 'node:https';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterNode } from '../../src/agent/cluster-node.js';
import { type ApiBackend, type ApiResponse, handleApiRequest } from '../../src/api/docker.js';
import { type ApiServer, serveApi } from '../../src/api/server.js';
import { silentLogger } from '../../src/lib/logger.js';

const RUNS = Number(process.env['SHOAL_API_FUZZ_RUNS'] ?? (process.env['CI'] === 'true' ? 3000 : 500));

describe('Docker API under fuzzed input', () => {
  let tmp: string;
  let cluster: ClusterNode;
  let backend: ApiBackend;
  let server: ApiServer;
  let nodeId: string;

  const call = (method: string, url: string, body?: unknown): Promise<ApiResponse> =>
    handleApiRequest(backend, { method, url, body: body === undefined ? Buffer.alloc(0) : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) });

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-api-fuzz-'));
    cluster = await ClusterNode.start({ dataDir: path.join(tmp, 'data'), nodeName: 'fuzz', advertiseAddr: '127.0.0.48', logger: silentLogger });
    backend = { nodeName: 'fuzz', cluster };
    const init = await call('POST', '/v1.50/swarm/init', { ListenAddr: '127.0.0.48:0', AdvertiseAddr: '127.0.0.48' });
    expect(init.status).toBe(200);
    nodeId = JSON.parse(init.body) as string;
    server = await serveApi(backend, path.join(tmp, 'api.sock'));
  });

  afterAll(async () => {
    await server?.close();
    await cluster?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  /** What every answer must look like, whatever was asked. */
  const checkAnswer = (r: ApiResponse): void => {
    expect([200, 201, 204, 400, 401, 403, 404, 409, 500, 503]).toContain(r.status);
    expect(r.headers['Api-Version']).toBe('1.50');
    if (r.status >= 400) {
      expect(r.headers['Content-Type']).toBe('application/json');
      const body = JSON.parse(r.body) as { message?: unknown };
      expect(typeof body.message).toBe('string');
      // 500 is kept for what dockerd answers 500 too; anything else would be a bug of ours.
      if (r.status === 500) expect(body.message).toBe('update out of sequence');
    }
  };

  const segment = fc.oneof(fc.constantFrom('fuzz', 'self', '', '..', '%', '%zz', '%2F', 'a'.repeat(300)), fc.string({ maxLength: 30 }).map(encodeURIComponent), fc.constant('NODE'));
  const route = fc.oneof(
    fc.constantFrom('/_ping', '/version', '/info', '/swarm', '/swarm/init', '/swarm/join', '/swarm/update', '/swarm/unlockkey', '/nodes', '/metrics', '/shoal/overlay/ping'),
    segment.map((s) => `/nodes/${s}`),
    segment.map((s) => `/nodes/${s}/update`),
    fc.constantFrom('/services', '/services/create', '/tasks', '/networks', '/networks/create', '/secrets', '/configs'),
    fc.tuple(fc.constantFrom('/services/', '/tasks/', '/networks/', '/distribution/'), segment, fc.constantFrom('', '/update', '/logs', '/json', '/x/json')).map(([a, b, c]) => `${a}${b}${c}`),
    fc.string({ maxLength: 40 }).map((s) => `/${s}`),
  );
  const prefix = fc.oneof(fc.constant(''), fc.constantFrom('/v1.50', '/v1.24', '/v1.12', '/v9.99', '/v1.0', '/v01.050'));
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom('?version=1', '?version=-1', '?version=1e3', '?version=99999999999999999999', '?force=1', '?force=false', '?filters=%7B', '?filters=[]'),
    fc.dictionary(fc.constantFrom('version', 'force', 'filters', 'rotateWorkerToken', 'rotateManagerToken', 'x'), fc.string({ maxLength: 20 }), { maxKeys: 3 }).map((q) => `?${new URLSearchParams(q).toString()}`),
    fc.dictionary(fc.constantFrom('stdout', 'stderr', 'details', 'timestamps', 'follow', 'tail', 'since', 'insertDefaults', 'status', 'rollback', 'version', 'scope'), fc.oneof(fc.constantFrom('1', '0', 'true', 'all', '-1', '5', 'previous', '1700000000.5'), fc.string({ maxLength: 12 })), { maxKeys: 5 }).map((q) => `?${new URLSearchParams(q).toString()}`),
    fc.dictionary(fc.constantFrom('id', 'name', 'role', 'label', 'node.label', 'membership', 'bogus', 'service', 'node', 'desired-state', '_up-to-date', 'mode', 'driver', 'scope', 'type'), fc.oneof(fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.anything({ maxDepth: 1 }), { maxKeys: 2 }), fc.anything({ maxDepth: 1 })), { maxKeys: 3 }).map((f) => `?filters=${encodeURIComponent(JSON.stringify(f))}`),
  );
  const nodeSpec = fc.record(
    { Labels: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 4 }), fc.anything({ maxDepth: 2 })), Role: fc.oneof(fc.constantFrom('worker', 'manager'), fc.anything({ maxDepth: 1 })), Availability: fc.oneof(fc.constantFrom('active', 'pause', 'drain'), fc.anything({ maxDepth: 1 })), Name: fc.anything({ maxDepth: 1 }) },
    { requiredKeys: [] },
  );
  const swarmSpec = fc.record(
    { Name: fc.anything({ maxDepth: 1 }), Labels: fc.anything({ maxDepth: 2 }), Dispatcher: fc.oneof(fc.record({ HeartbeatPeriod: fc.oneof(fc.integer(), fc.double(), fc.string()) }), fc.anything({ maxDepth: 1 })), CAConfig: fc.anything({ maxDepth: 2 }), Orchestration: fc.anything({ maxDepth: 2 }), Raft: fc.anything({ maxDepth: 2 }), EncryptionConfig: fc.anything({ maxDepth: 2 }) },
    { requiredKeys: [] },
  );
  // Service specs: a good one with random edits at the paths shoal acts on, so that some are
  // created (and later updated, scaled, removed) and most are refused.
  const serviceSpec = fc
    .tuple(
      fc.constantFrom('web', 'w2', 'g', '', 'x'.repeat(70)),
      fc.constantFrom('shoal/whoami', 'shoal/ping:1', '/bin/true', 'nginx', ''),
      fc.oneof(fc.constant({ Replicated: { Replicas: 1 } }), fc.constant({ Global: {} }), fc.record({ Replicated: fc.record({ Replicas: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.string()) }) }), fc.anything({ maxDepth: 2 })),
      fc.oneof(fc.constant(undefined), fc.record({ Ports: fc.array(fc.record({ TargetPort: fc.integer({ min: -1, max: 70000 }), PublishedPort: fc.integer({ min: 0, max: 70000 }), Protocol: fc.constantFrom('tcp', 'udp', 'sctp') }), { maxLength: 2 }) }), fc.anything({ maxDepth: 2 })),
      fc.dictionary(fc.constantFrom('Env', 'Args', 'Healthcheck', 'Replicaz', 'Labels'), fc.anything({ maxDepth: 2 }), { maxKeys: 2 }),
    )
    .map(([Name, Image, Mode, EndpointSpec, extra]) => ({ Name, TaskTemplate: { ContainerSpec: { Image, ...extra } }, Mode, ...(EndpointSpec === undefined ? {} : { EndpointSpec }) }));
  const networkBody = fc.record({ Name: fc.oneof(fc.constantFrom('net1', 'ingress', ''), fc.string({ maxLength: 10 })), Driver: fc.oneof(fc.constantFrom('overlay', 'bridge'), fc.anything({ maxDepth: 1 })), Labels: fc.anything({ maxDepth: 1 }), IPAM: fc.anything({ maxDepth: 2 }) }, { requiredKeys: [] });
  const body = fc.oneof(
    fc.constant(undefined),
    serviceSpec,
    networkBody,
    nodeSpec,
    swarmSpec,
    fc.anything({ maxDepth: 3 }),
    fc.string({ maxLength: 50 }),
    fc.constantFrom('{', 'null', '[]', '"x"', '{"__proto__":{"polluted":1}}', '{"Labels":{"__proto__":"x"},"Role":"worker","Availability":"active"}'),
    fc.record({ ListenAddr: fc.string(), AdvertiseAddr: fc.string(), RemoteAddrs: fc.anything(), JoinToken: fc.string() }, { requiredKeys: [] }),
  );
  const method = fc.constantFrom('GET', 'POST', 'DELETE', 'HEAD', 'PUT', 'get', 'OPTIONS');

  it('answers every random request in Docker style and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(method, prefix, route, query, body, async (m, p, r, q, b) => {
        // Never leave (the fuzz would then join random addresses) and never rotate the CA.
        fc.pre(!r.startsWith('/swarm/leave'));
        const url = `${p}${r.replace('NODE', nodeId)}${q}`;
        const answer = await call(m, url, b);
        checkAnswer(answer);
        // A streamed answer (logs) is opened and closed at once: nothing may stay subscribed.
        if (answer.stream) answer.stream.open({ write: () => undefined, end: () => undefined })();
      }),
      { numRuns: RUNS },
    );
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    // The service routes still work after the fuzz: a good spec is created (or its name was taken by the fuzz) and listed.
    const created = await call('POST', '/v1.50/services/create', { Name: 'after-fuzz', TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } } });
    expect(created.status).toBe(201);
    expect((JSON.parse((await call('GET', '/v1.50/services')).body) as { Spec: { Name: string } }[]).map((x) => x.Spec.Name)).toContain('after-fuzz');
    const nodes = await call('GET', '/v1.50/nodes');
    expect(nodes.status).toBe(200);
    expect((JSON.parse(nodes.body) as { ID: string }[]).map((n) => n.ID)).toContain(nodeId);
    expect(JSON.parse((await call('GET', `/v1.50/nodes/${nodeId}`)).body)).toMatchObject({ ManagerStatus: { Leader: true } });
  });

  it('keeps answering in Docker style through random service lifecycles (create, update, scale, logs, rm)', async () => {
    const name = fc.constantFrom('s1', 's2', 's3');
    const image = fc.constantFrom('shoal/whoami', 'shoal/ping', '/bin/true', 'shoal/nope');
    const edit = fc.oneof(
      fc.record({ Mode: fc.oneof(fc.constant({ Global: {} }), fc.integer({ min: -1, max: 4 }).map((Replicas) => ({ Replicated: { Replicas } }))) }),
      fc.record({ EndpointSpec: fc.record({ Mode: fc.constantFrom('vip', 'dnsrr', ''), Ports: fc.array(fc.record({ TargetPort: fc.integer({ min: 0, max: 3 }).map((n) => 80 + n), PublishedPort: fc.integer({ min: 0, max: 3 }).map((n) => (n === 0 ? 0 : 24100 + n)), PublishMode: fc.constantFrom('ingress', 'host') }), { maxLength: 2 }) }) }),
      fc.record({ TaskTemplate: fc.record({ ContainerSpec: fc.record({ Image: image, Env: fc.array(fc.constantFrom('A=1', 'B=2', 'bad'), { maxLength: 2 }) }), Placement: fc.record({ Constraints: fc.array(fc.constantFrom('node.role==manager', 'node.role!=manager', 'node.labels.x==y'), { maxLength: 2 }), MaxReplicas: fc.integer({ min: 0, max: 2 }) }, { requiredKeys: [] }) }) }),
      fc.record({ UpdateConfig: fc.record({ Parallelism: fc.integer({ min: 0, max: 2 }), Order: fc.constantFrom('stop-first', 'start-first'), FailureAction: fc.constantFrom('pause', 'rollback') }) }),
    );
    const op = fc.oneof(
      fc.tuple(fc.constant('create' as const), name, image, edit),
      fc.tuple(fc.constant('update' as const), name, fc.boolean(), edit),
      fc.tuple(fc.constant('rm' as const), name),
      fc.tuple(fc.constant('logs' as const), name, fc.constantFrom('stdout=1', 'stderr=1&tail=1', 'stdout=1&follow=1&timestamps=1', 'stdout=1&since=1')),
      fc.tuple(fc.constant('ps' as const), name),
    );
    const base = (n: string, img: string): Record<string, unknown> => ({ Name: n, TaskTemplate: { ContainerSpec: { Image: img } } });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (ops) => {
        for (const o of ops) {
          let answer: ApiResponse;
          if (o[0] === 'create') answer = await call('POST', '/v1.50/services/create', { ...base(o[1], o[2]), ...o[3] });
          else if (o[0] === 'update') {
            const got = await call('GET', `/v1.50/services/${o[1]}`);
            checkAnswer(got);
            if (got.status !== 200) continue;
            const service = JSON.parse(got.body) as { Version: { Index: number }; Spec: Record<string, unknown> };
            answer = await call('POST', `/v1.50/services/${o[1]}/update?version=${service.Version.Index}${o[2] ? '&rollback=previous' : ''}`, { ...service.Spec, ...o[3] });
          } else if (o[0] === 'rm') answer = await call('DELETE', `/v1.50/services/${o[1]}`);
          else if (o[0] === 'logs') answer = await call('GET', `/v1.50/services/${o[1]}/logs?${o[2]}`);
          else answer = await call('GET', `/v1.50/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [o[1]]: true }, '_up-to-date': { true: true } }))}`);
          checkAnswer(answer);
          if (answer.stream) answer.stream.open({ write: () => undefined, end: () => undefined })();
        }
      }),
      { numRuns: Math.min(RUNS, 200) },
    );
    const list = await call('GET', '/v1.50/services?status=true');
    expect(list.status).toBe(200);
    for (const s of JSON.parse(list.body) as { ID: string }[]) expect((await call('DELETE', `/v1.50/services/${s.ID}`)).status).toBe(200);
  });

  it('survives hostile request lines and headers on the socket', async () => {
    const raw = (text: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = net.connect(path.join(tmp, 'api.sock'));
        let out = '';
        socket.on('data', (c) => (out += c.toString('latin1')));
        socket.on('error', () => resolve(out));
        socket.on('close', () => resolve(out));
        socket.setTimeout(2000, () => socket.destroy());
        socket.end(text, 'latin1');
      });
    const headerName = fc.oneof(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Content-Type', 'Host', 'Expect', 'Connection'), fc.string({ maxLength: 20 }));
    const headerValue = fc.oneof(fc.constantFrom('-1', '99999999999', 'chunked', 'gzip, chunked', '100-continue', 'application/json; charset=utf-8', ''), fc.string({ maxLength: 40 }));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'BREW'),
        fc.constantFrom('/_ping', '/v1.50/nodes', `/v1.50/nodes/x/update?version=1`, '/v1.50/swarm/update?version=1', '/%%', '*'),
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
        fc.string({ maxLength: 100 }),
        async (m, p, headers, payload) => {
          const text = `${m} ${p} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${payload}`;
          const answer = await raw(text);
          if (answer !== '') expect(answer).toMatch(/^HTTP\/1\.1 \d{3} /);
        },
      ),
      { numRuns: Math.min(RUNS, 300) },
    );
    const ping = await raw('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(ping).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(ping).toMatch(/\r\nSwarm: active\/manager\r\n/i);
  });

  it('answers random bodies on the manager port (2377), with and without a node certificate', async () => {
    const certs = path.join(tmp, 'data', 'swarm', 'certificates');
    const leader = { cert: await readFile(path.join(certs, 'swarm-node.crt'), 'utf8'), key: await readFile(path.join(certs, 'swarm-node.key'), 'utf8') };
    const rpc = (route: string, payload: string, withCert: boolean): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.48', port: cluster.rpcPort, method: 'POST', path: route, rejectUnauthorized: false, agent: false, ...(withCert ? leader : {}), headers: { 'Content-Type': 'application/json' } },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    const join = fc.record(
      { Token: fc.oneof(fc.string(), fc.anything({ maxDepth: 1 })), PublicKeyPem: fc.oneof(fc.string(), fc.constant('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')), Addr: fc.anything({ maxDepth: 1 }), ManagerAddr: fc.oneof(fc.string(), fc.constant('127.0.0.1:1')), Role: fc.anything({ maxDepth: 1 }), Availability: fc.anything({ maxDepth: 1 }), Description: fc.anything({ maxDepth: 3 }) },
      { requiredKeys: [] },
    );
    const control = fc.record({ Method: fc.oneof(fc.constantFrom('swarm', 'listNodes', 'getNode', 'updateNode', 'removeNode', 'updateSwarm', 'createService', 'listServices', 'getService', 'updateService', 'removeService', 'listTasks', 'getTask', 'listNetworks', 'getNetwork', 'createNetwork', 'removeNetwork', 'logs', 'constructor', '__proto__'), fc.anything({ maxDepth: 1 })), Args: fc.anything({ maxDepth: 3 }) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/join', '/heartbeat', '/renew', '/control', '/ca', '/nope'),
        fc.oneof(join, control, fc.anything({ maxDepth: 2 })).map((v) => JSON.stringify(v) ?? ''),
        fc.boolean(),
        async (route, payload, withCert) => {
          const r = await rpc(route, payload, withCert);
          expect([200, 400, 401, 403, 404, 500]).toContain(r.status);
          if (r.status >= 400) {
            const message = (JSON.parse(r.body) as { message?: unknown }).message;
            expect(typeof message).toBe('string');
            if (r.status === 500) expect(message).toBe('update out of sequence');
          }
          // Nothing without a certificate but the CA and a join with a valid token.
          if (!withCert && route !== '/join') expect(r.status).not.toBe(200);
        },
      ),
      { numRuns: Math.min(RUNS, 300) },
    );
    const nodes = JSON.parse((await call('GET', '/v1.50/nodes')).body) as unknown[];
    expect(nodes).toHaveLength(1);
  });
});
