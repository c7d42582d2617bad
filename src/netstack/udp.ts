/**
 * UDP sockets on the userspace stack (RFC 768): bind a port of an overlay interface, send and
 * receive datagrams. DNS over the overlay rides on these.
 *
 * A datagram to a port nobody bound is answered with ICMP port unreachable (RFC 1122 §4.1.3.1)
 * and counted; one with a bad checksum or length is counted and dropped.
 */
import { Counters } from '../lib/counters.js';
import { CapacityError, InvalidArgumentError } from '../lib/errors.js';
import type { Ipv4Address } from '../wire/address.js';
import { IcmpType } from '../wire/icmp.js';
import { IpProtocol, type Ipv4Repr } from '../wire/ipv4.js';
import { UDP_HEADER_LEN, emitUdp, parseUdp } from '../wire/udp.js';
import type { OverlayInterface } from './interface.js';

/** RFC 6335 §6: the dynamic/private port range, used for ephemeral ports. */
export const EPHEMERAL_PORT_MIN = 49152;
export const EPHEMERAL_PORT_MAX = 65535;
const PORT_UNREACHABLE = 3;

export interface UdpPeer {
  readonly address: Ipv4Address;
  readonly port: number;
}

/**
 * Receives one datagram; `data` is a view valid only during the call. `local` is the address it
 * was sent to: one of the interface's (a socket is bound to its port on every one of them, so
 * the mesh serving several tasks' addresses on one port tells them apart by it).
 */
export type DatagramHandler = (data: Uint8Array, from: UdpPeer, local: Ipv4Address) => void;

const COUNTERS = [
  'udp_rx_datagrams',
  'udp_rx_dropped_malformed',
  'udp_rx_dropped_no_socket',
  'udp_tx_datagrams',
  'udp_tx_dropped_too_big',
] as const;
export type UdpCounter = (typeof COUNTERS)[number];

export class UdpSocket {
  readonly port: number;
  readonly #layer: UdpLayer;
  #open = true;

  constructor(layer: UdpLayer, port: number) {
    this.#layer = layer;
    this.port = port;
  }

  /**
   * Sends `data` (copied) to `to`, from `from` (one of the interface's addresses; default its
   * primary). A datagram larger than the interface's MTU allows is dropped and counted: the
   * overlay never fragments.
   */
  send(data: Uint8Array, to: UdpPeer, from?: Ipv4Address): void {
    if (!this.#open) return;
    this.#layer.send(this.port, data, to, from);
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#layer.unbind(this.port);
  }
}

export class UdpLayer {
  readonly counters = new Counters<UdpCounter>(COUNTERS);
  readonly #iface: OverlayInterface;
  readonly #sockets = new Map<number, DatagramHandler>();
  #nextEphemeral = EPHEMERAL_PORT_MIN;

  constructor(iface: OverlayInterface) {
    this.#iface = iface;
    iface.setProtocolHandler(IpProtocol.Udp, (ip, payload) => this.#receive(ip, payload));
  }

  /**
   * Binds `port` (0 picks a free ephemeral port). Throws InvalidArgumentError for a port in use
   * or out of range, CapacityError when no ephemeral port is free.
   */
  bind(port: number, onDatagram: DatagramHandler): UdpSocket {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`UDP port out of range: ${port}`);
    const chosen = port === 0 ? this.#freeEphemeralPort() : port;
    if (this.#sockets.has(chosen)) throw new InvalidArgumentError(`UDP port ${chosen} is already bound`);
    this.#sockets.set(chosen, onDatagram);
    return new UdpSocket(this, chosen);
  }

  /** @internal UdpSocket.close() */
  unbind(port: number): void {
    this.#sockets.delete(port);
  }

  /** @internal UdpSocket.send() */
  send(srcPort: number, data: Uint8Array, to: UdpPeer, from: Ipv4Address = this.#iface.address): void {
    if (UDP_HEADER_LEN + data.length > this.#iface.maxPayload) {
      this.counters.inc('udp_tx_dropped_too_big');
      return;
    }
    const { buf, offset } = this.#iface.allocPacket(UDP_HEADER_LEN + data.length);
    buf.set(data, offset + UDP_HEADER_LEN);
    emitUdp({ srcPort, dstPort: to.port }, buf, offset, data.length, from, to.address);
    this.counters.inc('udp_tx_datagrams');
    this.#iface.sendIpv4(to.address, IpProtocol.Udp, buf, offset, UDP_HEADER_LEN + data.length, from);
  }

  #receive(ip: Ipv4Repr, payload: Uint8Array): void {
    const parsed = parseUdp(payload, ip.src, ip.dst);
    if (!parsed.ok) {
      this.counters.inc('udp_rx_dropped_malformed');
      return;
    }
    const { repr, payload: data } = parsed.value;
    const handler = this.#sockets.get(repr.dstPort);
    if (!handler) {
      this.counters.inc('udp_rx_dropped_no_socket');
      this.#iface.sendIcmpError(ip, payload, IcmpType.DestinationUnreachable, PORT_UNREACHABLE);
      return;
    }
    this.counters.inc('udp_rx_datagrams');
    handler(data, { address: ip.src, port: repr.srcPort }, ip.dst);
  }

  #freeEphemeralPort(): number {
    const span = EPHEMERAL_PORT_MAX - EPHEMERAL_PORT_MIN + 1;
    for (let i = 0; i < span; i++) {
      const port = this.#nextEphemeral;
      this.#nextEphemeral = port === EPHEMERAL_PORT_MAX ? EPHEMERAL_PORT_MIN : port + 1;
      if (!this.#sockets.has(port)) return port;
    }
    throw new CapacityError('No free ephemeral UDP port');
  }
}
