/**
 * One TCP connection: the state machine of RFC 9293 §3.10 with the sender and receiver
 * algorithms around it. It knows nothing of interfaces, clocks or timers (smoltcp's design):
 * the stack hands it the segments addressed to it with `process(repr, payload, now)`, calls
 * `poll(now)` no later than `pollAt()`, and the connection transmits through its host.
 *
 * Implemented: active, passive and simultaneous open; half-close in each direction; RST in every
 * state (RFC 9293 §3.10.7.4, with RFC 5961 §3–4 challenge ACKs); TIME-WAIT; MSS (§3.7.1);
 * window scaling and timestamps with PAWS (RFC 7323); SACK as receiver (RFC 2018) and as sender
 * with an RFC 6675 scoreboard and pipe; RTO per RFC 6298 with backoff and Karn's rule; slow
 * start, congestion avoidance and fast retransmit (RFC 5681) with NewReno recovery (RFC 6582)
 * when the peer has no SACK; delayed ACKs; zero-window probing; keepalive; bounded buffers.
 * Not implemented: urgent data (ignored, RFC 6093 discourages it), ECN, D-SACK.
 */
import { ConnectionRefusedError, ConnectionResetError, ConnectionTimedOutError, type ShoalError } from '../../lib/errors.js';
import type { Ipv4Address } from '../../wire/address.js';
import { TCP_MAX_WINDOW_SCALE, TcpFlags, tcpMaxSackBlocks, type TcpRepr, type TcpSackBlock } from '../../wire/tcp.js';
import type { TcpConfig } from './config.js';
import { RangeSet } from './range-set.js';
import { RingBuffer } from './ring-buffer.js';
import { RttEstimator } from './rtt.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq.js';

export type TcpState =
  | 'CLOSED'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT';

export interface TcpFourTuple {
  readonly localAddr: Ipv4Address;
  readonly localPort: number;
  readonly remoteAddr: Ipv4Address;
  readonly remotePort: number;
}

/** What a connection needs from the stack that owns it. */
export interface TcpConnectionHost {
  /**
   * Transmits one segment now: the header from `repr`, then `payloadLen` bytes that the host
   * copies with `conn.copyPayload(payloadOffset, payloadLen, out, at)`.
   */
  transmit(conn: TcpConnection, repr: TcpRepr, payloadOffset: number, payloadLen: number): void;
  /** The connection reached ESTABLISHED (a passive one is then handed to its listener). */
  established(conn: TcpConnection): void;
  /** The connection reached CLOSED and may be forgotten. */
  closed(conn: TcpConnection): void;
  /** The application did something (write, close, read) that needs a poll soon. */
  wake(conn: TcpConnection): void;
}

/** Application-facing notifications; every one is optional and called synchronously. */
export interface TcpConnectionEvents {
  /** ESTABLISHED reached. */
  onConnect?(): void;
  /** New in-order bytes can be read. */
  onData?(): void;
  /** The peer's FIN arrived: everything it sent is now readable, nothing more will come. */
  onEnd?(): void;
  /** The send buffer, full before, has room again. */
  onDrain?(): void;
  /** CLOSED reached; `error` says why when it was not an orderly close. */
  onClose?(error: ShoalError | undefined): void;
}

/** RFC 5681 §3.2: three duplicate ACKs signal a loss. */
const DUP_THRESH = 3;
/** RFC 9293 §3.7.1: the MSS to assume when the peer sends none. */
const DEFAULT_PEER_MSS = 536;
const TIMESTAMP_OPTION_LEN = 12;
/** The least time between ACKs to unacceptable bare segments (Linux: tcp_invalid_ratelimit). */
const OOW_ACK_INTERVAL_MS = 100;

/** Per-connection counts, for metrics and benchmarks. */
export interface TcpConnectionStats {
  segmentsSent: number;
  segmentsReceived: number;
  /** Segments sent again (timeouts, fast retransmits and SACK recovery). */
  retransmits: number;
  timeouts: number;
  recoveries: number;
}

export class TcpConnection {
  readonly stats: TcpConnectionStats = { segmentsSent: 0, segmentsReceived: 0, retransmits: 0, timeouts: 0, recoveries: 0 };
  readonly tuple: TcpFourTuple;
  readonly config: TcpConfig;
  /** Who opened it: passive connections come from a listener. */
  readonly passive: boolean;
  events: TcpConnectionEvents = {};

  #state: TcpState = 'CLOSED';
  readonly #host: TcpConnectionHost;
  #now = 0;

  // Send sequence space (RFC 9293 §3.3.1) and the data behind it.
  readonly #iss: number;
  #sndUna: number;
  #sndNxt: number;
  /** The highest sequence number sent so far (SND.NXT moves back after a timeout). */
  #sndMax: number;
  #sndWnd = 0;
  #sndWl1 = 0;
  #sndWl2 = 0;
  #maxSndWnd = 0;
  #sndWscale = 0;
  /** Sequence number of tx[0]: ISS+1 before the SYN is acknowledged, SND.UNA after. */
  #dataSeq0: number;
  readonly #tx: RingBuffer;
  #txWasFull = false;
  #finQueued = false;
  #finSent = false;
  /** Sequence number of our FIN once queued: the end of the data. */
  #finSeq = 0;

  // Receive sequence space.
  #irs = 0;
  #rcvNxt = 0;
  #rcvWscale = 0;
  /** The right edge of the window we last advertised: it never moves left (RFC 9293 §3.8.6.2.2). */
  #rcvAdvRight = 0;
  readonly #rx: RingBuffer;
  /** Out-of-order data in rx beyond the committed bytes, as offsets from RCV.NXT. */
  readonly #ooo: RangeSet;
  /** Offset (from RCV.NXT) of the most recently received out-of-order segment: SACK's first block. */
  #lastOooStart = -1;
  /** Sequence number just past the peer's FIN, once seen (possibly before the data before it). */
  #peerFinSeq: number | undefined;
  #peerFinReceived = false;

  // Negotiated options.
  #peerMss = DEFAULT_PEER_MSS;
  #sackOk = false;
  #tsOk = false;
  #tsRecent = 0;
  #lastAckSent = 0;
  readonly #tsOffset: number;

  // Timers, as absolute deadlines (Infinity when off).
  #rtxAt = Infinity;
  #ackAt = Infinity;
  #persistAt = Infinity;
  #keepAliveAt = Infinity;
  #closeAt = Infinity;
  /** An ACK must go out at the next output, and that output must not wait for the end of a run. */
  #ackNow = false;
  /**
   * An ACK is owed for in-order data (RFC 5681 §4.2: at least every second full-sized segment);
   * within a run of segments delivered together it goes once, at the run's end (see process()).
   */
  #ackDue = false;
  #unackedSegments = 0;
  /** In-order data arrived that the application has not been told about yet (onData). */
  #dataPending = false;
  #retries = 0;
  #persistBackoff = 0;
  #keepAliveSent = 0;

  // Round-trip time (RFC 6298) and congestion control (RFC 5681, 6582, 6675).
  readonly #rtt: RttEstimator;
  #rttSeq: number | undefined;
  #rttStart = 0;
  /** Our timestamp at the latest retransmission: older echoes give no RTT sample. */
  #tsRetransmitFloor = 0;
  /** RFC 3042 limited transmit: new segments allowed past cwnd by the first two dup ACKs. */
  #limitedTransmit = 0;
  #synRetransmitted = false;
  #cwnd = 0;
  #ssthresh = Infinity;
  #bytesAckedCa = 0;
  #dupAcks = 0;
  #inRecovery = false;
  #recover: number;
  /** NewReno: bytes that dup ACKs say have left the network (the inflation of RFC 6582). */
  #inflation = 0;
  /** NewReno: the first unacknowledged segment is due for retransmission. */
  #rtxFirst = false;
  /** SACK scoreboard: offsets from SND.UNA the peer holds, and those retransmitted in this recovery. */
  readonly #sacked: RangeSet;
  readonly #retransmitted: RangeSet;

