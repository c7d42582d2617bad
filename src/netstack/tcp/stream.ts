/**
 * TCP connections as Node streams (issue 3, "The socket API"): a TcpSocket is a stream.Duplex
 * over one TcpConnection, so `stream.pipeline(netSocket, tcpSocket, netSocket)` and
 * `http.Server.emit('connection', tcpSocket)` work as with a net.Socket.
 *
 * - Backpressure both ways: write() returns false once the connection's send buffer is full and
 *   'drain' follows when the peer acknowledges data; when the reader stops, the receive buffer
 *   fills and the advertised window closes.
 * - end() sends FIN after the queued data (half-close); reading goes on until the peer's FIN.
 * - destroy() behaves like closing a kernel socket: FIN after queued data, or RST when received
 *   data was left unread (TcpConnection.orphan).
 * - Errors carry Node's codes: ECONNREFUSED, ECONNRESET, ETIMEDOUT (src/lib/errors.ts).
 *
 * The connection is polled by a TcpDriver; this adapter never touches time except through the
 * optional Clock for setTimeout(), as net.Socket's idle timeout (http.Server relies on it).
 */
import { Duplex } from 'node:stream';
import type { Clock, Timer } from '../../lib/clock.js';
import { InvalidArgumentError } from '../../lib/errors.js';
import { formatIpv4Address, parseIpv4Address, type Ipv4Address } from '../../wire/address.js';
import type { TcpConfig } from './config.js';
import type { TcpConnection } from './connection.js';
import type { TcpDriver } from './driver.js';
import type { TcpListener } from './stack.js';

export interface TcpSocketOptions {
  /** Keep writing after the peer's FIN (default true: half-close is TCP's and HTTP uses it). */
  readonly allowHalfOpen?: boolean;
  /** For setTimeout(); without one setTimeout() only records the value. */
  readonly clock?: Clock;
  /** Largest chunk pushed to readers at once. */
  readonly readChunkSize?: number;
}

export class TcpSocket extends Duplex {
  readonly connection: TcpConnection;
  #pendingWrite: { chunk: Uint8Array; cb: (error?: Error | null) => void } | undefined;
  #reading = false;
  #endPushed = false;
  readonly #clock: Clock | undefined;
  readonly #readChunk: number;
  #timeoutMs = 0;
  #idleTimer: Timer | undefined;
  #bytesRead = 0;
  #bytesWritten = 0;

