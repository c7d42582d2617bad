/**
 * The VXLAN tunnel endpoint (RFC 7348): one UDP socket (4789 by default) carrying the Ethernet
 * frames of every overlay network, told apart by VNI.
 *
 * Receive: datagram → VXLAN header → VNI → the attached receiver (the overlay interface of
 * that network). Transmit: an Ethernet frame from a receiver's link → VXLAN header written into
 * the frame's headroom → the underlay endpoint that the forwarding table gives for the inner
 * destination MAC, or every endpoint of the VNI's flood list for broadcast, multicast and
 * unknown unicast (RFC 7348 §4.2's head-end replication in place of IP multicast).
 *
 * Everything that is dropped is counted by reason; nothing a peer sends can throw out of here.
 */
import { Counters } from '../lib/counters.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { readMac } from '../wire/address.js';
import { ETHERNET_HEADER_LEN } from '../wire/ethernet.js';
import { VXLAN_HEADER_LEN, VXLAN_VNI_MAX, emitVxlan, parseVxlan } from '../wire/vxlan.js';
import type { DatagramSocket, UdpEndpoint } from './datagram.js';
import type { ForwardingTable } from './forwarding-table.js';

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14): the overlay MTU is the underlay's minus this. */
export const VXLAN_OVERHEAD = 50;

/** Receives the frames of one VNI. `frame` is a view into the datagram, valid during the call. */
export interface FrameReceiver {
  receiveFrame(frame: Uint8Array): void;
  /**
   * Called after each run of frames that one batch of datagrams brought (DatagramSocket's
   * onBatchEnd), whether or not this VNI had frames in it; only links whose `batchedReceive`
   * is true call it.
   */
  receiveBatchEnd?(): void;
}

/**
 * What an overlay interface sends through: gVisor's link endpoint, reduced to what a VXLAN
 * link needs. The interface allocates `headroom` bytes in front of every frame so the VXLAN
 * header is written in place, without a copy.
 */
export interface LinkEndpoint {
  readonly headroom: number;
  /** True when every run of received frames ends with the receiver's receiveBatchEnd(). */
  readonly batchedReceive: boolean;
  /**
   * Sends the Ethernet frame `buf[offset, offset + length)`. `buf[offset - headroom, offset)`
   * belongs to the link. Ownership of `buf` passes to the link: the caller must not reuse it.
   */
  transmitFrame(buf: Uint8Array, offset: number, length: number): void;
}

const COUNTERS = [
  'vtep_rx_datagrams',
  'vtep_rx_batches',
  'vtep_rx_frames',
  'vtep_rx_bytes',
  'vtep_rx_dropped_truncated',
  'vtep_rx_dropped_bad_flags',
  'vtep_rx_dropped_unknown_vni',
  'vtep_rx_dropped_runt_frame',
  'vtep_tx_frames',
  'vtep_tx_datagrams',
  'vtep_tx_bytes',
  'vtep_tx_dropped_no_route',
  'vtep_tx_dropped_bad_frame',
] as const;
export type VtepCounter = (typeof COUNTERS)[number];

export interface VtepOptions {
  readonly socket: DatagramSocket;
  readonly fdb: ForwardingTable;
  readonly logger?: Logger;
}

export class Vtep {
  readonly counters = new Counters<VtepCounter>(COUNTERS);
  readonly fdb: ForwardingTable;
  readonly #socket: DatagramSocket;
  readonly #receivers = new Map<number, FrameReceiver>();
  readonly #logger: Logger;

  constructor(options: VtepOptions) {
    this.#socket = options.socket;
    this.fdb = options.fdb;
    this.#logger = options.logger ?? silentLogger;
    this.#socket.onMessage((bytes) => this.#receive(bytes));
    this.#socket.onBatchEnd?.(() => this.#receiveBatchEnd());
  }

  /** The underlay address the VTEP is bound to. */
  local(): UdpEndpoint {
    return this.#socket.local();
  }

