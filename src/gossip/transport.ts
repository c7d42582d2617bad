/**
 * The gossip transport: the one seam between the SWIM protocol (memberlist.ts) and the
 * network, after memberlist's `Transport` interface (ML transport.go): an unreliable packet
 * service (UDP) for probes and gossip, and a reliable stream service (TCP) for push/pull, the
 * TCP ping fallback and TCP user messages. The protocol never sees a socket.
 *
 * Two implementations fit this shape:
 * - `node-transport.ts`: node:dgram and node:net bound to one address and ONE port number for
 *   both UDP and TCP (memberlist's rule, spec §1);
 * - `memory-transport.ts`: an in-memory network with seeded loss, delay and partitions on a
 *   ManualClock, for simulations.
 *
 * Everything is callback-driven and synchronous in shape (no promises): a simulation on a
 * ManualClock then runs deterministically, because nothing waits for a microtask. Time is the
 * transport's injected Clock; `receivedAt` on packets and streams is that clock's `now()`.
 *
 * Byte ownership: a buffer passed to `sendPacket` or `Stream.write` belongs to the transport
 * from then on (the caller must not modify it); a buffer delivered to a handler belongs to the
 * handler.
 */

/** An endpoint: textual IP (IPv4 dotted quad or IPv6) and port. The same port serves UDP and TCP. */
export interface GossipAddress {
  readonly host: string;
  readonly port: number;
}

/** One received UDP datagram (ML transport.go `Packet`). */
export interface Packet {
  /** The datagram's bytes, owned by the receiver. Never empty: transports drop empty datagrams. */
  readonly buf: Uint8Array;
  /** The UDP source address and port. */
  readonly from: GossipAddress;
  /** Clock time at which the datagram was read off the socket (used for RTT, ML transport.go). */
  readonly receivedAt: number;
}

/**
 * What a stream reports. Data arrives in order as `onData` chunks of any size (a message may
 * be split or merged arbitrarily: the reader frames it, spec §8.1); then, once, `onEnd` when
 * the peer half-closes; and finally, exactly once, `onClose` — with an error when the
 * connection failed (refused, reset, unreachable) and without one after a clean close.
 */
export interface StreamHandlers {
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onClose(error?: Error): void;
}

/**
 * One TCP connection, either direction. Writes made before the connection is established
 * are queued and flushed on connect (as node:net does); if the connect fails, they are
 * discarded and `onClose(error)` fires. Methods are safe to call after close (they do nothing).
 */
export interface Stream {
  /** The peer's address. */
  readonly remote: GossipAddress;
  /** Clock time at which the stream was accepted (inbound) or opened (outbound). */
  readonly openedAt: number;
  /**
   * Sets the receiver of this stream's events. Must be called synchronously where the stream
   * was obtained (inside `onStream`, or right after `openStream`); events that happen before
   * it is called are held and replayed to it.
   */
  setHandlers(handlers: StreamHandlers): void;
  /** Queues bytes for the peer. Ownership of `bytes` passes to the stream. */
  write(bytes: Uint8Array): void;
  /** Half-close: no more writes from this side; reading continues until the peer ends. */
  end(): void;
  /** Closes both directions now, discarding unsent data. Idempotent. Fires `onClose()` if not yet closed. */
  destroy(): void;
}

/** What the transport delivers to the protocol. */
export interface TransportHandlers {
  onPacket(packet: Packet): void;
  onStream(stream: Stream): void;
}

export interface Transport {
  /**
   * The address this node advertises to peers: the bound IP (not 0.0.0.0) and the bound port,
   * which is the real one when the transport was asked for port 0 (ML transport.go
   * `FinalAdvertiseAddr`). Valid once the transport is constructed.
   */
  readonly localAddress: GossipAddress;
  /**
   * Sets the receiver of incoming packets and streams. Packets that arrive before it is called
   * are dropped; streams are destroyed.
   */
  setHandlers(handlers: TransportHandlers): void;
  /**
   * Sends one datagram, best effort (ML transport.go `WriteTo`). Never throws: a send that fails
   * is counted by the transport and otherwise indistinguishable from a loss, which SWIM tolerates.
   */
  sendPacket(to: GossipAddress, buf: Uint8Array): void;
  /**
   * Opens a TCP connection (ML transport.go `DialTimeout`). Returns at once; failure shows as
   * `onClose(error)`. The caller owns the deadline: it destroys the stream when its own timer
   * (TCPTimeout, or the probe deadline) fires.
   */
  openStream(to: GossipAddress): Stream;
  /** Stops receiving and closes every socket and open stream. Idempotent. */
  close(): void;
}

type StreamEvent = { kind: 'data'; chunk: Uint8Array } | { kind: 'end' } | { kind: 'close'; error?: Error };

/**
 * A stream's events for its owner, held until the owner calls setHandlers (Stream.setHandlers:
 * events that happen before it are replayed in order). Shared by every Stream implementation.
 */
export class StreamEvents {
  #handlers: StreamHandlers | undefined;
  #held: StreamEvent[] = [];

  setHandlers(handlers: StreamHandlers): void {
    this.#handlers = handlers;
    const held = this.#held;
    this.#held = [];
    for (const e of held) this.#dispatch(e);
  }

  data(chunk: Uint8Array): void {
    this.#dispatch({ kind: 'data', chunk });
  }

  end(): void {
    this.#dispatch({ kind: 'end' });
  }

  close(error?: Error): void {
    this.#dispatch(error ? { kind: 'close', error } : { kind: 'close' });
  }

  #dispatch(e: StreamEvent): void {
    const h = this.#handlers;
    if (!h) {
      this.#held.push(e);
      return;
    }
    switch (e.kind) {
      case 'data':
        h.onData(e.chunk);
        return;
      case 'end':
        h.onEnd();
        return;
      case 'close':
        if (e.error) h.onClose(e.error);
        else h.onClose();
        return;
      default: {
        const never: never = e;
        return never;
      }
    }
  }
}
