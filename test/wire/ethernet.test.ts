import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EtherType, EthernetFrame, emitEthernet, parseEthernet, ETHERNET_HEADER_LEN, type EthernetRepr } from '../../src/wire/ethernet.js';
import { MAC_BROADCAST, parseMacAddress } from '../../src/wire/address.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

// Frame 7 of test/fixtures/linux-vxlan.pcap: the kernel's ARP request inside VXLAN
// ("Who has 100.64.0.2? Tell 100.64.0.1"), inner frame only.
const ARP_REQUEST_FRAME = hex(`
  ffffffffffff 02dc13207ef1 0806
  0001 0800 06 04 0001 02dc13207ef1 64400001 000000000000 64400002`);

const mac = (text: string): number => {
  const r = parseMacAddress(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

const REPR: EthernetRepr = { dst: MAC_BROADCAST, src: mac('02:dc:13:20:7e:f1'), etherType: EtherType.Arp };

describe('ethernet', () => {
  it('deconstructs a captured frame', () => {
    const frame = new EthernetFrame(ARP_REQUEST_FRAME);
    expect(frame.dst).toBe(MAC_BROADCAST);
    expect(frame.src).toBe(mac('02:dc:13:20:7e:f1'));
    expect(frame.etherType).toBe(EtherType.Arp);
    expect(frame.payload.length).toBe(28);
  });

  it('parses into a repr and a payload view sharing memory', () => {
    const r = parseEthernet(ARP_REQUEST_FRAME);
    expect(r.ok && r.value.repr).toEqual(REPR);
    expect(r.ok && r.value.payload.buffer).toBe(ARP_REQUEST_FRAME.buffer);
  });

  it('emits the captured header byte-exact', () => {
    const out = new Uint8Array(ARP_REQUEST_FRAME.length);
    out.set(ARP_REQUEST_FRAME.subarray(ETHERNET_HEADER_LEN), ETHERNET_HEADER_LEN);
    expect(emitEthernet(REPR, out, 0)).toBe(ETHERNET_HEADER_LEN);
    expect(toHex(out)).toBe(toHex(ARP_REQUEST_FRAME));
  });

  it('refuses a truncated header', () => {
    for (let n = 0; n < ETHERNET_HEADER_LEN; n++) {
      expect(parseEthernet(ARP_REQUEST_FRAME.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
    }
  });

  it('refuses an 802.3 length field in place of an EtherType', () => {
    const frame = ARP_REQUEST_FRAME.slice();
    frame[12] = 0x00;
    frame[13] = 0x2e;
    expect(parseEthernet(frame)).toEqual({ ok: false, error: 'unsupported' });
  });

  it('emit then parse is the identity on any valid header', () => {
    const arbMac = fc.integer({ min: 0, max: 0xffff_ffff_ffff });
    fc.assert(
      fc.property(arbMac, arbMac, fc.integer({ min: 0x0600, max: 0xffff }), fc.uint8Array({ maxLength: 64 }), (dst, src, etherType, payload) => {
        const buf = new Uint8Array(ETHERNET_HEADER_LEN + payload.length);
        buf.set(payload, ETHERNET_HEADER_LEN);
        emitEthernet({ dst, src, etherType }, buf, 0);
        const r = parseEthernet(buf);
        expect(r.ok && r.value.repr).toEqual({ dst, src, etherType });
        expect(r.ok && toHex(r.value.payload)).toBe(toHex(payload));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('parse never throws on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const r = parseEthernet(bytes);
        expect(r.ok).toBe(bytes.length >= ETHERNET_HEADER_LEN && ((bytes[12]! << 8) | bytes[13]!) >= 0x0600);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
