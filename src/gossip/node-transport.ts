/**
 * The real gossip transport: node:dgram for packets and node:net for streams, both bound to
 * ONE address and ONE port number, as memberlist's NetTransport does (`ML net_transport.go`,
 * spec §1). This is the socket adapter the agent passes down to `Memberlist`; everything above
 * it sees only the `Transport` interface (transport.ts).
 *
 * - UDP: datagrams up to 64 KiB are read (`ML net_transport.go:20`), empty ones dropped; the
 *   socket's receive buffer is raised because Node drops datagrams when the receiver falls
 *   behind (MACHINE-NOTES.md), and the kernel caps what we ask for at net.core.rmem_max.
 * - TCP: allowHalfOpen, so a peer's half-close shows as `onEnd` and we may still reply. Each
 *   inbound stream gets memberlist's read deadline (TCPTimeout, 10 s LAN, `ML net.go:228`)
 *   on the injected clock; outbound deadlines belong to the caller (transport.ts). Framing is
 *   the caller's: chunks are passed on as they arrive (wire/memberlist/stream.ts parses them
 *   incrementally).
 * - Nothing thrown by a socket reaches the caller after bind: failures are counted and, for
 *   streams, reported through `onClose(error)`.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, isIP, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import {
  ClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  ConnectionTimedOutError,
  GossipSocketError,
  InvalidArgumentError,
  type ShoalError,
} from '../lib/errors.js';
import { ipToBytes } from './ip.js';
import { type GossipAddress, type Packet, type Stream, StreamEvents, type StreamHandlers, type Transport, type TransportHandlers } from './transport.js';

/** memberlist's LAN TCPTimeout: the read deadline of an inbound stream (`ML config.go`, spec §13). */
export const DEFAULT_STREAM_TIMEOUT_MS = 10_000;
/** Requested UDP receive buffer; Linux grants at most net.core.rmem_max of it. */
export const DEFAULT_RECV_BUFFER_SIZE = 4 * 1024 * 1024;
/** Inbound connections open at once, at most; more are refused by the server (CONVENTIONS.md §7). */
export const DEFAULT_MAX_INBOUND_STREAMS = 512;
/** Tries at finding a port number free for both UDP and TCP when asked for port 0. */
const EPHEMERAL_BIND_ATTEMPTS = 16;

export interface NodeTransportOptions {
  /** The IP to bind: '127.0.0.1', '0.0.0.0', '::' … */
  readonly host: string;
  /** The port for both UDP and TCP; 0 picks one that is free for both. */
  readonly port: number;
  readonly clock: Clock;
  /**
   * The IP to advertise when `host` is a wildcard. Default: the first non-internal IPv4
   * address of this machine, as memberlist's GetPrivateIP does.
   */
  readonly advertiseHost?: string;
  /** Requested SO_RCVBUF for the UDP socket; DEFAULT_RECV_BUFFER_SIZE by default. */
  readonly recvBufferSize?: number;
  /** Read deadline of inbound streams; DEFAULT_STREAM_TIMEOUT_MS by default. */
  readonly streamTimeoutMs?: number;
  /** Inbound streams open at once, at most; DEFAULT_MAX_INBOUND_STREAMS by default. */
  readonly maxInboundStreams?: number;
}

/** Counter names (CONVENTIONS.md §10). */
export const NODE_TRANSPORT_COUNTERS = [
  'transport_udp_rx_packets',
  'transport_udp_rx_bytes',
  'transport_udp_rx_dropped_empty',
  'transport_udp_rx_dropped_no_handler',
  'transport_udp_tx_packets',
  'transport_udp_tx_bytes',
  'transport_udp_tx_errors',
  'transport_udp_socket_errors',
  'transport_tcp_accepted',
  'transport_tcp_rejected_no_handler',
  'transport_tcp_opened',
  'transport_tcp_timeouts',
  'transport_tcp_errors',
] as const;
export type NodeTransportCounter = (typeof NODE_TRANSPORT_COUNTERS)[number];

export class NodeTransport implements Transport {
  readonly localAddress: GossipAddress;
  /** What crossed the sockets, and what was dropped and why. */
  readonly counters = new Counters<NodeTransportCounter>(NODE_TRANSPORT_COUNTERS);
  /** The receive buffer the kernel actually granted (bytes as Linux reports it: twice the usable size). */
  readonly recvBufferSize: number;
  readonly #udp: UdpSocket;
  readonly #tcp: Server;
  readonly #clock: Clock;
  readonly #streamTimeoutMs: number;
  readonly #streams = new Set<NodeStream>();
  readonly #bindHost: string;
  #handlers: TransportHandlers | undefined;
  #closed = false;

