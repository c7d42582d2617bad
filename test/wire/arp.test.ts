import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ARP_PACKET_LEN, ArpOperation, ArpPacket, emitArp, parseArp, type ArpRepr } from '../../src/wire/arp.js';
import { MAC_ZERO, parseIpv4Address, parseMacAddress } from '../../src/wire/address.js';
import { WIRE_ERRORS } from '../../src/wire/errors.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

// Frame 7 of test/fixtures/linux-vxlan.pcap, inner ARP packet: "Who has 100.64.0.2? Tell 100.64.0.1".
const ARP_REQUEST = hex(`
  0001 0800 06 04 0001
  02dc13207ef1 64400001
  000000000000 64400002`);
// Frame 8, inner ARP packet: "100.64.0.2 is at 7e:5e:f7:95:0e:55".
const ARP_REPLY = hex(`
  0001 0800 06 04 0002
  7e5ef7950e55 64400002
  02dc13207ef1 64400001`);

const mac = (text: string): number => {
  const r = parseMacAddress(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const ip = (text: string): number => {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

const REQUEST: ArpRepr = {
  operation: ArpOperation.Request,
  senderMac: mac('02:dc:13:20:7e:f1'),
  senderIp: ip('100.64.0.1'),
  targetMac: MAC_ZERO,
  targetIp: ip('100.64.0.2'),
};
const REPLY: ArpRepr = {
  operation: ArpOperation.Reply,
  senderMac: mac('7e:5e:f7:95:0e:55'),
  senderIp: ip('100.64.0.2'),
  targetMac: mac('02:dc:13:20:7e:f1'),
  targetIp: ip('100.64.0.1'),
};

/** A copy of `bytes` with `at` set to `value`. */
const patched = (bytes: Uint8Array, at: number, ...values: number[]): Uint8Array => {
  const copy = bytes.slice();
  copy.set(values, at);
  return copy;
};

describe('arp', () => {
  it('deconstructs a captured request', () => {
    const packet = new ArpPacket(ARP_REQUEST);
    expect(packet.hardwareType).toBe(1);
    expect(packet.protocolType).toBe(0x0800);
    expect(packet.hardwareLen).toBe(6);
    expect(packet.protocolLen).toBe(4);
    expect(packet.operation).toBe(ArpOperation.Request);
    expect(packet.senderMac).toBe(mac('02:dc:13:20:7e:f1'));
    expect(packet.senderIp).toBe(ip('100.64.0.1'));
    expect(packet.targetMac).toBe(MAC_ZERO);
    expect(packet.targetIp).toBe(ip('100.64.0.2'));
  });

  it('constructs the captured reply through the view', () => {
    const packet = new ArpPacket(new Uint8Array(ARP_PACKET_LEN));
    packet.hardwareType = 1;
    packet.protocolType = 0x0800;
    packet.hardwareLen = 6;
    packet.protocolLen = 4;
    packet.operation = ArpOperation.Reply;
    packet.senderMac = REPLY.senderMac;
    packet.senderIp = REPLY.senderIp;
    packet.targetMac = REPLY.targetMac;
    packet.targetIp = REPLY.targetIp;
    expect(toHex(packet.bytes)).toBe(toHex(ARP_REPLY));
  });

  it('parses the captured request and reply', () => {
    expect(parseArp(ARP_REQUEST)).toEqual({ ok: true, value: REQUEST });
    expect(parseArp(ARP_REPLY)).toEqual({ ok: true, value: REPLY });
  });

  it('emits the captured request and reply byte-exact', () => {
    for (const [repr, captured] of [
      [REQUEST, ARP_REQUEST],
      [REPLY, ARP_REPLY],
    ] as const) {
      const out = new Uint8Array(ARP_PACKET_LEN).fill(0xee);
      expect(emitArp(repr, out)).toBe(ARP_PACKET_LEN);
      expect(toHex(out)).toBe(toHex(captured));
    }
  });

  it('emits behind headroom for the Ethernet header', () => {
    const out = new Uint8Array(14 + ARP_PACKET_LEN);
    emitArp(REQUEST, out, 14);
    expect(toHex(out.subarray(0, 14))).toBe('00'.repeat(14));
    expect(toHex(out.subarray(14))).toBe(toHex(ARP_REQUEST));
  });

  it('ignores Ethernet padding after the 28 bytes', () => {
    const padded = new Uint8Array(46);
    padded.set(ARP_REPLY);
    padded.fill(0xa5, ARP_PACKET_LEN);
    expect(parseArp(padded)).toEqual({ ok: true, value: REPLY });
  });

  it('refuses every truncation', () => {
    for (let n = 0; n < ARP_PACKET_LEN; n++) {
      expect(parseArp(ARP_REQUEST.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
    }
  });

  it('refuses ARP for other hardware, protocols or address lengths as unsupported', () => {
    const cases: [string, Uint8Array][] = [
      ['IEEE 802 hardware (6)', patched(ARP_REQUEST, 0, 0x00, 0x06)],
      ['IPv6 protocol type', patched(ARP_REQUEST, 2, 0x86, 0xdd)],
      ['8-byte hardware addresses', patched(ARP_REQUEST, 4, 8)],
      ['16-byte protocol addresses', patched(ARP_REQUEST, 5, 16)],
    ];
    for (const [what, bytes] of cases) {
      expect(parseArp(bytes), what).toEqual({ ok: false, error: 'unsupported' });
      // Judged on the fixed part: a short packet of another kind is still 'unsupported'.
      expect(parseArp(bytes.subarray(0, 8)), `${what}, 8 bytes`).toEqual({ ok: false, error: 'unsupported' });
    }
  });

  it('refuses operations other than request and reply as unsupported', () => {
    for (const op of [0, 3, 4, 8, 9, 0x0101, 0xffff]) {
      expect(parseArp(patched(ARP_REQUEST, 6, op >>> 8, op & 0xff)), `op ${op}`).toEqual({ ok: false, error: 'unsupported' });
    }
  });

  it('throws RangeError when emit has no room', () => {
    expect(() => emitArp(REQUEST, new Uint8Array(27))).toThrow(RangeError);
    expect(() => emitArp(REQUEST, new Uint8Array(ARP_PACKET_LEN), 1)).toThrow(RangeError);
  });

  it('emit then parse is the identity on any valid repr', () => {
    const arbMac = fc.integer({ min: 0, max: 0xffff_ffff_ffff });
    const arbIp = fc.integer({ min: 0, max: 0xffff_ffff });
    fc.assert(
      fc.property(fc.constantFrom(ArpOperation.Request, ArpOperation.Reply), arbMac, arbIp, arbMac, arbIp, (operation, senderMac, senderIp, targetMac, targetIp) => {
        const repr: ArpRepr = { operation, senderMac, senderIp, targetMac, targetIp };
        const out = new Uint8Array(ARP_PACKET_LEN);
        emitArp(repr, out);
        expect(parseArp(out)).toEqual({ ok: true, value: repr });
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('parse never throws on any bytes, and accepts only Ethernet/IPv4 requests and replies', () => {
    // Half the inputs start with the valid fixed part, so the field checks past it get exercised.
    const arbBytes = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 32 }).map((tail) => Uint8Array.of(0, 1, 8, 0, 6, 4, 0, tail[0]! & 3, ...tail.subarray(1))),
    );
    fc.assert(
      fc.property(arbBytes, (bytes) => {
        const r = parseArp(bytes);
        if (r.ok) {
          expect(bytes.length).toBeGreaterThanOrEqual(ARP_PACKET_LEN);
          expect(toHex(bytes.subarray(0, 6))).toBe('000108000604');
          expect([1, 2]).toContain(r.value.operation);
        } else {
          expect(WIRE_ERRORS).toContain(r.error);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
