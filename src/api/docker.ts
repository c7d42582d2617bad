/**
 * The Docker Engine API's swarm subset (spec docker-api-swarm.md), as one function from a
 * request to a response, so that the HTTP servers (unix socket, loopback TCP) are thin
 * adapters and the fuzz tests can drive it in-process. It never throws: every failure becomes
 * a Docker-style error, `{"message": …}` with `Content-Type: application/json` exactly (the
 * CLI parses the body only then, spec §2.1), and the status dockerd would give (§2.2).
 * Every error is decided before the first byte: a streamed answer (logs, §8) carries only data.
 */
import { InvalidArgumentError, ShoalError, httpStatusOf } from '../lib/errors.js';
import { PROMETHEUS_CONTENT_TYPE } from '../lib/metrics.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { ControlPlane, LogEntry } from '../agent/control-plane.js';
import type { SwarmInfo } from '../agent/cluster-node.js';
import { SHOAL_ENGINE_VERSION } from '../agent/cluster-node.js';

/** The API version shoal speaks, and the oldest it accepts (spec §1.2). */
export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';
export const MAX_BODY_BYTES = 256 * 1024;
const MAX_PING_COUNT = 1000;
/** Log lines a follower may receive between its answer and the opening of its stream. */
const MAX_EARLY_LOG_LINES = 10_000;

export interface SwarmBackend {
  swarmHeader(): string;
  info(): Promise<SwarmInfo>;
  control(): ControlPlane;
  init(body: unknown): Promise<string>;
  join(body: unknown): Promise<void>;
  leave(force: boolean): Promise<void>;
}

export interface OverlayBackend {
  metrics(): string;
  pingOverlay(address: string, options: { count: number; intervalMs: number; timeoutMs: number }): Promise<unknown>;
}

export interface ApiBackend {
  readonly nodeName: string;
  readonly cluster: SwarmBackend;
  readonly overlay?: OverlayBackend;
  readonly logger?: Logger;
}

export interface ApiRequest {
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  readonly body: Buffer;
}

/** Where a streaming answer writes: every `write` reaches the client as one chunk, at once. */
export interface StreamSink {
  write(chunk: Buffer): void;
  /** The answer is complete (the server ends the chunked body). */
  end(): void;
}

/**
 * A body produced over time (`logs?follow=1`). The server calls `open` once, after sending the
 * status and headers; the function it returns stops the producer and is called exactly once,
 * when the answer ends or the client goes away, whichever comes first.
 */
export interface ApiStream {
  open(sink: StreamSink): () => void;
  /** Releases what the answer holds when it is never opened (HEAD, or the client went first). */
  discard(): void;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The whole body, or '' when `stream` produces it. */
  readonly body: string;
  readonly stream?: ApiStream;
}

/** Headers on every answer, as dockerd sends them. */
function commonHeaders(): Record<string, string> {
  return { 'Api-Version': API_VERSION, 'Docker-Experimental': 'false', Ostype: 'linux', Server: `shoal/${SHOAL_ENGINE_VERSION}` };
}

export async function handleApiRequest(backend: ApiBackend, request: ApiRequest): Promise<ApiResponse> {
  try {
    return await route(backend, request);
  } catch (error) {
    const status = httpStatusOf(error);
    if (status === 500 && !(error instanceof ShoalError)) (backend.logger ?? silentLogger).error({ err: error, url: request.url }, 'API handler failed');
    return json(status, { message: error instanceof Error ? error.message : String(error) });
  }
}


