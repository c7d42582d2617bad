/**
 * Addresses as plain numbers: an IPv4 address is its unsigned 32-bit value, a MAC address
 * its 48-bit value (exact in a double). Numbers compare with ===, key Maps, and cost no
 * allocation on the packet path; strings are for humans and configuration only.
 */
import { type Result, ok, err } from '../lib/result.js';
import { readU32, writeU32 } from './bytes.js';

export type Ipv4Address = number;
export type MacAddress = number;

export const IPV4_BROADCAST: Ipv4Address = 0xffffffff;
export const MAC_BROADCAST: MacAddress = 0xffff_ffff_ffff;
export const MAC_ZERO: MacAddress = 0;

export function readIpv4(buf: Uint8Array, offset: number): Ipv4Address {
  return readU32(buf, offset);
}

export function writeIpv4(buf: Uint8Array, offset: number, addr: Ipv4Address): void {
  writeU32(buf, offset, addr);
}

export function readMac(buf: Uint8Array, offset: number): MacAddress {
  const hi = (buf[offset]! << 8) | buf[offset + 1]!;
  const lo = ((buf[offset + 2]! << 24) | (buf[offset + 3]! << 16) | (buf[offset + 4]! << 8) | buf[offset + 5]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}

export function writeMac(buf: Uint8Array, offset: number, mac: MacAddress): void {
  const hi = Math.floor(mac / 0x1_0000_0000);
  const lo = mac >>> 0;
  buf[offset] = hi >>> 8;
  buf[offset + 1] = hi & 0xff;
  buf[offset + 2] = lo >>> 24;
  buf[offset + 3] = (lo >>> 16) & 0xff;
  buf[offset + 4] = (lo >>> 8) & 0xff;
  buf[offset + 5] = lo & 0xff;
}

export function formatIpv4Address(addr: Ipv4Address): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

export function parseIpv4Address(text: string): Result<Ipv4Address> {
  const parts = text.split('.');
  if (parts.length !== 4) return err(`Not an IPv4 address: ${JSON.stringify(text)}`);
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return err(`Not an IPv4 address: ${JSON.stringify(text)}`);
    value = value * 256 + Number(part);
  }
  return ok(value);
}

export function formatMacAddress(mac: MacAddress): string {
  const out: string[] = [];
  for (let i = 5; i >= 0; i--) out.push((Math.floor(mac / 2 ** (8 * i)) & 0xff).toString(16).padStart(2, '0'));
  return out.join(':');
}

export function parseMacAddress(text: string): Result<MacAddress> {
  const parts = text.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) return err(`Not a MAC address: ${JSON.stringify(text)}`);
  return ok(parts.reduce((acc, p) => acc * 256 + parseInt(p, 16), 0));
}

/**
 * Swarm's rule for overlay MACs: 02:42 followed by the four bytes of the IPv4 address, so a
 * peer's MAC follows from its address and no ARP flooding is needed (ARCHITECTURE.md).
 */
export function macForIpv4(addr: Ipv4Address): MacAddress {
  return 0x0242 * 0x1_0000_0000 + (addr >>> 0);
}

/** True when `addr` lies in `network/prefixLen`. */
export function inSubnet(addr: Ipv4Address, network: Ipv4Address, prefixLen: number): boolean {
  if (prefixLen === 0) return true;
  const mask = (0xffffffff << (32 - prefixLen)) >>> 0;
  return ((addr & mask) >>> 0) === ((network & mask) >>> 0);
}