  private constructor(udp: UdpSocket, tcp: Server, localAddress: GossipAddress, options: NodeTransportOptions) {
    this.#bindHost = options.host;
    this.#udp = udp;
    this.#tcp = tcp;
    this.#clock = options.clock;
    this.#streamTimeoutMs = options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS;
    this.localAddress = localAddress;
    let granted = 0;
    try {
      udp.setRecvBufferSize(options.recvBufferSize ?? DEFAULT_RECV_BUFFER_SIZE);
      granted = udp.getRecvBufferSize();
    } catch {
      // Unsupported here: keep the system default, which still works at lower load.
    }
    this.recvBufferSize = granted;
    udp.on('message', (msg, rinfo) => this.#onDatagram(msg, rinfo));
    udp.on('error', () => this.counters.inc('transport_udp_socket_errors'));
    tcp.on('connection', (socket) => this.#onConnection(socket));
    tcp.on('error', () => this.counters.inc('transport_tcp_errors'));
  }

  /**
   * Binds UDP and TCP on `options.host:options.port` and resolves once both listen. With port
   * 0, the TCP listener picks a port and UDP binds the same number, retrying a few times when
   * that number is taken for UDP. Rejects with GossipSocketError when the port cannot be bound
   * and InvalidArgumentError for an unusable host.
   */
  static async bind(options: NodeTransportOptions): Promise<NodeTransport> {
    if (isIP(options.host) === 0) throw new InvalidArgumentError(`Not an IP address to bind: ${JSON.stringify(options.host)}`);
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 0xffff) {
      throw new InvalidArgumentError(`Not a port: ${options.port}`);
    }
    const advertiseHost = advertiseFor(options);
    let lastError: unknown;
    const attempts = options.port === 0 ? EPHEMERAL_BIND_ATTEMPTS : 1;
    for (let i = 0; i < attempts; i++) {
      const tcp = createServer({ allowHalfOpen: true });
      tcp.maxConnections = options.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS;
      try {
        await listen(tcp, options.host, options.port);
      } catch (e) {
        throw new GossipSocketError(`Cannot listen on TCP ${options.host}:${options.port}`, { cause: e });
      }
      const port = (tcp.address() as { port: number }).port;
      const udp = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', reuseAddr: false });
      try {
        await bindUdp(udp, options.host, port);
      } catch (e) {
        lastError = e;
        udp.close();
        await closeServer(tcp);
        continue;
      }
      return new NodeTransport(udp, tcp, { host: advertiseHost, port }, options);
    }
    throw new GossipSocketError(`Cannot bind UDP ${options.host}:${options.port}`, { cause: lastError });
  }

  get closed(): boolean {
    return this.#closed;
  }

  setHandlers(handlers: TransportHandlers): void {
    this.#handlers = handlers;
  }

  /**
   * Datagrams the kernel dropped because our receive buffer was full: the `drops` column of
   * /proc/net/udp (or udp6) for this socket. Node itself cannot see these losses
   * (MACHINE-NOTES.md), so this is how they get counted. undefined where /proc does not say
   * (not Linux, or the socket is closed). Reads a file: call it when metrics are scraped, not
   * per packet.
   */
  udpKernelDrops(): number | undefined {
    if (this.#closed) return undefined;
    const six = isIPv6(this.#bindHost);
    const local = `${procHex(this.#bindHost)}:${this.localAddress.port.toString(16).toUpperCase().padStart(4, '0')}`;
    let table: string;
    try {
      table = readFileSync(six ? '/proc/net/udp6' : '/proc/net/udp', 'utf8');
    } catch {
      return undefined;
    }
    for (const line of table.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1] === local) {
        const drops = Number(cols.at(-1));
        return Number.isInteger(drops) ? drops : undefined;
      }
    }
    return undefined;
  }

  sendPacket(to: GossipAddress, buf: Uint8Array): void {
    if (this.#closed || buf.length === 0) return;
    this.counters.inc('transport_udp_tx_packets');
    this.counters.inc('transport_udp_tx_bytes', buf.length);
    try {
      this.#udp.send(buf, to.port, to.host, (error) => {
        if (error) this.counters.inc('transport_udp_tx_errors');
      });
    } catch {
      // A bad port or a socket closing under us: a loss like any other (transport.ts).
      this.counters.inc('transport_udp_tx_errors');
    }
  }

