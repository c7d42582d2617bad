/**
 * ICMP for IPv4 (RFC 792): echo request and reply are decoded; every other message is kept as
 * type, code and the four bytes after the checksum, with the quoted datagram as payload.
 *
 *    | Type | Code |   Checksum   |
 *    |   Identifier  |  Sequence  |   (echo; "rest of header" otherwise)
 */
import { type Result, ok, err } from '../lib/result.js';
import { internetChecksum, verifyChecksum } from './checksum.js';
import type { WireError } from './errors.js';
import { readU16, writeU16 } from './bytes.js';

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const REST = 4;
const IDENT = 4;
const SEQ_NO = 6;
export const ICMP_HEADER_LEN = 8;

/** Message types (RFC 792). */
export const IcmpType = { EchoReply: 0, DestinationUnreachable: 3, EchoRequest: 8, TimeExceeded: 11 } as const;

/** A zero-copy view of an ICMP message. Getters read, setters write; nothing is checked. */
export class IcmpPacket {
  constructor(readonly bytes: Uint8Array) {}

  get msgType(): number {
    return this.bytes[TYPE]!;
  }
  set msgType(value: number) {
    this.bytes[TYPE] = value;
  }
  get code(): number {
    return this.bytes[CODE]!;
  }
  set code(value: number) {
    this.bytes[CODE] = value;
  }
  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }
  /** Echo identifier (bytes 4–5). */
  get ident(): number {
    return readU16(this.bytes, IDENT);
  }
  set ident(value: number) {
    writeU16(this.bytes, IDENT, value);
  }
  /** Echo sequence number (bytes 6–7). */
  get seqNo(): number {
    return readU16(this.bytes, SEQ_NO);
  }
  set seqNo(value: number) {
    writeU16(this.bytes, SEQ_NO, value);
  }
  /** Bytes 4–7 as an unsigned 32-bit number (unused, pointer, gateway or next-hop MTU, by type). */
  get rest(): number {
    return ((this.bytes[REST]! << 24) | (this.bytes[REST + 1]! << 16) | (this.bytes[REST + 2]! << 8) | this.bytes[REST + 3]!) >>> 0;
  }
  set rest(value: number) {
    this.bytes[REST] = value >>> 24;
    this.bytes[REST + 1] = (value >>> 16) & 0xff;
    this.bytes[REST + 2] = (value >>> 8) & 0xff;
    this.bytes[REST + 3] = value & 0xff;
  }
  /** True when the checksum over the whole message (the view's bytes) verifies. */
  verifyChecksum(): boolean {
    return verifyChecksum(this.bytes);
  }
  /** Computes and writes the checksum over the whole message (the view's bytes). */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.bytes);
  }
  /** Echo data, or the quoted datagram of an error message; shares memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(ICMP_HEADER_LEN);
  }

}

export type IcmpRepr =
  | { readonly kind: 'echo-request' | 'echo-reply'; readonly ident: number; readonly seqNo: number }
  /** Any other message. `type` must not be 0 or 8: those are echo and parse as such. */
  | { readonly kind: 'other'; readonly type: number; readonly code: number; readonly rest: number /* the 4 bytes after checksum as u32 */ };

export interface ParsedIcmp {
  readonly repr: IcmpRepr;
  /** Echo data, or the quoted datagram: a view into the input, not a copy. */
  readonly payload: Uint8Array;
}

/**
 * Parses an ICMP message: `bytes` is the whole IPv4 payload, which the checksum covers
 * (RFC 792). An echo with a code other than 0 is refused ('bad-flags').
 */
export function parseIcmp(bytes: Uint8Array): Result<ParsedIcmp, WireError> {
  if (bytes.length < ICMP_HEADER_LEN) return err('truncated');
  const packet = new IcmpPacket(bytes);
  if (!packet.verifyChecksum()) return err('bad-checksum');
  const type = packet.msgType;
  if (type === IcmpType.EchoRequest || type === IcmpType.EchoReply) {
    if (packet.code !== 0) return err('bad-flags');
    const kind = type === IcmpType.EchoRequest ? 'echo-request' : 'echo-reply';
    return ok({ repr: { kind, ident: packet.ident, seqNo: packet.seqNo }, payload: packet.payload });
  }
  return ok({ repr: { kind: 'other', type, code: packet.code, rest: packet.rest }, payload: packet.payload });
}

/**
 * Writes the 8-byte header of `repr` at `out[offset]`. The payload (echo data or quoted
 * datagram) must already be at `offset + ICMP_HEADER_LEN`, `payloadLen` bytes long: the
 * checksum covers it. Returns ICMP_HEADER_LEN.
 * Throws RangeError when `out` does not hold header and payload.
 */
export function emitIcmp(repr: IcmpRepr, out: Uint8Array, offset: number, payloadLen: number): number {
  if (payloadLen < 0 || offset + ICMP_HEADER_LEN + payloadLen > out.length) throw new RangeError('No room for an ICMP message');
  const packet = new IcmpPacket(out.subarray(offset, offset + ICMP_HEADER_LEN + payloadLen));
  if (repr.kind === 'other') {
    packet.msgType = repr.type;
    packet.code = repr.code;
    packet.rest = repr.rest;
  } else {
    packet.msgType = repr.kind === 'echo-request' ? IcmpType.EchoRequest : IcmpType.EchoReply;
    packet.code = 0;
    packet.ident = repr.ident;
    packet.seqNo = repr.seqNo;
  }
  packet.fillChecksum();
  return ICMP_HEADER_LEN;
}
