/**
 * memberlist's encryption: a keyring of AES keys and the AES-GCM blob format that serf's
 * `-encrypt=<base64 key>` uses (spec §10, `ML security.go:12-139`, `ML keyring.go:9-80`).
 *
 *   blob = [version:1][nonce:12][GCM ciphertext][tag:16]
 *
 * Version 1 (what memberlist protocol ≥ 2 sends, and serf sends) seals the plaintext as is;
 * version 0 first adds PKCS#7 padding to a multiple of 16. Both are accepted on receipt.
 * UDP: the whole datagram is the blob, no AAD. TCP: `[10][uint32 BE length][blob]` with the
 * 5-byte header as AAD (stream.ts).
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { type Result, ok, err } from '../../lib/result.js';

export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
const BLOCK_SIZE = 16;
/** The highest encryption version memberlist 0.2.2 knows (`ML security.go:20-31`). */
export const MAX_ENCRYPTION_VERSION = 1;
/** Version 1 overhead: version byte, nonce and tag (29 bytes; spec §17.12). */
export const ENCRYPTION_OVERHEAD_V1 = 1 + NONCE_SIZE + TAG_SIZE;

export type EncryptionVersion = 0 | 1;

/** Why a blob did not open. */
export type DecryptError = 'decrypt-failed' | 'bad-encryption-version' | 'truncated';

/** Fills a buffer with random bytes: node:crypto by default; tests may pass a deterministic one. */
export type FillRandom = (out: Uint8Array) => void;

const defaultFillRandom: FillRandom = (out) => {
  randomFillSync(out);
};

/**
 * An ordered set of AES keys (`ML keyring.go`). The primary key encrypts; decryption tries
 * every key in order, primary first. Keys are 16, 24 or 32 bytes (AES-128/192/256); `serf
 * keygen` makes 32.
 */
export class Keyring {
  #keys: Uint8Array[];

  /**
   * `keys[0]` is the primary. Throws RangeError when there is no key or one has a length AES
   * does not take (a configuration mistake, not untrusted input).
   */
  constructor(keys: readonly Uint8Array[]) {
    if (keys.length === 0) throw new RangeError('A keyring needs at least one key');
    for (const k of keys) checkKey(k);
    this.#keys = dedupe(keys.map((k) => k.slice()));
  }

  /** A keyring from serf's base64 key text (`serf keygen`, `-encrypt=`). Throws RangeError on a bad key. */
  static fromBase64(primary: string, ...others: string[]): Keyring {
    return new Keyring([primary, ...others].map((t) => Uint8Array.from(Buffer.from(t, 'base64'))));
  }

  get primaryKey(): Uint8Array {
    return this.#keys[0]!;
  }

  /** Every installed key, primary first (copies). */
  get keys(): Uint8Array[] {
    return this.#keys.map((k) => k.slice());
  }

  /** Installs a key (not primary) if absent. Throws RangeError on a bad length. */
  addKey(key: Uint8Array): void {
    checkKey(key);
    this.#keys = dedupe([...this.#keys, key.slice()]);
  }

  /** Makes an installed or new key the primary one. Throws RangeError on a bad length. */
  useKey(key: Uint8Array): void {
    checkKey(key);
    this.#keys = dedupe([key.slice(), ...this.#keys]);
  }

