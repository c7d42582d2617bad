/**
 * The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of
 * the data taken as big-endian 16-bit words, an odd last byte padded with zero.
 *
 * Sums are accumulated unfolded in a double (exact far beyond any packet size) and folded once.
 */
import type { Ipv4Address } from './address.js';

/**
 * Adds the 16-bit big-endian words of `data` to `acc`, returning a sum that foldSum() reduces
 * to the one's complement sum (carries may be folded early); an odd last byte is padded
 * with zero. `data` must start on a word boundary of the checksummed region. Every packet is
 * summed at least twice (emit and parse), so this reads four bytes per step: when the bytes
 * are 4-byte aligned in memory they are read as native (little-endian) 32-bit words, whose
 * 16-bit halves sum to the byte-swapped sum (RFC 1071 §2(B): the sum is byte-order
 * independent), swapped back after folding.
 */
export function sumWords(data: Uint8Array, acc = 0): number {
  let sum = acc;
  let i = 0;
  const end = data.length;
  // One big-endian word first when that brings the rest to a 4-byte boundary in memory (the
  // usual case: IPv4 and Ethernet headers in front leave TCP 2 bytes off alignment).
  if (((data.byteOffset + i) & 3) === 2 && end >= 2) {
    sum += (data[0]! << 8) | data[1]!;
    i = 2;
  }
  const words = (end - i) >>> 2;
  if (LITTLE_ENDIAN && ((data.byteOffset + i) & 3) === 0) {
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    let swapped = 0;
    for (let k = 0; k < words; k++) {
      const w = view[k]!;
      swapped += (w & 0xffff) + (w >>> 16);
    }
    swapped = foldSum(swapped);
    sum += ((swapped & 0xff) << 8) | (swapped >>> 8);
  } else {
    const view = new DataView(data.buffer, data.byteOffset + i, words * 4);
    for (let k = 0; k < words * 4; k += 4) {
      const w = view.getUint32(k);
      sum += (w >>> 16) + (w & 0xffff);
    }
  }
  i += words * 4;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

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
