/**
 * An interface on one overlay network: an IPv4 address, the MAC Swarm's rule derives from it
 * (02:42 + the address), a neighbour table with an ARP requester and responder (RFC 826), an
 * ICMP echo responder and requester (RFC 792), and the IPv4 demultiplexer that hands TCP and
 * UDP payloads to the transport layers above.
 *
 * Frames arrive through receiveFrame() from the VTEP and leave through a LinkEndpoint whose
 * headroom is reserved in front of every frame, so the VXLAN header is written in place.
 * Time comes from the injected Clock (ARP retries, neighbour expiry, ping timeouts).
 * Every frame refused is counted by reason; nothing a peer sends can throw out of here.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { HostUnreachableError, InvalidArgumentError, TimeoutError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import {
  type Ipv4Address,
  type MacAddress,
  MAC_BROADCAST,
  MAC_ZERO,
  formatIpv4Address,
  inSubnet,
  macForIpv4,
  writeMac,
} from '../wire/address.js';
import { ARP_PACKET_LEN, ArpOperation, type ArpRepr, emitArp, parseArp } from '../wire/arp.js';
import { ETHERNET_HEADER_LEN, EtherType, emitEthernet, parseEthernet } from '../wire/ethernet.js';
import type { WireError } from '../wire/errors.js';
import { ICMP_HEADER_LEN, emitIcmp, parseIcmp } from '../wire/icmp.js';
import { IPV4_HEADER_LEN, IpProtocol, type Ipv4Repr, emitIpv4, parseIpv4 } from '../wire/ipv4.js';
import { NeighborCache } from './neighbor-cache.js';

/** How the interface reaches the wire: the VTEP's LinkEndpoint, structurally. */
export interface FrameLink {
  readonly headroom: number;
  /**
   * True when the link ends every run of received frames (one event-loop turn of datagrams)
   * with the interface's receiveBatchEnd(); transports may then answer a whole run at once.
   */
  readonly batchedReceive?: boolean;
  /** Sends `buf[offset, offset + length)`; ownership of `buf` passes to the link. */
  transmitFrame(buf: Uint8Array, offset: number, length: number): void;
}

/** Receives the payload of IPv4 packets of one protocol addressed to this interface. `payload` is valid during the call. */
export type ProtocolHandler = (ip: Ipv4Repr, payload: Uint8Array) => void;

export interface ArpOptions {
  /** ARP requests sent for one address before queued packets are dropped (RFC 1122 §2.3.2.1: flooding limited to one per second). */
  readonly retries: number;
  readonly retryIntervalMs: number;
  /** Packets held per unresolved neighbour; the oldest is dropped beyond this (Linux's unres_qlen). */
  readonly maxPendingPerNeighbor: number;
  readonly entryTtlMs: number;
  readonly maxEntries: number;
}

export const DEFAULT_ARP_OPTIONS: ArpOptions = {
  retries: 3,
  retryIntervalMs: 1000,
  maxPendingPerNeighbor: 16,
  entryTtlMs: 60_000,
  maxEntries: 4096,
};

export interface InterfaceOptions {
  readonly address: Ipv4Address;
  readonly prefixLen: number;
  readonly link: FrameLink;
  readonly clock: Clock;
  /** Largest IPv4 packet (header included). Default 1450: a 1500-byte underlay minus VXLAN's 50. */
  readonly mtu?: number;
  readonly mac?: MacAddress;
  readonly ttl?: number;
  readonly arp?: Partial<ArpOptions>;
  readonly logger?: Logger;
}

export interface EchoReply {
  readonly from: Ipv4Address;
  readonly seqNo: number;
  readonly ttl: number;
  /** Echo data bytes (ICMP payload). */
  readonly bytes: number;
  readonly rttMs: number;
}

export interface PingOptions {
  readonly seqNo: number;
  /** Echo data length; ping's default is 56. */
  readonly dataLen?: number;
  readonly timeoutMs?: number;
}

const WIRE_DROP = {
  truncated: 'iface_rx_dropped_truncated',
  'bad-length': 'iface_rx_dropped_bad_length',
  'bad-checksum': 'iface_rx_dropped_bad_checksum',
  'bad-version': 'iface_rx_dropped_bad_version',
  'bad-header-length': 'iface_rx_dropped_bad_header_length',
  'bad-flags': 'iface_rx_dropped_bad_flags',
  'bad-option': 'iface_rx_dropped_bad_option',
  fragmented: 'iface_rx_dropped_fragmented',
  unsupported: 'iface_rx_dropped_unsupported',
} as const satisfies Record<WireError, string>;

