/**
 * The node-to-manager transport on 2377 (swarmkit's gRPC services, here JSON over HTTPS):
 * the manager's mutual-TLS listener and the client every node uses to call it.
 *
 * The listener asks every client for a certificate but admits a handshake without one, because
 * a joining node has none yet: exactly two routes take no certificate, `GET /ca` (the root
 * certificate, which the joiner checks against its token's digest, as swarmkit's
 * GetRootCACertificate) and `POST /join` (which needs a valid join token instead). Every other
 * route requires a certificate signed by the cluster CA for a node that is still a member,
 * and `/control` requires the manager role.
 */
import type http from 'node:http';
import https from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { InvalidArgumentError, ShoalError, UnauthenticatedError, UnavailableError, httpStatusOf } from '../lib/errors.js';
import type { NodeIdentity } from '../cluster/ca.js';

const MAX_BODY_BYTES = 256 * 1024;
const REQUEST_TIMEOUT_MS = 5_000;
/** Manager certificates carry this OU (and DNS SAN); clients accept no other server. */
const MANAGER_OU = 'swarm-manager';

export interface RpcTls {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
}

export interface RpcHandlers {
  /** The peer's certificate (DER) → who it is. Throws UnauthenticatedError or PermissionDeniedError. */
  authenticate(certDer: Uint8Array): NodeIdentity;
  /** Told of every call refused for want of a certificate of this swarm (for the counters). */
  refused?(): void;
  /**
   * Route → handler. `identity` is undefined only on the two open routes. `signal` aborts when
   * the caller goes away before the answer (a long poll whose agent died).
   */
  handle(route: string, body: unknown, identity: NodeIdentity | undefined, signal: AbortSignal): Promise<unknown>;
}

export const OPEN_ROUTES: ReadonlySet<string> = new Set(['GET /ca', 'POST /join']);

export interface RpcServer {
  readonly port: number;
  /** New key and certificate for connections from now on (after a renewal). */
  updateTls(tls: RpcTls): void;
  close(): Promise<void>;
}

/** Listens on host:port with mTLS as described above. Rejects when the address cannot be bound. */
export async function startRpcServer(host: string, port: number, tls: RpcTls, handlers: RpcHandlers): Promise<RpcServer> {
  const server = https.createServer(
    { key: tls.keyPem, cert: tls.certPem, ca: [tls.caPem], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (req, res) => {
      serve(req, res, handlers).catch((error: unknown) => reply(res, httpStatusOf(error), { message: messageOf(error), code: codeOf(error) }));
    },
  );
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    updateTls: (next) => server.setSecureContext({ key: next.keyPem, cert: next.certPem, ca: [next.caPem], minVersion: 'TLSv1.2' }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function serve(req: http.IncomingMessage, res: http.ServerResponse, handlers: RpcHandlers): Promise<void> {
  const route = `${req.method} ${new URL(req.url ?? '/', 'https://manager').pathname}`;
  const body = await readBody(req);
  let identity: NodeIdentity | undefined;
  if (!OPEN_ROUTES.has(route)) {
    const socket = req.socket as TLSSocket;
    const peer: PeerCertificate | undefined = socket.getPeerCertificate?.();
    // `authorized` is the TLS layer's own chain check against the cluster CA; authenticate()
    // checks it again and reads the node ID, role and cluster from the subject.
    if (!socket.authorized || !peer?.raw) {
      handlers.refused?.();
      throw new UnauthenticatedError(`A node certificate issued by this swarm's CA is required on this port${socket.authorizationError ? ` (${String(socket.authorizationError)})` : ''}`);
    }
    identity = handlers.authenticate(peer.raw);
  }
  const aborted = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) aborted.abort();
  });
  const answer = await handlers.handle(route, body, identity, aborted.signal);
  if (typeof answer === 'string') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(answer);
    return;
  }
  reply(res, 200, answer ?? {});
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new InvalidArgumentError('Request body too large');
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (error) {
    throw new InvalidArgumentError('Request body is not valid JSON', { cause: error });
  }
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

export function codeOf(error: unknown): string {
  return error instanceof ShoalError ? error.code : 'ERR_INTERNAL';
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An error answered by a manager, rebuilt with the same code so it maps to the same status here. */
export class RemoteRpcError extends ShoalError {
  readonly status: number;

  constructor(code: string, message: string, status: number) {
    super(code, message);
    this.status = status;
  }
}

export type RpcClientTls =
  | { readonly mode: 'fetch-ca' }
  | { readonly mode: 'ca-only'; readonly caPem: string }
  | { readonly mode: 'mutual'; readonly caPem: string; readonly certPem: string; readonly keyPem: string };

/**
 * One call to a manager at `addr` (host:port). With 'fetch-ca' the server is not verified (the
 * caller checks the CA it gets against its token); otherwise the server must present a
 * manager certificate from `caPem`. Rejects with RemoteRpcError for an error answer and
 * UnavailableError when the manager cannot be reached.
 */
export function rpcCall(
  addr: string,
  method: 'GET' | 'POST',
  route: string,
  body: unknown,
  tls: RpcClientTls,
  options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
): Promise<unknown> {
  const { host, port } = splitHostPort(addr);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const request: https.RequestOptions = {
    host,
    port,
    method,
    path: route,
    agent: false,
    timeout: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
    ...(options.signal && { signal: options.signal }),
    headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
    minVersion: 'TLSv1.2',
  };
  if (tls.mode === 'fetch-ca') {
    request.rejectUnauthorized = false;
  } else {
    request.ca = [tls.caPem];
    request.rejectUnauthorized = true;
    request.checkServerIdentity = (_host, cert) =>
      cert.subject?.OU === MANAGER_OU ? undefined : new Error(`The server at ${addr} is not a swarm manager (certificate OU ${String(cert.subject?.OU)})`);
    if (tls.mode === 'mutual') {
      request.cert = tls.certPem;
      request.key = tls.keyPem;
    }
  }
  return new Promise((resolve, reject) => {
    const req = https.request(request, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const json = (() => {
          try {
            return JSON.parse(text) as unknown;
          } catch {
            return undefined;
          }
        })();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve((res.headers['content-type'] ?? '').startsWith('text/plain') ? text : json);
          return;
        }
        const e = (json ?? {}) as { message?: unknown; code?: unknown };
        reject(new RemoteRpcError(typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', typeof e.message === 'string' ? e.message : `manager answered ${status}`, status));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error) => reject(new UnavailableError(`Cannot reach the manager at ${addr}: ${error.message}`, { cause: error })));
    req.end(payload);
  });
}

/** "host:port" or "[v6]:port" → parts. Throws UnavailableError for a malformed address. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UnavailableError(`Invalid manager address ${JSON.stringify(addr)}: expected host:port`);
  return { host: m[1]!, port };
}
