/**
 * The IPv4 header (RFC 791 §3.1). shoal emits 20-byte headers without options, always with
 * Don't Fragment set by its callers, and never reassembles: a fragment is recognised and refused
 * ('fragmented'). Options on receipt are skipped, not interpreted.
 */
import { type Result, ok, err } from '../lib/result.js';
import { type Ipv4Address, readIpv4, writeIpv4 } from './address.js';
import { internetChecksum, verifyChecksum } from './checksum.js';
import type { WireError } from './errors.js';
import { readU16, writeU16 } from './bytes.js';

const VER_IHL = 0;
const TOS = 1;
const TOTAL_LENGTH = 2;
const IDENT = 4;
const FLAGS_FRAGMENT = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;
/** The minimum header, and the only one shoal emits. */
export const IPV4_HEADER_LEN = 20;
/** The largest header: IHL is 4 bits of 32-bit words. */
export const IPV4_MAX_HEADER_LEN = 60;
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;

/** The three flag bits at the top of bytes 6–7 (RFC 791 §3.1 "Flags"). */
const FLAG_RESERVED = 0x8000;
const FLAG_DONT_FRAGMENT = 0x4000;
const FLAG_MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;

/** Protocol numbers (IANA "Assigned Internet Protocol Numbers"). */
export const IpProtocol = { Icmp: 1, Tcp: 6, Udp: 17 } as const;

/** A zero-copy view of an IPv4 packet. Getters read, setters write; nothing is checked. */
export class Ipv4Packet {
  constructor(readonly bytes: Uint8Array) {}

  get version(): number {
    return this.bytes[VER_IHL]! >>> 4;
  }
  /** The header length in bytes (IHL × 4). */
  get headerLen(): number {
    return (this.bytes[VER_IHL]! & 0x0f) * 4;
  }
  /** Sets version and IHL together; `headerLen` in bytes, a multiple of 4. */
  setVersionAndHeaderLen(version: number, headerLen: number): void {
    this.bytes[VER_IHL] = ((version & 0x0f) << 4) | ((headerLen >>> 2) & 0x0f);
  }
  /** The whole Type of Service byte (DSCP and ECN, RFC 2474 and RFC 3168). */
  get tos(): number {
    return this.bytes[TOS]!;
  }
  set tos(value: number) {
    this.bytes[TOS] = value;
  }
  get totalLength(): number {
    return readU16(this.bytes, TOTAL_LENGTH);
  }
  set totalLength(value: number) {
    writeU16(this.bytes, TOTAL_LENGTH, value);
  }
  get ident(): number {
    return readU16(this.bytes, IDENT);
  }
  set ident(value: number) {
    writeU16(this.bytes, IDENT, value);
  }
  /** The reserved flag bit, "must be zero" (RFC 791; the "evil bit" of RFC 3514). */
  get reservedFlag(): boolean {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FLAG_RESERVED) !== 0;
  }
  get dontFragment(): boolean {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FLAG_DONT_FRAGMENT) !== 0;
  }
  get moreFragments(): boolean {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FLAG_MORE_FRAGMENTS) !== 0;
  }
  /** The fragment offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number {
    return (readU16(this.bytes, FLAGS_FRAGMENT) & FRAGMENT_OFFSET_MASK) * 8;
  }
  /** Writes the flags and fragment offset field whole: the three flag bits and the offset in 8-byte units. */
  setFlagsAndFragmentOffset(flags: { reserved?: boolean; dontFragment?: boolean; moreFragments?: boolean }, offsetBytes: number): void {
    const value =
      (flags.reserved === true ? FLAG_RESERVED : 0) |
      (flags.dontFragment === true ? FLAG_DONT_FRAGMENT : 0) |
      (flags.moreFragments === true ? FLAG_MORE_FRAGMENTS : 0) |
      ((offsetBytes >>> 3) & FRAGMENT_OFFSET_MASK);
    writeU16(this.bytes, FLAGS_FRAGMENT, value);
  }
  get ttl(): number {
    return this.bytes[TTL]!;
  }
  set ttl(value: number) {
    this.bytes[TTL] = value;
  }
  get protocol(): number {
    return this.bytes[PROTOCOL]!;
  }
  set protocol(value: number) {
    this.bytes[PROTOCOL] = value;
  }
  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }
  get src(): Ipv4Address {
    return readIpv4(this.bytes, SRC);
  }
  set src(addr: Ipv4Address) {
    writeIpv4(this.bytes, SRC, addr);
  }
  get dst(): Ipv4Address {
    return readIpv4(this.bytes, DST);
  }
  set dst(addr: Ipv4Address) {
    writeIpv4(this.bytes, DST, addr);
  }
  /** The option bytes between the fixed header and the payload (empty without options). */
  get options(): Uint8Array {
    return this.bytes.subarray(IPV4_HEADER_LEN, this.headerLen);
  }
  /** True when the header checksum verifies (RFC 791 §3.1 "Header Checksum"). */
  verifyChecksum(): boolean {
    return verifyChecksum(this.bytes.subarray(0, this.headerLen));
  }
  /** Computes and writes the header checksum over `headerLen` bytes. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.bytes.subarray(0, this.headerLen));
  }
  /** The bytes after the header up to `totalLength` (link padding dropped), sharing memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLen, this.totalLength);
  }

}

export interface Ipv4Repr {
  readonly src: Ipv4Address;
  readonly dst: Ipv4Address;
  /** IpProtocol, or any other protocol number. */
  readonly protocol: number;
  readonly ttl: number;
  /** Bytes after the header: totalLength − header length. */
  readonly payloadLen: number;
  readonly ident: number;
  readonly dontFragment: boolean;
  /** The Type of Service byte (DSCP and ECN). */
  readonly tos: number;
}

