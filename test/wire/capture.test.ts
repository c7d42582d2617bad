/**
 * Every frame of the kernel VXLAN captures through every codec: Ethernet → IPv4 → UDP → VXLAN →
 * Ethernet → ARP / IPv4 → ICMP / UDP / TCP, each layer re-emitted and compared with the bytes
 * Linux sent. IPv6 inner frames stop at the inner Ethernet header (shoal does not speak IPv6).
 */
import { describe, expect, it } from 'vitest';
import { parseEthernet, emitEthernet, EtherType } from '../../src/wire/ethernet.js';
import { parseIpv4, emitIpv4, IpProtocol } from '../../src/wire/ipv4.js';
import { parseUdp, emitUdp } from '../../src/wire/udp.js';
import { parseVxlan, emitVxlan, VXLAN_PORT } from '../../src/wire/vxlan.js';
import { parseArp, emitArp } from '../../src/wire/arp.js';
import { parseIcmp, emitIcmp } from '../../src/wire/icmp.js';
import { parseTcp, emitTcp, tcpHeaderLen } from '../../src/wire/tcp.js';
import { foldSum, internetChecksum, ipv4PseudoHeaderSum, verifyChecksum } from '../../src/wire/checksum.js';
import type { WireError } from '../../src/wire/errors.js';
import type { Result } from '../../src/lib/result.js';
import { LINKTYPE_ETHERNET, readPcap } from '../helpers/pcap.js';
import { toHex } from '../helpers/hex.js';

type Kind = 'ipv6' | 'arp' | 'icmp' | 'udp' | 'tcp' | 'fragment';

interface CaptureCase {
  readonly file: string;
  /**
   * True when the capture was taken with checksum offload on (linux-vxlan.pcap): the inner TCP
   * and UDP checksum fields then hold only the folded pseudo-header sum, the seed the device
   * completes. Linux filled the outer UDP checksum by local checksum offload, right once the
   * inner one is complete; without an inner TCP or UDP checksum, the outer one is itself a seed.
   */
  readonly offloadSeeds: boolean;
  readonly kinds: Readonly<Record<Kind, number>>;
}

const CASES: readonly CaptureCase[] = [
  { file: 'linux-vxlan.pcap', offloadSeeds: true, kinds: { ipv6: 12, arp: 2, icmp: 7, fragment: 4, tcp: 16, udp: 1 } },
  // The TCP engineer's capture, offload off: every checksum is real.
  { file: 'linux-tcp-sack.pcap', offloadSeeds: false, kinds: { ipv6: 8, arp: 2, icmp: 0, fragment: 0, tcp: 315, udp: 0 } },
];

const VNI = 4096;

