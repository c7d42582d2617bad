/**
 * The Docker API's service, task, network, logs and distribution routes (spec §4, §6, §8, §9)
 * on handleApiRequest and on the real HTTP server: over a recording stand-in ControlPlane (what
 * each route passes to the manager and what the client receives: statuses, bodies, the
 * multiplexed log stream, follow kept open until the client goes away), then over a real
 * Manager, in process and through the forwarding a manager that is not the leader does.
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, type LogEntry, type LogStream, callControl, forwardingControl, localControl } from '../../src/agent/control-plane.js';
import { generateNodeKey } from '../../src/cluster/ca.js';
import { Manager } from '../../src/cluster/manager.js';
import { MemoryStore } from '../../src/cluster/store.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { SwarmInfo } from '../../src/agent/cluster-node.js';
import { type ApiBackend, type ApiResponse, handleApiRequest, logFrame } from '../../src/api/docker.js';
import { type ApiServer, serveApi } from '../../src/api/server.js';
import { ConflictError, InvalidArgumentError, NotFoundError, UnavailableError } from '../../src/lib/errors.js';

const INACTIVE: SwarmInfo = { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null };
const SERVICE_ID = 'svc0000000000000000000001';
const TASK_ID = 'tsk0000000000000000000001';
const NODE_ID = 'nod0000000000000000000001';

const entry = (line: string, stream: 'stdout' | 'stderr' = 'stdout'): LogEntry => ({
  TaskID: TASK_ID,
  ServiceID: SERVICE_ID,
  NodeID: NODE_ID,
  Stream: stream,
  Timestamp: '2026-12-07T10:00:00.123456789Z',
  Line: line,
});

/** A ControlPlane that records every call and answers from a tiny fixed world: service `web`, its task, network `net1`. */
class FakeControl {
  readonly calls: unknown[][] = [];
  readonly listeners = new Set<(e: LogEntry) => void>();
  entries: LogEntry[] = [entry('hello'), entry('oops', 'stderr')];

  get plane(): ControlPlane {
    const rec = (name: string, ...args: unknown[]): void => void this.calls.push([name, ...args]);
    const service = (ref: string): { ID: string } => {
      if (ref !== 'web' && ref !== SERVICE_ID) throw new NotFoundError(`service ${ref} not found`);
      return { ID: SERVICE_ID };
    };
    const plane: Partial<ControlPlane> = {
      createService: async (spec) => {
        rec('createService', spec);
        if ((spec as { Name?: string }).Name === 'taken') throw new ConflictError('service taken already exists');
        return { ID: SERVICE_ID, Warnings: null };
      },
      listServices: async (filters, options) => (rec('listServices', filters, options), []),
      getService: async (ref, options) => (rec('getService', ref, options), service(ref) as never),
      updateService: async (ref, version, spec, options) => (rec('updateService', ref, version, spec, options), service(ref), { Warnings: null }),
      removeService: async (ref) => void (rec('removeService', ref), service(ref)),
      listTasks: async (filters) => (rec('listTasks', filters), []),
      getTask: async (ref) => {
        rec('getTask', ref);
        if (ref !== TASK_ID.slice(0, 5) && ref !== TASK_ID) throw new NotFoundError(`task ${ref} not found`);
        return { ID: TASK_ID } as never;
      },
      listNetworks: async (filters) => (rec('listNetworks', filters), []),
      getNetwork: async (ref) => (rec('getNetwork', ref), { Id: 'net', Name: ref } as never),
      createNetwork: async (body) => (rec('createNetwork', body), { Id: 'netid', Warning: '' }),
      removeNetwork: async (ref) => {
        rec('removeNetwork', ref);
        if (ref === 'busy') throw new InvalidArgumentError('network busy is in use by service web');
      },
      logs: async (selector, options): Promise<LogStream> => {
        rec('logs', selector, options);
        return {
          entries: this.entries,
          subscribe: (listener) => {
            this.listeners.add(listener);
            return () => this.listeners.delete(listener);
          },
        };
      },
    };
    return plane as ControlPlane;
  }
}

function backendOf(control: FakeControl | undefined): ApiBackend {
  return {
    nodeName: 'stub',
    cluster: {
      swarmHeader: () => 'active/manager',
      info: async () => INACTIVE,
      control: () => {
        if (!control) throw new UnavailableError('This node is not a swarm manager.');
        return control.plane;
      },
      init: async () => 'id',
      join: async () => undefined,
      leave: async () => undefined,
    },
  };
}

