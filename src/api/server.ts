/**
 * The agent's HTTP API: the Docker Engine API's swarm subset (docker.ts) plus shoal's own
 * routes (`/metrics`, `POST /shoal/overlay/ping`), served on a local unix socket and,
 * optionally, on a loopback TCP port for `docker -H tcp://127.0.0.1:PORT`. This file only
 * adapts node:http to handleApiRequest(): a whole body at once, or a streamed one (`logs`)
 * written chunk by chunk until its producer ends or the client goes away.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Agent } from '../agent/agent.js';
import type { ClusterNode } from '../agent/cluster-node.js';
import { InvalidArgumentError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type ApiBackend, type ApiStream, MAX_BODY_BYTES, handleApiRequest } from './docker.js';

/** What a streaming answer may leave unread by its client before the client is cut off. */
export const STREAM_HIGH_WATER_BYTES = 1024 * 1024;

export interface ApiServer {
  readonly socketPath: string;
  /** The loopback TCP port, when one was asked for. */
  readonly tcpPort: number | undefined;
  close(): Promise<void>;
}

export interface ApiServerOptions {
  /** The agent's swarm side; without it swarm routes answer "not a swarm manager". */
  readonly cluster?: ClusterNode;
  /** Also listen on this loopback TCP address (port 0 picks one). Refuses non-loopback hosts. */
  readonly tcp?: { readonly host: string; readonly port: number };
  readonly logger?: Logger;
}

/** Serves the API for `agent` on `socketPath` (replacing a stale socket file) and optionally on TCP. */
export async function startApiServer(agent: Agent, socketPath: string, options: ApiServerOptions = {}): Promise<ApiServer> {
  const backend: ApiBackend = {
    nodeName: agent.nodeName,
    cluster: options.cluster ?? agent.cluster,
    overlay: agent,
    ...(options.logger ? { logger: options.logger } : {}),
  };
  return serveApi(backend, socketPath, options.tcp);
}

/** The server for any backend (tests build one without an overlay). */
export async function serveApi(backend: ApiBackend, socketPath: string, tcp?: { host: string; port: number }): Promise<ApiServer> {
  if (tcp && !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(tcp.host)) {
    throw new InvalidArgumentError(`The API's TCP listener is unauthenticated: it binds loopback (127.0.0.0/8) only, not ${tcp.host}`);
  }
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // serve() answers every failure itself; this only guards against a bug becoming a crash.
    serve(backend, req, res).catch(() => res.destroy());
  };
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await fs.rm(socketPath, { force: true });
  const servers = [http.createServer(listener)];
  await listen(servers[0]!, (s, cb) => s.listen(socketPath, cb));
  let tcpPort: number | undefined;
  if (tcp) {
    const server = http.createServer(listener);
    servers.push(server);
    await listen(server, (s, cb) => s.listen(tcp.port, tcp.host, cb));
    const address = server.address();
    tcpPort = typeof address === 'object' && address ? address.port : tcp.port;
  }
  return {
    socketPath,
    tcpPort,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
    },
  };
}

function listen(server: http.Server, start: (s: http.Server, cb: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    start(server, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function serve(backend: ApiBackend, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch {
    if (!res.headersSent) res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ message: `Request body larger than ${MAX_BODY_BYTES} bytes or unreadable` }));
    return;
  }
  const answer = await handleApiRequest(backend, { method: req.method ?? 'GET', url: req.url ?? '/', body });
  if (res.destroyed || req.method === 'HEAD') answer.stream?.discard();
  if (res.destroyed) return;
  if (!answer.stream || req.method === 'HEAD') {
    res.writeHead(answer.status, answer.headers);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
    return;
  }
  streamAnswer(res, answer.status, answer.headers, answer.stream);
}

/**
 * A streaming answer: chunked (no Content-Length), headers sent at once, every write a chunk of
 * its own. A client that stops reading is cut off once STREAM_HIGH_WATER_BYTES are waiting
 * for it, so one slow reader cannot hold the agent's memory.
 */
function streamAnswer(res: http.ServerResponse, status: number, headers: Record<string, string>, stream: ApiStream): void {
  res.writeHead(status, headers);
  res.flushHeaders();
  const stop = stream.open({
    write: (chunk) => {
      if (res.destroyed) return;
      if (res.writableLength > STREAM_HIGH_WATER_BYTES) {
        res.destroy();
        return;
      }
      res.write(chunk);
    },
    end: () => {
      if (!res.destroyed) res.end();
    },
  });
  // 'close' comes after end(), destroy() or the client going away, never during open().
  res.once('close', stop);
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new InvalidArgumentError('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
