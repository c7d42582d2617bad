/**
 * The agent's HTTP API on a local unix socket. Today: `/_ping`, `/metrics` (Prometheus) and
 * `/shoal/overlay/ping`; the Docker Engine API's swarm subset joins here (issue 7), which is
 * why errors already take Docker's shape, `{"message": "..."}` with the JSON content type.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { InvalidArgumentError, ShoalError } from '../lib/errors.js';
import { PROMETHEUS_CONTENT_TYPE } from '../lib/metrics.js';
import type { Agent } from '../agent/agent.js';

const MAX_BODY_BYTES = 64 * 1024;
const MAX_PING_COUNT = 1000;

export interface ApiServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Serves the API for `agent` on `socketPath`, replacing a stale socket file. */
export async function startApiServer(agent: Agent, socketPath: string): Promise<ApiServer> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await fs.rm(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    handle(agent, req, res).catch((error: unknown) => sendError(res, error));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(agent: Agent, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://shoal');
  // Docker clients prefix paths with /v1.NN; accept and ignore it.
  const route = `${req.method} ${url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '')}`;
  switch (route) {
    case 'GET /_ping':
    case 'HEAD /_ping':
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('OK');
      return;
    case 'GET /metrics':
      res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE }).end(agent.metrics());
      return;
    case 'POST /shoal/overlay/ping': {
      const body = await readJson(req);
      const address = body['address'];
      if (typeof address !== 'string') throw new InvalidArgumentError('address must be an IPv4 address string');
      const count = body['count'] ?? 1;
      if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_PING_COUNT) {
        throw new InvalidArgumentError(`count must be an integer from 1 to ${MAX_PING_COUNT}`);
      }
      const intervalMs = numberOr(body['intervalMs'], 1000, 'intervalMs');
      const timeoutMs = numberOr(body['timeoutMs'], 1000, 'timeoutMs');
      const replies = await agent.pingOverlay(address, { count, intervalMs, timeoutMs });
      sendJson(res, 200, { replies });
      return;
    }
    default:
      sendJson(res, 404, { message: `page not found: ${req.method} ${url.pathname}` });
  }
}

function numberOr(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 60_000) {
    throw new InvalidArgumentError(`${name} must be a number of milliseconds from 0 to 60000`);
  }
  return value;
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new InvalidArgumentError(`Request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let value: unknown;
  try {
    value = text === '' ? {} : JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError('Request body is not valid JSON', { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('Request body must be a JSON object');
  return value as Record<string, unknown>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

function sendError(res: http.ServerResponse, error: unknown): void {
  const status = error instanceof InvalidArgumentError ? 400 : 500;
  const message = error instanceof ShoalError || error instanceof Error ? error.message : String(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { message });
}