async function route(backend: ApiBackend, request: ApiRequest): Promise<ApiResponse> {
  const url = parseUrl(request.url);
  let pathname = url.pathname;
  const versioned = /^\/v(\d+)\.(\d+)(\/.*)$/.exec(pathname);
  if (versioned) {
    checkVersion(Number(versioned[1]), Number(versioned[2]));
    pathname = versioned[3]!;
  }
  const method = request.method.toUpperCase();
  const q = url.searchParams;
  const nodeMatch = /^\/nodes\/([^/]+)(\/update)?$/.exec(pathname);
  if (nodeMatch) {
    const ref = decodeSegment(nodeMatch[1]!);
    const control = backend.cluster.control();
    if (nodeMatch[2] && method === 'POST') {
      await control.updateNode(ref, versionParam(q), parseBody(request.body));
      return empty(200);
    }
    if (!nodeMatch[2] && method === 'GET') return json(200, await control.getNode(ref));
    if (!nodeMatch[2] && method === 'DELETE') {
      await control.removeNode(ref, boolParam(q, 'force'));
      return empty(200);
    }
  }
  const objects = await objectRoute(backend, method, pathname, q, request.body);
  if (objects) return objects;
  switch (`${method} ${pathname}`) {
    case 'GET /_ping':
    case 'HEAD /_ping':
      return {
        status: 200,
        headers: {
          ...commonHeaders(),
          'Content-Type': 'text/plain; charset=utf-8',
          Swarm: backend.cluster.swarmHeader(),
          'Cache-Control': 'no-cache, no-store, must-revalidate',
          Pragma: 'no-cache',
        },
        body: method === 'HEAD' ? '' : 'OK',
      };
    case 'GET /version':
      return json(200, versionBody());
    case 'GET /info':
      return json(200, await infoBody(backend));
    case 'POST /swarm/init':
      return json(200, await backend.cluster.init(parseBody(request.body)));
    case 'POST /swarm/join':
      await backend.cluster.join(parseBody(request.body));
      return empty(200);
    case 'POST /swarm/leave':
      await backend.cluster.leave(boolParam(q, 'force'));
      return empty(200);
    case 'GET /swarm':
      return json(200, await backend.cluster.control().swarm());
    case 'POST /swarm/update': {
      const control = backend.cluster.control();
      const version = versionParam(q);
      const body = parseBody(request.body);
      await control.updateSwarm(version, body, { worker: boolParam(q, 'rotateWorkerToken'), manager: boolParam(q, 'rotateManagerToken') });
      return empty(200);
    }
    case 'GET /swarm/unlockkey':
      backend.cluster.control();
      throw new InvalidArgumentError('autolock is not enabled on this swarm: there is no unlock key');
    case 'GET /nodes':
      return json(200, await backend.cluster.control().listNodes(parseFilters(q.get('filters'))));
    case 'GET /metrics':
      if (!backend.overlay) break;
      return { status: 200, headers: { ...commonHeaders(), 'Content-Type': PROMETHEUS_CONTENT_TYPE }, body: backend.overlay.metrics() };
    case 'POST /shoal/overlay/ping':
      if (!backend.overlay) break;
      return json(200, await overlayPing(backend.overlay, parseBody(request.body)));
  }
  return json(404, { message: 'page not found' });
}

/**
 * Services, tasks, networks, logs, distribution, secrets and configs (spec §4, §6, §8, §9).
 * Every `{id}` goes to the manager as given: it resolves full ID, then name, then unique prefix
 * (§3.5). Undefined when no route matches.
 */
async function objectRoute(backend: ApiBackend, method: string, pathname: string, q: URLSearchParams, body: Buffer): Promise<ApiResponse | undefined> {
  const control = (): ControlPlane => backend.cluster.control();
  const key = `${method} ${pathname}`;
  switch (key) {
    case 'GET /services':
      return json(200, await control().listServices(parseFilters(q.get('filters')), { status: boolParam(q, 'status') }));
    case 'POST /services/create': {
      // X-Registry-Auth is not read: shoal pulls nothing.
      const created = await control().createService(parseBody(body));
      return json(201, { ID: created.ID, Warnings: created.Warnings });
    }
    case 'GET /tasks':
      return json(200, await control().listTasks(parseFilters(q.get('filters'))));
    case 'GET /networks':
      return json(200, await control().listNetworks(parseFilters(q.get('filters'))));
    case 'POST /networks/create': {
      const created = await control().createNetwork(parseBody(body));
      return json(201, { Id: created.Id, Warning: created.Warning });
    }
    case 'GET /secrets':
    case 'GET /configs':
      // Neither is supported; `stack rm` lists them, and an empty list is the truth.
      control();
      return json(200, []);
  }
  const service = /^\/services\/([^/]+)(\/update|\/logs)?$/.exec(pathname);
  if (service) {
    const ref = decodeSegment(service[1]!);
    const tail = service[2];
    if (tail === undefined && method === 'GET') return json(200, await control().getService(ref, { insertDefaults: boolParam(q, 'insertDefaults') }));
    if (tail === undefined && method === 'DELETE') {
      await control().removeService(ref);
      return empty(200);
    }
    if (tail === '/update' && method === 'POST') {
      // registryAuthFrom only chooses pull credentials (§9.2): shoal pulls nothing.
      const version = versionParam(q);
      const rollback = q.get('rollback') === 'previous';
      const answer = await control().updateService(ref, version, parseBody(body), { rollback });
      return json(200, { Warnings: answer.Warnings });
    }
    if (tail === '/logs' && method === 'GET') return logsRoute(control(), 'service', ref, q);
    return undefined;
  }
  const task = /^\/tasks\/([^/]+)(\/logs)?$/.exec(pathname);
  if (task && method === 'GET') {
    const ref = decodeSegment(task[1]!);
    return task[2] ? logsRoute(control(), 'task', ref, q) : json(200, await control().getTask(ref));
  }
  const network = /^\/networks\/([^/]+)$/.exec(pathname);
  if (network) {
    const ref = decodeSegment(network[1]!);
    // `scope` and `verbose` change nothing: every network of shoal is swarm-scoped.
    if (method === 'GET') return json(200, await control().getNetwork(ref));
    if (method === 'DELETE') {
      await control().removeNetwork(ref);
      return empty(204);
    }
    return undefined;
  }
  const distribution = /^\/distribution\/(.+)\/json$/.exec(pathname);
  if (distribution && method === 'GET') {
    decodeSegment(distribution[1]!);
    // No registry: an empty descriptor makes the CLI keep the image as typed (§10.8). A
    // made-up digest would be pinned into the spec.
    return json(200, { Descriptor: {} });
  }
  return undefined;
}

