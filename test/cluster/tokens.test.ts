import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { base36, newObjectId } from '../../src/cluster/ids.js';
import { caDigestHex, generateJoinToken, parseJoinToken } from '../../src/cluster/tokens.js';
import { SeededRng } from '../../src/lib/rng.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('object IDs', () => {
  it('are 25 lowercase base-36 characters, like swarmkit identity.NewID', () => {
    const rng = new SeededRng(1);
    for (let i = 0; i < 100; i++) expect(newObjectId(rng)).toMatch(/^[0-9a-z]{25}$/);
  });

  it('pads base 36 with leading zeros', () => {
    expect(base36(Uint8Array.of(0, 0, 35), 4)).toBe('000z');
    expect(base36(Uint8Array.of(1, 0), 3)).toBe('074'); // 256 = 7·36 + 4
  });
});

describe('join tokens', () => {
  it('have Swarm format SWMTKN-1-<50 base36 digest>-<25 base36 secret>', () => {
    expect(generateJoinToken(CA, new SeededRng(2))).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  });

  it('carry the SHA-256 of the CA certificate, recovered by parseJoinToken', () => {
    const token = generateJoinToken(CA, new SeededRng(3));
    const parsed = parseJoinToken(token);
    expect(parsed).toEqual({ ok: true, value: { caDigestHex: caDigestHex(CA), secret: token.slice(-25) } });
  });

  it('differ in the secret only, for the same CA', () => {
    const rng = new SeededRng(4);
    const a = generateJoinToken(CA, rng);
    const b = generateJoinToken(CA, rng);
    expect(a.slice(0, 60)).toBe(b.slice(0, 60));
    expect(a).not.toBe(b);
  });

  it.each([
    ['', 'invalid join token'],
    ['SWMTKN-1-abc-def', 'invalid join token'],
    ['SWMTKN-2-' + '0'.repeat(50) + '-' + '0'.repeat(25), 'unsupported join token version "2"'],
    ['XXXXXX-1-' + '0'.repeat(50) + '-' + '0'.repeat(25), 'invalid join token'],
    ['SWMTKN-1-' + 'Z'.repeat(50) + '-' + '0'.repeat(25), 'invalid join token'],
    ['SWMTKN-1-' + 'z'.repeat(50) + '-' + '0'.repeat(25), 'invalid join token'], // digest above 2^256
  ])('refuses %j', (token, error) => {
    expect(parseJoinToken(token)).toEqual({ ok: false, error });
  });

  it('never throws on arbitrary text', () => {
    fc.assert(fc.property(fc.string(), (s) => typeof parseJoinToken(s).ok === 'boolean'), { numRuns: FUZZ_RUNS });
  });
});
