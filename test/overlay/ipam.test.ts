import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/lib/errors.js';
import {
  DEFAULT_POOL,
  type Subnet,
  allocateAddress,
  allocateSubnet,
  allocateVni,
  formatSubnet,
  gatewayOf,
  parseInterfaceAddress,
  parseSubnet,
  subnetContains,
  subnetsOverlap,
} from '../../src/overlay/ipam.js';
import { formatIpv4Address, parseIpv4Address } from '../../src/wire/address.js';
import { PROPERTY_RUNS } from '../helpers/fuzz.js';

function ip(text: string): number {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

const pool = parseSubnet(DEFAULT_POOL);

describe('parseSubnet / formatSubnet', () => {
  it.each([
    ['100.64.0.0/10', ip('100.64.0.0'), 10],
    ['100.64.1.0/24', ip('100.64.1.0'), 24],
    ['0.0.0.0/0', 0, 0],
    ['255.255.255.255/32', 0xffffffff, 32],
    ['10.0.0.0/8', ip('10.0.0.0'), 8],
  ])('%s', (text, base, prefixLen) => {
    const s = parseSubnet(text);
    expect(s).toEqual({ base, prefixLen });
    expect(formatSubnet(s)).toBe(text);
  });

  it.each([
    ['100.64.0.5/24', /not a network address \(did you mean 100\.64\.0\.0\/24\?\)/],
    ['100.64.0.0', /expected a\.b\.c\.d\/n/],
    ['100.64.0.0/33', /expected a\.b\.c\.d\/n/],
    ['100.64.0.0/024', /expected a\.b\.c\.d\/n/],
    ['100.64.0.0/', /expected a\.b\.c\.d\/n/],
    ['100.64.0/24', /Not an IPv4 address/],
    ['300.64.0.0/24', /Not an IPv4 address/],
    ['', /expected a\.b\.c\.d\/n/],
  ])('refuses %j', (text, message) => {
    expect(() => parseSubnet(text)).toThrow(InvalidArgumentError);
    expect(() => parseSubnet(text)).toThrow(message);
  });

  it('never throws anything but InvalidArgumentError on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 24 }), (text) => {
        try {
          const s = parseSubnet(text);
          expect(formatSubnet(s)).toBe(text);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidArgumentError);
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});

describe('subnetContains / subnetsOverlap / gatewayOf', () => {
  const s = parseSubnet('100.64.1.0/24');
  it.each([
    ['100.64.0.255', false],
    ['100.64.1.0', true],
    ['100.64.1.255', true],
    ['100.64.2.0', false],
  ])('%s in 100.64.1.0/24: %s', (addr, inside) => {
    expect(subnetContains(s, ip(addr))).toBe(inside);
  });

  it.each([
    ['100.64.1.0/24', '100.64.0.0/16', true],
    ['100.64.1.0/24', '100.64.2.0/24', false],
    ['100.64.0.0/23', '100.64.1.0/24', true],
    ['100.64.0.0/10', '100.128.0.0/10', false],
  ])('%s and %s overlap: %s', (a, b, overlap) => {
    expect(subnetsOverlap(parseSubnet(a), parseSubnet(b))).toBe(overlap);
    expect(subnetsOverlap(parseSubnet(b), parseSubnet(a))).toBe(overlap);
  });

  it('puts the gateway on the first host', () => {
    expect(formatIpv4Address(gatewayOf(s))).toBe('100.64.1.1');
  });
});

describe('allocateSubnet', () => {
  const subnets = (...texts: string[]): Subnet[] => texts.map(parseSubnet);

  it.each<[string, number, string[], string | undefined]>([
    ['empty pool: the first /24', 24, [], '100.64.0.0/24'],
    ['after ingress', 24, ['100.64.0.0/24'], '100.64.1.0/24'],
    ['fills a hole first', 24, ['100.64.0.0/24', '100.64.2.0/24'], '100.64.1.0/24'],
    ['skips a larger block, aligned', 24, ['100.64.0.0/24', '100.64.0.0/22'], '100.64.4.0/24'],
    ['a /22 after a /24 starts aligned', 22, ['100.64.0.0/24'], '100.64.4.0/22'],
    ['a smaller block inside a candidate pushes it on', 24, ['100.64.0.128/25'], '100.64.1.0/24'],
    ['unsorted input', 24, ['100.64.1.0/24', '100.64.0.0/24'], '100.64.2.0/24'],
    ['blocks outside the pool are ignored', 24, ['10.0.0.0/8', '192.168.0.0/24'], '100.64.0.0/24'],
    ['a supernet of the pool fills it', 24, ['100.0.0.0/8'], undefined],
    ['a prefix shorter than the pool never fits', 9, [], undefined],
    ['the whole pool', 10, [], '100.64.0.0/10'],
    ['the whole pool, taken', 10, ['100.127.255.0/24'], undefined],
  ])('%s', (_name, prefixLen, taken, expected) => {
    const got = allocateSubnet(pool, prefixLen, subnets(...taken));
    expect(got === undefined ? undefined : formatSubnet(got)).toBe(expected);
  });

  it('hands out the last /24 of the pool, then nothing', () => {
    const small = parseSubnet('100.64.0.0/22');
    const taken: Subnet[] = [];
    for (let i = 0; i < 4; i++) taken.push(allocateSubnet(small, 24, taken)!);
    expect(taken.map(formatSubnet)).toEqual(['100.64.0.0/24', '100.64.1.0/24', '100.64.2.0/24', '100.64.3.0/24']);
    expect(allocateSubnet(small, 24, taken)).toBeUndefined();
  });

  it('refuses a prefix length that is not 0 to 32', () => {
    expect(() => allocateSubnet(pool, 33, [])).toThrow(InvalidArgumentError);
    expect(() => allocateSubnet(pool, 24.5, [])).toThrow(InvalidArgumentError);
  });

  it('property: successive allocations lie in the pool, are aligned and never overlap anything taken', () => {
    const arbTaken = fc.array(
      fc.record({ offset: fc.integer({ min: 0, max: 2 ** 12 - 1 }), prefixLen: fc.integer({ min: 18, max: 30 }) }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(arbTaken, fc.integer({ min: 20, max: 28 }), fc.integer({ min: 1, max: 20 }), (raw, prefixLen, rounds) => {
        const small = parseSubnet('100.64.0.0/16');
        const taken: Subnet[] = raw.map(({ offset, prefixLen: p }) => {
          const size = 2 ** (32 - p);
          return { base: small.base + Math.floor((offset * 16) / size) * size, prefixLen: p };
        });
        for (let i = 0; i < rounds; i++) {
          const s = allocateSubnet(small, prefixLen, taken);
          if (s === undefined) break;
          expect(s.prefixLen).toBe(prefixLen);
          expect(s.base % 2 ** (32 - prefixLen)).toBe(0);
          expect(subnetContains(small, s.base) && subnetContains(small, s.base + 2 ** (32 - prefixLen) - 1)).toBe(true);
          for (const t of taken) expect(subnetsOverlap(s, t)).toBe(false);
          taken.push(s);
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});

describe('allocateVni', () => {
  it.each<[number[], number | undefined, number | undefined]>([
    [[], undefined, 4096],
    [[4096], undefined, 4097],
    [[4096, 4098], undefined, 4097],
    [[1, 2], 1, 3],
    [[0xff_fffe], 0xff_fffe, 0xff_ffff],
    [[0xff_ffff], 0xff_ffff, undefined],
  ])('taken %j from %s → %s', (taken, first, expected) => {
    expect(allocateVni(new Set(taken), first)).toBe(expected);
  });

  it('refuses a first VNI outside 1 to 2^24 − 1', () => {
    expect(() => allocateVni(new Set(), 0)).toThrow(InvalidArgumentError);
    expect(() => allocateVni(new Set(), 2 ** 24)).toThrow(InvalidArgumentError);
  });
});

describe('allocateAddress', () => {
  const s = parseSubnet('100.64.1.0/24');
  const addrs = (...texts: string[]): Set<number> => new Set(texts.map(ip));
  const fmt = (a: number | undefined): string | undefined => (a === undefined ? undefined : formatIpv4Address(a));

  it.each<[string, Set<number>, { firstHost?: number; lastHost?: number } | undefined, string | undefined]>([
    ['first host after the gateway', addrs(), undefined, '100.64.1.2'],
    ['skips taken', addrs('100.64.1.2', '100.64.1.3'), undefined, '100.64.1.4'],
    ['firstHost 128 (ingress)', addrs(), { firstHost: 128 }, '100.64.1.128'],
    ['firstHost 0 still skips network and gateway', addrs(), { firstHost: 0 }, '100.64.1.2'],
    ['never broadcast', addrs(...Array.from({ length: 127 }, (_, i) => `100.64.1.${128 + i}`)), { firstHost: 128 }, undefined],
    ['lastHost bounds the range', addrs('100.64.1.2'), { lastHost: 2 }, undefined],
  ])('%s', (_name, taken, options, expected) => {
    expect(fmt(allocateAddress(s, taken, options))).toBe(expected);
  });

  it('a /31 and a /32 have no host addresses', () => {
    expect(allocateAddress(parseSubnet('100.64.1.0/31'), new Set())).toBeUndefined();
    expect(allocateAddress(parseSubnet('100.64.1.0/32'), new Set())).toBeUndefined();
  });

  it('property: addresses handed out one after another are unique, inside, and never network, gateway or broadcast', () => {
    fc.assert(
      fc.property(fc.integer({ min: 24, max: 30 }), fc.integer({ min: 0, max: 300 }), fc.array(fc.integer({ min: 0, max: 1023 }), { maxLength: 30 }), (prefixLen, firstHost, pre) => {
        const sub = { base: ip('100.64.4.0'), prefixLen };
        const size = 2 ** (32 - prefixLen);
        const taken = new Set(pre.map((o) => sub.base + (o % size)));
        const got: number[] = [];
        for (let i = 0; i < size; i++) {
          const a = allocateAddress(sub, taken, { firstHost });
          if (a === undefined) break;
          got.push(a);
          taken.add(a);
        }
        for (const a of got) {
          expect(subnetContains(sub, a)).toBe(true);
          expect([sub.base, sub.base + 1, sub.base + size - 1]).not.toContain(a);
          expect(a - sub.base).toBeGreaterThanOrEqual(firstHost);
          expect(pre.map((o) => sub.base + (o % size))).not.toContain(a);
        }
        expect(new Set(got).size).toBe(got.length);
      }),
      // Each run hands out a whole subnet one address at a time: a few hundred runs cover it.
      { numRuns: Math.min(PROPERTY_RUNS, 300) },
    );
  });
});

describe('parseInterfaceAddress', () => {
  it.each([
    ['100.64.0.131/24', { address: ip('100.64.0.131'), prefixLen: 24 }],
    ['100.64.0.131', { address: ip('100.64.0.131'), prefixLen: 32 }],
    ['100.64.0.131/33', undefined],
    ['junk/24', undefined],
  ])('%s', (text, expected) => {
    expect(parseInterfaceAddress(text)).toEqual(expected);
  });
});
