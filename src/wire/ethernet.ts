/**
 * Ethernet II frames (IEEE 802.3 with an EtherType ≥ 0x0600), without preamble or FCS: what a
 * VXLAN packet carries (RFC 7348 §5). 802.1Q tags are not supported: an overlay frame never
 * carries one (RFC 7348 §6.1: "Decapsulated VXLAN frames with the inner VLAN tag SHOULD be
 * discarded"), so a tagged frame parses as an unknown EtherType 0x8100 and is dropped above.
 */
import { type Result, ok, err } from '../lib/result.js';
import { type MacAddress, readMac, writeMac } from './address.js';
import type { WireError } from './errors.js';

const DST = 0;
const SRC = 6;
const ETHERTYPE = 12;
export const ETHERNET_HEADER_LEN = 14;

/** EtherType values (IEEE registry). */
export const EtherType = {
  Ipv4: 0x0800,
  Arp: 0x0806,
  Ipv6: 0x86dd,
} as const;

/** A zero-copy view of an Ethernet II frame. Getters read, setters write; nothing is checked. */
export class EthernetFrame {
  constructor(readonly bytes: Uint8Array) {}

  get dst(): MacAddress {
    return readMac(this.bytes, DST);
  }
  set dst(mac: MacAddress) {
    writeMac(this.bytes, DST, mac);
  }
  get src(): MacAddress {
    return readMac(this.bytes, SRC);
  }
  set src(mac: MacAddress) {
    writeMac(this.bytes, SRC, mac);
  }
  get etherType(): number {
    return (this.bytes[ETHERTYPE]! << 8) | this.bytes[ETHERTYPE + 1]!;
  }
  set etherType(value: number) {
    this.bytes[ETHERTYPE] = value >>> 8;
    this.bytes[ETHERTYPE + 1] = value & 0xff;
  }
  /** The bytes after the header, sharing the frame's memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(ETHERNET_HEADER_LEN);
  }
}

export interface EthernetRepr {
  readonly dst: MacAddress;
  readonly src: MacAddress;
  readonly etherType: number;
}

export interface ParsedEthernet {
  readonly repr: EthernetRepr;
  /** A view into the input: the caller's buffer, not a copy. */
  readonly payload: Uint8Array;
}

/** Parses the header of an Ethernet II frame. Refuses 802.3 length fields (< 0x0600). */
export function parseEthernet(bytes: Uint8Array): Result<ParsedEthernet, WireError> {
  if (bytes.length < ETHERNET_HEADER_LEN) return err('truncated');
  const frame = new EthernetFrame(bytes);
  const etherType = frame.etherType;
  if (etherType < 0x0600) return err('unsupported');
  return ok({ repr: { dst: frame.dst, src: frame.src, etherType }, payload: frame.payload });
}

/**
 * Writes the header of `repr` at `out[offset]`; the payload is expected at
 * `offset + ETHERNET_HEADER_LEN` already (headroom, CONVENTIONS.md §2). Returns the header length.
 * Throws RangeError when `out` has no room for the header.
 */
export function emitEthernet(repr: EthernetRepr, out: Uint8Array, offset = 0): number {
  if (offset + ETHERNET_HEADER_LEN > out.length) throw new RangeError('No room for an Ethernet header');
  const frame = new EthernetFrame(out.subarray(offset));
  frame.dst = repr.dst;
  frame.src = repr.src;
  frame.etherType = repr.etherType;
  return ETHERNET_HEADER_LEN;
}
