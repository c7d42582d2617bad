/**
 * The UDP header (RFC 768): ports, length and a checksum over the IPv4 pseudo-header, header and
 * data. A zero checksum means the sender computed none.
 */
import { type Result, ok, err } from '../lib/result.js';
import type { Ipv4Address } from './address.js';
import { internetChecksum, ipv4PseudoHeaderSum, verifyChecksum } from './checksum.js';
import type { WireError } from './errors.js';
import { IpProtocol } from './ipv4.js';
import { readU16, writeU16 } from './bytes.js';

const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;
export const UDP_HEADER_LEN = 8;
export const UDP_MAX_LENGTH = 0xffff;

/** A zero-copy view of a UDP datagram. Getters read, setters write; nothing is checked. */
export class UdpPacket {
  constructor(readonly bytes: Uint8Array) {}

  get srcPort(): number {
    return readU16(this.bytes, SRC_PORT);
  }
  set srcPort(value: number) {
    writeU16(this.bytes, SRC_PORT, value);
  }
  get dstPort(): number {
    return readU16(this.bytes, DST_PORT);
  }
  set dstPort(value: number) {
    writeU16(this.bytes, DST_PORT, value);
  }
  /** Header plus data, in bytes. */
  get length(): number {
    return readU16(this.bytes, LENGTH);
  }
  set length(value: number) {
    writeU16(this.bytes, LENGTH, value);
  }
  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }
  /** The data up to `length` (anything after it dropped), sharing memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(UDP_HEADER_LEN, this.length);
  }

}

export interface UdpRepr {
  readonly srcPort: number;
  readonly dstPort: number;
}

export interface ParsedUdp {
  readonly repr: UdpRepr;
  /** The data: a view into the input up to the length field, not a copy. */
  readonly payload: Uint8Array;
}

export interface ParseUdpOptions {
  /** Verify a non-zero checksum (default true). */
  readonly verifyChecksum?: boolean;
}

export interface EmitUdpOptions {
  /** Compute the checksum (default true); false sends 0, "no checksum" (RFC 768). */
  readonly checksum?: boolean;
}

/**
 * Parses a UDP datagram carried from `src` to `dst`. A length field below 8 is 'bad-length',
 * one beyond the bytes 'truncated'; the payload ends where the length field says. A checksum of
 * 0 means none was sent (RFC 768) and is accepted; any other is verified with the pseudo-header.
 */
export function parseUdp(bytes: Uint8Array, src: Ipv4Address, dst: Ipv4Address, options?: ParseUdpOptions): Result<ParsedUdp, WireError> {
  if (bytes.length < UDP_HEADER_LEN) return err('truncated');
  const packet = new UdpPacket(bytes);
  const length = packet.length;
  if (length < UDP_HEADER_LEN) return err('bad-length');
  if (length > bytes.length) return err('truncated');
  if (options?.verifyChecksum !== false && packet.checksum !== 0) {
    const pseudo = ipv4PseudoHeaderSum(src, dst, IpProtocol.Udp, length);
    if (!verifyChecksum(bytes.subarray(0, length), pseudo)) return err('bad-checksum');
  }
  return ok({ repr: { srcPort: packet.srcPort, dstPort: packet.dstPort }, payload: packet.payload });
}

/**
 * Writes the 8-byte header of `repr` at `out[offset]` with length 8 + payloadLen. The payload must
 * already be at `offset + UDP_HEADER_LEN`: the checksum covers it. A computed checksum of 0 is
 * sent as 0xffff, since 0 means "none" (RFC 768). Returns UDP_HEADER_LEN.
 * Throws RangeError when `out` does not hold header and payload or the length exceeds 65535.
 */
export function emitUdp(
  repr: UdpRepr,
  out: Uint8Array,
  offset: number,
  payloadLen: number,
  src: Ipv4Address,
  dst: Ipv4Address,
  options?: EmitUdpOptions,
): number {
  const length = UDP_HEADER_LEN + payloadLen;
  if (payloadLen < 0 || length > UDP_MAX_LENGTH) throw new RangeError(`UDP payload length out of range: ${payloadLen}`);
  if (offset + length > out.length) throw new RangeError('No room for a UDP datagram');
  const datagram = out.subarray(offset, offset + length);
  const packet = new UdpPacket(datagram);
  packet.srcPort = repr.srcPort;
  packet.dstPort = repr.dstPort;
  packet.length = length;
  packet.checksum = 0;
  if (options?.checksum !== false) {
    const sum = internetChecksum(datagram, ipv4PseudoHeaderSum(src, dst, IpProtocol.Udp, length));
    packet.checksum = sum === 0 ? 0xffff : sum;
  }
  return UDP_HEADER_LEN;
}
