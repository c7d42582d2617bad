/**
 * `shoal/whoami`: the built-in tiny HTTP app for demos, tests and benchmarks (after Traefik's
 * whoami). It answers with the service, task and node it runs as and the client address it
 * saw, so a `curl` through the routing mesh shows which task answered and from where.
 *
 * - `GET /` — text, one `key: value` per line; JSON with `Accept: application/json`,
 *   `?format=json` or `GET /json`;
 * - `GET /health` — `ok` (for HTTP health checks);
 * - `?size=N` — answer with N bytes of body instead (benchmarks: 13 B vs 64 KiB), at most 16 MiB;
 * - any method: a request body is read and its length reported (`bodyBytes`);
 * - a connection may start with a PROXY v1/v2 header: the client it names is the one reported.
 *
 * Run as a process: `PORT=8080 SHOAL_SERVICE=web SHOAL_TASK=web.1 SHOAL_NODE=n1 node whoami.js`
 * (the catalog supervisor sets these; HOST defaults to 127.0.0.1). SIGTERM closes it cleanly.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, type Socket, createServer as createNetServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { formatIpv4Address } from '../../wire/address.js';
import { PROXY_HEADER_MAX_LEN, parseProxyHeader } from '../../wire/proxy-protocol.js';

export interface WhoamiOptions {
  readonly host?: string;
  readonly port: number;
  readonly service: string;
  readonly task: string;
  readonly node: string;
}

export interface WhoamiAnswer {
  readonly service: string;
  readonly task: string;
  readonly node: string;
  /** The client as this server saw it: the mesh's address unless PROXY protocol says otherwise. */
  readonly client: { readonly address: string; readonly port: number };
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly bodyBytes: number;
}

export interface WhoamiServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

export const MAX_SIZE_BYTES = 16 * 1024 * 1024;

/** Clients named by a PROXY header, per connection (the socket's own peer is then the proxy). */
const proxiedClients = new WeakMap<Socket, { address: string; port: number }>();

/**
 * The client address a request came from: the one a PROXY v1/v2 header at the start of its
 * connection named (the routing mesh writes one when the published port asks for it:
 * `proxy_protocol: v1|v2`), else the connection's peer.
 */
export function clientAddressOf(socket: Socket): { address: string; port: number } {
  return proxiedClients.get(socket) ?? { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
}

/**
 * Reads an optional PROXY header off a new connection, then hands the connection (and whatever
 * followed the header) to the HTTP server. Bytes that cannot start a header go to the server
 * untouched; a malformed header closes the connection (proxy-protocol.txt §2: the receiver must
 * not guess).
 */
function acceptMaybeProxied(socket: Socket, server: Server): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('error', () => undefined);
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const r = parseProxyHeader(buffered);
    if (!r.ok && r.error === 'truncated' && buffered.length < PROXY_HEADER_MAX_LEN) return;
    socket.off('data', onData);
    socket.pause();
    let rest = buffered;
    if (r.ok) {
      const a = r.value.header.addresses;
      if (a) proxiedClients.set(socket, { address: formatIpv4Address(a.sourceAddress), port: a.sourcePort });
      rest = buffered.subarray(r.value.length);
    } else if (r.error !== 'not-proxy') {
      socket.destroy();
      return;
    }
    if (rest.length > 0) socket.unshift(rest);
    server.emit('connection', socket);
    socket.resume();
  };
  socket.on('data', onData);
}

export function formatText(a: WhoamiAnswer): string {
  return (
    `service: ${a.service}\n` +
    `task: ${a.task}\n` +
    `node: ${a.node}\n` +
    `client: ${a.client.address}:${a.client.port}\n` +
    `request: ${a.method} ${a.path}\n` +
    `host: ${a.host}\n` +
    `bodyBytes: ${a.bodyBytes}\n`
  );
}

function handler(o: WhoamiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://whoami');
      if (url.pathname === '/health') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      const sizeText = url.searchParams.get('size');
      if (sizeText !== null) {
        const size = Number(sizeText);
        if (!Number.isInteger(size) || size < 0 || size > MAX_SIZE_BYTES) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`size must be an integer from 0 to ${MAX_SIZE_BYTES}\n`);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size }).end(Buffer.alloc(size, 0x61));
        return;
      }
      const answer: WhoamiAnswer = {
        service: o.service,
        task: o.task,
        node: o.node,
        client: clientAddressOf(req.socket),
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        host: req.headers.host ?? '',
        bodyBytes,
      };
      const json = url.pathname === '/json' || url.searchParams.get('format') === 'json' || (req.headers.accept ?? '').includes('application/json');
      if (json) res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(answer)}\n`);
      else res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(formatText(answer));
    });
  };
}

/**
 * Starts a whoami server in this process. Rejects with the listen error (EADDRINUSE …). A TCP
 * listener in front of the HTTP server takes an optional PROXY header off each connection first.
 */
export function startWhoami(o: WhoamiOptions): Promise<WhoamiServer> {
  const server = createServer(handler(o));
  server.keepAliveTimeout = 65_000;
  const listener = createNetServer((socket) => acceptMaybeProxied(socket, server));
  const sockets = new Set<Socket>();
  listener.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(o.port, o.host ?? '127.0.0.1', () => {
      listener.off('error', reject);
      resolve({
        server,
        port: (listener.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            listener.close(() => r());
            server.closeAllConnections();
            // Connections still reading a PROXY header are not the HTTP server's yet.
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}

/** The process entry: configuration from the environment the catalog supervisor sets. */
async function main(): Promise<void> {
  const port = Number(process.env['PORT'] ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`whoami: PORT must be a port number, got ${JSON.stringify(process.env['PORT'])}\n`);
    process.exit(2);
  }
  const w = await startWhoami({
    host: process.env['HOST'] ?? '127.0.0.1',
    port,
    service: process.env['SHOAL_SERVICE'] ?? 'whoami',
    task: process.env['SHOAL_TASK'] ?? 'whoami',
    node: process.env['SHOAL_NODE'] ?? (process.env['HOSTNAME'] || 'local'),
  });
  process.stdout.write(`${JSON.stringify({ whoami: 'listening', port: w.port })}\n`);
  const stop = (): void => {
    void w.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Started by an agent: when it is gone (SIGKILL leaves no chance to stop us), so are we.
  const parent = Number(process.env['SHOAL_PARENT_PID'] ?? NaN);
  if (Number.isInteger(parent)) {
    setInterval(() => {
      if (process.ppid !== parent) stop();
    }, 1000).unref();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`whoami: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