const COUNTERS = [
  'iface_rx_frames',
  'iface_rx_dropped_not_for_us',
  'iface_rx_dropped_unknown_ethertype',
  'iface_rx_dropped_unknown_protocol',
  ...Object.values(WIRE_DROP),
  'iface_tx_frames',
  'iface_tx_dropped_no_route',
  'iface_tx_dropped_no_source',
  'iface_tx_dropped_too_big',
  'iface_tx_dropped_unresolved',
  'arp_rx_requests',
  'arp_rx_replies',
  'arp_tx_requests',
  'arp_tx_replies',
  'icmp_rx_echo_requests',
  'icmp_rx_echo_replies',
  'icmp_rx_unmatched_replies',
  'icmp_rx_errors',
  'icmp_tx_echo_requests',
  'icmp_tx_echo_replies',
  'icmp_tx_errors',
  'icmp_tx_errors_rate_limited',
] as const;

/** ICMP errors sent per second at most (Linux's icmp_ratelimit allows about one per ms per peer; one interface needs far fewer). */
export const ICMP_ERRORS_PER_SECOND = 100;
export type InterfaceCounter = (typeof COUNTERS)[number];

interface Resolution {
  /** Complete frames waiting for the destination MAC. */
  readonly frames: { buf: Uint8Array; offset: number; length: number }[];
  attempts: number;
  timer: Timer;
}

interface PendingPing {
  readonly dst: Ipv4Address;
  readonly sentAt: number;
  readonly data: Uint8Array;
  readonly resolve: (reply: EchoReply) => void;
  readonly reject: (error: Error) => void;
  readonly timer: Timer;
}

export class OverlayInterface {
  readonly address: Ipv4Address;
  readonly prefixLen: number;
  readonly mac: MacAddress;
  readonly mtu: number;
  readonly counters = new Counters<InterfaceCounter>(COUNTERS);
  readonly neighbors: NeighborCache;

  readonly #link: FrameLink;
  readonly #clock: Clock;
  readonly #ttl: number;
  readonly #arp: ArpOptions;
  readonly #logger: Logger;
  readonly #handlers = new Map<number, ProtocolHandler>();
  readonly #batchEndHandlers = new Map<number, () => void>();
  /** Every address this interface answers for → its MAC: the primary, plus the overlay addresses of local tasks. */
  readonly #addresses = new Map<Ipv4Address, MacAddress>();
  readonly #macs = new Set<MacAddress>();
  readonly #resolving = new Map<Ipv4Address, Resolution>();
  readonly #pings = new Map<string, PendingPing>();
  /** Echo identifier of this interface's pings (RFC 792: "an identifier … to aid in matching"). */
  readonly #echoIdent: number;
  #ipIdent = 0;
  #icmpErrorWindowStart = -Infinity;
  #icmpErrorsInWindow = 0;

