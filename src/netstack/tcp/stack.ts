/**
 * The TCP layer of one IPv4 stack: demultiplexes segments to connections and listeners, answers
 * segments addressed to nothing with RST, chooses ISNs (RFC 6528) and ephemeral ports, and owns
 * the connections' lives. It is a pure state machine: time comes in as `now`, randomness from
 * the injected Rng, and segments leave through the injected transmit function.
 *
 * ## The seam to the interface (src/netstack/interface.ts wires these three calls)
 *
 * - Inbound: for every IPv4 packet with protocol 6 addressed to us, unfragmented, call
 *   `tcp.receive(ipSrc, ipDst, ipPayload, now)`. `ipPayload` is the TCP segment (header and
 *   data, as long as the IP total length says); the stack verifies the checksum with the
 *   pseudo-header, unless `verifyChecksum: false` (see below), and never keeps a reference to the
 *   bytes after the call returns.
 * - Outbound: the stack calls `transmit(ipSrc, ipDst, segmentLen, write)` once per segment. The
 *   interface allocates (or takes from a pool) a buffer with room for its own headers in front,
 *   calls `write(buf, offset)` synchronously once, and `write` puts exactly `segmentLen` bytes of
 *   finished TCP segment (checksum included) at `buf[offset]`. The interface then prepends IPv4
 *   (protocol 6), Ethernet and VXLAN in the headroom; the buffer is the interface's.
 * - Time: call `poll(now)` no later than `pollAt()` (0 means at once, Infinity means nothing
 *   pending); `onWake` is called when the application made work (a write, a close) so that the
 *   owner polls soon. TcpDriver (driver.ts) does all of this with a Clock.
 *
 * Kernel peers behind veth send TCP with CHECKSUM_PARTIAL (the field holds only the pseudo-header
 * sum: see test/wire/tcp.test.ts); a link that cannot guarantee real checksums passes
 * `verifyChecksum: false`, otherwise leave it on.
 */
import { Counters } from '../../lib/counters.js';
import { InvalidArgumentError, CapacityError } from '../../lib/errors.js';
import type { Rng } from '../../lib/rng.js';
import type { Ipv4Address } from '../../wire/address.js';
import { TcpFlags, emitTcp, parseTcp, tcpHeaderLen, type TcpRepr } from '../../wire/tcp.js';
import { DEFAULT_TCP_CONFIG, type TcpConfig } from './config.js';
import { TcpConnection, type TcpConnectionHost, type TcpFourTuple } from './connection.js';
import { IsnGenerator } from './isn.js';
import { seqAdd, seqGt } from './seq.js';

/** Hands one finished segment to the IP layer; see the seam above. */
export type TcpTransmit = (src: Ipv4Address, dst: Ipv4Address, segmentLen: number, write: (out: Uint8Array, offset: number) => void) => void;

export interface TcpStackOptions {
  readonly rng: Rng;
  readonly transmit: TcpTransmit;
  /** The source address for connect() when none is given: the interface's address. */
  readonly localAddress?: Ipv4Address;
  readonly config?: Partial<TcpConfig>;
  /** Default true. */
  readonly verifyChecksum?: boolean;
  /** Connections in any state, TIME-WAIT included; beyond it SYNs are dropped and connect() throws. */
  readonly maxConnections?: number;
  /** Ephemeral port range for connect(), RFC 6335 §6's dynamic range by default. */
  readonly ephemeralPorts?: readonly [number, number];
}

export interface TcpListenOptions {
  /** Accept only segments to this address; any of ours by default. */
  readonly address?: Ipv4Address;
  /** Connections still in SYN-RECEIVED; further SYNs are dropped (the peer retries). */
  readonly backlog?: number;
  readonly config?: Partial<TcpConfig>;
}

export interface TcpConnectOptions {
  readonly remoteAddress: Ipv4Address;
  readonly remotePort: number;
  readonly localAddress?: Ipv4Address;
  readonly localPort?: number;
  readonly config?: Partial<TcpConfig>;
}

