import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ENCRYPTION_OVERHEAD_V1,
  Keyring,
  decryptPayload,
  encryptPayload,
  encryptedLength,
} from '../../../src/wire/memberlist/crypto.js';
import { decodePacket } from '../../../src/wire/memberlist/codec.js';
import { SeededRng } from '../../../src/lib/rng.js';
import { toHex } from '../../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../../helpers/fuzz.js';
import { GO_PING, loadSerfCapture } from './fixtures.js';

const key = (fill: number, len = 32): Uint8Array => new Uint8Array(len).fill(fill);
const KEY_A = key(1);
const KEY_B = key(2);

describe('keyring (ML keyring.go)', () => {
  it('takes AES-128, -192 and -256 keys and refuses other lengths', () => {
    for (const len of [16, 24, 32]) expect(new Keyring([key(1, len)]).primaryKey.length).toBe(len);
    for (const len of [0, 15, 31, 33, 64]) expect(() => new Keyring([key(1, len)])).toThrow(RangeError);
    expect(() => new Keyring([])).toThrow(RangeError);
  });

  it('reads serf keygen’s base64 keys', () => {
    const text = Buffer.from(KEY_A).toString('base64');
    expect(toHex(Keyring.fromBase64(text).primaryKey)).toBe(toHex(KEY_A));
    expect(() => Keyring.fromBase64('c2hvcnQ=')).toThrow(RangeError);
  });

  it('keeps the primary first, installs, switches and removes keys', () => {
    const ring = new Keyring([KEY_A]);
    ring.addKey(KEY_B);
    ring.addKey(KEY_B);
    expect(ring.keys.map(toHex)).toEqual([toHex(KEY_A), toHex(KEY_B)]);
    ring.useKey(KEY_B);
    expect(ring.keys.map(toHex)).toEqual([toHex(KEY_B), toHex(KEY_A)]);
    expect(ring.removeKey(KEY_B)).toBe(false); // the primary cannot be removed
    expect(ring.removeKey(KEY_A)).toBe(true);
    expect(ring.keys.map(toHex)).toEqual([toHex(KEY_B)]);
  });
});

describe('AES-GCM payloads (ML security.go, spec §10)', () => {
  const seq = new SeededRng(1);
  const fillRandom = (out: Uint8Array): void => void seq.fill(out);

  it('lays out version 1 as [1][nonce 12][ciphertext][tag 16], 29 bytes over the plaintext', () => {
    const blob = encryptPayload(new Keyring([KEY_A]), GO_PING, new Uint8Array(0), { fillRandom });
    expect(blob.length).toBe(GO_PING.length + ENCRYPTION_OVERHEAD_V1);
    expect(blob[0]).toBe(1);
    expect(encryptedLength(1, 215)).toBe(244); // §17.12: 0xf4 = 1 + 12 + 215 + 16
  });

  it('pads version 0 with PKCS#7 to the block size', () => {
    expect(encryptedLength(0, 0)).toBe(45);
    expect(encryptedLength(0, 15)).toBe(45);
    expect(encryptedLength(0, 16)).toBe(61);
    for (const n of [0, 1, 15, 16, 17, 100]) {
      const plain = new Uint8Array(n).fill(9);
      const blob = encryptPayload(new Keyring([KEY_A]), plain, new Uint8Array(0), { version: 0, fillRandom });
      expect(blob.length).toBe(encryptedLength(0, n));
      const r = decryptPayload(new Keyring([KEY_A]), blob);
      expect(r.ok && toHex(r.value)).toBe(toHex(plain));
    }
  });

  it('opens what it sealed, with every key size and either version', () => {
    fc.assert(
      fc.property(fc.constantFrom(16, 24, 32), fc.constantFrom<0 | 1>(0, 1), fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 8 }), (len, version, plain, aad) => {
        const ring = new Keyring([key(len, len)]);
        const blob = encryptPayload(ring, plain, aad, { version });
        const r = decryptPayload(ring, blob, aad);
        expect(r.ok && toHex(r.value)).toBe(toHex(plain));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('tries every installed key, so traffic sealed with a secondary key still opens', () => {
    const blob = encryptPayload(new Keyring([KEY_B]), GO_PING);
    const ring = new Keyring([KEY_A, KEY_B]);
    const r = decryptPayload(ring, blob);
    expect(r.ok && toHex(r.value)).toBe(toHex(GO_PING));
  });

  it('refuses a wrong key, a changed byte anywhere and a different AAD', () => {
    const ring = new Keyring([KEY_A]);
    const aad = Uint8Array.of(10, 0, 0, 0, 80);
    const blob = encryptPayload(ring, GO_PING, aad);
    expect(decryptPayload(new Keyring([KEY_B]), blob, aad)).toEqual({ ok: false, error: 'decrypt-failed' });
    expect(decryptPayload(ring, blob)).toEqual({ ok: false, error: 'decrypt-failed' });
    for (let i = 1; i < blob.length; i++) {
      const bad = blob.slice();
      bad[i]! ^= 0x40;
      expect(decryptPayload(ring, bad, aad)).toEqual({ ok: false, error: 'decrypt-failed' });
    }
  });

  it('refuses unknown versions and blobs below the minimum length', () => {
    const ring = new Keyring([KEY_A]);
    const blob = encryptPayload(ring, GO_PING);
    const v2 = blob.slice();
    v2[0] = 2;
    expect(decryptPayload(ring, v2)).toEqual({ ok: false, error: 'bad-encryption-version' });
    expect(decryptPayload(ring, new Uint8Array(0))).toEqual({ ok: false, error: 'truncated' });
    expect(decryptPayload(ring, blob.subarray(0, 28))).toEqual({ ok: false, error: 'truncated' });
    const v0 = blob.slice(0, 44);
    v0[0] = 0;
    expect(decryptPayload(ring, v0)).toEqual({ ok: false, error: 'truncated' });
  });

  it('opens every encrypted datagram serf sent with the key it was given', () => {
    const cap = loadSerfCapture();
    const ring = Keyring.fromBase64(cap.key);
    expect(cap.udpEncrypted.length).toBeGreaterThan(10);
    for (const d of cap.udpEncrypted) {
      expect(d.bytes[0]).toBe(1); // serf sends version 1 (§17.12)
      const r = decodePacket(d.bytes, { keyring: ring });
      expect(r.ok && r.value.length).toBeGreaterThan(0);
      expect(decodePacket(d.bytes, { keyring: new Keyring([KEY_A]) })).toEqual({ ok: false, error: 'decrypt-failed' });
    }
  });

  it('never throws on any bytes', () => {
    const ring = new Keyring([KEY_A, key(3, 16)]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        const r = decryptPayload(ring, bytes);
        expect(r.ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
