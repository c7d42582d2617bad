/**
 * An in-memory network for gossip simulations (ARCHITECTURE.md "How it is tested"): every node
 * gets a `MemoryTransport` on one shared `MemoryNetwork`, and packets and stream bytes travel
 * as clock timers, so a ManualClock drives hours of protocol time in milliseconds and a seed
 * replays a run exactly.
 *
 * What it models, each drawn from the injected Rng:
 * - UDP: independent loss with probability `lossRate`, one-way delay uniform in
 *   [minDelayMs, maxDelayMs] (so packets may be reordered), optional duplication;
 * - TCP: reliable and in order, with the same one-way delay; a connect to an address nobody
 *   listens on is refused after one delay (an RST); a connect across a partition never completes
 *   (SYNs lost: the caller's own deadline ends it), and bytes sent across a partition stall;
 * - partitions: groups of addresses that reach only their own group; `heal()` joins them again;
 * - a node "killed" by closing its transport: its packets vanish, its streams reset.
 */
import type { Clock } from '../lib/clock.js';
import { ClosedError, HostUnreachableError, InvalidArgumentError } from '../lib/errors.js';
import type { Rng } from '../lib/rng.js';
import { type GossipAddress, type Packet, type Stream, StreamEvents, type StreamHandlers, type Transport, type TransportHandlers } from './transport.js';

