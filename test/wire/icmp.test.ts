import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ICMP_HEADER_LEN, IcmpPacket, IcmpType, emitIcmp, parseIcmp, type IcmpRepr } from '../../src/wire/icmp.js';
import { parseIpv4 } from '../../src/wire/ipv4.js';
import { parseUdp } from '../../src/wire/udp.js';
import { WIRE_ERRORS } from '../../src/wire/errors.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

/** ping's echo data after its 16-byte timestamp: bytes counting up from 0x10 (iputils). */
const PING_PATTERN = toHex(Uint8Array.from({ length: 40 }, (_, i) => 0x10 + i));

// ICMP messages of test/fixtures/linux-vxlan.pcap (the inner IPv4 payloads).
// Frame 9: echo request, ident 0x0b58, seq 1, 56 bytes of data (timestamp, then the pattern).
const ECHO_REQUEST = hex(`08 00 603c 0b58 0001 5d19076b000000005a130f0000000000 ${PING_PATTERN}`);
// Frame 10: its reply.
const ECHO_REPLY = hex(`00 00 683c 0b58 0001 5d19076b000000005a130f0000000000 ${PING_PATTERN}`);
// Frame 42: destination unreachable, port unreachable (code 3), quoting frame 41's whole
// IPv4 datagram (38 bytes; its UDP checksum was left partial by the sender's offload).
const QUOTED_DATAGRAM = hex(`
  45 00 0026 552e 4000 40 11 1d16 64400001 64400002
  ca52270f0012c8a6 68656c6c6f2d7564700a`);
const PORT_UNREACHABLE = hex(`03 03 1974 00000000 ${toHex(QUOTED_DATAGRAM)}`);

const ECHO_DATA = ECHO_REQUEST.subarray(ICMP_HEADER_LEN);

/** A copy of `bytes` with `values` written from `at`. */
const patched = (bytes: Uint8Array, at: number, ...values: number[]): Uint8Array => {
  const copy = bytes.slice();
  copy.set(values, at);
  return copy;
};

/** Emits `repr` in front of `payload` into a fresh buffer. */
const build = (repr: IcmpRepr, payload: Uint8Array, offset = 0): Uint8Array => {
  const out = new Uint8Array(offset + ICMP_HEADER_LEN + payload.length).fill(0xee, 0, offset + ICMP_HEADER_LEN);
  out.set(payload, offset + ICMP_HEADER_LEN);
  expect(emitIcmp(repr, out, offset, payload.length)).toBe(ICMP_HEADER_LEN);
  return out;
};