  openStream(to: GossipAddress): Stream {
    this.counters.inc('transport_tcp_opened');
    if (this.#closed) {
      const s = NodeStream.failed(to, this.#clock.now(), new ClosedError('Transport is closed'));
      return s;
    }
    let socket: Socket;
    try {
      socket = connect({ host: to.host, port: to.port, allowHalfOpen: true });
    } catch (e) {
      return NodeStream.failed(to, this.#clock.now(), new GossipSocketError(`Cannot connect to ${to.host}:${to.port}`, { cause: e }));
    }
    socket.setNoDelay(true);
    const stream = new NodeStream(socket, to, this.#clock.now(), () => this.#streams.delete(stream));
    this.#streams.add(stream);
    return stream;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers = undefined;
    try {
      this.#udp.close();
    } catch {
      // Already closed after a socket error.
    }
    this.#tcp.close();
    for (const s of [...this.#streams]) s.abort(new ClosedError('Transport closed'));
    this.#streams.clear();
  }

  #onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.#closed) return;
    if (msg.length === 0) {
      this.counters.inc('transport_udp_rx_dropped_empty'); // ML net_transport.go:323-340
      return;
    }
    const handlers = this.#handlers;
    if (!handlers) {
      this.counters.inc('transport_udp_rx_dropped_no_handler');
      return;
    }
    this.counters.inc('transport_udp_rx_packets');
    this.counters.inc('transport_udp_rx_bytes', msg.length);
    // dgram allocates a fresh Buffer per datagram: it is the handler's to keep (transport.ts).
    const packet: Packet = {
      buf: new Uint8Array(msg.buffer, msg.byteOffset, msg.length),
      from: { host: rinfo.address, port: rinfo.port },
      receivedAt: this.#clock.now(),
    };
    handlers.onPacket(packet);
  }

  #onConnection(socket: Socket): void {
    const handlers = this.#handlers;
    if (this.#closed || !handlers) {
      this.counters.inc('transport_tcp_rejected_no_handler');
      socket.destroy();
      return;
    }
    this.counters.inc('transport_tcp_accepted');
    socket.setNoDelay(true);
    const remote = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const stream = new NodeStream(socket, remote, this.#clock.now(), () => this.#streams.delete(stream));
    this.#streams.add(stream);
    // memberlist sets one deadline for the whole inbound exchange (`ML net.go:228`).
    stream.deadline = this.#clock.setTimer(this.#streamTimeoutMs, () => {
      this.counters.inc('transport_tcp_timeouts');
      stream.abort(new ConnectionTimedOutError(`No complete exchange with ${remote.host}:${remote.port} within ${this.#streamTimeoutMs} ms`));
    });
    handlers.onStream(stream);
  }
}

/** One TCP connection behind the Stream interface. */
class NodeStream implements Stream {
  readonly remote: GossipAddress;
  readonly openedAt: number;
  readonly #socket: Socket | undefined;
  readonly #onFinalClose: () => void;
  readonly #events = new StreamEvents();
  #closed = false;
  #error: Error | undefined;
  /** A deadline to cancel when the stream closes (inbound streams). */
  deadline: Timer | undefined;

  constructor(socket: Socket | undefined, remote: GossipAddress, openedAt: number, onFinalClose: () => void) {
    this.#socket = socket;
    this.remote = remote;
    this.openedAt = openedAt;
    this.#onFinalClose = onFinalClose;
    if (!socket) return;
    socket.on('data', (chunk: Buffer) => {
      // Each chunk is a fresh Buffer from the socket: the handler may keep it.
      if (!this.#closed) this.#events.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    });
    socket.on('end', () => {
      if (!this.#closed) this.#events.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#error ??= toShoalError(e, remote);
    });
    socket.on('close', () => this.#finish(this.#error));
  }

  /** A stream that never connected: reports `error` once handlers are set. */
  static failed(remote: GossipAddress, openedAt: number, error: Error): NodeStream {
    const s = new NodeStream(undefined, remote, openedAt, () => {});
    s.#finish(error);
    return s;
  }

  setHandlers(handlers: StreamHandlers): void {
    this.#events.setHandlers(handlers);
  }

  write(bytes: Uint8Array): void {
    const socket = this.#socket;
    if (this.#closed || !socket || socket.writableEnded) return;
    socket.write(bytes);
  }

  end(): void {
    const socket = this.#socket;
    if (this.#closed || !socket || socket.writableEnded) return;
    socket.end();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#socket?.destroy();
    this.#finish(undefined);
  }

  /** Closes at once and reports `error` (a deadline, or the transport closing). */
  abort(error: Error): void {
    if (this.#closed) return;
    this.#socket?.destroy();
    this.#finish(error);
  }

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline?.cancel();
    this.#onFinalClose();
    this.#events.close(error);
  }
}

function toShoalError(e: NodeJS.ErrnoException, remote: GossipAddress): ShoalError {
  const where = `${remote.host}:${remote.port}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(`Connection refused: ${where}`, { cause: e });
    case 'ECONNRESET':
    case 'EPIPE':
      return new ConnectionResetError(`Connection reset: ${where}`, { cause: e });
    case 'ETIMEDOUT':
      return new ConnectionTimedOutError(`Connection timed out: ${where}`, { cause: e });
    default:
      return new GossipSocketError(`Stream to ${where} failed: ${e.message}`, { cause: e });
  }
}

/** An IP as /proc/net/udp{,6} prints it: each 32-bit word in host (little-endian) byte order, hex. */
function procHex(host: string): string {
  const bytes = ipToBytes(host) ?? new Uint8Array(isIPv6(host) ? 16 : 4);
  let out = '';
  for (let w = 0; w < bytes.length; w += 4) {
    for (let i = 3; i >= 0; i--) out += bytes[w + i]!.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function advertiseFor(options: NodeTransportOptions): string {
  if (options.advertiseHost !== undefined) {
    if (isIP(options.advertiseHost) === 0) throw new InvalidArgumentError(`Not an IP address to advertise: ${JSON.stringify(options.advertiseHost)}`);
    return options.advertiseHost;
  }
  if (options.host !== '0.0.0.0' && options.host !== '::') return options.host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new InvalidArgumentError(`Bound to ${options.host} and no address to advertise: set advertiseHost`);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function bindUdp(socket: UdpSocket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