  constructor(options: InterfaceOptions) {
    if (!Number.isInteger(options.prefixLen) || options.prefixLen < 0 || options.prefixLen > 32) {
      throw new InvalidArgumentError(`Prefix length out of range: ${options.prefixLen}`);
    }
    this.address = options.address;
    this.prefixLen = options.prefixLen;
    this.mac = options.mac ?? macForIpv4(options.address);
    this.mtu = options.mtu ?? 1450;
    if (this.mtu < 68) throw new InvalidArgumentError(`MTU below IPv4's minimum of 68: ${this.mtu}`); // RFC 791
    this.#link = options.link;
    this.#clock = options.clock;
    this.#ttl = options.ttl ?? 64;
    this.#arp = { ...DEFAULT_ARP_OPTIONS, ...options.arp };
    this.#logger = options.logger ?? silentLogger;
    this.neighbors = new NeighborCache({ maxEntries: this.#arp.maxEntries, ttlMs: this.#arp.entryTtlMs });
    this.#echoIdent = options.address & 0xffff;
    this.#addresses.set(this.address, this.mac);
    this.#macs.add(this.mac);
  }

  /**
   * Makes the interface answer for one more overlay address (ARP, IPv4, ICMP echo) with that
   * address's own 02:42 MAC, as a task's address does: the agent terminates the overlay TCP of
   * every local task and relays it to the task process. Throws InvalidArgumentError for an
   * address outside the subnet.
   */
  addAddress(ip: Ipv4Address): void {
    if (!inSubnet(ip, this.address, this.prefixLen)) throw new InvalidArgumentError(`${formatIpv4Address(ip)} is outside ${formatIpv4Address(this.address)}/${this.prefixLen}`);
    const mac = macForIpv4(ip);
    this.#addresses.set(ip, mac);
    this.#macs.add(mac);
  }

  /** Stops answering for `ip`; the primary address cannot be removed. */
  removeAddress(ip: Ipv4Address): void {
    if (ip === this.address) return;
    const mac = this.#addresses.get(ip);
    if (mac === undefined) return;
    this.#addresses.delete(ip);
    this.#macs.delete(mac);
  }

  hasAddress(ip: Ipv4Address): boolean {
    return this.#addresses.has(ip);
  }

  /**
   * Registers the receiver of one IP protocol (TCP, UDP); replaces any earlier one.
   * `onBatchEnd`, when given, is called at every receiveBatchEnd() (see `batchedReceive`).
   */
  setProtocolHandler(protocol: number, handler: ProtocolHandler, onBatchEnd?: () => void): void {
    this.#handlers.set(protocol, handler);
    if (onBatchEnd === undefined) this.#batchEndHandlers.delete(protocol);
    else this.#batchEndHandlers.set(protocol, onBatchEnd);
  }

  /** Whether the link calls receiveBatchEnd() after each run of frames (FrameLink.batchedReceive). */
  get batchedReceive(): boolean {
    return this.#link.batchedReceive === true;
  }

  /** Where an upper layer writes a payload so that every header below fits in front of it. */
  get payloadHeadroom(): number {
    return this.#link.headroom + ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
  }

  /** The largest IPv4 payload that fits the MTU. */
  get maxPayload(): number {
    return this.mtu - IPV4_HEADER_LEN;
  }

  /**
   * Allocates a packet buffer for `payloadLen` bytes of IPv4 payload with headroom for the
   * link, Ethernet and IPv4 headers. Write the payload at `offset`, then call sendIpv4.
   * The memory is not zeroed (every packet allocates one; zero-filling showed in profiles):
   * the caller writes every payload byte and the layers below write every header byte.
   */
  allocPacket(payloadLen: number): { buf: Uint8Array; offset: number } {
    const offset = this.payloadHeadroom;
    return { buf: Buffer.allocUnsafe(offset + payloadLen), offset };
  }

  /**
   * Sends the payload at `buf[offset, offset + payloadLen)` to `dst` as one IPv4 packet with
   * DF set (the overlay never fragments). `buf` must come from allocPacket (or have as much
   * headroom); its ownership passes to the interface. `src` is one of the interface's
   * addresses (the primary by default). Packets that cannot go (no route, too big, neighbour
   * unresolved, or a source address removed since — a connection of a task that just stopped
   * still sending its FIN or RST) are dropped and counted: IP is best effort.
   */
  sendIpv4(dst: Ipv4Address, protocol: number, buf: Uint8Array, offset: number, payloadLen: number, src: Ipv4Address = this.address): void {
    const srcMac = this.#addresses.get(src);
    if (srcMac === undefined) {
      this.counters.inc('iface_tx_dropped_no_source');
      return;
    }
    if (!inSubnet(dst, this.address, this.prefixLen) || this.#addresses.has(dst)) {
      this.counters.inc('iface_tx_dropped_no_route');
      return;
    }
    if (IPV4_HEADER_LEN + payloadLen > this.mtu) {
      this.counters.inc('iface_tx_dropped_too_big');
      return;
    }
    const ipOffset = offset - IPV4_HEADER_LEN;
    const frameOffset = ipOffset - ETHERNET_HEADER_LEN;
    if (frameOffset < this.#link.headroom) throw new InvalidArgumentError('Packet buffer lacks headroom: use allocPacket');
    this.#ipIdent = (this.#ipIdent + 1) & 0xffff;
    emitIpv4({ src, dst, protocol, ttl: this.#ttl, payloadLen, ident: this.#ipIdent, dontFragment: true, tos: 0 }, buf, ipOffset);
    this.#sendFrame(dst, srcMac, EtherType.Ipv4, buf, frameOffset, ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + payloadLen);
  }

  /**
   * Sends an ICMP echo request and resolves with the matching reply. Rejects with
   * TimeoutError after `timeoutMs` (default 1000) without one, or HostUnreachableError when
   * ARP finds no neighbour first. Throws InvalidArgumentError when `seqNo` is already in flight.
   */
  ping(dst: Ipv4Address, options: PingOptions): Promise<EchoReply> {
    const dataLen = options.dataLen ?? 56;
    const key = `${dst}/${options.seqNo & 0xffff}`;
    if (this.#pings.has(key)) throw new InvalidArgumentError(`Ping ${options.seqNo} to ${formatIpv4Address(dst)} is already in flight`);
    const { buf, offset } = this.allocPacket(ICMP_HEADER_LEN + dataLen);
    const data = buf.subarray(offset + ICMP_HEADER_LEN);
    for (let i = 0; i < dataLen; i++) data[i] = (0x10 + i) & 0xff; // ping(8)'s fill pattern
    const expected = data.slice();
    emitIcmp({ kind: 'echo-request', ident: this.#echoIdent, seqNo: options.seqNo & 0xffff }, buf, offset, dataLen);
    return new Promise<EchoReply>((resolve, reject) => {
      const timer = this.#clock.setTimer(options.timeoutMs ?? 1000, () => {
        this.#pings.delete(key);
        reject(new TimeoutError(`No echo reply from ${formatIpv4Address(dst)} for seq ${options.seqNo}`));
      });
      this.#pings.set(key, { dst, sentAt: this.#clock.now(), data: expected, resolve, reject, timer });
      this.counters.inc('icmp_tx_echo_requests');
      this.sendIpv4(dst, IpProtocol.Icmp, buf, offset, ICMP_HEADER_LEN + dataLen);
    });
  }

  /**
   * Reports an undeliverable datagram to its sender with an ICMP error (RFC 1122 §3.2.2: type 3
   * destination unreachable, code 3 port unreachable from UDP) quoting the IP header and the
   * first 8 bytes of the payload (RFC 792). At most `ICMP_ERRORS_PER_SECOND` go out, so a flood
   * of junk cannot turn the interface into an amplifier (RFC 1812 §4.3.2.8).
   */
  sendIcmpError(original: Ipv4Repr, payload: Uint8Array, type: number, code: number): void {
    const now = this.#clock.now();
    if (now - this.#icmpErrorWindowStart >= 1000) {
      this.#icmpErrorWindowStart = now;
      this.#icmpErrorsInWindow = 0;
    }
    if (this.#icmpErrorsInWindow >= ICMP_ERRORS_PER_SECOND) {
      this.counters.inc('icmp_tx_errors_rate_limited');
      return;
    }
    this.#icmpErrorsInWindow++;
    const quoted = Math.min(8, payload.length);
    const { buf, offset } = this.allocPacket(ICMP_HEADER_LEN + IPV4_HEADER_LEN + quoted);
    const quoteOffset = offset + ICMP_HEADER_LEN;
    emitIpv4(original, buf, quoteOffset);
    buf.set(payload.subarray(0, quoted), quoteOffset + IPV4_HEADER_LEN);
    emitIcmp({ kind: 'other', type, code, rest: 0 }, buf, offset, IPV4_HEADER_LEN + quoted);
    this.counters.inc('icmp_tx_errors');
    this.sendIpv4(original.src, IpProtocol.Icmp, buf, offset, ICMP_HEADER_LEN + IPV4_HEADER_LEN + quoted, this.#addresses.has(original.dst) ? original.dst : this.address);
  }

  /** Adds a permanent neighbour, as the endpoint table will for every overlay address it knows. */
  addStaticNeighbor(ip: Ipv4Address, mac: MacAddress = macForIpv4(ip)): void {
    this.neighbors.setStatic(ip, mac);
    this.#flushResolution(ip, mac);
  }

  /** Cancels every timer and fails every pending ping: the interface is going away. */
  close(): void {
    for (const [ip, resolution] of this.#resolving) {
      resolution.timer.cancel();
      this.#resolving.delete(ip);
    }
    for (const [key, ping] of this.#pings) {
      ping.timer.cancel();
      this.#pings.delete(key);
      ping.reject(new HostUnreachableError('Interface closed'));
    }
  }

  /** Entry point for frames from the link (the VTEP). `frame` is only valid during the call. */
  receiveFrame(frame: Uint8Array): void {
    this.counters.inc('iface_rx_frames');
    const eth = parseEthernet(frame);
    if (!eth.ok) {
      this.counters.inc(WIRE_DROP[eth.error]);
      return;
    }
    const { dst, etherType } = eth.value.repr;
    if (dst !== MAC_BROADCAST && !this.#macs.has(dst)) {
      this.counters.inc('iface_rx_dropped_not_for_us');
      return;
    }
    switch (etherType) {
      case EtherType.Arp:
        this.#receiveArp(eth.value.payload);
        return;
      case EtherType.Ipv4:
        this.#receiveIpv4(eth.value.payload);
        return;
      default:
        this.counters.inc('iface_rx_dropped_unknown_ethertype');
    }
  }

  /** The link delivered a run of frames (FrameLink.batchedReceive): the transports finish theirs. */
  receiveBatchEnd(): void {
    for (const handler of this.#batchEndHandlers.values()) handler();
  }

  #receiveArp(bytes: Uint8Array): void {
    const parsed = parseArp(bytes);
    if (!parsed.ok) {
      this.counters.inc(WIRE_DROP[parsed.error]);
      return;
    }
    const arp = parsed.value;
    const now = this.#clock.now();
    // RFC 826 "Packet Reception": update an existing entry for the sender whoever the target;
    // add one only when we are the target.
    const targetMac = this.#addresses.get(arp.targetIp);
    const forUs = targetMac !== undefined;
    if (arp.senderIp !== 0 && (forUs || this.neighbors.has(arp.senderIp) || this.#resolving.has(arp.senderIp))) {
      this.neighbors.learn(arp.senderIp, arp.senderMac, now);
      this.#flushResolution(arp.senderIp, arp.senderMac);
    }
    if (arp.operation === ArpOperation.Request) {
      this.counters.inc('arp_rx_requests');
      if (forUs) this.#sendArp({ operation: ArpOperation.Reply, senderMac: targetMac, senderIp: arp.targetIp, targetMac: arp.senderMac, targetIp: arp.senderIp }, arp.senderMac);
    } else {
      this.counters.inc('arp_rx_replies');
    }
  }

  #receiveIpv4(bytes: Uint8Array): void {
    const parsed = parseIpv4(bytes);
    if (!parsed.ok) {
      this.counters.inc(WIRE_DROP[parsed.error]);
      return;
    }
    const { repr, payload } = parsed.value;
    if (!this.#addresses.has(repr.dst)) {
      this.counters.inc('iface_rx_dropped_not_for_us');
      return;
    }
    if (repr.protocol === IpProtocol.Icmp) {
      this.#receiveIcmp(repr, payload);
      return;
    }
    const handler = this.#handlers.get(repr.protocol);
    if (!handler) {
      this.counters.inc('iface_rx_dropped_unknown_protocol');
      return;
    }
    handler(repr, payload);
  }

  #receiveIcmp(ip: Ipv4Repr, bytes: Uint8Array): void {
    const parsed = parseIcmp(bytes);
    if (!parsed.ok) {
      this.counters.inc(WIRE_DROP[parsed.error]);
      return;
    }
    const { repr, payload } = parsed.value;
    if (repr.kind === 'echo-request') {
      // RFC 792: the reply carries the request's identifier, sequence number and data.
      this.counters.inc('icmp_rx_echo_requests');
      const { buf, offset } = this.allocPacket(ICMP_HEADER_LEN + payload.length);
      buf.set(payload, offset + ICMP_HEADER_LEN);
      emitIcmp({ kind: 'echo-reply', ident: repr.ident, seqNo: repr.seqNo }, buf, offset, payload.length);
      this.counters.inc('icmp_tx_echo_replies');
      this.sendIpv4(ip.src, IpProtocol.Icmp, buf, offset, ICMP_HEADER_LEN + payload.length, ip.dst);
    } else if (repr.kind === 'echo-reply') {
      this.counters.inc('icmp_rx_echo_replies');
      const key = `${ip.src}/${repr.seqNo}`;
      const ping = this.#pings.get(key);
      if (!ping || repr.ident !== this.#echoIdent || !sameBytes(ping.data, payload)) {
        this.counters.inc('icmp_rx_unmatched_replies');
        return;
      }
      this.#pings.delete(key);
      ping.timer.cancel();
      ping.resolve({ from: ip.src, seqNo: repr.seqNo, ttl: ip.ttl, bytes: payload.length, rttMs: this.#clock.now() - ping.sentAt });
    }
    else {
      // Unreachable and time exceeded are counted; the transports do not act on them yet
      // (RFC 1122 §4.2.3.9 lets TCP treat most as soft errors anyway).
      this.counters.inc('icmp_rx_errors');
    }
  }

  #sendArp(repr: ArpRepr, dstMac: MacAddress): void {
    const frameOffset = this.#link.headroom;
    const buf = new Uint8Array(frameOffset + ETHERNET_HEADER_LEN + ARP_PACKET_LEN);
    emitArp(repr, buf, frameOffset + ETHERNET_HEADER_LEN);
    emitEthernet({ dst: dstMac, src: repr.senderMac, etherType: EtherType.Arp }, buf, frameOffset);
    this.counters.inc(repr.operation === ArpOperation.Request ? 'arp_tx_requests' : 'arp_tx_replies');
    this.counters.inc('iface_tx_frames');
    this.#link.transmitFrame(buf, frameOffset, ETHERNET_HEADER_LEN + ARP_PACKET_LEN);
  }

  /** Sends a frame to the neighbour `nextHop`, resolving its MAC by ARP first when needed. */
  #sendFrame(nextHop: Ipv4Address, srcMac: MacAddress, etherType: number, buf: Uint8Array, frameOffset: number, length: number): void {
    emitEthernet({ dst: MAC_ZERO, src: srcMac, etherType }, buf, frameOffset);
    const mac = this.neighbors.lookup(nextHop, this.#clock.now());
    if (mac !== undefined) {
      writeMac(buf, frameOffset, mac);
      this.counters.inc('iface_tx_frames');
      this.#link.transmitFrame(buf, frameOffset, length);
      return;
    }
    let resolution = this.#resolving.get(nextHop);
    if (!resolution) {
      resolution = { frames: [], attempts: 0, timer: { cancel: () => {} } };
      this.#resolving.set(nextHop, resolution);
      this.#solicit(nextHop, resolution);
    }
    if (resolution.frames.length >= this.#arp.maxPendingPerNeighbor) {
      resolution.frames.shift();
      this.counters.inc('iface_tx_dropped_unresolved');
    }
    resolution.frames.push({ buf, offset: frameOffset, length });
  }

  /** One ARP request, and the timer for the next one or for giving up (RFC 1122 §2.3.2.1). */
  #solicit(ip: Ipv4Address, resolution: Resolution): void {
    if (resolution.attempts >= this.#arp.retries) {
      this.#resolving.delete(ip);
      this.counters.inc('iface_tx_dropped_unresolved', resolution.frames.length);
      this.#logger.info({ neighbor: formatIpv4Address(ip) }, 'neighbour unreachable: no ARP reply');
      for (const [key, ping] of this.#pings) {
        if (ping.dst !== ip) continue;
        this.#pings.delete(key);
        ping.timer.cancel();
        ping.reject(new HostUnreachableError(`No ARP reply from ${formatIpv4Address(ip)}`));
      }
      return;
    }
    resolution.attempts++;
    this.#sendArp({ operation: ArpOperation.Request, senderMac: this.mac, senderIp: this.address, targetMac: MAC_ZERO, targetIp: ip }, MAC_BROADCAST);
    resolution.timer = this.#clock.setTimer(this.#arp.retryIntervalMs, () => this.#solicit(ip, resolution));
  }

  #flushResolution(ip: Ipv4Address, mac: MacAddress): void {
    const resolution = this.#resolving.get(ip);
    if (!resolution) return;
    this.#resolving.delete(ip);
    resolution.timer.cancel();
    for (const { buf, offset, length } of resolution.frames) {
      writeMac(buf, offset, mac);
      this.counters.inc('iface_tx_frames');
      this.#link.transmitFrame(buf, offset, length);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