/** Docker's multiplexed-stream frame header (§8): stream 1 stdout, 2 stderr; size big-endian. */
export function logFrame(stream: 'stdout' | 'stderr', payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + payload.length);
  frame.writeUInt32BE(0, 0);
  frame[0] = stream === 'stdout' ? 1 : 2;
  frame.writeUInt32BE(payload.length, 4);
  payload.copy(frame, 8);
  return frame;
}

/** Go's url.QueryEscape, which dockerd applies to the keys and values of log details. */
function queryEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+');
}

/** One log line as dockerd writes it: `[<timestamp> ][<details> ]<line>\n` (§8). */
export function logPayload(entry: LogEntry, options: { readonly timestamps: boolean; readonly details: boolean }): Buffer {
  let text = entry.Line;
  if (options.details) {
    const attrs: [string, string][] = [
      ['com.docker.swarm.node.id', entry.NodeID],
      ['com.docker.swarm.service.id', entry.ServiceID],
      ['com.docker.swarm.task.id', entry.TaskID],
    ];
    text = `${attrs.map(([k, v]) => `${queryEscape(k)}=${queryEscape(v)}`).join(',')} ${text}`;
  }
  if (options.timestamps) text = `${entry.Timestamp} ${text}`;
  return Buffer.from(`${text}\n`, 'utf8');
}

/** `tail`: a count, or `all` / absent / anything not a count for everything (as dockerd). */
function tailParam(q: URLSearchParams): number | undefined {
  const v = q.get('tail');
  return v !== null && /^\d{1,9}$/.test(v) ? Number(v) : undefined;
}

/** `since`: Unix seconds with an optional fraction (`1700000000.5`), as the CLI sends it. */
function sinceParam(q: URLSearchParams): number | undefined {
  const v = q.get('since');
  if (v === null || v === '') return undefined;
  const m = /^(\d{1,12})(?:\.(\d{1,9}))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`invalid value for "since": ${JSON.stringify(v)} is not a Unix timestamp`);
  return Number(m[1]) * 1000 + Number(`0.${m[2] ?? '0'}`) * 1000;
}

/**
 * `GET /services/{id}/logs`, `GET /tasks/{id}/logs` (§8): the lines kept, one frame each, and
 * with `follow` every later line until the client goes away. The reference is resolved first,
 * so an unknown one is a 404 before any byte of the stream.
 */
async function logsRoute(control: ControlPlane, kind: 'service' | 'task', ref: string, q: URLSearchParams): Promise<ApiResponse> {
  const wantStdout = boolParam(q, 'stdout');
  const wantStderr = boolParam(q, 'stderr');
  if (!wantStdout && !wantStderr) throw new InvalidArgumentError('Bad parameters: you must choose at least one stream');
  const format = { timestamps: boolParam(q, 'timestamps'), details: boolParam(q, 'details') };
  const follow = boolParam(q, 'follow');
  const tail = tailParam(q);
  const sinceMs = sinceParam(q);
  const selector = kind === 'service' ? { service: (await control.getService(ref, { insertDefaults: false })).ID } : { task: (await control.getTask(ref)).ID };
  const logs = await control.logs(selector, { ...(tail !== undefined ? { tail } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) });
  const wanted = (e: LogEntry): boolean => (e.Stream === 'stdout' ? wantStdout : wantStderr);
  // Subscribe now, not when the stream opens: a refusal (too many followers) is then still an
  // answer of its own, and lines that come before the stream opens wait in `early`.
  let sink: StreamSink | undefined;
  const early: LogEntry[] = [];
  let dropped = 0;
  const send = (e: LogEntry): void => {
    if (wanted(e)) sink!.write(logFrame(e.Stream, logPayload(e, format)));
  };
  // Without a subscription (a control plane that cannot follow) the stream ends with the lines kept.
  const unsubscribe =
    follow && logs.subscribe
      ? logs.subscribe((e) => {
          if (sink) send(e);
          else if (early.length < MAX_EARLY_LOG_LINES) early.push(e);
          else dropped++;
        })
      : undefined;
  return {
    status: 200,
    headers: { ...commonHeaders(), 'Content-Type': 'application/vnd.docker.multiplexed-stream' },
    body: '',
    stream: {
      open: (s) => {
        sink = s;
        for (const e of logs.entries) send(e);
        for (const e of early.splice(0)) send(e);
        if (dropped > 0) s.write(logFrame('stderr', Buffer.from(`${dropped} log lines were dropped before the stream opened\n`)));
        if (!unsubscribe) {
          s.end();
          return () => undefined;
        }
        return unsubscribe;
      },
      discard: () => unsubscribe?.(),
    },
  };
}

