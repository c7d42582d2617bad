import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VXLAN_HEADER_LEN, VXLAN_PORT, VxlanHeader, emitVxlan, parseVxlan } from '../../src/wire/vxlan.js';
import { WIRE_ERRORS } from '../../src/wire/errors.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

// Frame 7 of test/fixtures/linux-vxlan.pcap: the outer UDP payload of the kernel's ARP request,
// VXLAN header (I flag, VNI 4096) then the inner Ethernet frame.
const INNER_ARP_FRAME = hex(`
  ffffffffffff 02dc13207ef1 0806
  0001 0800 06 04 0001 02dc13207ef1 64400001 000000000000 64400002`);
const VXLAN_ARP = hex(`
  08 000000 001000 00
  ffffffffffff 02dc13207ef1 0806
  0001 0800 06 04 0001 02dc13207ef1 64400001 000000000000 64400002`);

describe('vxlan', () => {
  it('uses the IANA port', () => {
    expect(VXLAN_PORT).toBe(4789);
  });

  it('deconstructs a captured header', () => {
    const header = new VxlanHeader(VXLAN_ARP);
    expect(header.flags).toBe(0x08);
    expect(header.vni).toBe(4096);
    expect(toHex(header.payload)).toBe(toHex(INNER_ARP_FRAME));
  });

  it('constructs the captured header through the view', () => {
    const out = new Uint8Array(VXLAN_HEADER_LEN);
    const header = new VxlanHeader(out);
    header.flags = 0x08;
    header.vni = 4096;
    expect(toHex(out)).toBe(toHex(VXLAN_ARP.subarray(0, VXLAN_HEADER_LEN)));
  });

  it('parses into a repr and the inner frame, sharing memory', () => {
    const r = parseVxlan(VXLAN_ARP);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.repr).toEqual({ vni: 4096 });
    expect(toHex(r.value.payload)).toBe(toHex(INNER_ARP_FRAME));
    expect(r.value.payload.buffer).toBe(VXLAN_ARP.buffer);
    expect(r.value.payload.byteOffset).toBe(VXLAN_ARP.byteOffset + VXLAN_HEADER_LEN);
  });

  it('emits the captured header byte-exact in front of the inner frame', () => {
    const out = new Uint8Array(VXLAN_ARP.length);
    out.set(INNER_ARP_FRAME, VXLAN_HEADER_LEN);
    expect(emitVxlan({ vni: 4096 }, out)).toBe(VXLAN_HEADER_LEN);
    expect(toHex(out)).toBe(toHex(VXLAN_ARP));
  });

  it('emits at an offset, leaving headroom untouched and zeroing reserved fields', () => {
    const out = new Uint8Array(42 + VXLAN_ARP.length).fill(0xee);
    out.set(INNER_ARP_FRAME, 42 + VXLAN_HEADER_LEN);
    emitVxlan({ vni: 4096 }, out, 42);
    expect(out.subarray(0, 42).every((b) => b === 0xee)).toBe(true);
    expect(toHex(out.subarray(42))).toBe(toHex(VXLAN_ARP));
  });

  it('refuses every truncation of the header', () => {
    for (let n = 0; n < VXLAN_HEADER_LEN; n++) {
      expect(parseVxlan(VXLAN_ARP.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
    }
    const bare = parseVxlan(VXLAN_ARP.subarray(0, VXLAN_HEADER_LEN));
    expect(bare.ok && bare.value.payload.length).toBe(0);
  });

  it('refuses a header without the I flag', () => {
    const packet = VXLAN_ARP.slice();
    packet[0] = 0x00;
    expect(parseVxlan(packet)).toEqual({ ok: false, error: 'bad-flags' });
    packet[0] = 0xf7; // every other flag bit set, I clear
    expect(parseVxlan(packet)).toEqual({ ok: false, error: 'bad-flags' });
  });

  it('ignores every reserved bit on receipt (RFC 7348 §5)', () => {
    const packet = VXLAN_ARP.slice();
    packet[0] = 0xff;
    packet[1] = 0xab;
    packet[2] = 0xcd;
    packet[3] = 0xef;
    packet[7] = 0x5a;
    const r = parseVxlan(packet);
    expect(r.ok && r.value.repr).toEqual({ vni: 4096 });
  });

  it('throws RangeError when emit has no room or the VNI does not fit 24 bits', () => {
    expect(() => emitVxlan({ vni: 1 }, new Uint8Array(7))).toThrow(RangeError);
    expect(() => emitVxlan({ vni: 1 }, new Uint8Array(10), 3)).toThrow(RangeError);
    expect(() => emitVxlan({ vni: 0x100_0000 }, new Uint8Array(8))).toThrow(RangeError);
    expect(() => emitVxlan({ vni: -1 }, new Uint8Array(8))).toThrow(RangeError);
  });

  it('emit then parse is the identity on any valid repr', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xff_ffff }), fc.uint8Array({ maxLength: 64 }), (vni, payload) => {
        const buf = new Uint8Array(VXLAN_HEADER_LEN + payload.length);
        buf.set(payload, VXLAN_HEADER_LEN);
        emitVxlan({ vni }, buf);
        expect(buf[0]).toBe(0x08);
        expect(buf[1]! | buf[2]! | buf[3]! | buf[7]!).toBe(0);
        const r = parseVxlan(buf);
        expect(r.ok && r.value.repr).toEqual({ vni });
        expect(r.ok && toHex(r.value.payload)).toBe(toHex(payload));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('parse never throws on any bytes, and accepts exactly a whole header with the I flag', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (bytes) => {
        const r = parseVxlan(bytes);
        if (r.ok) {
          expect(bytes.length).toBeGreaterThanOrEqual(VXLAN_HEADER_LEN);
          expect(bytes[0]! & 0x08).toBe(0x08);
          expect(r.value.repr.vni).toBe((bytes[4]! << 16) | (bytes[5]! << 8) | bytes[6]!);
        } else {
          expect(WIRE_ERRORS).toContain(r.error);
          expect(r.error).toBe(bytes.length < VXLAN_HEADER_LEN ? 'truncated' : 'bad-flags');
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