function must<T>(r: Result<T, WireError>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error}`);
  return r.value;
}

const u16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!;

/**
 * Emitting a `headerLen`-byte header with `emit` in front of the payload of `bytes` gives
 * `expected` (default: `bytes` unchanged). The header area starts as junk: it must be written,
 * not inherited.
 */
function expectReEmit(bytes: Uint8Array, headerLen: number, emit: (out: Uint8Array) => void, expected: Uint8Array = bytes): void {
  const out = bytes.slice();
  out.fill(0xee, 0, headerLen);
  emit(out);
  expect(toHex(out)).toBe(toHex(expected));
}

/**
 * A transport segment (UDP or TCP) with offload in mind: checks the captured checksum field is
 * the seed, or verifies, and returns the bytes as they go on the wire (seed completed).
 */
function completedSegment(segment: Uint8Array, pseudo: number, field: number, seeds: boolean): Uint8Array {
  if (!seeds) {
    expect(verifyChecksum(segment, pseudo)).toBe(true);
    return segment;
  }
  expect(u16(segment, field)).toBe(foldSum(pseudo));
  const wire = segment.slice();
  // Summing the segment with the seed in place adds the pseudo-header: that is the checksum.
  const full = internetChecksum(segment);
  wire[field] = full >>> 8;
  wire[field + 1] = full & 0xff;
  expect(verifyChecksum(wire, pseudo)).toBe(true);
  return wire;
}

/** Walks one captured frame down the stack, re-emitting each layer; returns what it carried. */
function walk(frame: Uint8Array, seeds: boolean): Kind {
  // Work on a copy: completing offloaded checksums writes into it, through the parsed views.
  const work = frame.slice();

  const outerEth = must(parseEthernet(work), 'outer Ethernet');
  expect(outerEth.repr.etherType).toBe(EtherType.Ipv4);
  expectReEmit(work, 14, (out) => emitEthernet(outerEth.repr, out));

  const outerIp = must(parseIpv4(outerEth.payload), 'outer IPv4');
  expect(outerIp.repr.protocol).toBe(IpProtocol.Udp);
  expect(outerIp.headerLen).toBe(20);
  expectReEmit(outerEth.payload, 20, (out) => emitIpv4(outerIp.repr, out));
  const { src: outerSrc, dst: outerDst } = outerIp.repr;

  const udpBytes = outerIp.payload;
  const outerUdp = must(parseUdp(udpBytes, outerSrc, outerDst, { verifyChecksum: false }), 'outer UDP');
  expect(outerUdp.repr.dstPort).toBe(VXLAN_PORT);
  expect(outerUdp.payload.length).toBe(udpBytes.length - 8);
  const outerPseudo = ipv4PseudoHeaderSum(outerSrc, outerDst, IpProtocol.Udp, udpBytes.length);
  const outerField = u16(udpBytes, 6);

  const vxlan = must(parseVxlan(outerUdp.payload), 'VXLAN');
  expect(vxlan.repr.vni).toBe(VNI);
  expectReEmit(outerUdp.payload, 8, (out) => emitVxlan(vxlan.repr, out));

  const innerEth = must(parseEthernet(vxlan.payload), 'inner Ethernet');
  expectReEmit(vxlan.payload, 14, (out) => emitEthernet(innerEth.repr, out));

  let kind: Kind;
  let innerCompleted = false;
  switch (innerEth.repr.etherType) {
    case EtherType.Ipv6:
      kind = 'ipv6';
      break;
    case EtherType.Arp: {
      const arp = must(parseArp(innerEth.payload), 'ARP');
      expectReEmit(innerEth.payload, 28, (out) => emitArp(arp, out));
      kind = 'arp';
      break;
    }
    case EtherType.Ipv4: {
      const ipResult = parseIpv4(innerEth.payload);
      if (!ipResult.ok) {
        expect(ipResult.error).toBe('fragmented');
        kind = 'fragment';
        break;
      }
      const ip = ipResult.value;
      const { src, dst } = ip.repr;
      if (ip.headerLen === 20) {
        expectReEmit(innerEth.payload, 20, (out) => emitIpv4(ip.repr, out));
      } else {
        // Options are skipped on receipt and never emitted: the optionless header says the same.
        const out = new Uint8Array(20 + ip.payload.length);
        out.set(ip.payload, 20);
        emitIpv4(ip.repr, out);
        expect(must(parseIpv4(out), 'optionless re-emit').repr).toEqual(ip.repr);
      }
      const segment = ip.payload;
      switch (ip.repr.protocol) {
        case IpProtocol.Icmp: {
          const icmp = must(parseIcmp(segment), 'ICMP');
          expectReEmit(segment, 8, (out) => emitIcmp(icmp.repr, out, 0, icmp.payload.length));
          if (icmp.repr.kind === 'other') must(parseIpv4(icmp.payload), 'quoted datagram');
          kind = 'icmp';
          break;
        }
        case IpProtocol.Udp: {
          const pseudo = ipv4PseudoHeaderSum(src, dst, IpProtocol.Udp, segment.length);
          const wire = completedSegment(segment, pseudo, 6, seeds);
          if (seeds) expect(parseUdp(segment, src, dst)).toEqual({ ok: false, error: 'bad-checksum' });
          const udp = must(parseUdp(wire, src, dst), 'inner UDP');
          expectReEmit(wire, 8, (out) => emitUdp(udp.repr, out, 0, udp.payload.length, src, dst), wire);
          segment.set(wire);
          innerCompleted = seeds;
          kind = 'udp';
          break;
        }
        case IpProtocol.Tcp: {
          const pseudo = ipv4PseudoHeaderSum(src, dst, IpProtocol.Tcp, segment.length);
          const wire = completedSegment(segment, pseudo, 16, seeds);
          if (seeds) expect(parseTcp(segment, src, dst)).toEqual({ ok: false, error: 'bad-checksum' });
          const tcp = must(parseTcp(wire, src, dst), 'inner TCP');
          expect(tcpHeaderLen(tcp.repr)).toBe(wire.length - tcp.payload.length);
          expectReEmit(wire, tcpHeaderLen(tcp.repr), (out) => emitTcp(tcp.repr, out, 0, tcp.payload.length, src, dst), wire);
          segment.set(wire);
          innerCompleted = seeds;
          kind = 'tcp';
          break;
        }
        default:
          throw new Error(`Unexpected inner IPv4 protocol ${ip.repr.protocol}`);
      }
      break;
    }
    default:
      throw new Error(`Unexpected inner EtherType 0x${innerEth.repr.etherType.toString(16)}`);
  }

  // The outer UDP checksum: real; or, offload on, an LCO value right once the inner one is
  // complete; or a seed itself when nothing inside was offloaded, or when the frame is a GSO
  // super-packet (beyond the 1500-byte MTU) that the device was yet to cut into segments, each
  // with its own outer checksum.
  const gso = outerEth.payload.length > 1500;
  if (seeds && (!innerCompleted || gso)) {
    expect(outerField).toBe(foldSum(outerPseudo));
    const out = udpBytes.slice();
    emitUdp(outerUdp.repr, out, 0, outerUdp.payload.length, outerSrc, outerDst);
    expect(u16(out, 6)).toBe(internetChecksum(udpBytes));
    expect(must(parseUdp(out, outerSrc, outerDst), 'outer UDP, completed').repr).toEqual(outerUdp.repr);
  } else {
    expect(must(parseUdp(udpBytes, outerSrc, outerDst), 'outer UDP, checksum verified').repr).toEqual(outerUdp.repr);
    expectReEmit(udpBytes, 8, (out) => emitUdp(outerUdp.repr, out, 0, outerUdp.payload.length, outerSrc, outerDst));
  }
  return kind;
}

for (const c of CASES) {
  describe(`capture ${c.file}`, () => {
    const capture = readPcap(new URL(`../fixtures/${c.file}`, import.meta.url));
    const kinds: Record<Kind, number> = { ipv6: 0, arp: 0, icmp: 0, udp: 0, tcp: 0, fragment: 0 };

    it('is an Ethernet capture of whole frames', () => {
      expect(capture.linkType).toBe(LINKTYPE_ETHERNET);
      for (const frame of capture.frames) expect(frame.data.length, `frame ${frame.number}`).toBe(frame.originalLength);
    });

    for (const frame of capture.frames) {
      it(`frame ${frame.number} parses at every layer and re-emits byte-exact`, () => {
        kinds[walk(frame.data, c.offloadSeeds)] += 1;
      });
    }

    it('held the expected mix of frames', () => {
      expect(kinds).toEqual(c.kinds);
    });
  });
}

describe('capture linux-vxlan.pcap, fragments', () => {
  const { frames } = readPcap(new URL('../fixtures/linux-vxlan.pcap', import.meta.url));
  const innerIp = (n: number): Uint8Array => frames[n - 1]!.data.subarray(14 + 20 + 8 + 8 + 14);

  it('carries ping data in the counting pattern that ipv4.test.ts generates', () => {
    for (const [first, second] of [
      [15, 16],
      [17, 18],
    ] as const) {
      const a = innerIp(first).subarray(20 + 8 + 16);
      const b = innerIp(second).subarray(20);
      expect(a.length + b.length).toBe(1984);
      expect(a.every((v, i) => v === ((0x10 + i) & 0xff))).toBe(true);
      expect(b.every((v, i) => v === ((0x10 + a.length + i) & 0xff))).toBe(true);
    }
  });

  it('refuses each fragment even when its checksum is not verified', () => {
    for (const n of [15, 16, 17, 18]) {
      expect(parseIpv4(innerIp(n), { verifyChecksum: false }), `frame ${n}`).toEqual({ ok: false, error: 'fragmented' });
    }
  });
});