function parseUrl(text: string): URL {
  try {
    return new URL(text, 'http://shoal');
  } catch (error) {
    throw new InvalidArgumentError('The request URL cannot be parsed', { cause: error });
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (error) {
    throw new InvalidArgumentError('The request path is not valid percent-encoding', { cause: error });
  }
}

/** dockerd's version middleware: refuse clients older than MinAPIVersion or newer than ours. */
function checkVersion(major: number, minor: number): void {
  const [maxMajor, maxMinor] = API_VERSION.split('.').map(Number) as [number, number];
  const [minMajor, minMinor] = MIN_API_VERSION.split('.').map(Number) as [number, number];
  const v = `${major}.${minor}`;
  if (major < minMajor || (major === minMajor && minor < minMinor)) {
    throw new InvalidArgumentError(`client version ${v} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  if (major > maxMajor || (major === maxMajor && minor > maxMinor)) {
    throw new InvalidArgumentError(`client version ${v} is too new. Maximum supported API version is ${API_VERSION}`);
  }
}

/** Query booleans as dockerd reads them: anything but "", 0, no, false, none is true (spec §1.1). */
export function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null) return false;
  return !['', '0', 'no', 'false', 'none'].includes(v.toLowerCase());
}

function versionParam(q: URLSearchParams): number {
  const v = q.get('version');
  if (v === null || !/^\d{1,15}$/.test(v)) throw new InvalidArgumentError(`invalid version ${JSON.stringify(v ?? '')}: the object's Version.Index is required`);
  return Number(v);
}

/** `filters` in map form `{"k":{"v":true}}` or list form `{"k":["v"]}` (spec §1.1). */
export function parseFilters(text: string | null): Record<string, string[]> {
  if (text === null || text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError('invalid filter: filters must be a JSON object', { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('invalid filter: filters must be a JSON object');
  const out: Record<string, string[]> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    let list: string[];
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) list = v as string[];
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) list = Object.entries(v as Record<string, unknown>).filter(([, on]) => on === true).map(([k]) => k);
    else throw new InvalidArgumentError(`invalid filter '${key}'`);
    Object.defineProperty(out, key, { value: list, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function parseBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  if (body.length > MAX_BODY_BYTES) throw new InvalidArgumentError(`Request body larger than ${MAX_BODY_BYTES} bytes`);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    throw new InvalidArgumentError(`invalid JSON in the request body: ${(error as Error).message}`, { cause: error });
  }
}

function json(status: number, body: unknown): ApiResponse {
  return { status, headers: { ...commonHeaders(), 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
}

function empty(status: number): ApiResponse {
  return { status, headers: commonHeaders(), body: '' };
}

function versionBody(): Record<string, unknown> {
  const details = { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: goArch(), KernelVersion: '', Experimental: 'false', GitCommit: '', GoVersion: process.version };
  return {
    Platform: { Name: 'shoal' },
    Components: [{ Name: 'Engine', Version: SHOAL_ENGINE_VERSION, Details: details }],
    Version: SHOAL_ENGINE_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    Os: 'linux',
    Arch: goArch(),
    GoVersion: process.version,
  };
}

async function infoBody(backend: ApiBackend): Promise<Record<string, unknown>> {
  return {
    ID: '',
    Name: backend.nodeName,
    OSType: 'linux',
    OperatingSystem: 'shoal',
    Architecture: goArch(),
    ServerVersion: SHOAL_ENGINE_VERSION,
    Swarm: await backend.cluster.info(),
    Warnings: [],
  };
}

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

async function overlayPing(overlay: OverlayBackend, body: unknown): Promise<unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidArgumentError('Request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const address = b['address'];
  if (typeof address !== 'string') throw new InvalidArgumentError('address must be an IPv4 address string');
  const count = b['count'] ?? 1;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_PING_COUNT) {
    throw new InvalidArgumentError(`count must be an integer from 1 to ${MAX_PING_COUNT}`);
  }
  const intervalMs = msOr(b['intervalMs'], 1000, 'intervalMs');
  const timeoutMs = msOr(b['timeoutMs'], 1000, 'timeoutMs');
  return { replies: await overlay.pingOverlay(address, { count, intervalMs, timeoutMs }) };
}

function msOr(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 60_000) {
    throw new InvalidArgumentError(`${name} must be a number of milliseconds from 0 to 60000`);
  }
  return value;
}