const COUNTERS = [
  'tcp_rx_segments',
  'tcp_rx_dropped_malformed',
  'tcp_rx_dropped_checksum',
  'tcp_rx_no_socket',
  'tcp_tx_segments',
  'tcp_tx_rst',
  'tcp_active_opens',
  'tcp_passive_opens',
  'tcp_listen_drops',
] as const;
export type TcpCounter = (typeof COUNTERS)[number];

export class TcpListener {
  #halfOpen = 0;
  #closed = false;

  constructor(
    readonly port: number,
    readonly address: Ipv4Address | undefined,
    readonly backlog: number,
    readonly config: TcpConfig,
    readonly onConnection: (conn: TcpConnection) => void,
    private readonly remove: (l: TcpListener) => void,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops accepting; connections already accepted are unaffected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.remove(this);
  }

  /** @internal */
  tryReserve(): boolean {
    if (this.#halfOpen >= this.backlog) return false;
    this.#halfOpen++;
    return true;
  }

  /** @internal */
  release(): void {
    this.#halfOpen--;
  }
}

export class TcpStack {
  readonly counters = new Counters<TcpCounter>(COUNTERS);
  /** Called when the application made work that needs a poll (see TcpDriver). */
  onWake: (() => void) | undefined;

  readonly #rng: Rng;
  readonly #transmit: TcpTransmit;
  readonly #config: TcpConfig;
  readonly #localAddress: Ipv4Address | undefined;
  readonly #verifyChecksum: boolean;
  readonly #maxConnections: number;
  readonly #ephemeral: readonly [number, number];
  readonly #isn: IsnGenerator;
  /** remote addr × 65536 + remote port → connections with that peer (usually one). */
  readonly #conns = new Map<number, TcpConnection[]>();
  #connCount = 0;
  readonly #listeners = new Map<number, TcpListener[]>();
  /** Passive connections not yet established, and the listener they count against. */
  readonly #pending = new Map<TcpConnection, TcpListener>();
  readonly #host: TcpConnectionHost;
  readonly #deadlines = new DeadlineHeap();
  /** The deadline last filed in the heap per connection: the only entry of it that is live. */
  readonly #filed = new Map<TcpConnection, number>();

  constructor(options: TcpStackOptions) {
    this.#rng = options.rng;
    this.#transmit = options.transmit;
    this.#config = { ...DEFAULT_TCP_CONFIG, ...options.config };
    this.#localAddress = options.localAddress;
    this.#verifyChecksum = options.verifyChecksum ?? true;
    this.#maxConnections = options.maxConnections ?? 65_536;
    this.#ephemeral = options.ephemeralPorts ?? [49152, 65535];
    this.#isn = new IsnGenerator(this.#rng);
    this.#host = {
      transmit: (conn, repr, off, len) => this.#send(conn.tuple.localAddr, conn.tuple.remoteAddr, repr, conn, off, len),
      established: (conn) => this.#established(conn),
      closed: (conn) => this.#remove(conn),
      wake: (conn) => {
        this.#schedule(conn);
        this.onWake?.();
      },
    };
  }

  /** Connections in any state but CLOSED. */
  get connectionCount(): number {
    return this.#connCount;
  }

