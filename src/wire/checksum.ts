/**
 * The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of
 * the data taken as big-endian 16-bit words, an odd last byte padded with zero.
 *
 * Sums are accumulated unfolded in a double (exact far beyond any packet size) and folded once.
 */
import type { Ipv4Address } from './address.js';

/** Adds the 16-bit words of `data` to `acc` (unfolded). `data` must start on a word boundary of the checksummed region. */
export function sumWords(data: Uint8Array, acc = 0): number {
  const n = data.length;
  const even = n & ~1;
  let sum = acc;
  for (let i = 0; i < even; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (n & 1) sum += data[n - 1]! << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for `data` (with the checksum field zeroed), plus an optional pre-sum. */
export function internetChecksum(data: Uint8Array, acc = 0): number {
  return ~foldSum(sumWords(data, acc)) & 0xffff;
}

/** True when `data`, checksum field included, sums to 0xffff: the RFC 1071 receive check. */
export function verifyChecksum(data: Uint8Array, acc = 0): boolean {
  return foldSum(sumWords(data, acc)) === 0xffff;
}

/**
 * The sum of the IPv4 pseudo-header used by UDP and TCP (RFC 768, RFC 9293 §3.1): source,
 * destination, zero, protocol, and the transport length (header plus payload).
 */
export function ipv4PseudoHeaderSum(src: Ipv4Address, dst: Ipv4Address, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}
