/**
 * The VXLAN header (RFC 7348 §5): 8 bytes in front of an inner Ethernet frame, carried in UDP to
 * port 4789.
 *
 *     0                   1                   2                   3
 *    |R|R|R|R|I|R|R|R|            Reserved                           |
 *    |                VXLAN Network Identifier (VNI) |   Reserved    |
 */
import { type Result, ok, err } from '../lib/result.js';
import type { WireError } from './errors.js';

const FLAGS = 0;
const VNI = 4;
export const VXLAN_HEADER_LEN = 8;
/** IANA's port for VXLAN (RFC 7348 §5, "Destination Port"). */
export const VXLAN_PORT = 4789;
/** The I flag: "MUST be set to 1 for a valid VXLAN Network ID (VNI)" (RFC 7348 §5). */
export const VXLAN_FLAG_I = 0x08;
export const VXLAN_VNI_MAX = 0xff_ffff;

/** A zero-copy view of a VXLAN header. Getters read, setters write; nothing is checked. */
export class VxlanHeader {
  constructor(readonly bytes: Uint8Array) {}

  /** The first byte: the I flag and the seven reserved flag bits. */
  get flags(): number {
    return this.bytes[FLAGS]!;
  }
  set flags(value: number) {
    this.bytes[FLAGS] = value;
  }
  /** The 24-bit VXLAN Network Identifier. */
  get vni(): number {
    return (this.bytes[VNI]! << 16) | (this.bytes[VNI + 1]! << 8) | this.bytes[VNI + 2]!;
  }
  set vni(value: number) {
    this.bytes[VNI] = (value >>> 16) & 0xff;
    this.bytes[VNI + 1] = (value >>> 8) & 0xff;
    this.bytes[VNI + 2] = value & 0xff;
  }
  /** The inner Ethernet frame, sharing the header's memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(VXLAN_HEADER_LEN);
  }
}

export interface VxlanRepr {
  /** The 24-bit VNI. */
  readonly vni: number;
}

export interface ParsedVxlan {
  readonly repr: VxlanRepr;
  /** The inner Ethernet frame: a view into the input, not a copy. */
  readonly payload: Uint8Array;
}

/**
 * Parses a VXLAN header. Refuses a header without the I flag ('bad-flags'); every reserved bit,
 * in the flags byte or elsewhere, is ignored: "Reserved fields ... MUST be ignored on receipt"
 * (RFC 7348 §5).
 */
export function parseVxlan(bytes: Uint8Array): Result<ParsedVxlan, WireError> {
  if (bytes.length < VXLAN_HEADER_LEN) return err('truncated');
  const header = new VxlanHeader(bytes);
  if ((header.flags & VXLAN_FLAG_I) === 0) return err('bad-flags');
  return ok({ repr: { vni: header.vni }, payload: header.payload });
}

/**
 * Writes the header of `repr` at `out[offset]` with the I flag set and every reserved field zero
 * ("MUST be set to zero on transmission", RFC 7348 §5); the inner frame is expected at
 * `offset + VXLAN_HEADER_LEN` already. Returns the header length.
 * Throws RangeError when `out` has no room for the header or the VNI does not fit 24 bits.
 */
export function emitVxlan(repr: VxlanRepr, out: Uint8Array, offset = 0): number {
  if (offset + VXLAN_HEADER_LEN > out.length) throw new RangeError('No room for a VXLAN header');
  if (!Number.isInteger(repr.vni) || repr.vni < 0 || repr.vni > VXLAN_VNI_MAX) throw new RangeError(`VNI out of range: ${repr.vni}`);
  out.fill(0, offset, offset + VXLAN_HEADER_LEN);
  const header = new VxlanHeader(out.subarray(offset));
  header.flags = VXLAN_FLAG_I;
  header.vni = repr.vni;
  return VXLAN_HEADER_LEN;
}