export interface ParsedIpv4 {
  readonly repr: Ipv4Repr;
  /** IHL × 4: 20, or more when the packet carries options. */
  readonly headerLen: number;
  /** The payload: a view into the input up to totalLength, not a copy. */
  readonly payload: Uint8Array;
}

export interface ParseIpv4Options {
  /** Verify the header checksum (default true). Off only for tests and checksum-offloaded input. */
  readonly verifyChecksum?: boolean;
}

/**
 * Parses an IPv4 header, judging in this order: length of the fixed header ('truncated'),
 * version ('bad-version'), IHL below 5 or beyond the bytes ('bad-header-length'), total length
 * below the header ('bad-length') or beyond the bytes ('truncated'), checksum ('bad-checksum'),
 * the reserved flag ('bad-flags'), then More Fragments or a non-zero offset ('fragmented').
 * Options are skipped; the payload starts at IHL × 4 and ends at totalLength, so Ethernet
 * padding is dropped.
 */
export function parseIpv4(bytes: Uint8Array, options?: ParseIpv4Options): Result<ParsedIpv4, WireError> {
  if (bytes.length < IPV4_HEADER_LEN) return err('truncated');
  const packet = new Ipv4Packet(bytes);
  if (packet.version !== 4) return err('bad-version');
  const headerLen = packet.headerLen;
  if (headerLen < IPV4_HEADER_LEN || headerLen > bytes.length) return err('bad-header-length');
  const totalLength = packet.totalLength;
  if (totalLength < headerLen) return err('bad-length');
  if (totalLength > bytes.length) return err('truncated');
  if (options?.verifyChecksum !== false && !packet.verifyChecksum()) return err('bad-checksum');
  if (packet.reservedFlag) return err('bad-flags');
  // RFC 791 §2.3: a fragment has MF set or a non-zero offset; shoal never reassembles.
  if (packet.moreFragments || packet.fragmentOffset !== 0) return err('fragmented');
  return ok({
    repr: {
      src: packet.src,
      dst: packet.dst,
      protocol: packet.protocol,
      ttl: packet.ttl,
      payloadLen: totalLength - headerLen,
      ident: packet.ident,
      dontFragment: packet.dontFragment,
      tos: packet.tos,
    },
    headerLen,
    payload: packet.payload,
  });
}

/**
 * Writes the 20-byte header of `repr` at `out[offset]`, without options, with totalLength
 * 20 + payloadLen, fragment offset zero and the header checksum filled in. The payload is
 * expected at `offset + IPV4_HEADER_LEN` already; it is not read. Returns IPV4_HEADER_LEN.
 * Throws RangeError when `out` has no room for the header or the total length exceeds 65535.
 */
export function emitIpv4(repr: Ipv4Repr, out: Uint8Array, offset = 0): number {
  if (offset + IPV4_HEADER_LEN > out.length) throw new RangeError('No room for an IPv4 header');
  const totalLength = IPV4_HEADER_LEN + repr.payloadLen;
  if (repr.payloadLen < 0 || totalLength > IPV4_MAX_TOTAL_LENGTH) throw new RangeError(`IPv4 payload length out of range: ${repr.payloadLen}`);
  const packet = new Ipv4Packet(out.subarray(offset, offset + IPV4_HEADER_LEN));
  packet.setVersionAndHeaderLen(4, IPV4_HEADER_LEN);
  packet.tos = repr.tos;
  packet.totalLength = totalLength;
  packet.ident = repr.ident;
  packet.setFlagsAndFragmentOffset({ dontFragment: repr.dontFragment }, 0);
  packet.ttl = repr.ttl;
  packet.protocol = repr.protocol;
  packet.src = repr.src;
  packet.dst = repr.dst;
  packet.fillChecksum();
  return IPV4_HEADER_LEN;
}