  constructor(connection: TcpConnection, options: TcpSocketOptions = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? true, decodeStrings: true, emitClose: true, autoDestroy: true });
    this.connection = connection;
    this.#clock = options.clock;
    this.#readChunk = options.readChunkSize ?? 64 * 1024;
    connection.events = {
      onConnect: () => {
        this.emit('connect');
        this.emit('ready');
      },
      onData: () => this.#flushRead(),
      onEnd: () => this.#flushRead(),
      onDrain: () => this.#continueWrite(),
      onClose: (error) => {
        this.#clearIdle();
        if (error !== undefined) {
          this.destroy(error);
          return;
        }
        this.#flushRead();
        // An orderly CLOSED: both directions are done. Anything still waiting to be written can
        // no longer go (the connection was aborted locally).
        if (this.#pendingWrite !== undefined) this.destroy();
      },
    };
  }

  get remoteAddress(): string {
    return formatIpv4Address(this.connection.tuple.remoteAddr);
  }
  get remotePort(): number {
    return this.connection.tuple.remotePort;
  }
  get remoteFamily(): string {
    return 'IPv4';
  }
  get localAddress(): string {
    return formatIpv4Address(this.connection.tuple.localAddr);
  }
  get localPort(): number {
    return this.connection.tuple.localPort;
  }
  /** As net.Socket: true until the handshake completes. */
  get connecting(): boolean {
    const s = this.connection.state;
    return s === 'SYN-SENT' || s === 'SYN-RECEIVED';
  }
  get bytesRead(): number {
    return this.#bytesRead;
  }
  get bytesWritten(): number {
    return this.#bytesWritten;
  }
  get readyState(): string {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  address(): { address: string; family: string; port: number } {
    return { address: this.localAddress, family: 'IPv4', port: this.localPort };
  }

  /** Nagle is off by default (TcpConfig.nagle); accepted for net.Socket compatibility. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** Keepalive is configured per stack or connection (TcpConfig.keepAliveIdleMs); accepted for compatibility. */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  /** As net.Socket: emit 'timeout' after `ms` without activity (0 turns it off). Needs the clock option to fire. */
  setTimeout(ms: number, callback?: () => void): this {
    this.#timeoutMs = ms;
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    this.#touch();
    return this;
  }

  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _read(): void {
    this.#reading = true;
    this.#flushRead();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.#touch();
    this.#pendingWrite = { chunk, cb };
    this.#continueWrite();
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.connection.close();
    cb();
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.#clearIdle();
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    if (this.connection.state !== 'CLOSED') this.connection.orphan();
    this.connection.events = {};
    pending?.cb(error ?? new Error('Socket destroyed'));
    cb(error);
  }

  #continueWrite(): void {
    const pending = this.#pendingWrite;
    if (pending === undefined) return;
    const n = this.connection.send(pending.chunk);
    this.#bytesWritten += n;
    if (n === pending.chunk.length) {
      this.#pendingWrite = undefined;
      pending.cb();
      return;
    }
    if (n > 0) pending.chunk = pending.chunk.subarray(n);
    if (this.connection.writableSpace === 0 && !this.#canEverSend()) {
      this.#pendingWrite = undefined;
      pending.cb(new Error('Write after the connection closed'));
    }
  }

  #canEverSend(): boolean {
    const s = this.connection.state;
    return s === 'SYN-SENT' || s === 'SYN-RECEIVED' || s === 'ESTABLISHED' || s === 'CLOSE-WAIT';
  }

  #flushRead(): void {
    if (this.#endPushed || this.destroyed) return;
    const conn = this.connection;
    while (this.#reading && conn.readableLength > 0) {
      const bytes = conn.read(this.#readChunk);
      this.#bytesRead += bytes.length;
      this.#touch();
      if (!this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))) this.#reading = false;
    }
    if (conn.readableLength === 0 && (conn.peerFinished || conn.state === 'CLOSED')) {
      this.#endPushed = true;
      this.push(null);
    }
  }

  #touch(): void {
    if (this.#clock === undefined) return;
    this.#clearIdle();
    if (this.#timeoutMs > 0 && !this.destroyed) {
      this.#idleTimer = this.#clock.setTimer(this.#timeoutMs, () => {
        this.#idleTimer = undefined;
        this.emit('timeout');
      });
    }
  }

  #clearIdle(): void {
    this.#idleTimer?.cancel();
    this.#idleTimer = undefined;
  }
}

export interface TcpStreamConnectOptions {
  /** The peer: an Ipv4Address number or dotted text. */
  readonly address: Ipv4Address | string;
  readonly port: number;
  readonly localAddress?: Ipv4Address;
  readonly localPort?: number;
  readonly config?: Partial<TcpConfig>;
}

/**
 * The socket API over a driven stack: connect() and listen() hand out TcpSockets.
 * (`sockets.connect({ address: '100.64.0.2', port: 80 })`, `sockets.listen(80, (socket) => …)`.)
 */
export class TcpSockets {
  readonly #driver: TcpDriver;
  readonly #clock: Clock;
  readonly #options: TcpSocketOptions;

  constructor(driver: TcpDriver, clock: Clock, options: TcpSocketOptions = {}) {
    this.#driver = driver;
    this.#clock = clock;
    this.#options = { clock, ...options };
  }

  /**
   * Opens a connection; the socket emits 'connect', or 'error' with code ECONNREFUSED or
   * ETIMEDOUT. Throws InvalidArgumentError for a bad address or port.
   */
  connect(options: TcpStreamConnectOptions): TcpSocket {
    let remote: Ipv4Address;
    if (typeof options.address === 'string') {
      const parsed = parseIpv4Address(options.address);
      if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
      remote = parsed.value;
    } else {
      remote = options.address;
    }
    const conn = this.#driver.stack.connect(
      {
        remoteAddress: remote,
        remotePort: options.port,
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
        ...(options.localPort !== undefined ? { localPort: options.localPort } : {}),
        ...(options.config !== undefined ? { config: options.config } : {}),
      },
      this.#clock.now(),
    );
    return new TcpSocket(conn, this.#options);
  }

  /** Accepts connections on `port`; each arrives ESTABLISHED as a TcpSocket. */
  listen(port: number, onConnection: (socket: TcpSocket) => void, options: { address?: Ipv4Address; backlog?: number; config?: Partial<TcpConfig> } = {}): TcpListener {
    return this.#driver.stack.listen(port, (conn) => onConnection(new TcpSocket(conn, this.#options)), options);
  }
}