  /** Removes a non-primary key; returns false when it is the primary or not installed. */
  removeKey(key: Uint8Array): boolean {
    const i = this.#keys.findIndex((k) => sameBytes(k, key));
    if (i <= 0) return false;
    this.#keys.splice(i, 1);
    return true;
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new RangeError(`An AES key is 16, 24 or 32 bytes, not ${key.length}`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function dedupe(keys: Uint8Array[]): Uint8Array[] {
  return keys.filter((k, i) => keys.findIndex((o) => sameBytes(o, k)) === i);
}

function cipherName(key: Uint8Array): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  return key.length === 16 ? 'aes-128-gcm' : key.length === 24 ? 'aes-192-gcm' : 'aes-256-gcm';
}

/** The blob length for a plaintext of `n` bytes (`ML security.go:58-83` encryptedLength). */
export function encryptedLength(version: EncryptionVersion, n: number): number {
  if (version === 1) return ENCRYPTION_OVERHEAD_V1 + n;
  return 1 + NONCE_SIZE + (n + BLOCK_SIZE - (n % BLOCK_SIZE)) + TAG_SIZE;
}

/**
 * Seals `plaintext` with the keyring's primary key into a new blob (`ML security.go:86-120`).
 * `aad` is empty for UDP and the 5-byte stream header for TCP. Never throws for a valid keyring.
 */
export function encryptPayload(
  keyring: Keyring,
  plaintext: Uint8Array,
  aad: Uint8Array = new Uint8Array(0),
  options: { version?: EncryptionVersion; fillRandom?: FillRandom } = {},
): Uint8Array {
  const version = options.version ?? 1;
  const key = keyring.primaryKey;
  const out = new Uint8Array(encryptedLength(version, plaintext.length));
  out[0] = version;
  const nonce = out.subarray(1, 1 + NONCE_SIZE);
  (options.fillRandom ?? defaultFillRandom)(nonce);
  let input = plaintext;
  if (version === 0) {
    // PKCS#7: 1..16 bytes, each equal to the pad length (`ML security.go:33-46`).
    const pad = BLOCK_SIZE - (plaintext.length % BLOCK_SIZE);
    input = new Uint8Array(plaintext.length + pad);
    input.set(plaintext);
    input.fill(pad, plaintext.length);
  }
  const cipher = createCipheriv(cipherName(key), key, nonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(aad);
  const a = cipher.update(input);
  const b = cipher.final();
  out.set(a, 1 + NONCE_SIZE);
  out.set(b, 1 + NONCE_SIZE + a.length);
  out.set(cipher.getAuthTag(), 1 + NONCE_SIZE + input.length);
  return out;
}

/**
 * Opens a blob with each key of the keyring in turn (`ML security.go:171-201`). Refuses
 * versions above 1 ('bad-encryption-version'), blobs shorter than the minimum for their
 * version ('truncated'), and blobs no key opens or with bad v0 padding ('decrypt-failed').
 * Never throws; the plaintext is a new buffer.
 */
export function decryptPayload(keyring: Keyring, blob: Uint8Array, aad: Uint8Array = new Uint8Array(0)): Result<Uint8Array, DecryptError> {
  if (blob.length === 0) return err('truncated');
  const version = blob[0]!;
  if (version > MAX_ENCRYPTION_VERSION) return err('bad-encryption-version');
  if (blob.length < encryptedLength(version as EncryptionVersion, 0)) return err('truncated');
  const nonce = blob.subarray(1, 1 + NONCE_SIZE);
  const ciphertext = blob.subarray(1 + NONCE_SIZE, blob.length - TAG_SIZE);
  const tag = blob.subarray(blob.length - TAG_SIZE);
  for (const key of keyring.keys) {
    const plain = open(key, nonce, ciphertext, tag, aad);
    if (!plain) continue;
    if (version === 1) return ok(plain);
    const pad = plain[plain.length - 1] ?? 0;
    if (pad < 1 || pad > BLOCK_SIZE || pad > plain.length) return err('decrypt-failed');
    return ok(plain.subarray(0, plain.length - pad));
  }
  return err('decrypt-failed');
}

function open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  try {
    const decipher = createDecipheriv(cipherName(key), key, nonce, { authTagLength: TAG_SIZE });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const a = decipher.update(ciphertext);
    const b = decipher.final(); // throws when the tag does not authenticate
    if (b.length === 0) return new Uint8Array(a.buffer, a.byteOffset, a.length);
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  } catch {
    return undefined;
  }
}