  /**
   * Attaches the receiver of `vni` and returns the link it transmits through.
   * Throws InvalidArgumentError for a VNI out of range or already attached.
   */
  attach(vni: number, receiver: FrameReceiver): LinkEndpoint {
    if (!Number.isInteger(vni) || vni < 0 || vni > VXLAN_VNI_MAX) throw new InvalidArgumentError(`VNI out of range: ${vni}`);
    if (this.#receivers.has(vni)) throw new InvalidArgumentError(`VNI ${vni} is already attached`);
    this.#receivers.set(vni, receiver);
    this.#logger.info({ vni }, 'vni attached');
    return {
      headroom: VXLAN_HEADER_LEN,
      batchedReceive: this.#socket.onBatchEnd !== undefined,
      transmitFrame: (buf, offset, length) => this.#transmit(vni, buf, offset, length),
    };
  }

  /**
   * Attaches the receiver that `make` builds around the VNI's link: the usual way to put an
   * interface on a network, since the interface needs its link to exist and the VTEP needs
   * the interface to deliver to. Throws as attach() does.
   */
  attachWith<R extends FrameReceiver>(vni: number, make: (link: LinkEndpoint) => R): R {
    const slot: { receiver?: R } = {};
    const link = this.attach(vni, {
      receiveFrame: (frame) => slot.receiver?.receiveFrame(frame),
      receiveBatchEnd: () => slot.receiver?.receiveBatchEnd?.(),
    });
    slot.receiver = make(link);
    return slot.receiver;
  }

  detach(vni: number): void {
    if (this.#receivers.delete(vni)) this.#logger.info({ vni }, 'vni detached');
  }

  close(): Promise<void> {
    this.#receivers.clear();
    return this.#socket.close();
  }

  #receive(bytes: Uint8Array): void {
    this.counters.inc('vtep_rx_datagrams');
    const parsed = parseVxlan(bytes);
    if (!parsed.ok) {
      this.counters.inc(parsed.error === 'bad-flags' ? 'vtep_rx_dropped_bad_flags' : 'vtep_rx_dropped_truncated');
      return;
    }
    const receiver = this.#receivers.get(parsed.value.repr.vni);
    if (!receiver) {
      this.counters.inc('vtep_rx_dropped_unknown_vni');
      return;
    }
    const frame = parsed.value.payload;
    if (frame.length < ETHERNET_HEADER_LEN) {
      this.counters.inc('vtep_rx_dropped_runt_frame');
      return;
    }
    this.counters.inc('vtep_rx_frames');
    this.counters.inc('vtep_rx_bytes', frame.length);
    receiver.receiveFrame(frame);
  }

  #receiveBatchEnd(): void {
    this.counters.inc('vtep_rx_batches');
    for (const receiver of this.#receivers.values()) receiver.receiveBatchEnd?.();
  }

  #transmit(vni: number, buf: Uint8Array, offset: number, length: number): void {
    if (offset < VXLAN_HEADER_LEN || length < ETHERNET_HEADER_LEN || offset + length > buf.length) {
      this.counters.inc('vtep_tx_dropped_bad_frame');
      return;
    }
    this.counters.inc('vtep_tx_frames');
    const start = offset - VXLAN_HEADER_LEN;
    emitVxlan({ vni }, buf, start);
    const datagram = buf.subarray(start, offset + length);
    const dst = readMac(buf, offset);
    // The I/G bit (least significant bit of the first octet) marks broadcast and multicast.
    const groupAddress = (buf[offset]! & 0x01) !== 0;
    const unicastRoute = groupAddress ? undefined : this.fdb.lookup(vni, dst);
    if (unicastRoute) {
      this.#send(datagram, unicastRoute);
      return;
    }
    const flood = this.fdb.floodList(vni);
    if (flood.length === 0) {
      this.counters.inc('vtep_tx_dropped_no_route');
      return;
    }
    // Head-end replication: node:dgram may hold each buffer until sent, so every copy but the last gets its own.
    flood.forEach((remote, i) => this.#send(i === flood.length - 1 ? datagram : datagram.slice(), remote));
  }

  #send(datagram: Uint8Array, to: UdpEndpoint): void {
    this.counters.inc('vtep_tx_datagrams');
    this.counters.inc('vtep_tx_bytes', datagram.length);
    this.#socket.send(datagram, to);
  }
}