const call = (control: FakeControl | undefined, method: string, url: string, body?: unknown): Promise<ApiResponse> =>
  handleApiRequest(backendOf(control), { method, url, body: Buffer.from(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body)) });

/** Runs a streaming answer to its end and splits the multiplexed stream into [stream, payload] frames. */
function collect(r: ApiResponse): [number, string][] {
  const chunks: Buffer[] = [];
  let ended = false;
  r.stream!.open({ write: (c) => void chunks.push(c), end: () => void (ended = true) })();
  expect(ended).toBe(true);
  return demux(Buffer.concat(chunks));
}

function demux(data: Buffer): [number, string][] {
  const frames: [number, string][] = [];
  for (let at = 0; at < data.length; ) {
    const size = data.readUInt32BE(at + 4);
    frames.push([data[at]!, data.subarray(at + 8, at + 8 + size).toString('utf8')]);
    at += 8 + size;
  }
  return frames;
}

describe('service routes', () => {
  it('creates with 201 {"ID","Warnings":null}, the body passed to the manager as sent', async () => {
    const c = new FakeControl();
    const spec = { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } } };
    const r = await call(c, 'POST', '/v1.50/services/create', spec);
    expect(r.status).toBe(201);
    expect(r.headers['Content-Type']).toBe('application/json');
    expect(r.body).toBe(`{"ID":"${SERVICE_ID}","Warnings":null}`);
    expect(c.calls).toEqual([['createService', spec]]);
    const taken = await call(c, 'POST', '/v1.50/services/create', { Name: 'taken' });
    expect([taken.status, JSON.parse(taken.body)]).toEqual([409, { message: 'service taken already exists' }]);
    const bad = await call(c, 'POST', '/services/create', '{"Name":');
    expect(bad.status).toBe(400);
  });

  it('lists with filters and status, inspects with insertDefaults, both forms of booleans', async () => {
    const c = new FakeControl();
    const filters = encodeURIComponent('{"name":{"web":true},"mode":["global"]}');
    expect((await call(c, 'GET', `/v1.50/services?filters=${filters}&status=true`)).body).toBe('[]');
    await call(c, 'GET', '/v1.50/services');
    await call(c, 'GET', '/v1.50/services/web?insertDefaults=true');
    await call(c, 'GET', '/v1.50/services/web?insertDefaults=false');
    expect(c.calls).toEqual([
      ['listServices', { name: ['web'], mode: ['global'] }, { status: true }],
      ['listServices', {}, { status: false }],
      ['getService', 'web', { insertDefaults: true }],
      ['getService', 'web', { insertDefaults: false }],
    ]);
    const missing = await call(c, 'GET', '/v1.50/services/nosuch');
    expect([missing.status, missing.body]).toEqual([404, '{"message":"service nosuch not found"}']);
  });

  it('updates with a required version, rollback=previous, registryAuthFrom ignored; answers {"Warnings":null}', async () => {
    const c = new FakeControl();
    const spec = { Name: 'web' };
    const r = await call(c, 'POST', '/v1.50/services/web/update?registryAuthFrom=spec&version=17', spec);
    expect([r.status, r.body]).toEqual([200, '{"Warnings":null}']);
    await call(c, 'POST', `/v1.50/services/${SERVICE_ID}/update?registryAuthFrom=spec&rollback=previous&version=18`, spec);
    await call(c, 'POST', '/v1.50/services/web/update?version=19&rollback=other', spec);
    expect(c.calls).toEqual([
      ['updateService', 'web', 17, spec, { rollback: false }],
      ['updateService', SERVICE_ID, 18, spec, { rollback: true }],
      ['updateService', 'web', 19, spec, { rollback: false }],
    ]);
    const noVersion = await call(c, 'POST', '/v1.50/services/web/update', spec);
    expect([noVersion.status, JSON.parse(noVersion.body).message]).toEqual([400, 'invalid version "": the object\'s Version.Index is required']);
  });

  it('removes with 200 and an empty body; unknown methods on a service are "page not found"', async () => {
    const c = new FakeControl();
    const r = await call(c, 'DELETE', '/v1.50/services/web');
    expect([r.status, r.body]).toEqual([200, '']);
    expect((await call(c, 'DELETE', '/v1.50/services/nosuch')).status).toBe(404);
    expect((await call(c, 'PUT', '/v1.50/services/web')).body).toBe('{"message":"page not found"}');
  });

  it('answers 503 with the manager\'s message on a node that is not a manager', async () => {
    for (const [method, url] of [['GET', '/v1.50/services'], ['GET', '/v1.50/tasks'], ['GET', '/v1.50/networks'], ['GET', '/v1.50/secrets'], ['GET', '/v1.50/services/web/logs?stdout=1']]) {
      const r = await call(undefined, method!, url!);
      expect([url, r.status, r.headers['Content-Type'], JSON.parse(r.body)]).toEqual([url, 503, 'application/json', { message: 'This node is not a swarm manager.' }]);
    }
  });
});

