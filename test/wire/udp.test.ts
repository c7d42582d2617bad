import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { UDP_HEADER_LEN, UdpPacket, emitUdp, parseUdp, type UdpRepr } from '../../src/wire/udp.js';
import { VXLAN_PORT } from '../../src/wire/vxlan.js';
import { parseIpv4Address } from '../../src/wire/address.js';
import { foldSum, ipv4PseudoHeaderSum, sumWords } from '../../src/wire/checksum.js';
import { WIRE_ERRORS } from '../../src/wire/errors.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

const ip = (text: string): number => {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const A = ip('100.64.0.1');
const B = ip('100.64.0.2');
const OUTER_A = ip('198.18.0.1');
const OUTER_B = ip('198.18.0.2');

// Frame 41 of test/fixtures/linux-vxlan.pcap, inner UDP datagram: "hello-udp\n" from port 51794
// to 9999, 100.64.0.1 → 100.64.0.2. tcpdump saw it on the sending veth with checksum offload
// pending, so its checksum field holds only the pseudo-header seed (0xc8a6, checksum.test.ts);
// Wireshark's calculated checksum, and what the kernel would have sent, is 0x1c77.
const CAPTURED_INNER = hex('ca52 270f 0012 c8a6 68656c6c6f2d7564700a');
const INNER = hex('ca52 270f 0012 1c77 68656c6c6f2d7564700a');
const INNER_REPR: UdpRepr = { srcPort: 51794, dstPort: 9999 };
const HELLO = INNER.subarray(UDP_HEADER_LEN);

// Frame 41's outer UDP datagram, 198.18.0.1:33446 → 198.18.0.2:4789 (VXLAN, VNI 4096), with the
// inner checksum above filled in. Linux computed the outer checksum by local checksum offload
// (LCO): it is right once the inner checksum is complete, so this is the datagram on the wire.
const OUTER = hex(`
  82a6 12b5 0044 7d42
  08 000000 001000 00
  7e5ef7950e55 02dc13207ef1 0800
  45 00 0026 552e 4000 40 11 1d16 64400001 64400002
  ${toHex(INNER)}`);
const OUTER_REPR: UdpRepr = { srcPort: 33446, dstPort: VXLAN_PORT };

/** A copy of `bytes` with `values` written from `at`. */
const patched = (bytes: Uint8Array, at: number, ...values: number[]): Uint8Array => {
  const copy = bytes.slice();
  copy.set(values, at);
  return copy;
};

/** Emits `repr` in front of `payload` into a fresh buffer. */
const build = (repr: UdpRepr, payload: Uint8Array, src: number, dst: number, options?: { checksum?: boolean }, offset = 0): Uint8Array => {
  const out = new Uint8Array(offset + UDP_HEADER_LEN + payload.length).fill(0xee, 0, offset + UDP_HEADER_LEN);
  out.set(payload, offset + UDP_HEADER_LEN);
  expect(emitUdp(repr, out, offset, payload.length, src, dst, options)).toBe(UDP_HEADER_LEN);
  return out;
};

describe('udp', () => {
  describe('captured datagrams', () => {
    it('deconstructs the inner datagram', () => {
      const packet = new UdpPacket(CAPTURED_INNER);
      expect(packet.srcPort).toBe(51794);
      expect(packet.dstPort).toBe(9999);
      expect(packet.length).toBe(18);
      expect(packet.checksum).toBe(0xc8a6);
      expect(Buffer.from(packet.payload).toString()).toBe('hello-udp\n');
    });

    it('constructs the inner header through the view', () => {
      const packet = new UdpPacket(new Uint8Array(UDP_HEADER_LEN));
      packet.srcPort = 51794;
      packet.dstPort = 9999;
      packet.length = 18;
      packet.checksum = 0x1c77;
      expect(toHex(packet.bytes)).toBe(toHex(INNER.subarray(0, UDP_HEADER_LEN)));
    });

    it('parses the inner datagram, the payload a view sharing memory', () => {
      const r = parseUdp(INNER, A, B);
      expect(r.ok && r.value.repr).toEqual(INNER_REPR);
      expect(r.ok && Buffer.from(r.value.payload).toString()).toBe('hello-udp\n');
      expect(r.ok && r.value.payload.buffer).toBe(INNER.buffer);
    });

    it('refuses the offload seed as a checksum, unless told not to verify', () => {
      expect(parseUdp(CAPTURED_INNER, A, B)).toEqual({ ok: false, error: 'bad-checksum' });
      const r = parseUdp(CAPTURED_INNER, A, B, { verifyChecksum: false });
      expect(r.ok && r.value.repr).toEqual(INNER_REPR);
    });

    it('parses the outer VXLAN datagram', () => {
      const r = parseUdp(OUTER, OUTER_A, OUTER_B);
      expect(r.ok && r.value.repr).toEqual(OUTER_REPR);
      expect(r.ok && r.value.payload.length).toBe(60);
    });

    it('emits both datagrams byte-exact', () => {
      expect(toHex(build(INNER_REPR, HELLO, A, B))).toBe(toHex(INNER));
      expect(toHex(build(OUTER_REPR, OUTER.subarray(UDP_HEADER_LEN), OUTER_A, OUTER_B))).toBe(toHex(OUTER));
    });

    it('emits behind headroom for the IPv4 and Ethernet headers', () => {
      const out = build(INNER_REPR, HELLO, A, B, undefined, 34);
      expect(toHex(out.subarray(0, 34))).toBe('ee'.repeat(34));
      expect(toHex(out.subarray(34))).toBe(toHex(INNER));
    });
  });

  describe('checksum', () => {
    it('accepts checksum 0 as "none" without verifying (RFC 768)', () => {
      const r = parseUdp(patched(CAPTURED_INNER, 6, 0, 0), A, B);
      expect(r.ok && r.value.repr).toEqual(INNER_REPR);
    });

    it('emits 0 when asked for no checksum', () => {
      const out = build(INNER_REPR, HELLO, A, B, { checksum: false });
      expect(toHex(out)).toBe(toHex(patched(INNER, 6, 0, 0)));
      expect(parseUdp(out, A, B).ok).toBe(true);
    });

    it('sends a computed 0 as 0xffff, and accepts it', () => {
      // Choose the last payload word so that everything else sums to 0xffff: the checksum is 0.
      const payload = Uint8Array.of(0x12, 0x34, 0, 0);
      const length = UDP_HEADER_LEN + payload.length;
      const rest = foldSum(sumWords(Uint8Array.of(0xca, 0x52, 0x27, 0x0f, 0, length, 0, 0, 0x12, 0x34), ipv4PseudoHeaderSum(A, B, 17, length)));
      payload[2] = (0xffff - rest) >>> 8;
      payload[3] = (0xffff - rest) & 0xff;
      const out = build(INNER_REPR, payload, A, B);
      expect(new UdpPacket(out).checksum).toBe(0xffff);
      expect(parseUdp(out, A, B).ok).toBe(true);
    });

    it('refuses a corrupted payload, header or checksum', () => {
      expect(parseUdp(patched(INNER, 17, 0x0b), A, B)).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseUdp(patched(INNER, 1, 0x53), A, B)).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseUdp(patched(INNER, 7, 0x78), A, B)).toEqual({ ok: false, error: 'bad-checksum' });
    });

    it('refuses a datagram delivered to the wrong address (the pseudo-header covers it)', () => {
      expect(parseUdp(INNER, A, ip('100.64.0.3'))).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseUdp(INNER, B, A).ok).toBe(true); // swapping the addresses keeps the sum
    });
  });

  describe('lengths', () => {
    it('refuses every truncation: of the header, then short of the length field', () => {
      for (let n = 0; n < INNER.length; n++) {
        expect(parseUdp(INNER.subarray(0, n), A, B), `${n} bytes`).toEqual({ ok: false, error: 'truncated' });
      }
    });

    it('refuses a length field below the header as bad-length', () => {
      for (const length of [0, 1, 7]) {
        expect(parseUdp(patched(INNER, 4, 0, length), A, B), `length ${length}`).toEqual({ ok: false, error: 'bad-length' });
      }
    });

    it('refuses a length field beyond the bytes as truncated', () => {
      expect(parseUdp(patched(INNER, 4, 0, 19), A, B)).toEqual({ ok: false, error: 'truncated' });
      expect(parseUdp(patched(INNER, 4, 0xff, 0xff), A, B)).toEqual({ ok: false, error: 'truncated' });
    });

    it('trims the payload to the length field, checksumming only that far', () => {
      const padded = new Uint8Array(INNER.length + 10).fill(0xa5);
      padded.set(INNER);
      const r = parseUdp(padded, A, B);
      expect(r.ok && Buffer.from(r.value.payload).toString()).toBe('hello-udp\n');
    });

    it('accepts an empty datagram', () => {
      const r = parseUdp(build(INNER_REPR, new Uint8Array(0), A, B), A, B);
      expect(r.ok && r.value.payload.length).toBe(0);
    });
  });

  describe('emit', () => {
    it('throws RangeError when the buffer does not hold header and payload, or beyond 65535 bytes', () => {
      expect(() => emitUdp(INNER_REPR, new Uint8Array(7), 0, 0, A, B)).toThrow(RangeError);
      expect(() => emitUdp(INNER_REPR, new Uint8Array(18), 0, 11, A, B)).toThrow(RangeError);
      expect(() => emitUdp(INNER_REPR, new Uint8Array(18), 1, 10, A, B)).toThrow(RangeError);
      expect(() => emitUdp(INNER_REPR, new Uint8Array(0x10000), 0, 65528, A, B)).toThrow(RangeError);
      expect(() => emitUdp(INNER_REPR, new Uint8Array(8), 0, -1, A, B)).toThrow(RangeError);
      expect(emitUdp(INNER_REPR, new Uint8Array(0xffff), 0, 65527, A, B)).toBe(UDP_HEADER_LEN);
    });
  });

  describe('properties', () => {
    const arbPort = fc.integer({ min: 0, max: 0xffff });
    const arbIp = fc.integer({ min: 0, max: 0xffff_ffff });

    it('emit then parse is the identity on any valid repr, with or without a checksum', () => {
      fc.assert(
        fc.property(arbPort, arbPort, arbIp, arbIp, fc.uint8Array({ maxLength: 96 }), fc.boolean(), (srcPort, dstPort, src, dst, payload, checksum) => {
          const repr: UdpRepr = { srcPort, dstPort };
          const out = build(repr, payload, src, dst, { checksum });
          expect(new UdpPacket(out).checksum === 0).toBe(!checksum);
          const r = parseUdp(out, src, dst);
          expect(r.ok && r.value.repr).toEqual(repr);
          expect(r.ok && toHex(r.value.payload)).toBe(toHex(payload));
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });

    it('parse never throws on any bytes, and what it accepts lies inside them', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 48 }), arbIp, arbIp, fc.boolean(), (bytes, src, dst, verifyChecksum) => {
          const r = parseUdp(bytes, src, dst, { verifyChecksum });
          if (!r.ok) {
            expect(WIRE_ERRORS).toContain(r.error);
            return;
          }
          const length = (bytes[4]! << 8) | bytes[5]!;
          expect(r.value.payload.length).toBe(length - UDP_HEADER_LEN);
          expect(length).toBeLessThanOrEqual(bytes.length);
        }),
        { numRuns: FUZZ_RUNS },
      );
    });
  });
});
