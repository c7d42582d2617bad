/**
 * ARP (RFC 826) for IPv4 over Ethernet only: hardware type 1, protocol type 0x0800, address
 * lengths 6 and 4, so a packet is always 28 bytes. Anything else is well-formed ARP that shoal
 * does not speak ('unsupported').
 */
import { type Result, ok, err } from '../lib/result.js';
import { type Ipv4Address, type MacAddress, readIpv4, readMac, writeIpv4, writeMac } from './address.js';
import { EtherType } from './ethernet.js';
import type { WireError } from './errors.js';
import { readU16, writeU16 } from './bytes.js';

const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;
/** The fixed part every ARP packet has, whatever its address lengths. */
const ARP_FIXED_LEN = 8;
export const ARP_PACKET_LEN = 28;
/** ar$hrd for Ethernet (IANA "Hardware Types"). */
export const ARP_HTYPE_ETHERNET = 1;

/** ar$op values (RFC 826). */
export const ArpOperation = { Request: 1, Reply: 2 } as const;

/** A zero-copy view of an ARP packet. Getters read, setters write; nothing is checked. */
export class ArpPacket {
  constructor(readonly bytes: Uint8Array) {}

  get hardwareType(): number {
    return readU16(this.bytes, HTYPE);
  }
  set hardwareType(value: number) {
    writeU16(this.bytes, HTYPE, value);
  }
  get protocolType(): number {
    return readU16(this.bytes, PTYPE);
  }
  set protocolType(value: number) {
    writeU16(this.bytes, PTYPE, value);
  }
  get hardwareLen(): number {
    return this.bytes[HLEN]!;
  }
  set hardwareLen(value: number) {
    this.bytes[HLEN] = value;
  }
  get protocolLen(): number {
    return this.bytes[PLEN]!;
  }
  set protocolLen(value: number) {
    this.bytes[PLEN] = value;
  }
  get operation(): number {
    return readU16(this.bytes, OPER);
  }
  set operation(value: number) {
    writeU16(this.bytes, OPER, value);
  }
  get senderMac(): MacAddress {
    return readMac(this.bytes, SHA);
  }
  set senderMac(mac: MacAddress) {
    writeMac(this.bytes, SHA, mac);
  }
  get senderIp(): Ipv4Address {
    return readIpv4(this.bytes, SPA);
  }
  set senderIp(addr: Ipv4Address) {
    writeIpv4(this.bytes, SPA, addr);
  }
  get targetMac(): MacAddress {
    return readMac(this.bytes, THA);
  }
  set targetMac(mac: MacAddress) {
    writeMac(this.bytes, THA, mac);
  }
  get targetIp(): Ipv4Address {
    return readIpv4(this.bytes, TPA);
  }
  set targetIp(addr: Ipv4Address) {
    writeIpv4(this.bytes, TPA, addr);
  }

}

export interface ArpRepr {
  /** ArpOperation.Request or ArpOperation.Reply. */
  readonly operation: number;
  readonly senderMac: MacAddress;
  readonly senderIp: Ipv4Address;
  readonly targetMac: MacAddress;
  readonly targetIp: Ipv4Address;
}

/**
 * Parses an Ethernet/IPv4 ARP packet. Bytes after the 28 (Ethernet padding) are ignored.
 * A packet for another hardware or protocol type, other address lengths, or an operation
 * other than request and reply (RARP's 3 and 4, say) is 'unsupported'; the fixed part is
 * judged before the length, so such a packet is never reported 'truncated'.
 */
export function parseArp(bytes: Uint8Array): Result<ArpRepr, WireError> {
  if (bytes.length < ARP_FIXED_LEN) return err('truncated');
  const packet = new ArpPacket(bytes);
  if (
    packet.hardwareType !== ARP_HTYPE_ETHERNET ||
    packet.protocolType !== EtherType.Ipv4 ||
    packet.hardwareLen !== 6 ||
    packet.protocolLen !== 4
  ) {
    return err('unsupported');
  }
  if (bytes.length < ARP_PACKET_LEN) return err('truncated');
  const operation = packet.operation;
  if (operation !== ArpOperation.Request && operation !== ArpOperation.Reply) return err('unsupported');
  return ok({
    operation,
    senderMac: packet.senderMac,
    senderIp: packet.senderIp,
    targetMac: packet.targetMac,
    targetIp: packet.targetIp,
  });
}

/**
 * Writes the 28-byte packet of `repr` at `out[offset]`. Returns ARP_PACKET_LEN.
 * Throws RangeError when `out` has no room for it.
 */
export function emitArp(repr: ArpRepr, out: Uint8Array, offset = 0): number {
  if (offset + ARP_PACKET_LEN > out.length) throw new RangeError('No room for an ARP packet');
  const packet = new ArpPacket(out.subarray(offset));
  packet.hardwareType = ARP_HTYPE_ETHERNET;
  packet.protocolType = EtherType.Ipv4;
  packet.hardwareLen = 6;
  packet.protocolLen = 4;
  packet.operation = repr.operation;
  packet.senderMac = repr.senderMac;
  packet.senderIp = repr.senderIp;
  packet.targetMac = repr.targetMac;
  packet.targetIp = repr.targetIp;
  return ARP_PACKET_LEN;
}