describe('task, network, distribution, secret and config routes', () => {
  it('lists and inspects tasks, resolving through the manager', async () => {
    const c = new FakeControl();
    const filters = encodeURIComponent('{"_up-to-date":{"true":true},"service":{"abc":true}}');
    expect((await call(c, 'GET', `/v1.50/tasks?filters=${filters}`)).status).toBe(200);
    expect(JSON.parse((await call(c, 'GET', `/v1.50/tasks/${TASK_ID}`)).body)).toEqual({ ID: TASK_ID });
    expect((await call(c, 'GET', '/v1.50/tasks/zzz')).body).toBe('{"message":"task zzz not found"}');
    expect(c.calls[0]).toEqual(['listTasks', { '_up-to-date': ['true'], service: ['abc'] }]);
  });

  it('creates networks with 201 {"Id","Warning":""}, removes with 204, ignores scope', async () => {
    const c = new FakeControl();
    const body = { Driver: 'overlay', Name: 'net1', Labels: {} };
    const created = await call(c, 'POST', '/v1.50/networks/create', body);
    expect([created.status, created.body]).toEqual([201, '{"Id":"netid","Warning":""}']);
    expect(JSON.parse((await call(c, 'GET', '/v1.50/networks/net1?scope=swarm')).body)).toEqual({ Id: 'net', Name: 'net1' });
    const removed = await call(c, 'DELETE', '/v1.50/networks/net1');
    expect([removed.status, removed.body]).toEqual([204, '']);
    const busy = await call(c, 'DELETE', '/v1.50/networks/busy');
    expect([busy.status, JSON.parse(busy.body).message]).toEqual([400, 'network busy is in use by service web']);
    expect(c.calls).toEqual([['createNetwork', body], ['getNetwork', 'net1'], ['removeNetwork', 'net1'], ['removeNetwork', 'busy']]);
  });

  it('answers every distribution lookup with an empty descriptor, whatever slashes the name has', async () => {
    for (const name of ['shoal/whoami:latest', 'nginx:latest', 'registry.example.com:5000/org/img:1.0', 'nginx@sha256:abab']) {
      const r = await call(undefined, 'GET', `/v1.50/distribution/${name}/json`);
      expect([name, r.status, r.body]).toEqual([name, 200, '{"Descriptor":{}}']);
    }
  });

  it('lists no secrets and no configs', async () => {
    const c = new FakeControl();
    expect((await call(c, 'GET', '/v1.50/secrets?filters=%7B%7D')).body).toBe('[]');
    expect((await call(c, 'GET', '/v1.50/configs')).body).toBe('[]');
  });
});