  /** Every live connection (for tests, metrics and shutdown). */
  connections(): TcpConnection[] {
    const out: TcpConnection[] = [];
    for (const list of this.#conns.values()) out.push(...list);
    return out;
  }

  /**
   * Passive open on `port`: `onConnection` gets each connection once it is ESTABLISHED.
   * Throws InvalidArgumentError when the port is out of range or already listened on.
   */
  listen(port: number, onConnection: (conn: TcpConnection) => void, options: TcpListenOptions = {}): TcpListener {
    checkPort(port, false);
    const list = this.#listeners.get(port) ?? [];
    if (list.some((l) => l.address === undefined || options.address === undefined || l.address === options.address)) {
      throw new InvalidArgumentError(`Port ${port} is already listened on`);
    }
    const listener = new TcpListener(port, options.address, options.backlog ?? 128, { ...this.#config, ...options.config }, onConnection, (l) => {
      const cur = this.#listeners.get(port)?.filter((x) => x !== l) ?? [];
      if (cur.length === 0) this.#listeners.delete(port);
      else this.#listeners.set(port, cur);
    });
    list.push(listener);
    this.#listeners.set(port, list);
    return listener;
  }

  /**
   * Active open: a connection in SYN-SENT whose SYN leaves on the next poll. Attach `events`
   * before then. Throws InvalidArgumentError without a local address or with a bad port, and
   * CapacityError when no connection slot or ephemeral port is free.
   */
  connect(options: TcpConnectOptions, now: number): TcpConnection {
    const localAddr = options.localAddress ?? this.#localAddress;
    if (localAddr === undefined) throw new InvalidArgumentError('connect needs a local address');
    checkPort(options.remotePort, false);
    if (this.#connCount >= this.#maxConnections) throw new CapacityError(`TCP connection limit (${this.#maxConnections}) reached`);
    let localPort = options.localPort;
    if (localPort === undefined) localPort = this.#ephemeralPort(localAddr, options.remoteAddress, options.remotePort);
    else checkPort(localPort, false);
    const tuple: TcpFourTuple = { localAddr, localPort, remoteAddr: options.remoteAddress, remotePort: options.remotePort };
    if (this.#find(tuple.localAddr, tuple.localPort, tuple.remoteAddr, tuple.remotePort)) {
      throw new InvalidArgumentError(`Connection ${localPort} → ${options.remotePort} already exists`);
    }
    const config = { ...this.#config, ...options.config };
    const iss = this.#isn.isn(localAddr, localPort, tuple.remoteAddr, tuple.remotePort, now);
    const conn = TcpConnection.connect(this.#host, config, tuple, iss, this.#rng.u32(), now);
    this.#add(conn);
    this.counters.inc('tcp_active_opens');
    this.#schedule(conn);
    this.onWake?.();
    return conn;
  }

  /**
   * One TCP segment from the IP layer (see the seam at the top of this file). `batched`: more
   * segments of the same run may follow and the caller polls once the run is over, so replies
   * that can wait are sent then, once per run (TcpConnection.process).
   */
  receive(ipSrc: Ipv4Address, ipDst: Ipv4Address, segment: Uint8Array, now: number, batched = false): void {
    this.counters.inc('tcp_rx_segments');
    const parsed = parseTcp(segment, ipSrc, ipDst, { verifyChecksum: this.#verifyChecksum });
    if (!parsed.ok) {
      this.counters.inc(parsed.error === 'bad-checksum' ? 'tcp_rx_dropped_checksum' : 'tcp_rx_dropped_malformed');
      return;
    }
    const { repr, payload } = parsed.value;
    const conn = this.#find(ipDst, repr.dstPort, ipSrc, repr.srcPort);
    if (conn !== undefined) {
      // A new SYN may take over a connection in TIME-WAIT when its sequence number is newer
      // (RFC 9293 §3.10.7.4 note, RFC 6191); otherwise TIME-WAIT answers it.
      if (conn.state === 'TIME-WAIT' && repr.flags === TcpFlags.SYN && seqGt(repr.seq, conn.receiveNext) && this.#findListener(ipDst, repr.dstPort)) {
        conn.abortSilently();
      } else {
        conn.process(repr, payload, now, batched);
        this.#schedule(conn);
        return;
      }
    }
    const listener = this.#findListener(ipDst, repr.dstPort);
    if (listener !== undefined && this.#listen(listener, ipSrc, ipDst, repr, now)) return;
    this.counters.inc('tcp_rx_no_socket');
    this.#resetFor(ipDst, ipSrc, repr, payload.length);
  }

  /** Polls every connection whose time has come. */
  poll(now: number): void {
    const due = new Set<TcpConnection>();
    const heap = this.#deadlines;
    while (heap.size > 0 && heap.peekAt() <= now) {
      const { at, conn } = heap.pop();
      // Entries go stale when a deadline moves; only the one filed last counts.
      if (this.#filed.get(conn) !== at) continue;
      this.#filed.delete(conn);
      due.add(conn);
    }
    for (const conn of due) {
      conn.poll(now);
      this.#schedule(conn);
    }
  }

  /** The earliest pollAt() of any connection: 0 for at once, Infinity when idle. */
  pollAt(): number {
    const heap = this.#deadlines;
    while (heap.size > 0) {
      const { at, conn } = heap.peek();
      if (this.#filed.get(conn) === at) return at;
      heap.pop(); // Stale: a later entry for the same connection holds its deadline.
    }
    return Infinity;
  }

  /**
   * Files the connection's next deadline. Called after everything that can change it (a
   * segment processed, a poll, an application call), so pollAt() and poll() touch only the
   * connections that are due instead of scanning them all per packet.
   */
  #schedule(conn: TcpConnection): void {
    const at = conn.pollAt();
    const filed = this.#filed.get(conn);
    if (at === filed) return;
    if (at === Infinity) {
      this.#filed.delete(conn);
      return;
    }
    this.#filed.set(conn, at);
    this.#deadlines.push(at, conn);
  }

  /** LISTEN (RFC 9293 §3.10.7.2). Returns false when the segment is to be answered with RST. */
  #listen(listener: TcpListener, ipSrc: Ipv4Address, ipDst: Ipv4Address, repr: TcpRepr, now: number): boolean {
    const f = repr.flags;
    if (f & TcpFlags.RST) return true; // First: an incoming RST is ignored.
    if (f & TcpFlags.ACK) return false; // Second: any ACK is bad: reset.
    if (!(f & TcpFlags.SYN)) return true; // Fourth: anything else is dropped.
    if (this.#connCount >= this.#maxConnections || !listener.tryReserve()) {
      // Dropped, not reset: the peer retransmits its SYN and may find room then.
      this.counters.inc('tcp_listen_drops');
      return true;
    }
    const tuple: TcpFourTuple = { localAddr: ipDst, localPort: repr.dstPort, remoteAddr: ipSrc, remotePort: repr.srcPort };
    const iss = this.#isn.isn(tuple.localAddr, tuple.localPort, tuple.remoteAddr, tuple.remotePort, now);
    const conn = TcpConnection.accept(this.#host, listener.config, tuple, iss, this.#rng.u32(), repr, now);
    this.#pending.set(conn, listener);
    this.#add(conn);
    this.counters.inc('tcp_passive_opens');
    conn.poll(now);
    this.#schedule(conn);
    return true;
  }

  #established(conn: TcpConnection): void {
    const listener = this.#pending.get(conn);
    if (listener === undefined) return;
    this.#pending.delete(conn);
    listener.release();
    if (listener.closed) {
      conn.abort();
      return;
    }
    listener.onConnection(conn);
  }

  /** RFC 9293 §3.10.7.1: the reset for a segment to no connection; never for a RST. */
  #resetFor(src: Ipv4Address, dst: Ipv4Address, seg: TcpRepr, payloadLen: number): void {
    if (seg.flags & TcpFlags.RST) return;
    let repr: TcpRepr;
    if (seg.flags & TcpFlags.ACK) {
      repr = { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: TcpFlags.RST, window: 0, urgent: 0 };
    } else {
      const segLen = payloadLen + (seg.flags & TcpFlags.SYN ? 1 : 0) + (seg.flags & TcpFlags.FIN ? 1 : 0);
      repr = { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: 0, ack: seqAdd(seg.seq, segLen), flags: TcpFlags.RST | TcpFlags.ACK, window: 0, urgent: 0 };
    }
    this.#send(src, dst, repr, undefined, 0, 0);
  }

  #send(src: Ipv4Address, dst: Ipv4Address, repr: TcpRepr, conn: TcpConnection | undefined, payloadOffset: number, payloadLen: number): void {
    const headerLen = tcpHeaderLen(repr);
    this.counters.inc('tcp_tx_segments');
    if (repr.flags & TcpFlags.RST) this.counters.inc('tcp_tx_rst');
    this.#transmit(src, dst, headerLen + payloadLen, (out, offset) => {
      if (payloadLen > 0 && conn !== undefined) conn.copyPayload(payloadOffset, payloadLen, out, offset + headerLen);
      emitTcp(repr, out, offset, payloadLen, src, dst);
    });
  }

  #findListener(addr: Ipv4Address, port: number): TcpListener | undefined {
    const list = this.#listeners.get(port);
    if (list === undefined) return undefined;
    return list.find((l) => l.address === addr) ?? list.find((l) => l.address === undefined);
  }

  #find(localAddr: Ipv4Address, localPort: number, remoteAddr: Ipv4Address, remotePort: number): TcpConnection | undefined {
    const list = this.#conns.get(remoteAddr * 65536 + remotePort);
    if (list === undefined) return undefined;
    for (const c of list) if (c.tuple.localPort === localPort && c.tuple.localAddr === localAddr) return c;
    return undefined;
  }

  #add(conn: TcpConnection): void {
    const key = conn.tuple.remoteAddr * 65536 + conn.tuple.remotePort;
    const list = this.#conns.get(key);
    if (list === undefined) this.#conns.set(key, [conn]);
    else list.push(conn);
    this.#connCount++;
  }

