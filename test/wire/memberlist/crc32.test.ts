import { describe, expect, it } from 'vitest';
import { crc32 } from '../../../src/wire/memberlist/crc32.js';
import { GO_CRC_COMPOUND } from './fixtures.js';

describe('crc32 (CRC-32/IEEE, spec §4)', () => {
  it('gives the catalogue check value for "123456789"', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('is 0 for no bytes', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('matches the CRC serf put on a compound of two alives (§17.4)', () => {
    expect(crc32(GO_CRC_COMPOUND.subarray(5))).toBe(0xa9c4d684);
  });

  it('changes when any single bit of the input flips', () => {
    const data = GO_CRC_COMPOUND.slice(5);
    const base = crc32(data);
    for (let i = 0; i < data.length * 8; i++) {
      data[i >> 3]! ^= 1 << (i & 7);
      expect(crc32(data)).not.toBe(base);
      data[i >> 3]! ^= 1 << (i & 7);
    }
  });
});