describe('log routes (spec §8)', () => {
  const DETAILS = `com.docker.swarm.node.id=${NODE_ID},com.docker.swarm.service.id=${SERVICE_ID},com.docker.swarm.task.id=${TASK_ID}`;

  it('streams one multiplexed frame per line, with the details the CLI needs', async () => {
    const c = new FakeControl();
    const r = await call(c, 'GET', '/v1.50/services/web/logs?details=1&stderr=1&stdout=1&tail=all');
    expect(r.status).toBe(200);
    expect(r.headers['Content-Type']).toBe('application/vnd.docker.multiplexed-stream');
    expect(collect(r)).toEqual([
      [1, `${DETAILS} hello\n`],
      [2, `${DETAILS} oops\n`],
    ]);
    expect(c.calls).toEqual([['getService', 'web', { insertDefaults: false }], ['logs', { service: SERVICE_ID }, {}]]);
  });

  it('puts the timestamp first, leaves details out for --raw, and keeps only the streams asked for', async () => {
    const c = new FakeControl();
    expect(collect(await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&stderr=1&timestamps=1&details=1'))[0]).toEqual([1, `2026-12-07T10:00:00.123456789Z ${DETAILS} hello\n`]);
    expect(collect(await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&stderr=1'))).toEqual([[1, 'hello\n'], [2, 'oops\n']]);
    expect(collect(await call(c, 'GET', '/v1.50/services/web/logs?stderr=1'))).toEqual([[2, 'oops\n']]);
    const none = await call(c, 'GET', '/v1.50/services/web/logs?stdout=0');
    expect([none.status, JSON.parse(none.body).message]).toEqual([400, 'Bad parameters: you must choose at least one stream']);
  });

  it('passes tail and since on, and refuses a since that is not a Unix timestamp', async () => {
    const c = new FakeControl();
    collect(await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&tail=5&since=1700000000.5'));
    collect(await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&tail=all'));
    expect(c.calls.filter((x) => x[0] === 'logs').map((x) => x[2])).toEqual([{ tail: 5, sinceMs: 1_700_000_000_500 }, {}]);
    const bad = await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&since=yesterday');
    expect(bad.status).toBe(400);
  });

  it('answers 404 before any stream for an unknown service or task (the CLI then tries the task)', async () => {
    const c = new FakeControl();
    const svc = await call(c, 'GET', '/v1.50/services/nosuch/logs?stdout=1');
    expect([svc.status, svc.stream, JSON.parse(svc.body).message]).toEqual([404, undefined, 'service nosuch not found']);
    const task = await call(c, 'GET', `/v1.50/tasks/${TASK_ID.slice(0, 5)}/logs?stdout=1&details=1`);
    expect(collect(task)[0]).toEqual([1, `${DETAILS} hello\n`]);
    expect(c.calls.at(-1)).toEqual(['logs', { task: TASK_ID }, {}]);
  });

  it('escapes detail values as Go\'s url.QueryEscape', async () => {
    const c = new FakeControl();
    c.entries = [{ ...entry('x'), NodeID: 'a b&c' }];
    const [[, payload]] = collect(await call(c, 'GET', '/v1.50/services/web/logs?stdout=1&details=1')) as [[number, string]];
    expect(payload.startsWith('com.docker.swarm.node.id=a+b%26c,')).toBe(true);
  });

  it('frames a line of any length with its size big-endian', () => {
    const frame = logFrame('stderr', Buffer.alloc(70_000, 0x61));
    expect([...frame.subarray(0, 8)]).toEqual([2, 0, 0, 0, 0, 1, 0x11, 0x70]);
    expect(frame.length).toBe(70_008);
  });
});

describe('log follow over HTTP', () => {
  let tmp: string;
  let server: ApiServer;
  const control = new FakeControl();

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-api-logs-'));
    server = await serveApi(backendOf(control), path.join(tmp, 'api.sock'));
  });

  afterAll(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('keeps the chunked answer open, sends each new line as it comes, and unsubscribes when the client goes', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ socketPath: server.socketPath, path: '/v1.50/services/web/logs?stdout=1&stderr=1&follow=1' }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    let data = Buffer.alloc(0);
    const waitFrames = async (n: number): Promise<[number, string][]> => {
      for (let i = 0; i < 200 && demux(data).length < n; i++) await new Promise((r) => setTimeout(r, 10));
      return demux(data);
    };
    res.on('data', (c: Buffer) => (data = Buffer.concat([data, c])));
    expect(await waitFrames(2)).toEqual([[1, 'hello\n'], [2, 'oops\n']]);
    expect(control.listeners.size).toBe(1);
    for (const l of control.listeners) l(entry('later'));
    expect((await waitFrames(3))[2]).toEqual([1, 'later\n']);
    res.destroy();
    for (let i = 0; i < 200 && control.listeners.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(control.listeners.size).toBe(0);
  });

  it('subscribes before the stream opens and lets go of an answer that is never opened', async () => {
    const r = await handleApiRequest(backendOf(control), { method: 'GET', url: '/v1.50/services/web/logs?stdout=1&follow=1', body: Buffer.alloc(0) });
    expect(control.listeners.size).toBe(1);
    for (const l of control.listeners) l(entry('early'));
    r.stream!.discard();
    expect(control.listeners.size).toBe(0);
    const again = await handleApiRequest(backendOf(control), { method: 'GET', url: '/v1.50/services/web/logs?stdout=1&follow=1', body: Buffer.alloc(0) });
    for (const l of control.listeners) l(entry('early'));
    const chunks: Buffer[] = [];
    const stop = again.stream!.open({ write: (c) => void chunks.push(c), end: () => undefined });
    expect(demux(Buffer.concat(chunks))).toEqual([[1, 'hello\n'], [1, 'early\n']]);
    stop();
    expect(control.listeners.size).toBe(0);
  });

  it('ends the answer after the lines kept without follow', async () => {
    const body = await new Promise<Buffer>((resolve, reject) => {
      http
        .get({ socketPath: server.socketPath, path: '/v1.50/services/web/logs?stdout=1' }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
        })
        .on('error', reject);
    });
    expect(demux(body)).toEqual([[1, 'hello\n']]);
    expect(control.listeners.size).toBe(0);
  });
});

describe('the routes on a real Manager, local and forwarded to the leader', () => {
  /** The Docker API over `control`: the leader's own, or another manager's that forwards every call as JSON. */
  const realBackend = (control: () => ControlPlane): ApiBackend => ({
    nodeName: 'lead',
    cluster: { swarmHeader: () => 'active/manager', info: async () => INACTIVE, control, init: async () => '', join: async () => undefined, leave: async () => undefined },
  });
  const json = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

  let manager: Manager;
  beforeAll(async () => {
    manager = new Manager({ store: new MemoryStore(), clock: new ManualClock(), wallClock: () => Date.parse('2026-12-07T12:00:00Z'), rng: new SeededRng(5) });
    const description = { Hostname: 'lead', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 1 << 30 }, Engine: { EngineVersion: '0.1.0', Labels: {}, Plugins: [] } };
    await manager.init({ self: { hostname: 'lead', addr: '127.0.0.1', managerAddr: '127.0.0.1:2377', description }, publicKeyPem: generateNodeKey().publicKeyPem });
  });
  afterAll(() => manager?.close());

  const variants: [string, () => ControlPlane][] = [
    ['local', () => localControl(manager)],
    // What cluster-node does between managers: {Method, Args} as JSON to the leader, checked by callControl there.
    ['forwarded', () => forwardingControl(async (method, args) => json((await callControl(localControl(manager), method, json(args))) ?? {}), { followPollMs: 20 })],
  ];

  it.each(variants)('create, inspect by name and prefix, update, rollback, logs, remove (%s)', async (variant, control) => {
    const api = (method: string, url: string, body?: unknown): Promise<ApiResponse> =>
      handleApiRequest(realBackend(control), { method, url, body: Buffer.from(body === undefined ? '' : JSON.stringify(body)) });
    const name = `web-${variant}`;
    const port = variant === 'local' ? 8080 : 8081;
    const spec = { Name: name, Labels: {}, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami:latest', Init: false, DNSConfig: {} }, Resources: { Limits: {}, Reservations: {} }, Placement: {}, ForceUpdate: 0 }, Mode: { Replicated: { Replicas: 2 } }, EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: port, PublishMode: 'ingress' }] } };
    const created = await api('POST', '/v1.50/services/create', spec);
    expect(created.status).toBe(201);
    const { ID: id, Warnings } = JSON.parse(created.body) as { ID: string; Warnings: unknown };
    expect(Warnings).toBeNull();
    const byName = JSON.parse((await api('GET', `/v1.50/services/${name}`)).body) as { ID: string; Version: { Index: number }; Spec: unknown };
    expect(byName.ID).toBe(id);
    expect(JSON.parse((await api('GET', `/v1.50/services/${id.slice(0, 6)}?insertDefaults=true`)).body)).toMatchObject({ ID: id, Spec: { UpdateConfig: { Monitor: 5e9 } } });
    expect((await api('POST', '/v1.50/services/create', spec)).status).toBe(409);

    const stale = await api('POST', `/v1.50/services/${name}/update?version=${byName.Version.Index - 1}`, spec);
    expect([stale.status, JSON.parse(stale.body)]).toEqual([500, { message: 'update out of sequence' }]);
    const noPrevious = await api('POST', `/v1.50/services/${name}/update?version=${byName.Version.Index}&rollback=previous`, spec);
    expect([noPrevious.status, JSON.parse(noPrevious.body).message]).toEqual([400, `service ${id} does not have a previous spec`]);
    const renamed = await api('POST', `/v1.50/services/${name}/update?version=${byName.Version.Index}`, { ...spec, Name: 'other' });
    expect(renamed.status).toBe(400);
    const typo = await api('POST', `/v1.50/services/${name}/update?version=${byName.Version.Index}`, { ...spec, Mode: { Replicated: { Replicaz: 3 } } });
    expect([typo.status, JSON.parse(typo.body).message]).toEqual([400, 'unknown field "Replicaz" in Mode.Replicated']);
    const scaled = await api('POST', `/v1.50/services/${name}/update?version=${byName.Version.Index}`, { ...spec, Mode: { Replicated: { Replicas: 3 } } });
    expect([scaled.status, scaled.body]).toEqual([200, '{"Warnings":null}']);

    const tasks = JSON.parse((await api('GET', `/v1.50/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [id]: true }, '_up-to-date': { true: true } }))}`)).body) as { ID: string; Slot: number; NodeID: string }[];
    expect(tasks.map((t) => t.Slot).sort()).toEqual([1, 2, 3]);
    const task = tasks[0]!;
    expect(JSON.parse((await api('GET', `/v1.50/tasks/${task.ID}`)).body)).toMatchObject({ ID: task.ID, ServiceID: id });
    manager.appendLogs(task.NodeID, [{ TaskID: task.ID, Stream: 'stdout', Timestamp: '2026-12-07T12:00:01.000000000Z', Line: 'hello' }]);
    const logs = await api('GET', `/v1.50/services/${name}/logs?stdout=1&stderr=1&details=1`);
    expect(collect(logs)).toEqual([[1, `com.docker.swarm.node.id=${task.NodeID},com.docker.swarm.service.id=${id},com.docker.swarm.task.id=${task.ID} hello\n`]]);
    // follow: the stream stays open and later lines come (pushed by the leader, polled when forwarded), once each.
    const follow = await api('GET', `/v1.50/tasks/${task.ID}/logs?stdout=1&follow=1`);
    let ended = false;
    const frames: Buffer[] = [];
    const stop = follow.stream!.open({ write: (c) => void frames.push(c), end: () => void (ended = true) });
    manager.appendLogs(task.NodeID, [{ TaskID: task.ID, Stream: 'stdout', Timestamp: new Date().toISOString(), Line: 'later' }]);
    for (let i = 0; i < 200 && demux(Buffer.concat(frames)).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    // A few more polls repeat nothing.
    await new Promise((r) => setTimeout(r, 100));
    stop();
    expect([ended, demux(Buffer.concat(frames))]).toEqual([false, [[1, 'hello\n'], [1, 'later\n']]]);

    const removed = await api('DELETE', `/v1.50/services/${name}`);
    expect([removed.status, removed.body]).toEqual([200, '']);
    expect((await api('GET', `/v1.50/services/${id}`)).status).toBe(404);
  });

  it.each(variants)('lists ingress, creates and removes networks, refuses a name taken (%s)', async (variant, control) => {
    const api = (method: string, url: string, body?: unknown): Promise<ApiResponse> =>
      handleApiRequest(realBackend(control), { method, url, body: Buffer.from(body === undefined ? '' : JSON.stringify(body)) });
    const networks = JSON.parse((await api('GET', '/v1.50/networks')).body) as { Name: string; Id: string; Ingress: boolean }[];
    expect(networks.find((n) => n.Name === 'ingress')).toMatchObject({ Ingress: true });
    const name = `net-${variant}`;
    const body = { Driver: 'overlay', Scope: '', IPAM: { Driver: 'default', Options: {}, Config: [] }, Internal: false, Attachable: false, Ingress: false, ConfigOnly: false, ConfigFrom: null, Options: {}, Labels: {}, Name: name };
    const created = await api('POST', '/v1.50/networks/create', body);
    expect(created.status).toBe(201);
    const { Id, Warning } = JSON.parse(created.body) as { Id: string; Warning: string };
    expect(Warning).toBe('');
    expect(JSON.parse((await api('GET', `/v1.50/networks/${name}?scope=swarm`)).body)).toMatchObject({ Id, Name: name, Scope: 'swarm', Driver: 'overlay' });
    expect((await api('POST', '/v1.50/networks/create', body)).status).toBe(409);
    const removed = await api('DELETE', `/v1.50/networks/${Id}`);
    expect([removed.status, removed.body]).toEqual([204, '']);
  });
});