  #lastOowAckAt = -Infinity;
  #orphaned = false;
  #closeNotified = false;
  /** The application queued something (data, FIN, a window update): poll at once. */
  #wantOutput = true;
  /** The persist timer expired with a small window open: send into it despite SWS avoidance. */
  #forceSend = false;

  private constructor(host: TcpConnectionHost, config: TcpConfig, tuple: TcpFourTuple, iss: number, passive: boolean, tsOffset: number) {
    this.#host = host;
    this.config = config;
    this.tuple = tuple;
    this.passive = passive;
    this.#iss = iss >>> 0;
    this.#sndUna = this.#iss;
    this.#sndNxt = this.#iss;
    this.#sndMax = this.#iss;
    this.#recover = this.#iss;
    this.#dataSeq0 = seqAdd(this.#iss, 1);
    this.#tx = new RingBuffer(config.sendBufferSize);
    this.#rx = new RingBuffer(config.receiveBufferSize);
    this.#ooo = new RangeSet(config.maxOutOfOrderRanges);
    this.#sacked = new RangeSet(config.maxOutOfOrderRanges);
    this.#retransmitted = new RangeSet(config.maxOutOfOrderRanges);
    this.#rtt = new RttEstimator(config);
    this.#tsOffset = tsOffset >>> 0;
    this.#tsRetransmitFloor = this.#tsOffset;
    if (config.windowScaling) {
      // RFC 7323 §2.3: the smallest shift that lets the window cover the whole receive buffer.
      let shift = 0;
      while (shift < TCP_MAX_WINDOW_SCALE && config.receiveBufferSize >>> shift > 0xffff) shift++;
      this.#rcvWscale = shift;
    }
  }

  /** Active open (RFC 9293 §3.10.1): the SYN goes out on the next poll. */
  static connect(host: TcpConnectionHost, config: TcpConfig, tuple: TcpFourTuple, iss: number, tsOffset: number, now: number): TcpConnection {
    const conn = new TcpConnection(host, config, tuple, iss, false, tsOffset);
    conn.#now = now;
    conn.#setState('SYN-SENT');
    return conn;
  }

  /**
   * Passive open from a listener (RFC 9293 §3.10.7.2, LISTEN, third check): `syn` is the SYN
   * that arrived; the SYN-ACK goes out on the next poll.
   */
  static accept(host: TcpConnectionHost, config: TcpConfig, tuple: TcpFourTuple, iss: number, tsOffset: number, syn: TcpRepr, now: number): TcpConnection {
    const conn = new TcpConnection(host, config, tuple, iss, true, tsOffset);
    conn.#now = now;
    conn.#takeSynOptions(syn);
    conn.#irs = syn.seq;
    conn.#rcvNxt = seqAdd(syn.seq, 1);
    conn.#rcvAdvRight = conn.#rcvNxt;
    // RFC 7323 §2.2: the window of a SYN is never scaled.
    conn.#sndWnd = syn.window;
    conn.#maxSndWnd = syn.window;
    conn.#sndWl1 = syn.seq;
    conn.#sndWl2 = conn.#iss;
    conn.#lastRecv(now);
    conn.#setState('SYN-RECEIVED');
    return conn;
  }

  get state(): TcpState {
    return this.#state;
  }

  /** Bytes received in order and not yet read. */
  get readableLength(): number {
    return this.#rx.length;
  }

  /** Bytes queued for sending (unsent and unacknowledged). */
  get writableLength(): number {
    return this.#tx.length;
  }

  /** Room in the send buffer. */
  get writableSpace(): number {
    return this.#canSend() ? this.#tx.free : 0;
  }

  /** True once the peer's FIN has been received: after the readable bytes, the stream ends. */
  get peerFinished(): boolean {
    return this.#peerFinReceived;
  }

  /** RCV.NXT: the next sequence number expected from the peer. */
  get receiveNext(): number {
    return this.#rcvNxt;
  }

  /** The current retransmission timeout, and smoothed RTT (for tests and metrics). */
  get rto(): number {
    return this.#rtt.rto;
  }
  get srtt(): number | undefined {
    return this.#rtt.srtt;
  }
  get congestionWindow(): number {
    return this.#cwnd;
  }

  // ---------------------------------------------------------------------------------------------
  // Application side