export interface MemoryNetworkOptions {
  readonly clock: Clock;
  readonly rng: Rng;
  /** Probability in [0, 1] that a datagram is lost. Default 0. */
  readonly lossRate?: number;
  /** Probability in [0, 1] that a delivered datagram arrives twice. Default 0. */
  readonly duplicateRate?: number;
  /** One-way delay bounds in ms, for packets and stream bytes. Default 1–5 ms. */
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** What crossed the network, for benchmarks and assertions on load. */
export interface MemoryNetworkStats {
  packetsSent: number;
  packetsDelivered: number;
  packetsLost: number;
  packetBytesSent: number;
  streamsOpened: number;
  streamBytesSent: number;
}

export function addressKey(a: GossipAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export class MemoryNetwork {
  readonly clock: Clock;
  readonly #rng: Rng;
  readonly #nodes = new Map<string, MemoryTransport>();
  /** Address key → partition group; addresses in no group form the implicit group -1. */
  #groups: Map<string, number> | undefined;
  /** Cut links, as "keyA|keyB" both ways; the value says whether only UDP is cut. */
  readonly #cuts = new Map<string, { udpOnly: boolean }>();
  lossRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  readonly stats: MemoryNetworkStats = {
    packetsSent: 0,
    packetsDelivered: 0,
    packetsLost: 0,
    packetBytesSent: 0,
    streamsOpened: 0,
    streamBytesSent: 0,
  };

  constructor(options: MemoryNetworkOptions) {
    this.clock = options.clock;
    this.#rng = options.rng;
    this.lossRate = options.lossRate ?? 0;
    this.duplicateRate = options.duplicateRate ?? 0;
    this.minDelayMs = options.minDelayMs ?? 1;
    this.maxDelayMs = options.maxDelayMs ?? 5;
    if (this.maxDelayMs < this.minDelayMs) throw new InvalidArgumentError('maxDelayMs must be >= minDelayMs');
  }

  /** A transport bound to `address`. Throws InvalidArgumentError when the address is in use. */
  bind(address: GossipAddress): MemoryTransport {
    const key = addressKey(address);
    if (this.#nodes.has(key)) throw new InvalidArgumentError(`Address in use: ${key}`);
    const t = new MemoryTransport(this, address);
    this.#nodes.set(key, t);
    return t;
  }

  /**
   * Splits the network: each listed group reaches only itself; addresses in no group form one
   * more group together. Replaces any earlier partition.
   */
  partition(...groups: readonly (readonly GossipAddress[])[]): void {
    const map = new Map<string, number>();
    groups.forEach((g, i) => {
      for (const a of g) map.set(addressKey(a), i);
    });
    this.#groups = map;
  }

  /** Removes any partition and every cut link. */
  heal(): void {
    this.#groups = undefined;
    this.#cuts.clear();
  }

  /**
   * Cuts the link between `a` and `b` both ways, leaving every other path up: what indirect
   * probes exist for. With `udpOnly`, TCP still passes (a firewall that drops UDP: what the TCP
   * ping fallback exists for).
   */
  cut(a: GossipAddress, b: GossipAddress, options: { udpOnly?: boolean } = {}): void {
    const v = { udpOnly: options.udpOnly ?? false };
    this.#cuts.set(`${addressKey(a)}|${addressKey(b)}`, v);
    this.#cuts.set(`${addressKey(b)}|${addressKey(a)}`, v);
  }

  /** True when `a` and `b` can exchange datagrams (or, with `tcp`, stream bytes). */
  reachable(a: GossipAddress, b: GossipAddress, tcp = false): boolean {
    const cut = this.#cuts.get(`${addressKey(a)}|${addressKey(b)}`);
    if (cut && !(tcp && cut.udpOnly)) return false;
    if (!this.#groups) return true;
    return (this.#groups.get(addressKey(a)) ?? -1) === (this.#groups.get(addressKey(b)) ?? -1);
  }

  /**
   * Delivers `buf` to `to` as if `from` had sent it, bypassing loss and partitions: for
   * feeding hostile bytes to a node.
   */
  injectPacket(from: GossipAddress, to: GossipAddress, buf: Uint8Array): void {
    const target = this.#nodes.get(addressKey(to));
    this.clock.setTimer(this.delay(), () => target?.deliverPacket(from, buf));
  }

  /** One-way delay for the next packet or chunk. */
  delay(): number {
    return this.minDelayMs + this.#rng.float() * (this.maxDelayMs - this.minDelayMs);
  }

  /** @internal */
  lookup(address: GossipAddress): MemoryTransport | undefined {
    return this.#nodes.get(addressKey(address));
  }

  /** @internal */
  unbind(t: MemoryTransport): void {
    const key = addressKey(t.localAddress);
    if (this.#nodes.get(key) === t) this.#nodes.delete(key);
  }

  /** @internal */
  sendPacket(from: GossipAddress, to: GossipAddress, buf: Uint8Array): void {
    this.stats.packetsSent++;
    this.stats.packetBytesSent += buf.length;
    if (!this.reachable(from, to) || (this.lossRate > 0 && this.#rng.float() < this.lossRate)) {
      this.stats.packetsLost++;
      return;
    }
    const copies = this.duplicateRate > 0 && this.#rng.float() < this.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // A copy per delivery: the receiver owns what it is given (transport.ts).
      const bytes = buf.slice();
      this.clock.setTimer(this.delay(), () => {
        const target = this.#nodes.get(addressKey(to));
        if (target?.deliverPacket(from, bytes)) this.stats.packetsDelivered++;
      });
    }
  }
}

export class MemoryTransport implements Transport {
  readonly localAddress: GossipAddress;
  readonly #net: MemoryNetwork;
  #handlers: TransportHandlers | undefined;
  #closed = false;
  readonly #streams = new Set<MemoryStream>();

  /** Use MemoryNetwork.bind(). */
  constructor(net: MemoryNetwork, address: GossipAddress) {
    this.#net = net;
    this.localAddress = address;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setHandlers(handlers: TransportHandlers): void {
    this.#handlers = handlers;
  }

  sendPacket(to: GossipAddress, buf: Uint8Array): void {
    if (this.#closed || buf.length === 0) return;
    this.#net.sendPacket(this.localAddress, to, buf);
  }

  openStream(to: GossipAddress): Stream {
    const net = this.#net;
    const client = new MemoryStream(net, to, this.localAddress);
    if (this.#closed) {
      net.clock.setTimer(0, () => client.fail(new ClosedError('Transport is closed')));
      return client;
    }
    this.#track(client);
    net.stats.streamsOpened++;
    // The SYN travels one delay; the server side exists from then on.
    net.clock.setTimer(net.delay(), () => {
      if (client.isClosed) return;
      if (!net.reachable(this.localAddress, to, true)) return; // SYN lost: the caller's deadline ends it
      const server = net.lookup(to);
      if (!server || server.closed) {
        net.clock.setTimer(net.delay(), () => client.fail(new HostUnreachableError(`Connection refused: ${addressKey(to)}`)));
        return;
      }
      server.accept(client);
    });
    return client;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#net.unbind(this);
    for (const s of [...this.#streams]) s.reset();
    this.#streams.clear();
  }

  /** @internal Returns true when the packet reached a handler. */
  deliverPacket(from: GossipAddress, buf: Uint8Array): boolean {
    if (this.#closed || !this.#handlers || buf.length === 0) return false;
    const packet: Packet = { buf, from, receivedAt: this.#net.clock.now() };
    this.#handlers.onPacket(packet);
    return true;
  }

  /** @internal The server half of a connection `client` opened to us. */
  accept(client: MemoryStream): void {
    const server = new MemoryStream(this.#net, client.localAddress, this.localAddress);
    this.#track(server);
    server.connect(client);
    client.connect(server);
    if (!this.#handlers) {
      server.destroy();
      return;
    }
    this.#handlers.onStream(server);
  }

  #track(s: MemoryStream): void {
    this.#streams.add(s);
    s.onFinalClose = () => this.#streams.delete(s);
  }
}

/** One end of an in-memory TCP connection. */
export class MemoryStream implements Stream {
  readonly remote: GossipAddress;
  readonly localAddress: GossipAddress;
  readonly openedAt: number;
  readonly #net: MemoryNetwork;
  #peer: MemoryStream | undefined;
  readonly #events = new StreamEvents();
  #pendingWrites: Uint8Array[] = [];
  #pendingEnd = false;
  #writeEnded = false;
  #closed = false;
  /** Deliveries to the peer stay in order: each is due no earlier than the one before. */
  #lastDeliveryAt = 0;
  /** @internal */
  onFinalClose: (() => void) | undefined;

  constructor(net: MemoryNetwork, remote: GossipAddress, local: GossipAddress) {
    this.#net = net;
    this.remote = remote;
    this.localAddress = local;
    this.openedAt = net.clock.now();
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  setHandlers(handlers: StreamHandlers): void {
    this.#events.setHandlers(handlers);
  }

  write(bytes: Uint8Array): void {
    if (this.#closed || this.#writeEnded) return;
    if (!this.#peer) {
      this.#pendingWrites.push(bytes);
      return;
    }
    this.#net.stats.streamBytesSent += bytes.length;
    const peer = this.#peer;
    const chunk = bytes.slice();
    this.#toPeer(peer, () => {
      if (!peer.#closed) peer.#events.data(chunk);
    });
  }

  end(): void {
    if (this.#closed || this.#writeEnded) return;
    if (!this.#peer) {
      this.#pendingEnd = true;
      return;
    }
    this.#writeEnded = true;
    const peer = this.#peer;
    this.#toPeer(peer, () => {
      if (!peer.#closed) peer.#events.end();
    });
  }

  destroy(): void {
    if (this.#closed) return;
    const peer = this.#peer;
    if (peer) this.#toPeer(peer, () => peer.#finish(undefined));
    this.#finish(undefined);
  }

  /** @internal Connected to `peer`: flush what was written before. */
  connect(peer: MemoryStream): void {
    this.#peer = peer;
    this.#lastDeliveryAt = this.#net.clock.now();
    const writes = this.#pendingWrites;
    this.#pendingWrites = [];
    for (const w of writes) this.write(w);
    if (this.#pendingEnd) this.end();
  }

  /** @internal The connect failed. */
  fail(error: Error): void {
    this.#finish(error);
  }

  /** @internal Our transport died: we close at once, the peer sees a reset after a delay. */
  reset(): void {
    if (this.#closed) return;
    const peer = this.#peer;
    if (peer) this.#toPeer(peer, () => peer.#finish(new ClosedError('Connection reset by peer')));
    this.#finish(new ClosedError('Transport closed'));
  }

  #toPeer(peer: MemoryStream, fn: () => void): void {
    const net = this.#net;
    const now = net.clock.now();
    const at = Math.max(now + net.delay(), this.#lastDeliveryAt);
    this.#lastDeliveryAt = at;
    const from = this.localAddress;
    const to = this.remote;
    const attempt = (): void => {
      if (peer.#closed) return;
      // Bytes across a partition stall (TCP retransmits) until the link heals or a deadline ends it.
      if (!net.reachable(from, to, true)) {
        net.clock.setTimer(50, attempt);
        return;
      }
      fn();
    };
    net.clock.setTimer(at - now, attempt);
  }

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pendingWrites = [];
    this.onFinalClose?.();
    this.#events.close(error);
  }
}
