import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { foldSum, internetChecksum, ipv4PseudoHeaderSum, sumWords, verifyChecksum } from '../../src/wire/checksum.js';
import { parseIpv4Address } from '../../src/wire/address.js';
import { hex } from '../helpers/hex.js';
import { PROPERTY_RUNS } from '../helpers/fuzz.js';

const ip = (text: string): number => {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

/** A copy of `bytes` with the 16-bit field at `at` set to `value`. */
const withField = (bytes: Uint8Array, at: number, value: number): Uint8Array => {
  const copy = bytes.slice();
  copy[at] = value >>> 8;
  copy[at + 1] = value & 0xff;
  return copy;
};

// Transport segments of test/fixtures/linux-vxlan.pcap, captured on the sending veth with
// checksum offload pending: the field holds the folded pseudo-header sum (the "seed" the NIC
// or the receiving kernel completes), not the checksum. `full` is Wireshark's calculated checksum.
const SEGMENTS = [
  {
    what: 'inner UDP "hello-udp\\n" (frame 41)',
    src: ip('100.64.0.1'),
    dst: ip('100.64.0.2'),
    protocol: 17,
    field: 6,
    bytes: hex('ca52 270f 0012 c8a6 68656c6c6f2d7564700a'),
    seed: 0xc8a6,
    full: 0x1c77,
  },
  {
    what: 'inner TCP SYN (frame 25)',
    src: ip('100.64.0.1'),
    dst: ip('100.64.0.2'),
    protocol: 6,
    field: 16,
    bytes: hex('aabc 1f90 c137ffe6 00000000 a002 fd5c c8b1 0000 020405820402080a29b92933000000000103030a'),
    seed: 0xc8b1,
    full: 0xa3f7,
  },
  {
    what: 'inner TCP "GET /body.bin", odd length 119 (frame 28)',
    src: ip('100.64.0.1'),
    dst: ip('100.64.0.2'),
    protocol: 6,
    field: 16,
    bytes: hex(`
      aabc 1f90 c137ffe7 bf4aef95 8018 0040 c900 0000 0101080a29b92933709a2b9a
      474554202f626f64792e62696e20485454502f312e310d0a486f73743a203130302e36342e302e323a383038300d0a
      557365722d4167656e743a206375726c2f372e38382e310d0a4163636570743a202a2f2a0d0a0d0a`),
    seed: 0xc900,
    full: 0x057c,
  },
  {
    what: 'outer UDP of the VXLAN ARP request (frame 7)',
    src: ip('198.18.0.1'),
    dst: ip('198.18.0.2'),
    protocol: 17,
    field: 6,
    bytes: hex(`
      d95c 12b5 003a 8c73 0800000000100000
      ffffffffffff02dc13207ef10806 0001080006040001 02dc13207ef164400001 00000000000064400002`),
    seed: 0x8c73,
    full: 0x76c5,
  },
];

describe('checksum', () => {
  it('matches the RFC 1071 §3 numerical example', () => {
    const data = hex('0001 f203 f4f5 f6f7');
    expect(foldSum(sumWords(data))).toBe(foldSum(0x2ddf0)); // the RFC's unfolded sum, up to end-around carries
    expect(foldSum(sumWords(data))).toBe(0xddf2);
    expect(internetChecksum(data)).toBe(0x220d);
    const withChecksum = new Uint8Array(10);
    withChecksum.set(data);
    withChecksum.set([0x22, 0x0d], 8);
    expect(verifyChecksum(withChecksum)).toBe(true);
  });

  it('pads an odd last byte with zero (RFC 1071 §4.1)', () => {
    expect(sumWords(hex('01'))).toBe(0x0100);
    expect(sumWords(hex('abcdef'))).toBe(0xabcd + 0xef00);
    expect(internetChecksum(hex('abcdef'))).toBe(internetChecksum(hex('abcdef00')));
    expect(internetChecksum(hex('ff'))).toBe(0x00ff);
  });

  it('gives 0xffff for no data and for all zeros', () => {
    expect(internetChecksum(new Uint8Array(0))).toBe(0xffff);
    expect(internetChecksum(new Uint8Array(7))).toBe(0xffff);
  });

  it('folds with end-around carry, however large the sum', () => {
    expect(foldSum(0)).toBe(0);
    expect(foldSum(0xffff)).toBe(0xffff);
    expect(foldSum(0x10000)).toBe(0x0001);
    expect(foldSum(0x1fffe)).toBe(0xffff);
    expect(foldSum(0xffff * 0x10001)).toBe(0xffff);
    // A 64 KiB datagram of 0xff bytes: 32768 words of 0xffff.
    expect(foldSum(sumWords(new Uint8Array(0x10000).fill(0xff)))).toBe(0xffff);
  });

  it('recomputes a captured IPv4 header checksum (frame 9, inner)', () => {
    const header = hex('45 00 0054 5908 4000 40 01 191e 64400001 64400002');
    expect(verifyChecksum(header)).toBe(true);
    expect(internetChecksum(withField(header, 10, 0))).toBe(0x191e);
  });

  it('sums the pseudo-header of RFC 768 and RFC 9293 §3.1', () => {
    const sum = ipv4PseudoHeaderSum(ip('198.18.0.1'), ip('198.18.0.2'), 17, 0x3a);
    expect(sum).toBe(0xc612 + 0x0001 + 0xc612 + 0x0002 + 0x0011 + 0x003a);
    expect(ipv4PseudoHeaderSum(0xffffffff, 0xffffffff, 255, 0xffff)).toBe(4 * 0xffff + 255 + 0xffff);
  });

  describe('captured UDP and TCP checksums, recomputed with ipv4PseudoHeaderSum', () => {
    for (const s of SEGMENTS) {
      it(s.what, () => {
        const pseudo = ipv4PseudoHeaderSum(s.src, s.dst, s.protocol, s.bytes.length);
        // What the capture holds: the offload seed, the folded pseudo-header sum.
        expect(foldSum(pseudo)).toBe(s.seed);
        expect((s.bytes[s.field]! << 8) | s.bytes[s.field + 1]!).toBe(s.seed);
        // What the wire carries once offload completes it.
        expect(internetChecksum(withField(s.bytes, s.field, 0), pseudo)).toBe(s.full);
        // Completing from the seed gives the same: sum the segment with the seed in place.
        expect(internetChecksum(s.bytes)).toBe(s.full);
        expect(verifyChecksum(withField(s.bytes, s.field, s.full), pseudo)).toBe(true);
        expect(verifyChecksum(s.bytes, pseudo)).toBe(false);
      });
    }
  });

  describe('properties', () => {
    // Data with a zeroed 16-bit checksum slot at an even offset, and a pre-sum like a pseudo-header's.
    const arbCase = fc
      .tuple(fc.uint8Array({ minLength: 2, maxLength: 200 }), fc.nat(), fc.nat({ max: 6 * 0xffff }))
      .map(([data, slot, acc]) => {
        const at = (slot % Math.floor(data.length / 2)) * 2;
        const copy = data.slice();
        copy[at] = 0;
        copy[at + 1] = 0;
        return { data: copy, at, acc };
      });

    it('verifyChecksum accepts what internetChecksum produced', () => {
      fc.assert(
        fc.property(arbCase, ({ data, at, acc }) => {
          const filled = withField(data, at, internetChecksum(data, acc));
          expect(verifyChecksum(filled, acc)).toBe(true);
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });

    it('verifyChecksum refuses any single flipped bit', () => {
      fc.assert(
        fc.property(arbCase, fc.nat(), ({ data, at, acc }, bit) => {
          const filled = withField(data, at, internetChecksum(data, acc));
          const index = bit % (filled.length * 8);
          filled[index >>> 3]! ^= 0x80 >>> (index & 7);
          expect(verifyChecksum(filled, acc)).toBe(false);
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });

    it('sums incrementally: an even-length prefix summed first, then the rest', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (head, tail) => {
          const even = head.subarray(0, head.length & ~1);
          const whole = new Uint8Array(even.length + tail.length);
          whole.set(even);
          whole.set(tail, even.length);
          expect(foldSum(sumWords(tail, sumWords(even)))).toBe(foldSum(sumWords(whole)));
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });
  });
});