  #remove(conn: TcpConnection): void {
    const key = conn.tuple.remoteAddr * 65536 + conn.tuple.remotePort;
    const list = this.#conns.get(key);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.#conns.delete(key);
    this.#connCount--;
    this.#filed.delete(conn);
    const listener = this.#pending.get(conn);
    if (listener !== undefined) {
      this.#pending.delete(conn);
      listener.release();
    }
  }

  /** RFC 6056 §3.3.1-style: a random starting point, then the first free port in the range. */
  #ephemeralPort(localAddr: Ipv4Address, remoteAddr: Ipv4Address, remotePort: number): number {
    const [lo, hi] = this.#ephemeral;
    const n = hi - lo + 1;
    const start = this.#rng.int(n);
    for (let i = 0; i < n; i++) {
      const port = lo + ((start + i) % n);
      if (this.#listeners.has(port)) continue;
      if (this.#find(localAddr, port, remoteAddr, remotePort) === undefined) return port;
    }
    throw new CapacityError(`No free ephemeral port towards port ${remotePort}`);
  }
}

function checkPort(port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) throw new InvalidArgumentError(`Bad TCP port ${port}`);
}

/**
 * A binary min-heap of (deadline, connection). Stale entries are left in place and skipped when
 * they surface: cheaper than finding and moving them each time an ACK restarts a timer.
 */
class DeadlineHeap {
  #at: number[] = [];
  #conn: TcpConnection[] = [];

  get size(): number {
    return this.#at.length;
  }

  peekAt(): number {
    return this.#at[0]!;
  }

  peek(): { at: number; conn: TcpConnection } {
    return { at: this.#at[0]!, conn: this.#conn[0]! };
  }

  push(at: number, conn: TcpConnection): void {
    const a = this.#at;
    const c = this.#conn;
    let i = a.length;
    a.push(at);
    c.push(conn);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= at) break;
      a[i] = a[parent]!;
      c[i] = c[parent]!;
      i = parent;
    }
    a[i] = at;
    c[i] = conn;
  }

  pop(): { at: number; conn: TcpConnection } {
    const a = this.#at;
    const c = this.#conn;
    const top = { at: a[0]!, conn: c[0]! };
    const lastAt = a.pop()!;
    const lastConn = c.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && a[r]! < a[l]! ? r : l;
        if (a[m]! >= lastAt) break;
        a[i] = a[m]!;
        c[i] = c[m]!;
        i = m;
      }
      a[i] = lastAt;
      c[i] = lastConn;
    }
    return top;
  }
}