describe('icmp', () => {
  describe('captured messages', () => {
    it('deconstructs the echo request', () => {
      const packet = new IcmpPacket(ECHO_REQUEST);
      expect(packet.msgType).toBe(IcmpType.EchoRequest);
      expect(packet.code).toBe(0);
      expect(packet.checksum).toBe(0x603c);
      expect(packet.ident).toBe(0x0b58);
      expect(packet.seqNo).toBe(1);
      expect(packet.rest).toBe(0x0b580001);
      expect(packet.payload.length).toBe(56);
      expect(packet.verifyChecksum()).toBe(true);
    });

    it('constructs the echo reply through the view', () => {
      const packet = new IcmpPacket(new Uint8Array(ECHO_REPLY.length));
      packet.bytes.set(ECHO_DATA, ICMP_HEADER_LEN);
      packet.msgType = IcmpType.EchoReply;
      packet.code = 0;
      packet.ident = 0x0b58;
      packet.seqNo = 1;
      packet.fillChecksum();
      expect(toHex(packet.bytes)).toBe(toHex(ECHO_REPLY));
    });

    it('parses the echo request and reply, the data a view sharing memory', () => {
      const request = parseIcmp(ECHO_REQUEST);
      expect(request.ok && request.value.repr).toEqual({ kind: 'echo-request', ident: 0x0b58, seqNo: 1 });
      expect(request.ok && toHex(request.value.payload)).toBe(toHex(ECHO_DATA));
      expect(request.ok && request.value.payload.buffer).toBe(ECHO_REQUEST.buffer);
      const reply = parseIcmp(ECHO_REPLY);
      expect(reply.ok && reply.value.repr).toEqual({ kind: 'echo-reply', ident: 0x0b58, seqNo: 1 });
    });

    it('parses port unreachable with the quoted datagram as payload', () => {
      const r = parseIcmp(PORT_UNREACHABLE);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.value.repr).toEqual({ kind: 'other', type: IcmpType.DestinationUnreachable, code: 3, rest: 0 });
      // The quote is frame 41's datagram whole: a netstack can find the socket it was for.
      const quoted = parseIpv4(r.value.payload);
      expect(quoted.ok && quoted.value.repr.protocol).toBe(17);
      const udp = quoted.ok ? parseUdp(quoted.value.payload, quoted.value.repr.src, quoted.value.repr.dst, { verifyChecksum: false }) : undefined;
      expect(udp?.ok && udp.value.repr).toEqual({ srcPort: 51794, dstPort: 9999 });
    });

    it('emits all three byte-exact', () => {
      expect(toHex(build({ kind: 'echo-request', ident: 0x0b58, seqNo: 1 }, ECHO_DATA))).toBe(toHex(ECHO_REQUEST));
      expect(toHex(build({ kind: 'echo-reply', ident: 0x0b58, seqNo: 1 }, ECHO_DATA))).toBe(toHex(ECHO_REPLY));
      expect(toHex(build({ kind: 'other', type: 3, code: 3, rest: 0 }, QUOTED_DATAGRAM))).toBe(toHex(PORT_UNREACHABLE));
    });

    it('emits behind headroom, the checksum covering only the message', () => {
      const out = build({ kind: 'echo-request', ident: 0x0b58, seqNo: 1 }, ECHO_DATA, 34);
      expect(toHex(out.subarray(0, 34))).toBe('ee'.repeat(34));
      expect(toHex(out.subarray(34))).toBe(toHex(ECHO_REQUEST));
    });

    it('answers a request by turning it around in place', () => {
      // What the netstack's echo responder does: same buffer, type 0, checksum recomputed.
      const packet = ECHO_REQUEST.slice();
      const r = parseIcmp(packet);
      if (!r.ok || r.value.repr.kind !== 'echo-request') throw new Error('Fixture did not parse');
      emitIcmp({ ...r.value.repr, kind: 'echo-reply' }, packet, 0, r.value.payload.length);
      expect(toHex(packet)).toBe(toHex(ECHO_REPLY));
    });
  });

  describe('hostile input', () => {
    it('refuses every truncation of the header as truncated', () => {
      for (let n = 0; n < ICMP_HEADER_LEN; n++) {
        expect(parseIcmp(ECHO_REQUEST.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
      }
    });

    it('refuses every truncation of the data as bad-checksum (ICMP has no length field)', () => {
      for (const message of [ECHO_REQUEST, PORT_UNREACHABLE]) {
        for (let n = ICMP_HEADER_LEN; n < message.length; n++) {
          expect(parseIcmp(message.subarray(0, n)), `${n} bytes`).toEqual({ ok: false, error: 'bad-checksum' });
        }
      }
    });

    it('refuses a corrupted checksum, header or data', () => {
      expect(parseIcmp(patched(ECHO_REQUEST, 2, 0x60, 0x3d))).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseIcmp(patched(ECHO_REQUEST, 7, 0x02))).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseIcmp(patched(ECHO_REQUEST, 63, 0x38))).toEqual({ ok: false, error: 'bad-checksum' });
      expect(parseIcmp(patched(PORT_UNREACHABLE, 20, 0x00))).toEqual({ ok: false, error: 'bad-checksum' });
    });

    it('refuses an echo with a non-zero code as bad-flags', () => {
      for (const message of [ECHO_REQUEST, ECHO_REPLY]) {
        const bad = patched(message, 1, 0x01);
        new IcmpPacket(bad).fillChecksum();
        expect(parseIcmp(bad)).toEqual({ ok: false, error: 'bad-flags' });
      }
    });
  });

  describe('other messages', () => {
    it('round-trips time exceeded and fragmentation needed with its next-hop MTU', () => {
      const cases: IcmpRepr[] = [
        { kind: 'other', type: IcmpType.TimeExceeded, code: 0, rest: 0 },
        // RFC 1191: "fragmentation needed and DF set" carries the next-hop MTU in the low 16 bits.
        { kind: 'other', type: IcmpType.DestinationUnreachable, code: 4, rest: 1450 },
        { kind: 'other', type: 12, code: 0, rest: 0x1400_0000 }, // parameter problem, pointer 20
        { kind: 'other', type: 255, code: 255, rest: 0xffff_ffff },
      ];
      for (const repr of cases) {
        const r = parseIcmp(build(repr, QUOTED_DATAGRAM));
        expect(r.ok && r.value.repr).toEqual(repr);
        expect(r.ok && toHex(r.value.payload)).toBe(toHex(QUOTED_DATAGRAM));
      }
    });
  });

  describe('emit', () => {
    it('covers an odd-length payload with the checksum', () => {
      const out = build({ kind: 'echo-request', ident: 7, seqNo: 9 }, Uint8Array.of(1, 2, 3));
      expect(out.length).toBe(11);
      expect(parseIcmp(out).ok).toBe(true);
    });

    it('throws RangeError when the buffer does not hold header and payload', () => {
      const repr: IcmpRepr = { kind: 'echo-request', ident: 1, seqNo: 1 };
      expect(() => emitIcmp(repr, new Uint8Array(7), 0, 0)).toThrow(RangeError);
      expect(() => emitIcmp(repr, new Uint8Array(64), 0, 57)).toThrow(RangeError);
      expect(() => emitIcmp(repr, new Uint8Array(64), 1, 56)).toThrow(RangeError);
      expect(() => emitIcmp(repr, new Uint8Array(64), 0, -1)).toThrow(RangeError);
    });
  });

  describe('properties', () => {
    const arbRepr: fc.Arbitrary<IcmpRepr> = fc.oneof(
      fc.record({
        kind: fc.constantFrom('echo-request' as const, 'echo-reply' as const),
        ident: fc.integer({ min: 0, max: 0xffff }),
        seqNo: fc.integer({ min: 0, max: 0xffff }),
      }),
      fc.record({
        kind: fc.constant('other' as const),
        type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== IcmpType.EchoRequest && t !== IcmpType.EchoReply),
        code: fc.integer({ min: 0, max: 255 }),
        rest: fc.integer({ min: 0, max: 0xffff_ffff }),
      }),
    );

    it('emit then parse is the identity on any valid repr', () => {
      fc.assert(
        fc.property(arbRepr, fc.uint8Array({ maxLength: 96 }), (repr, payload) => {
          const r = parseIcmp(build(repr, payload));
          expect(r.ok && r.value.repr).toEqual(repr);
          expect(r.ok && toHex(r.value.payload)).toBe(toHex(payload));
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });

    it('parse never throws on any bytes, and refuses exactly what it should', () => {
      // With the checksum fixed up half the time, so the checks after it see random input.
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, fixChecksum) => {
          if (fixChecksum && bytes.length >= ICMP_HEADER_LEN) new IcmpPacket(bytes).fillChecksum();
          const r = parseIcmp(bytes);
          if (bytes.length < ICMP_HEADER_LEN) {
            expect(r).toEqual({ ok: false, error: 'truncated' });
          } else if (fixChecksum) {
            const echo = bytes[0] === 0 || bytes[0] === 8;
            expect(r.ok ? 'ok' : r.error).toBe(echo && bytes[1] !== 0 ? 'bad-flags' : 'ok');
          } else if (!r.ok) {
            expect(WIRE_ERRORS).toContain(r.error);
          }
        }),
        { numRuns: FUZZ_RUNS },
      );
    });
  });
});
