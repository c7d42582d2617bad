/**
 * Join tokens in Swarm's format, `SWMTKN-1-<digest>-<secret>` (swarmkit ca/config.go
 * GenerateJoinToken): the digest is the SHA-256 of the root CA certificate (its PEM bytes, as
 * swarmkit's digest.FromBytes(rootCA.Certs)) written in base 36 and padded to 50 characters; the
 * secret is 128 random bits in base 36 padded to 25. A joining node trusts a manager only if
 * the CA that manager presents hashes to the token's digest, and the manager admits the node
 * only if the secret is the current one for the role.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Result, err, ok } from '../lib/result.js';
import type { Rng } from '../lib/rng.js';
import { base36 } from './ids.js';

const PREFIX = 'SWMTKN';
const VERSION = '1';
const DIGEST_LENGTH = 50;
const SECRET_LENGTH = 25;

export interface ParsedJoinToken {
  /** SHA-256 of the CA certificate, lowercase hex (64 characters). */
  readonly caDigestHex: string;
  readonly secret: string;
}

/** SHA-256 of a CA certificate's PEM text, as lowercase hex. */
export function caDigestHex(caCertPem: string): string {
  return createHash('sha256').update(caCertPem, 'utf8').digest('hex');
}

export function generateJoinToken(caCertPem: string, rng: Rng): string {
  const digest = base36(Buffer.from(caDigestHex(caCertPem), 'hex'), DIGEST_LENGTH);
  const secret = base36(rng.fill(new Uint8Array(16)), SECRET_LENGTH);
  return `${PREFIX}-${VERSION}-${digest}-${secret}`;
}

/** Splits a token into digest and secret. Refuses anything not in the exact format. */
export function parseJoinToken(token: string): Result<ParsedJoinToken> {
  const parts = token.split('-');
  if (parts.length !== 4 || parts[0] !== PREFIX) return err('invalid join token');
  if (parts[1] !== VERSION) return err(`unsupported join token version ${JSON.stringify(parts[1])}`);
  const [, , digest, secret] = parts as [string, string, string, string];
  if (digest.length !== DIGEST_LENGTH || !/^[0-9a-z]+$/.test(digest)) return err('invalid join token');
  if (secret.length !== SECRET_LENGTH || !/^[0-9a-z]+$/.test(secret)) return err('invalid join token');
  let n = 0n;
  for (const c of digest) n = n * 36n + BigInt(parseInt(c, 36));
  if (n >= 1n << 256n) return err('invalid join token');
  return ok({ caDigestHex: n.toString(16).padStart(64, '0'), secret });
}

/** Compares two tokens in constant time (they are secrets). */
export function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