  /**
   * Queues bytes for sending; returns how many were taken (fewer than offered when the send
   * buffer is full: wait for onDrain). Throws nothing; returns 0 once the write side is closed.
   */
  send(data: Uint8Array): number {
    if (!this.#canSend()) return 0;
    const n = this.#tx.append(data);
    if (n < data.length) this.#txWasFull = true;
    if (n > 0) this.#wake();
    return n;
  }

  /** Removes up to `max` received bytes into a new buffer the caller owns. */
  read(max = Infinity): Uint8Array {
    const out = this.#rx.read(max);
    // RFC 9293 §3.8.6.2.2 / RFC 1122 §4.2.3.3: tell the peer when the window opens by a useful
    // amount and what it was last told is under half of it (otherwise ACKs carry it anyway).
    if (out.length > 0 && this.#isSynchronized() && !this.#peerFinReceived) {
      const open = Math.max(0, seqDiff(this.#rcvAdvRight, this.#rcvNxt));
      const now = this.#windowWanted();
      if (now - open >= Math.min(this.#rx.capacity / 2, this.config.mss) && open < now / 2) {
        this.#ackNow = true;
        this.#wake();
      }
    }
    return out;
  }

  /**
   * Closes the sending direction (RFC 9293 §3.10.4): a FIN follows the queued data. Reading
   * continues until the peer closes too.
   */
  close(): void {
    // RFC 9293 §3.10.4 deletes the TCB in SYN-SENT; a socket API instead sends what was written
    // before the handshake and then the FIN, as net.Socket's end() while connecting does.
    // abort() is the way to give up on a connection attempt.
    switch (this.#state) {
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
        this.#queueFin();
        if (this.#state === 'ESTABLISHED') this.#setState('FIN-WAIT-1');
        return;
      case 'CLOSE-WAIT':
        this.#queueFin();
        this.#setState('LAST-ACK');
        return;
      case 'CLOSED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSING':
      case 'LAST-ACK':
      case 'TIME-WAIT':
        return; // Already closing or closed (RFC 9293 §3.10.4: "error: connection closing").
      default:
        return assertNever(this.#state);
    }
  }

  /** Aborts (RFC 9293 §3.10.5): a RST to the peer in synchronized states, then CLOSED. */
  abort(): void {
    if (this.#state === 'CLOSED') return;
    if (this.#isSynchronized() && this.#state !== 'TIME-WAIT') this.#sendRst(this.#sndMax);
    this.#terminate(undefined);
  }

  /** Drops the connection without a word to the peer (a TIME-WAIT taken over by a new SYN). */
  abortSilently(): void {
    this.#terminate(undefined);
  }

  /**
   * The application will never read again (its stream was destroyed). Like a kernel socket
   * closed by its process: unread data means RST now; otherwise the FIN goes out after the queued
   * data, data arriving later is answered with RST, and FIN-WAIT-2 is bounded.
   */
  orphan(): void {
    this.#orphaned = true;
    this.events = {};
    if (this.#state === 'CLOSED') return;
    if (this.#rx.length > 0 || this.#state === 'SYN-SENT') {
      this.abort();
      return;
    }
    this.close();
    if (this.#state === 'FIN-WAIT-2') this.#closeAt = this.#now + this.config.finWait2TimeoutMs;
    this.#wake();
  }

  /** Copies queued bytes (offset from the first unacknowledged byte) into a segment being built. */
  copyPayload(offset: number, len: number, out: Uint8Array, at: number): void {
    this.#tx.copyOut(offset, len, out, at);
  }

  // ---------------------------------------------------------------------------------------------
  // Stack side

  /** The earliest time poll() has work to do: 0 for now, Infinity for never (CLOSED). */
  pollAt(): number {
    if (this.#state === 'CLOSED') return Infinity;
    if (this.#ackNow || this.#ackDue || this.#wantOutput) return 0;
    return Math.min(this.#rtxAt, this.#ackAt, this.#persistAt, this.#keepAliveAt, this.#closeAt);
  }

  /** Fires due timers and transmits whatever is ready. */
  poll(now: number): void {
    this.#now = now;
    if (this.#state === 'CLOSED') return;
    if (this.#closeAt <= now) {
      // TIME-WAIT over (RFC 9293 §3.10.8), or an orphan's FIN-WAIT-2 bound reached.
      this.#terminate(undefined);
      return;
    }
    if (this.#rtxAt <= now) {
      this.#onRetransmitTimeout();
      if (this.#isClosed()) return;
    }
    if (this.#persistAt <= now) this.#onPersistTimeout();
    if (this.#keepAliveAt <= now) {
      this.#onKeepAliveTimeout();
      if (this.#isClosed()) return;
    }
    if (this.#ackAt <= now) this.#ackNow = true;
    this.#output();
  }

  /**
   * One segment for this connection (demultiplexed by the stack, checksum verified), processed
   * per RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 (the other states); replies go out at once.
   *
   * `batched`: the segment is one of a run that the link delivered together (one event-loop turn
   * of datagrams), and the owner polls once the run is over (TcpDriver's batchedReceive). What
   * the segment calls for then waits for that poll, so a run of in-order data is acknowledged
   * once and handed to the application once (as Linux acknowledges a GRO-merged segment once),
   * and a run of ACKs releases one burst of data. What needs an answer at once still gets it
   * at once: duplicate ACKs for out-of-order data (the sender counts them, RFC 5681 §4.2), the
   * ACK that fills a gap, FIN, challenge ACKs, and an ACK when a quarter of the buffer is owed.
   */
  process(seg: TcpRepr, payload: Uint8Array, now: number, batched = false): void {
    this.#now = now;
    this.stats.segmentsReceived++;
    switch (this.#state) {
      case 'CLOSED':
        return; // The stack answers for closed connections.
      case 'SYN-SENT':
        this.#processSynSent(seg, payload);
        break;
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
      case 'CLOSING':
      case 'LAST-ACK':
      case 'TIME-WAIT':
        this.#processSynchronized(seg, payload);
        break;
      default:
        assertNever(this.#state);
    }
    if (this.#isClosed()) return;
    if (batched && !this.#ackNow) {
      this.#wantOutput = true; // The poll at the end of the run sends it.
      return;
    }
    this.#output();
  }

  // ---------------------------------------------------------------------------------------------
  // Segment arrival

  #processSynSent(seg: TcpRepr, payload: Uint8Array): void {
    const f = seg.flags;
    // First: the ACK bit (RFC 9293 §3.10.7.3).
    if (f & TcpFlags.ACK) {
      if (seqLe(seg.ack, this.#iss) || seqGt(seg.ack, this.#sndMax)) {
        if (!(f & TcpFlags.RST)) this.#sendRstFor(seg, payload.length);
        return;
      }
    }
    // Second: RST. Acceptable only with an acceptable ACK (RFC 5961 §3.2 for SYN-SENT).
    if (f & TcpFlags.RST) {
      if (f & TcpFlags.ACK) this.#terminate(new ConnectionRefusedError(`Connection refused by ${this.#peerName()}`));
      return;
    }
    // Fourth: SYN.
    if (!(f & TcpFlags.SYN)) return;
    this.#takeSynOptions(seg);
    this.#irs = seg.seq;
    this.#rcvNxt = seqAdd(seg.seq, 1);
    this.#rcvAdvRight = this.#rcvNxt;
    this.#lastRecv(this.#now);
    if (f & TcpFlags.ACK) {
      // Our SYN is acknowledged: ESTABLISHED. RFC 7323 §2.2: a SYN's window is unscaled.
      if (!this.#synRetransmitted) this.#rtt.sample(this.#now - this.#rttStart);
      else this.#rtt.resetAfterSynLoss();
      this.#rttSeq = undefined;
      this.#sndUna = seg.ack;
      this.#sndWnd = seg.window;
      this.#maxSndWnd = seg.window;
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = seg.ack;
      this.#rtxAt = Infinity;
      this.#retries = 0;
      this.#initCongestion();
      this.#setState(this.#finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED');
      this.#ackNow = true;
      // Data on a SYN-ACK is rare (TFO); it is dropped and the peer will send it again.
      return;
    }
    // Simultaneous open (RFC 9293 §3.5, figure 8): SYN-RECEIVED, and our SYN is resent as a SYN-ACK.
    this.#sndWnd = seg.window;
    this.#maxSndWnd = seg.window;
    this.#sndWl1 = seg.seq;
    this.#sndNxt = this.#iss;
    this.#setState('SYN-RECEIVED');
  }

  #processSynchronized(segIn: TcpRepr, payload: Uint8Array): void {
    let seg = segIn;
    if (this.#state === 'SYN-RECEIVED' && seg.flags & TcpFlags.SYN && seg.flags & TcpFlags.ACK && seg.seq === this.#irs) {
      // Simultaneous open (RFC 9293 §3.5, figure 8, line 5): the peer's SYN-ACK repeats the SYN
      // we hold; what matters is its ACK, so process it as if the SYN were already consumed.
      seg = { ...seg, seq: seqAdd(seg.seq, 1), flags: seg.flags & ~TcpFlags.SYN };
    }
    const f = seg.flags;
    const len = payload.length;
    const segLen = len + (f & TcpFlags.SYN ? 1 : 0) + (f & TcpFlags.FIN ? 1 : 0);

    // PAWS (RFC 7323 §5.3): a timestamp older than TS.Recent marks an old duplicate. Like Linux
    // (tcp_disordered_ack), a bare ACK is exempt: reordered ACKs are harmless, ACK processing
    // ignores old ones, and answering each with an ACK would only add traffic.
    if (this.#tsOk && seg.timestamp !== undefined && !(f & TcpFlags.RST) && segLen > 0 && seqLt(seg.timestamp.tsVal, this.#tsRecent)) {
      this.#ackNow = true;
      return;
    }

    // First: sequence number acceptability (RFC 9293 §3.10.7.4, the table of four cases).
    if (!this.#acceptable(seg.seq, segLen)) {
      // A retransmitted SYN in SYN-RECEIVED means our SYN-ACK was lost: resend it now.
      if (this.#state === 'SYN-RECEIVED' && f & TcpFlags.SYN && seg.seq === this.#irs && !(f & TcpFlags.ACK)) {
        this.#sndNxt = this.#iss;
        return;
      }
      if (!(f & TcpFlags.RST)) this.#ackOutOfWindow(segLen);
      return;
    }

    // Second: RST (RFC 5961 §3.2: only an exact RCV.NXT match resets; in window draws a challenge ACK).
    if (f & TcpFlags.RST) {
      if (seg.seq !== this.#rcvNxt) {
        this.#ackNow = true;
        return;
      }
      switch (this.#state) {
        case 'SYN-RECEIVED':
          // From a passive open the connection just goes away; from an active one it was refused.
          this.#terminate(this.passive ? undefined : new ConnectionRefusedError(`Connection refused by ${this.#peerName()}`));
          return;
        case 'ESTABLISHED':
        case 'FIN-WAIT-1':
        case 'FIN-WAIT-2':
        case 'CLOSE-WAIT':
          this.#terminate(new ConnectionResetError(`Connection reset by ${this.#peerName()}`));
          return;
        case 'CLOSING':
        case 'LAST-ACK':
        case 'TIME-WAIT':
          this.#terminate(undefined);
          return;
        default:
          return;
      }
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4): a challenge ACK, never a reset.
    if (f & TcpFlags.SYN) {
      this.#ackNow = true;
      return;
    }

    // Fifth: the ACK field.
    if (!(f & TcpFlags.ACK)) return;
    this.#lastRecv(this.#now);
    this.#updateTsRecent(seg);
    if (this.#state === 'SYN-RECEIVED') {
      if (seqLe(seg.ack, this.#sndUna) || seqGt(seg.ack, this.#sndMax)) {
        this.#sendRstFor(seg, len);
        return;
      }
      // Our SYN-ACK is acknowledged (RFC 9293 §3.10.7.4, SYN-RECEIVED): ESTABLISHED.
      if (!this.#synRetransmitted) this.#rtt.sample(this.#now - this.#rttStart);
      else this.#rtt.resetAfterSynLoss();
      this.#rttSeq = undefined;
      this.#sndWnd = seg.window << this.#sndWscale;
      this.#maxSndWnd = this.#sndWnd;
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = seg.ack;
      this.#initCongestion();
      this.#setState(this.#finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED');
    }
    if (!this.#processAck(seg, len)) return;

    // Sixth/seventh: data (URG is ignored, RFC 6093).
    if (len > 0) this.#processData(seg.seq, payload);
    if (this.#state === 'CLOSED') return;

    // Eighth: FIN, processed once everything before it has arrived.
    if (f & TcpFlags.FIN) {
      const finSeq = seqAdd(seg.seq, len);
      // Only a FIN whose data fitted in the window counts; otherwise the peer sends it again.
      if (this.#peerFinSeq === undefined && seqLe(finSeq, seqAdd(this.#rcvNxt, this.#rx.free))) this.#peerFinSeq = seqAdd(finSeq, 1);
      this.#ackNow = true;
    }
    this.#maybeProcessFin();
  }

  /** RFC 9293 §3.10.7.4, first check: is any part of the segment inside the receive window? */
  #acceptable(seq: number, segLen: number): boolean {
    const wnd = Math.max(0, seqDiff(this.#rcvAdvRight, this.#rcvNxt));
    const nxt = this.#rcvNxt;
    if (segLen === 0) {
      if (wnd === 0) return seq === nxt;
      return seqLe(nxt, seq) && seqLt(seq, seqAdd(nxt, wnd));
    }
    if (wnd === 0) return false;
    const end = seqAdd(nxt, wnd);
    const last = seqAdd(seq, segLen - 1);
    return (seqLe(nxt, seq) && seqLt(seq, end)) || (seqLe(nxt, last) && seqLt(last, end));
  }

  /** The ACK field, RFC 9293 §3.10.7.4 fifth check. Returns false when the segment must be dropped. */
  #processAck(seg: TcpRepr, payloadLen: number): boolean {
    const ack = seg.ack;
    if (seqGt(ack, this.#sndMax)) {
      // It acknowledges something not yet sent: ACK and drop.
      this.#ackNow = true;
      return false;
    }
    const acked = seqDiff(ack, this.#sndUna);

    // Window update, only from a segment newer than the last one that set it.
    let windowChanged = false;
    if (acked >= 0 && (seqLt(this.#sndWl1, seg.seq) || (this.#sndWl1 === seg.seq && seqLe(this.#sndWl2, ack)))) {
      const wnd = seg.window << this.#sndWscale;
      windowChanged = wnd !== this.#sndWnd;
      this.#sndWnd = wnd;
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = ack;
      if (wnd > this.#maxSndWnd) this.#maxSndWnd = wnd;
      if (wnd > 0) {
        this.#persistAt = Infinity;
        this.#persistBackoff = 0;
      }
    }

    // SACK blocks (RFC 2018 §3) update the scoreboard when they cover data in flight.
    let newSack = false;
    if (this.#sackOk && seg.sackBlocks !== undefined && acked >= 0) {
      const before = this.#sacked.size;
      for (const [left, right] of seg.sackBlocks) {
        if (seqLt(left, right) && seqGe(left, ack) && seqLe(right, this.#sndMax)) {
          this.#sacked.add(seqDiff(left, this.#sndUna), seqDiff(right, this.#sndUna));
        }
      }
      newSack = this.#sacked.size > before;
    }

    if (acked < 0) return true; // An old ACK: ignore it, keep the data (RFC 9293).

    if (acked > 0) {
      this.#onNewAck(seg, acked);
      if (this.#state === 'CLOSED') return false;
    } else if (payloadLen === 0 && !(seg.flags & (TcpFlags.SYN | TcpFlags.FIN)) && this.#sndMax !== this.#sndUna && (!windowChanged || newSack)) {
      this.#onDupAck();
    }
    return true;
  }

  #onNewAck(seg: TcpRepr, acked: number): void {
    const ack = seg.ack;
    // RTT: from the echoed timestamp (RFC 7323 §4.1), else the one timed segment (Karn's rule).
    // An echo older than our latest retransmission may answer the retransmission while naming an
    // earlier copy (a duplicate is acknowledged with the old TS.Recent, RFC 7323 §4.3): the same
    // ambiguity as Karn's, so such samples are skipped.
    if (this.#tsOk && seg.timestamp !== undefined && seg.timestamp.tsEcr !== 0) {
      const rtt = seqDiff(this.#tsNow(), seg.timestamp.tsEcr);
      if (rtt >= 0 && seqGe(seg.timestamp.tsEcr, this.#tsRetransmitFloor)) this.#rtt.sample(rtt);
    } else if (this.#rttSeq !== undefined && seqGe(ack, this.#rttSeq)) {
      this.#rtt.sample(this.#now - this.#rttStart);
      this.#rttSeq = undefined;
    }

    // Release acknowledged bytes; SYN and FIN take a sequence number but no buffer space.
    let dataAcked = acked;
    if (seqLt(this.#sndUna, this.#dataSeq0)) dataAcked -= 1; // the SYN
    const finAcked = this.#finSent && seqGt(ack, this.#finSeq);
    if (finAcked && seqLe(this.#sndUna, this.#finSeq)) dataAcked -= 1;
    dataAcked = Math.min(dataAcked, this.#tx.length);
    if (dataAcked > 0) {
      this.#tx.consume(dataAcked);
      this.#dataSeq0 = seqAdd(this.#dataSeq0, dataAcked);
    }
    this.#sndUna = ack;
    if (seqLt(this.#sndNxt, ack)) this.#sndNxt = ack;
    this.#sacked.shift(acked);
    this.#retransmitted.shift(acked);
    this.#retries = 0;

    // Congestion control.
    const smss = this.#smss();
    if (this.#inRecovery) {
      if (seqGe(ack, this.#recover)) {
        // Full acknowledgment (RFC 6582 §3.2 step 3, option 1): leave recovery at ssthresh.
        this.#cwnd = Math.min(this.#ssthresh, Math.max(seqDiff(this.#sndMax, this.#sndUna), 0) + smss);
        this.#cwnd = Math.max(this.#cwnd, smss);
        this.#exitRecovery();
      } else if (!this.#sackOk) {
        // Partial acknowledgment (RFC 6582 §3.2 step 4): resend the next hole, deflate by what left.
        this.#rtxFirst = true;
        this.#inflation = Math.max(0, this.#inflation - acked) + smss;
      }
    } else if (this.#cwnd < this.#ssthresh) {
      // Slow start (RFC 5681 §3.1) counting every byte acknowledged, up to ssthresh, as Linux's
      // tcp_slow_start does: a receiver that acknowledges a run of segments at once (GRO, or
      // ours, see process()) would otherwise slow the growth by the length of its runs.
      this.#cwnd = Math.min(this.#cwnd + acked, this.#ssthresh);
    } else {
      // Congestion avoidance (RFC 5681 §3.1, eq. 3 by byte counting).
      this.#bytesAckedCa += acked;
      if (this.#bytesAckedCa >= this.#cwnd) {
        this.#bytesAckedCa -= this.#cwnd;
        this.#cwnd += smss;
      }
    }
    this.#dupAcks = 0;
    this.#limitedTransmit = 0;

    // RFC 6298 §5.2–5.3: stop the timer when all is acknowledged, else restart it.
    this.#rtxAt = this.#sndUna === this.#sndMax ? Infinity : this.#now + this.#rtt.rto;

    if (finAcked) {
      switch (this.#state) {
        case 'FIN-WAIT-1':
          this.#setState('FIN-WAIT-2');
          if (this.#orphaned) this.#closeAt = this.#now + this.config.finWait2TimeoutMs;
          break;
        case 'CLOSING':
          this.#enterTimeWait();
          break;
        case 'LAST-ACK':
          this.#terminate(undefined);
          return;
        default:
          break;
      }
    }
    if (this.#txWasFull && this.#tx.free > 0 && this.#canSend()) {
      this.#txWasFull = false;
      this.events.onDrain?.();
    }
  }

  #onDupAck(): void {
    this.#dupAcks++;
    const smss = this.#smss();
    if (this.#inRecovery) {
      if (!this.#sackOk) this.#inflation += smss; // RFC 6582 §3.2 step 3: inflate per dup ACK.
      return;
    }
    const lost = this.#dupAcks >= DUP_THRESH || (this.#sackOk && this.#isLost(0));
    // RFC 3042: each of the first two dup ACKs lets one new segment out beyond cwnd.
    if (!lost && this.#dupAcks < DUP_THRESH) this.#limitedTransmit = Math.min(2, this.#dupAcks) * smss;
    // RFC 6582 §3.2 step 2: no new recovery until the ACK passes the last recovery point.
    if (!lost || !seqGt(this.#sndUna, this.#recover)) return;
    const flight = seqDiff(this.#sndMax, this.#sndUna);
    // RFC 5681 §3.2 step 2 (eq. 4), RFC 6675 §5 step 4.
    this.#ssthresh = Math.max(Math.floor(flight / 2), 2 * smss);
    this.#cwnd = this.#ssthresh;
    this.#recover = this.#sndMax;
    this.#inRecovery = true;
    this.stats.recoveries++;
    this.#retransmitted.clear();
    this.#rttSeq = undefined;
    this.#rtxFirst = true;
    this.#inflation = this.#sackOk ? 0 : DUP_THRESH * smss;
  }

  #exitRecovery(): void {
    this.#inRecovery = false;
    this.#rtxFirst = false;
    this.#inflation = 0;
    this.#retransmitted.clear();
  }

  /** Data of an acceptable segment (RFC 9293 §3.10.7.4, seventh check), in order or not. */
  #processData(seq: number, payload: Uint8Array): void {
    switch (this.#state) {
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
        break;
      default:
        return; // After the peer's FIN no data can follow; ignore it.
    }
    let offset = seqDiff(seq, this.#rcvNxt);
    let data = payload;
    if (offset < 0) {
      data = data.subarray(-offset);
      offset = 0;
    }
    if (this.#peerFinSeq !== undefined) {
      // Nothing beyond the peer's FIN exists.
      const room = seqDiff(this.#peerFinSeq, this.#rcvNxt) - 1 - offset;
      if (room < data.length) data = data.subarray(0, Math.max(0, room));
    }
    if (data.length === 0) {
      this.#ackNow = true;
      return;
    }
    if (this.#orphaned) {
      // No reader will ever see this data (RFC 9293 §3.10.4 leaves it open; Linux resets).
      this.abort();
      return;
    }
    const room = this.#rx.free - offset;
    if (room <= 0) {
      this.#ackNow = true;
      return;
    }
    if (data.length > room) data = data.subarray(0, room);
    if (offset === 0) {
      this.#rx.writeAt(0, data);
      let advance = data.length;
      // The new bytes may close the gap to out-of-order data already held.
      if (!this.#ooo.isEmpty && this.#ooo.start(0) <= advance) {
        this.#ooo.add(0, data.length);
        advance = this.#ooo.end(0);
        this.#ackNow = true; // RFC 5681 §4.2: ACK at once when a gap is filled.
      }
      this.#ooo.shift(advance);
      this.#lastOooStart = this.#lastOooStart >= advance ? this.#lastOooStart - advance : -1;
      this.#rx.commit(advance);
      this.#rcvNxt = seqAdd(this.#rcvNxt, advance);
      this.#unackedSegments++;
      if (this.#unackedSegments >= 2 || this.config.delayedAckMs <= 0) this.#ackDue = true;
      else if (this.#ackAt === Infinity) this.#ackAt = this.#now + this.config.delayedAckMs;
      // However long a run, the peer hears from us at least every quarter of the buffer, so it
      // never waits with its window spent while we hold the ACK back.
      if (seqDiff(this.#rcvNxt, this.#lastAckSent) >= this.#rx.capacity / 4) this.#ackNow = true;
      this.#dataPending = true; // onData at the next output: once per run of segments.
    } else {
      // Out of order: hold it if there is a free range slot, and ACK at once (RFC 5681 §4.2).
      if (this.#ooo.add(offset, offset + data.length) >= 0) {
        this.#rx.writeAt(offset, data);
        this.#lastOooStart = offset;
      }
      this.#ackNow = true;
    }
  }

  /** The peer's FIN takes effect once every byte before it is in (RFC 9293 §3.10.7.4, eighth check). */
  #maybeProcessFin(): void {
    if (this.#peerFinReceived || this.#peerFinSeq === undefined) return;
    if (seqAdd(this.#rcvNxt, 1) !== this.#peerFinSeq) return;
    // The data before the FIN is announced before its end.
    if (this.#dataPending) {
      this.#deliverData();
      if (this.#isClosed()) return;
    }
    this.#rcvNxt = this.#peerFinSeq;
    this.#peerFinReceived = true;
    this.#ooo.clear();
    this.#ackNow = true;
    switch (this.#state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
        this.#setState('CLOSE-WAIT');
        break;
      case 'FIN-WAIT-1':
        // Our FIN, if acknowledged, took us to FIN-WAIT-2 already; otherwise a simultaneous close.
        this.#setState('CLOSING');
        break;
      case 'FIN-WAIT-2':
        this.#enterTimeWait();
        break;
      default:
        break;
    }
    this.events.onEnd?.();
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  /**
   * RFC 9293 §3.10.7.4 answers an unacceptable segment with an ACK; for bare segments that is
   * rate-limited (as Linux's tcp_oow_rate_limited does) so two confused ends cannot ping-pong
   * ACKs forever. Segments with data are always answered: they are not part of such a loop.
   */
  #ackOutOfWindow(segLen: number): void {
    if (segLen === 0 && this.#now - this.#lastOowAckAt < OOW_ACK_INTERVAL_MS) return;
    if (segLen === 0) this.#lastOowAckAt = this.#now;
    this.#ackNow = true;
  }

  #onRetransmitTimeout(): void {
    this.#rtxAt = Infinity;
    const handshake = this.#state === 'SYN-SENT' || this.#state === 'SYN-RECEIVED';
    const limit = handshake ? this.config.maxSynRetransmits : this.config.maxRetransmits;
    if (this.#retries >= limit) {
      this.#terminate(new ConnectionTimedOutError(`Connection to ${this.#peerName()} timed out`));
      return;
    }
    this.#retries++;
    this.stats.timeouts++;
    this.#rtt.backOff(); // RFC 6298 §5.5
    this.#rttSeq = undefined; // Karn: nothing retransmitted is timed.
    if (handshake) {
      this.#synRetransmitted = true;
      this.#sndNxt = this.#iss;
      return;
    }
    // RFC 5681 §3.1 eq. 4 (on the first timeout of a series only) and "LW = 1 SMSS".
    const smss = this.#smss();
    if (this.#retries === 1) this.#ssthresh = Math.max(Math.floor(seqDiff(this.#sndMax, this.#sndUna) / 2), 2 * smss);
    this.#cwnd = smss;
    this.#bytesAckedCa = 0;
    this.#exitRecovery();
    this.#dupAcks = 0;
    // RFC 6582 §3.2 step 4 of the timeout case: no fast retransmit for data sent before this.
    this.#recover = this.#sndMax;
    // RFC 2018 §8: after a timeout the SACK information is not trusted (the peer may renege).
    this.#sacked.clear();
    // Go back N: resend from the first unacknowledged byte (RFC 6298 §5.4).
    this.#sndNxt = this.#sndUna;
  }

  /** RFC 9293 §3.8.6.1: probe a zero window; Linux's probe is an old ACK (seq SND.UNA−1) that draws the current window. */
  #onPersistTimeout(): void {
    this.#persistAt = Infinity;
    if (!this.#isSynchronized()) return;
    if (this.#sndWnd > 0) {
      this.#forceSend = true; // The SWS override: send what the small window allows.
      return;
    }
    this.#sendAck(seqAdd(this.#sndUna, -1));
    this.#persistBackoff++;
    this.#persistAt = this.#now + Math.min(this.config.maxRtoMs, this.#rtt.rto * 2 ** this.#persistBackoff);
  }

  /** RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: a keepalive is an ACK with SEG.SEQ = SND.NXT − 1. */
  #onKeepAliveTimeout(): void {
    this.#keepAliveAt = Infinity;
    if (this.config.keepAliveIdleMs === undefined || !this.#isSynchronized()) return;
    if (this.#keepAliveSent >= this.config.keepAliveProbes) {
      this.#terminate(new ConnectionTimedOutError(`Connection to ${this.#peerName()} timed out (keepalive)`));
      return;
    }
    if (this.#sndUna === this.#sndMax) {
      this.#sendAck(seqAdd(this.#sndUna, -1));
      this.#keepAliveSent++;
    }
    this.#keepAliveAt = this.#now + this.config.keepAliveIntervalMs;
  }

  #lastRecv(now: number): void {
    this.#keepAliveSent = 0;
    if (this.config.keepAliveIdleMs !== undefined) this.#keepAliveAt = now + this.config.keepAliveIdleMs;
  }

  #enterTimeWait(): void {
    this.#setState('TIME-WAIT');
    this.#rtxAt = Infinity;
    this.#persistAt = Infinity;
    this.#keepAliveAt = Infinity;
    this.#closeAt = this.#now + this.config.timeWaitMs;
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  /** Everything ready to go: the SYN or SYN-ACK, data and FIN within the windows, then a bare ACK. */
  #output(): void {
    this.#wantOutput = false;
    if (this.#dataPending) {
      // First the application reads (its read may open the window this output advertises).
      this.#deliverData();
      if (this.#isClosed()) return;
    }
    switch (this.#state) {
      case 'CLOSED':
        return;
      case 'SYN-SENT':
        if (this.#sndNxt === this.#iss) this.#sendSyn(false);
        return;
      case 'SYN-RECEIVED':
        if (this.#sndNxt === this.#iss) this.#sendSyn(true);
        else if (this.#ackNow) this.#sendAck(this.#sndNxt);
        return;
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
      case 'CLOSING':
      case 'LAST-ACK':
      case 'TIME-WAIT':
        break;
      default:
        assertNever(this.#state);
    }
    if (this.#state !== 'TIME-WAIT') {
      // Bounded: each round sends a segment within the windows, or stops.
      for (let guard = 0; guard < 1 << 16; guard++) if (!this.#sendOne()) break;
    }
    this.#forceSend = false;
    // A bare ACK carries SND.MAX, not SND.NXT: after a timeout SND.NXT moves back (go-back-N),
    // and the peer, holding everything up to SND.MAX, would find SND.NXT outside its window,
    // drop the ACK unread and answer with its own, possibly just as stale: an ACK loop.
    if (this.#ackNow || this.#ackDue) this.#sendAck(this.#sndMax);
    // Data waiting, nothing in flight, and the window shut or too small to use: arm the persist
    // timer (RFC 9293 §3.8.6.1 zero-window probing, §3.8.6.2.1 the SWS override timeout).
    if (this.#unsent() > 0 && this.#sndUna === this.#sndMax && this.#persistAt === Infinity && this.#rtxAt === Infinity) {
      this.#persistAt = this.#now + this.#rtt.rto;
    }
  }

  /** Sends the next segment the windows allow, if any. Returns whether one was sent. */
  #sendOne(): boolean {
    const base = this.#segmentMss();
    const optLen = this.#dataOptionsLen();
    const maxPayload = Math.max(1, base - optLen);
    const smss = this.#smss();
    const dataEnd = seqAdd(this.#dataSeq0, this.#tx.length);

    if (this.#inRecovery) {
      const pipe = this.#pipe();
      // RFC 6675 §5 step (C): send while cwnd − pipe ≥ 1 SMSS; the first retransmission goes regardless.
      if (!this.#rtxFirst && this.#cwnd - pipe < smss) return false;
      const hole = this.#nextHole();
      if (hole >= 0) {
        const seq = seqAdd(this.#sndUna, hole);
        const avail = seqDiff(dataEnd, seq);
        let len = Math.min(maxPayload, Math.max(0, avail), this.#sacked.nextStartAfter(hole + 1) - hole);
        if (this.#sackOk) len = Math.min(len, this.#sackedOrRtxStartAfter(hole) - hole);
        const fin = this.#finSent && seqAdd(seq, len) === this.#finSeq && seqLe(this.#finSeq, this.#sndMax);
        if (len <= 0 && !fin) {
          this.#rtxFirst = false;
          return false;
        }
        this.#rtxFirst = false;
        if (!this.#recordRetransmission(hole, hole + len + (fin ? 1 : 0))) return false;
        this.#sendData(seq, len, fin);
        return true;
      }
      this.#rtxFirst = false;
      // Otherwise new data, as the receive window allows (RFC 6675 NextSeg rule 2).
    }

    // Skip what the peer already holds when resending after a timeout (RFC 6675 §5.1).
    let seq = this.#sndNxt;
    if (seqLt(seq, this.#sndMax)) {
      const at = this.#sacked.indexOf(seqDiff(seq, this.#sndUna));
      if (at >= 0) {
        seq = seqAdd(this.#sndUna, this.#sacked.end(at));
        this.#sndNxt = seq;
      }
    }
    const avail = seqDiff(dataEnd, seq);
    const windowRight = seqAdd(this.#sndUna, this.#inRecovery ? this.#sndWnd : Math.min(this.#sndWnd, this.#cwnd + this.#limitedTransmit));
    let allowed = seqDiff(windowRight, seq);
    if (this.#inRecovery) allowed = Math.min(allowed, this.#cwnd - this.#pipe());
    let len = Math.min(maxPayload, Math.max(0, avail), Math.max(0, allowed));
    if (seqLt(seq, this.#sndMax)) len = Math.min(len, this.#sacked.nextStartAfter(seqDiff(seq, this.#sndUna)) - seqDiff(seq, this.#sndUna));
    const wantFin = this.#finQueued && len === avail && (!this.#finSent || seqLe(seqAdd(seq, len), this.#finSeq));
    if (len <= 0 && !wantFin) return false;
    if (len > 0 && len < maxPayload && len < avail && !this.#forceSend) {
      // Sender silly window avoidance (RFC 9293 §3.8.6.2.1): a short segment only when it is at
      // least half the largest window the peer ever offered.
      if (len < this.#maxSndWnd / 2) return false;
    }
    if (this.config.nagle && len > 0 && len < maxPayload && this.#sndUna !== this.#sndMax && !wantFin) return false;
    if (len === 0 && wantFin && this.#finSent && seqLt(this.#finSeq, this.#sndNxt)) return false;
    this.#sendData(seq, len, wantFin);
    return true;
  }

  #sendData(seq: number, len: number, fin: boolean): void {
    let flags = TcpFlags.ACK;
    if (len > 0 && seqAdd(seq, len) === seqAdd(this.#dataSeq0, this.#tx.length)) flags |= TcpFlags.PSH;
    if (fin) {
      flags |= TcpFlags.FIN;
      this.#finSent = true;
    }
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    const isNew = seqGe(seq, this.#sndMax);
    // RTT timing without timestamps: one new segment at a time (RFC 6298 §3, Karn).
    if (!this.#tsOk && isNew && this.#rttSeq === undefined && len > 0) {
      this.#rttSeq = end;
      this.#rttStart = this.#now;
    } else if (!isNew && this.#rttSeq !== undefined && seqLt(seq, this.#rttSeq)) {
      this.#rttSeq = undefined;
    }
    if (!isNew) {
      this.#tsRetransmitFloor = this.#tsNow();
      this.stats.retransmits++;
    }
    this.#transmit(flags, seq, seqDiff(seq, this.#dataSeq0), len, false);
    if (seqGt(end, this.#sndNxt)) this.#sndNxt = end;
    this.#sndMax = seqMax(this.#sndMax, end);
    // RFC 6298 §5.1: start the timer when sending data and it is not running.
    if (this.#rtxAt === Infinity) this.#rtxAt = this.#now + this.#rtt.rto;
    this.#persistAt = Infinity;
  }

  #sendSyn(withAck: boolean): void {
    if (!this.#synRetransmitted) this.#rttStart = this.#now;
    this.#transmit(withAck ? TcpFlags.SYN | TcpFlags.ACK : TcpFlags.SYN, this.#iss, 0, 0, true);
    this.#sndNxt = seqAdd(this.#iss, 1);
    this.#sndMax = seqMax(this.#sndMax, this.#sndNxt);
    if (this.#rtxAt === Infinity) this.#rtxAt = this.#now + this.#rtt.rto;
  }

  #sendAck(seq: number): void {
    this.#transmit(TcpFlags.ACK, seq, 0, 0, false);
  }

  /** Builds the header for a segment of ours and hands it to the host. */
  #transmit(flags: number, seq: number, payloadOffset: number, payloadLen: number, syn: boolean): void {
    const c = this.config;
    const ackSet = (flags & TcpFlags.ACK) !== 0;
    let window: number;
    if (syn) {
      // RFC 7323 §2.2: the window in a SYN or SYN-ACK is not scaled.
      window = Math.min(this.#rx.free, 0xffff);
      this.#rcvAdvRight = seqMax(this.#rcvAdvRight, seqAdd(this.#rcvNxt, window));
    } else {
      window = this.#advertiseWindow();
    }
    const offerWs = syn && c.windowScaling && (!this.passive || this.#sndWscaleOffered);
    const offerTs = syn ? c.timestamps && (!this.passive || this.#tsOk) : this.#tsOk;
    const offerSack = syn && c.sack && (!this.passive || this.#sackOk);
    const repr: TcpRepr = {
      srcPort: this.tuple.localPort,
      dstPort: this.tuple.remotePort,
      seq,
      ack: ackSet ? this.#rcvNxt : 0,
      flags,
      window,
      urgent: 0,
      mss: syn ? c.mss : undefined,
      windowScale: offerWs ? this.#rcvWscale : undefined,
      sackPermitted: offerSack ? true : undefined,
      sackBlocks: !syn && this.#sackOk && ackSet && !this.#ooo.isEmpty ? this.#sackBlocks() : undefined,
      timestamp: offerTs ? { tsVal: this.#tsNow(), tsEcr: ackSet ? this.#tsRecent : 0 } : undefined,
    };
    if (ackSet) {
      this.#lastAckSent = this.#rcvNxt;
      this.#ackNow = false;
      this.#ackDue = false;
      this.#ackAt = Infinity;
      this.#unackedSegments = 0;
    }
    this.stats.segmentsSent++;
    this.#host.transmit(this, repr, payloadOffset, payloadLen);
  }

  /** The window field for a non-SYN segment, with receiver SWS avoidance (RFC 9293 §3.8.6.2.2). */
  #advertiseWindow(): number {
    const current = Math.max(0, seqDiff(this.#rcvAdvRight, this.#rcvNxt));
    let wnd = this.#windowWanted();
    if (wnd > current && wnd - current < Math.min(this.#rx.capacity / 2, this.config.mss)) wnd = current;
    const field = Math.min(0xffff, wnd >>> this.#rcvWscale);
    const right = seqAdd(this.#rcvNxt, field << this.#rcvWscale);
    this.#rcvAdvRight = seqMax(this.#rcvAdvRight, right);
    return field;
  }

  /** The receive window the buffer allows now. */
  #windowWanted(): number {
    return this.#rx.free;
  }

  /** SACK blocks for our ACK (RFC 2018 §4): the most recent segment's block first, then the rest. */
  #sackBlocks(): TcpSackBlock[] {
    const blocks: TcpSackBlock[] = [];
    const max = tcpMaxSackBlocks({ srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, urgent: 0, timestamp: this.#tsOk ? { tsVal: 0, tsEcr: 0 } : undefined });
    const first = this.#lastOooStart >= 0 ? this.#ooo.indexOf(this.#lastOooStart) : -1;
    const push = (i: number): void => {
      blocks.push([seqAdd(this.#rcvNxt, this.#ooo.start(i)), seqAdd(this.#rcvNxt, this.#ooo.end(i))]);
    };
    if (first >= 0) push(first);
    for (let i = 0; i < this.#ooo.count && blocks.length < max; i++) if (i !== first) push(i);
    return blocks;
  }

  /** Bytes of options on a data segment: timestamps and the SACK blocks we would add. */
  #dataOptionsLen(): number {
    let n = this.#tsOk ? TIMESTAMP_OPTION_LEN : 0;
    if (this.#sackOk && !this.#ooo.isEmpty) {
      const max = Math.floor((40 - n - 4) / 8);
      n += 4 + 8 * Math.min(this.#ooo.count, max);
    }
    return n;
  }

  /** The most payload plus options per segment: the smaller of our MSS and the peer's (RFC 9293 §3.7.1). */
  #segmentMss(): number {
    return Math.min(this.config.mss, this.#peerMss);
  }

  /** SMSS for congestion control (RFC 5681 §2): the largest payload with the usual options. */
  #smss(): number {
    return Math.max(1, this.#segmentMss() - (this.#tsOk ? TIMESTAMP_OPTION_LEN : 0));
  }

  #initCongestion(): void {
    const smss = this.#smss();
    // RFC 6928: an initial window of up to ten segments, at most 14600 bytes past two segments.
    this.#cwnd = Math.min(10 * smss, Math.max(2 * smss, 14_600));
    this.#ssthresh = Infinity;
    // RFC 6582 §3.2 step 1: recover starts at the ISS, so the first loss may recover quickly.
    this.#recover = this.#iss;
  }

  // ---------------------------------------------------------------------------------------------
  // SACK scoreboard (RFC 6675 §4)

  /** IsLost: more than (DupThresh − 1) × SMSS bytes above `offset` have been SACKed. */
  #isLost(offset: number): boolean {
    return this.#sacked.sizeAbove(offset + 1) > (DUP_THRESH - 1) * this.#smss();
  }

  /** The estimate of bytes in flight (RFC 6675 §4 SetPipe; RFC 6582's inflation without SACK). */
  #pipe(): number {
    const outstanding = seqDiff(this.#sndMax, this.#sndUna);
    if (!this.#sackOk) return Math.max(0, outstanding - this.#inflation);
    let pipe = 0;
    // Holes between SACKed ranges: in flight unless lost; retransmitted bytes count again.
    let from = 0;
    for (let i = 0; i <= this.#sacked.count; i++) {
      const to = i < this.#sacked.count ? this.#sacked.start(i) : outstanding;
      if (to > from) {
        const lost = i < this.#sacked.count && this.#isLost(from);
        if (!lost) pipe += to - from;
        pipe += this.#retransmitted.sizeWithin(from, to);
      }
      if (i < this.#sacked.count) from = this.#sacked.end(i);
    }
    return pipe;
  }

  /** NextSeg rule 1: the first byte neither SACKed nor retransmitted that is lost; -1 if none. */
  #nextHole(): number {
    if (!this.#sackOk) return this.#rtxFirst ? 0 : -1;
    let from = 0;
    for (let i = 0; i < this.#sacked.count; i++) {
      const to = this.#sacked.start(i);
      let s = from;
      while (s < to) {
        const r = this.#retransmitted.indexOf(s);
        if (r < 0) break;
        s = this.#retransmitted.end(r);
      }
      if (s < to && (this.#isLost(s) || (this.#rtxFirst && s === 0))) return s;
      from = this.#sacked.end(i);
    }
    // Nothing SACKed yet (three plain dup ACKs): the first segment is lost by RFC 5681's rule.
    if (this.#rtxFirst && this.#retransmitted.indexOf(0) < 0 && seqLt(this.#sndUna, this.#sndMax)) return 0;
    return -1;
  }

  /**
   * Notes [from, to) as retransmitted in this recovery. The record is bounded: when it is full,
   * ranges the peer has SACKed since are forgotten (they no longer count in the pipe); when that
   * frees nothing, returns false and the hole waits for an ACK to move SND.UNA, or for the RTO.
   * A retransmission that could not be recorded would be found again and resent without end.
   */
  #recordRetransmission(from: number, to: number): boolean {
    if (this.#retransmitted.add(from, to) >= 0) return true;
    this.#retransmitted.removeCoveredBy(this.#sacked);
    return this.#retransmitted.add(from, to) >= 0;
  }

  #sackedOrRtxStartAfter(offset: number): number {
    return Math.min(this.#sacked.nextStartAfter(offset + 1), this.#retransmitted.nextStartAfter(offset + 1));
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  #takeSynOptions(syn: TcpRepr): void {
    const c = this.config;
    if (syn.mss !== undefined) this.#peerMss = Math.max(64, syn.mss);
    // RFC 7323 §2.2: scaling applies in both directions only when both SYNs carry the option.
    if (c.windowScaling && syn.windowScale !== undefined) {
      this.#sndWscale = Math.min(syn.windowScale, TCP_MAX_WINDOW_SCALE);
      this.#sndWscaleOffered = true;
    } else {
      this.#sndWscale = 0;
      this.#rcvWscale = 0;
    }
    this.#sackOk = c.sack && syn.sackPermitted === true;
    if (c.timestamps && syn.timestamp !== undefined) {
      this.#tsOk = true;
      this.#tsRecent = syn.timestamp.tsVal;
    } else {
      this.#tsOk = false;
    }
  }
  #sndWscaleOffered = false;

  /** RFC 7323 §4.3: remember the peer's timestamp from segments that are not ahead of our last ACK. */
  #updateTsRecent(seg: TcpRepr): void {
    if (!this.#tsOk || seg.timestamp === undefined) return;
    if (seqGe(seg.timestamp.tsVal, this.#tsRecent) && seqLe(seg.seq, this.#lastAckSent)) this.#tsRecent = seg.timestamp.tsVal;
  }

  /** Our timestamp clock: milliseconds plus a per-connection random offset (RFC 7323 §5.4). */
  #tsNow(): number {
    return (Math.floor(this.#now) + this.#tsOffset) >>> 0;
  }

  #deliverData(): void {
    this.#dataPending = false;
    this.events.onData?.();
  }

  #wake(): void {
    this.#wantOutput = true;
    this.#host.wake(this);
  }

  #queueFin(): void {
    if (this.#finQueued) return;
    this.#finQueued = true;
    this.#finSeq = seqAdd(this.#dataSeq0, this.#tx.length);
    this.#wake();
  }

  #canSend(): boolean {
    return !this.#finQueued && (this.#state === 'SYN-SENT' || this.#state === 'SYN-RECEIVED' || this.#state === 'ESTABLISHED' || this.#state === 'CLOSE-WAIT');
  }

  /** A method call may have closed the connection; TypeScript's narrowing cannot see that. */
  #isClosed(): boolean {
    return this.#state === 'CLOSED';
  }

  #isSynchronized(): boolean {
    return this.#state !== 'CLOSED' && this.#state !== 'SYN-SENT' && this.#state !== 'SYN-RECEIVED';
  }

  /** Unsent bytes (beyond SND.NXT). */
  #unsent(): number {
    return Math.max(0, seqDiff(seqAdd(this.#dataSeq0, this.#tx.length), this.#sndNxt));
  }

  #sendRst(seq: number): void {
    const repr: TcpRepr = { srcPort: this.tuple.localPort, dstPort: this.tuple.remotePort, seq, ack: 0, flags: TcpFlags.RST, window: 0, urgent: 0 };
    this.#host.transmit(this, repr, 0, 0);
  }

  /** RFC 9293 §3.10.7.1's reset for an unacceptable segment: <SEQ=SEG.ACK><CTL=RST>. */
  #sendRstFor(seg: TcpRepr, payloadLen: number): void {
    if (seg.flags & TcpFlags.ACK) {
      this.#sendRst(seg.ack);
      return;
    }
    const segLen = payloadLen + (seg.flags & TcpFlags.SYN ? 1 : 0) + (seg.flags & TcpFlags.FIN ? 1 : 0);
    const repr: TcpRepr = {
      srcPort: this.tuple.localPort,
      dstPort: this.tuple.remotePort,
      seq: 0,
      ack: seqAdd(seg.seq, segLen),
      flags: TcpFlags.RST | TcpFlags.ACK,
      window: 0,
      urgent: 0,
    };
    this.#host.transmit(this, repr, 0, 0);
  }

  #terminate(error: ShoalError | undefined): void {
    if (this.#state === 'CLOSED') return;
    this.#setState('CLOSED');
    this.#rtxAt = this.#ackAt = this.#persistAt = this.#keepAliveAt = this.#closeAt = Infinity;
    this.#ackNow = false;
    this.#ackDue = false;
    this.#host.closed(this);
    // Data that arrived with the segment that ended the connection is still the reader's.
    if (this.#dataPending) this.#deliverData();
    if (!this.#closeNotified) {
      this.#closeNotified = true;
      this.events.onClose?.(error);
    }
  }

  /** Every change of state goes through here (CONVENTIONS.md §4). */
  #setState(next: TcpState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    if ((next === 'ESTABLISHED' || next === 'FIN-WAIT-1') && (prev === 'SYN-SENT' || prev === 'SYN-RECEIVED')) {
      this.#host.established(this);
      this.events.onConnect?.();
    }
  }

  #peerName(): string {
    const a = this.tuple.remoteAddr;
    return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}:${this.tuple.remotePort}`;
  }
}

function assertNever(x: never): never {
  throw new Error(`Unhandled TCP state ${String(x)}`);
}
