/**
 * Swarm object IDs and the base-36 encoding Swarm uses for IDs and join tokens
 * (swarmkit identity.NewID: 128 random bits, base 36, zero-padded to 25 characters).
 */
import type { Rng } from '../lib/rng.js';

export const ID_LENGTH = 25;

/** `bytes` as a big-endian unsigned integer in lowercase base 36, left-padded with zeros to `width`. */
export function base36(bytes: Uint8Array, width: number): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n.toString(36).padStart(width, '0');
}

/** A fresh 25-character object ID (node, cluster, service, task) from `rng`. */
export function newObjectId(rng: Rng): string {
  return base36(rng.fill(new Uint8Array(16)), ID_LENGTH);
}
