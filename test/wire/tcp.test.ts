import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  TCP_HEADER_LEN,
  TcpFlags,
  TcpSegment,
  emitTcp,
  parseTcp,
  tcpHeaderLen,
  tcpMaxSackBlocks,
  type TcpRepr,
} from '../../src/wire/tcp.js';
import { foldSum, ipv4PseudoHeaderSum, sumWords } from '../../src/wire/checksum.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

// Segments of test/fixtures/linux-tcp-sack.pcap (made by capture-linux-tcp-sack.sh with checksum
// offload off, so the checksums are real): curl in 100.64.0.1 fetching 300 kB from Python's
// http.server at 100.64.0.2:8080 over kernel VXLAN while 3 % of the data is dropped.
const CLIENT = 0x64400001; // 100.64.0.1
const SERVER = 0x64400002; // 100.64.0.2

// Frame 11: the SYN. MSS 1410, SACK_PERM, TSval 2919685819, WS 10, in Linux's layout.
const SYN = hex(`
  d452 1f90 a9f6fb19 00000000 a0 02 fd5c 5c99 0000
  02040582 0402 080a ae06debb 00000000 01 03030a`);
// Frame 12: the SYN-ACK.
const SYN_ACK = hex(`
  1f90 d452 30866a6a a9f6fb1a a0 12 fb34 b4b1 0000
  02040582 0402 080a 8e5980b4 ae06debb 01 03030a`);
// Frame 14: curl's request, 87 bytes of data after NOP NOP TS.
const REQUEST = hex(`
  d452 1f90 a9f6fb1a 30866a6b 80 18 0040 5f32 0000
  0101 080a ae06debc 8e5980b4
  474554202f626f64792e62696e20485454502f312e310d0a486f73743a203130302e36342e302e323a383038300d0a
  557365722d4167656e743a206375726c2f372e38382e310d0a4163636570743a202a2f2a0d0a0d0a`);
// Frame 83: a duplicate ACK with two SACK blocks (the most recent first, RFC 2018 §4).
const SACK_2 = hex(`
  d452 1f90 a9f6fb71 30868bfb d0 10 004e a3e8 0000
  0101 080a ae06debf 8e5980b8
  0101 0512 308724e3 30872a59 30869171 30871f6d`);
// Frame 280: three SACK blocks, as many as fit beside timestamps.
const SACK_3 = hex(`
  d452 1f90 a9f6fb71 30899c5d f0 10 01a7 e8a0 0000
  0101 080a ae06dec0 8e5980b9
  0101 051a 3089e8d1 308a666b 3089acbf 3089e35b 3089a1d3 3089a749`);
// Frame 323: the client's FIN.
const FIN = hex(`
  d452 1f90 a9f6fb71 308aff17 80 11 01ff 4770 0000
  0101 080a ae06dec1 8e5980ba`);

const SYN_REPR: TcpRepr = {
  srcPort: 54354,
  dstPort: 8080,
  seq: 0xa9f6fb19,
  ack: 0,
  flags: TcpFlags.SYN,
  window: 64860,
  urgent: 0,
  mss: 1410,
  sackPermitted: true,
  timestamp: { tsVal: 2919685819, tsEcr: 0 },
  windowScale: 10,
};
const SYN_ACK_REPR: TcpRepr = {
  srcPort: 8080,
  dstPort: 54354,
  seq: 0x30866a6a,
  ack: 0xa9f6fb1a,
  flags: TcpFlags.SYN | TcpFlags.ACK,
  window: 64308,
  urgent: 0,
  mss: 1410,
  sackPermitted: true,
  timestamp: { tsVal: 0x8e5980b4, tsEcr: 2919685819 },
  windowScale: 10,
};
const REQUEST_REPR: TcpRepr = {
  srcPort: 54354,
  dstPort: 8080,
  seq: 0xa9f6fb1a,
  ack: 0x30866a6b,
  flags: TcpFlags.PSH | TcpFlags.ACK,
  window: 64,
  urgent: 0,
  timestamp: { tsVal: 0xae06debc, tsEcr: 0x8e5980b4 },
};
const SACK_2_REPR: TcpRepr = {
  srcPort: 54354,
  dstPort: 8080,
  seq: 0xa9f6fb71,
  ack: 0x30868bfb,
  flags: TcpFlags.ACK,
  window: 78,
  urgent: 0,
  timestamp: { tsVal: 0xae06debf, tsEcr: 0x8e5980b8 },
  sackBlocks: [
    [0x308724e3, 0x30872a59],
    [0x30869171, 0x30871f6d],
  ],
};
const SACK_3_REPR: TcpRepr = {
  ...SACK_2_REPR,
  ack: 0x30899c5d,
  window: 423,
  timestamp: { tsVal: 0xae06dec0, tsEcr: 0x8e5980b9 },
  sackBlocks: [
    [0x3089e8d1, 0x308a666b],
    [0x3089acbf, 0x3089e35b],
    [0x3089a1d3, 0x3089a749],
  ],
};
const FIN_REPR: TcpRepr = {
  srcPort: 54354,
  dstPort: 8080,
  seq: 0xa9f6fb71,
  ack: 0x308aff17,
  flags: TcpFlags.FIN | TcpFlags.ACK,
  window: 511,
  urgent: 0,
  timestamp: { tsVal: 0xae06dec1, tsEcr: 0x8e5980ba },
};

const CAPTURED: readonly { name: string; bytes: Uint8Array; repr: TcpRepr; src: number; dst: number }[] = [
  { name: 'SYN', bytes: SYN, repr: SYN_REPR, src: CLIENT, dst: SERVER },
  { name: 'SYN-ACK', bytes: SYN_ACK, repr: SYN_ACK_REPR, src: SERVER, dst: CLIENT },
  { name: 'data', bytes: REQUEST, repr: REQUEST_REPR, src: CLIENT, dst: SERVER },
  { name: 'two SACK blocks', bytes: SACK_2, repr: SACK_2_REPR, src: CLIENT, dst: SERVER },
  { name: 'three SACK blocks', bytes: SACK_3, repr: SACK_3_REPR, src: CLIENT, dst: SERVER },
  { name: 'FIN', bytes: FIN, repr: FIN_REPR, src: CLIENT, dst: SERVER },
];

const NO_CHECK = { verifyChecksum: false } as const;

/** A bare header with `options` (padded by the caller) and a zero checksum. */
function withOptions(options: readonly number[], payload: readonly number[] = []): Uint8Array {
  const header = TCP_HEADER_LEN + options.length;
  const bytes = new Uint8Array(header + payload.length);
  bytes.set(SYN.subarray(0, TCP_HEADER_LEN));
  bytes[12] = (header / 4) << 4;
  bytes[16] = 0;
  bytes[17] = 0;
  bytes.set(options, TCP_HEADER_LEN);
  bytes.set(payload, header);
  return bytes;
}

describe('tcp', () => {
  it('deconstructs a captured SYN', () => {
    const seg = new TcpSegment(SYN);
    expect(seg.srcPort).toBe(54354);
    expect(seg.dstPort).toBe(8080);
    expect(seg.seq).toBe(2851535641);
    expect(seg.ack).toBe(0);
    expect(seg.headerLen).toBe(40);
    expect(seg.flags).toBe(TcpFlags.SYN);
    expect(seg.window).toBe(64860);
    expect(seg.checksum).toBe(0x5c99);
    expect(seg.urgent).toBe(0);
    expect(seg.options.length).toBe(20);
    expect(seg.payload.length).toBe(0);
  });

  it('constructs a header through the view', () => {
    const bytes = new Uint8Array(TCP_HEADER_LEN);
    const seg = new TcpSegment(bytes);
    seg.srcPort = 54354;
    seg.dstPort = 8080;
    seg.seq = 0xa9f6fb1a;
    seg.ack = 0x30866a6b;
    seg.headerLen = 20;
    seg.flags = TcpFlags.ACK;
    seg.window = 64;
    seg.checksum = 0xbeef;
    seg.urgent = 0;
    expect(toHex(bytes)).toBe('d4521f90a9f6fb1a30866a6b50100040beef0000');
  });

  for (const c of CAPTURED) {
    it(`parses the captured ${c.name} segment`, () => {
      const r = parseTcp(c.bytes, c.src, c.dst);
      if (!r.ok) throw new Error(r.error);
      expect(r.value.repr).toEqual(c.repr);
      expect(r.value.payload.buffer).toBe(c.bytes.buffer);
      expect(r.value.payload.length).toBe(c.bytes.length - new TcpSegment(c.bytes).headerLen);
    });

    it(`emits the captured ${c.name} segment byte-exact, checksum included`, () => {
      const headerLen = tcpHeaderLen(c.repr);
      expect(headerLen).toBe(new TcpSegment(c.bytes).headerLen);
      const headroom = 7;
      const out = new Uint8Array(headroom + c.bytes.length).fill(0xee);
      out.set(c.bytes.subarray(headerLen), headroom + headerLen);
      expect(emitTcp(c.repr, out, headroom, c.bytes.length - headerLen, c.src, c.dst)).toBe(headerLen);
      expect(toHex(out.subarray(headroom))).toBe(toHex(c.bytes));
      expect(toHex(out.subarray(0, headroom))).toBe('ee'.repeat(headroom));
    });
  }

  it('refuses a captured segment with one bit flipped (checksum)', () => {
    const bytes = REQUEST.slice();
    bytes[40] = bytes[40]! ^ 0x01;
    expect(parseTcp(bytes, CLIENT, SERVER)).toEqual({ ok: false, error: 'bad-checksum' });
    expect(parseTcp(bytes, CLIENT, SERVER, NO_CHECK).ok).toBe(true);
  });

  it('refuses a segment checksummed for other addresses (pseudo-header)', () => {
    expect(parseTcp(REQUEST, CLIENT, SERVER + 1)).toEqual({ ok: false, error: 'bad-checksum' });
  });

  it('parses Linux checksum-offload segments only when told not to verify', () => {
    // Frame 25 of linux-vxlan.pcap: taken on a veth with offload on, the checksum field holds
    // only the pseudo-header sum (CHECKSUM_PARTIAL). A kernel peer behind veth sends these.
    const partial = hex('aabc1f90c137ffe600000000a002fd5cc8b10000020405820402080a29b92933000000000103030a');
    expect(parseTcp(partial, CLIENT, SERVER)).toEqual({ ok: false, error: 'bad-checksum' });
    const r = parseTcp(partial, CLIENT, SERVER, NO_CHECK);
    expect(r.ok && r.value.repr).toMatchObject({ srcPort: 43708, dstPort: 8080, mss: 1410, windowScale: 10, sackPermitted: true });
  });

  it('refuses a truncated header', () => {
    for (let n = 0; n < TCP_HEADER_LEN; n++) {
      expect(parseTcp(SYN.subarray(0, n), CLIENT, SERVER)).toEqual({ ok: false, error: 'truncated' });
    }
  });

  it('refuses a header whose options run past the segment', () => {
    for (let n = TCP_HEADER_LEN; n < SYN.length; n++) {
      expect(parseTcp(SYN.subarray(0, n), CLIENT, SERVER)).toEqual({ ok: false, error: 'bad-header-length' });
    }
  });

  it('refuses a data offset below five words', () => {
    for (let words = 0; words < 5; words++) {
      const bytes = SYN.slice();
      bytes[12] = words << 4;
      expect(parseTcp(bytes, CLIENT, SERVER, NO_CHECK)).toEqual({ ok: false, error: 'bad-header-length' });
    }
  });

  const BAD_OPTIONS: readonly [string, number[]][] = [
    ['an option length of 0', [0x08, 0x00, 0x01, 0x01]],
    ['an option length of 1', [0xfe, 0x01, 0x01, 0x01]],
    ['a kind byte with no room for its length', [0x01, 0x01, 0x01, 0x02]],
    ['an option running past the header', [0x01, 0x02, 0x04, 0x05]],
    ['MSS of length 3', [0x02, 0x03, 0x05, 0x01]],
    ['MSS of length 6', [0x02, 0x06, 0x05, 0xb4, 0x00, 0x00, 0x01, 0x01]],
    ['window scale of length 4', [0x03, 0x04, 0x07, 0x00]],
    ['window scale of length 2', [0x03, 0x02, 0x01, 0x01]],
    ['SACK-permitted of length 3', [0x04, 0x03, 0x00, 0x01]],
    ['timestamps of length 8', [0x08, 0x08, 0, 0, 0, 1, 0, 0]],
    ['timestamps of length 12', [0x08, 0x0c, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]],
    ['SACK with no block', [0x01, 0x01, 0x05, 0x02]],
    ['SACK with half a block', [0x01, 0x01, 0x05, 0x06, 0, 0, 0, 1]],
    ['SACK of length 14', [0x01, 0x01, 0x05, 0x0e, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]],
  ];
  for (const [what, options] of BAD_OPTIONS) {
    it(`refuses ${what}`, () => {
      expect(options.length % 4).toBe(0);
      expect(parseTcp(withOptions(options), CLIENT, SERVER, NO_CHECK)).toEqual({ ok: false, error: 'bad-option' });
    });
  }

  it('refuses an option whose length runs one byte past the header', () => {
    expect(parseTcp(withOptions([0x01, 0xfe, 0x04, 0x00]), CLIENT, SERVER, NO_CHECK)).toEqual({ ok: false, error: 'bad-option' });
  });

  it('skips options of unknown kinds by their length', () => {
    // Kind 30 (MPTCP), length 6, then MSS: the MSS is still found.
    const r = parseTcp(withOptions([30, 6, 1, 2, 3, 4, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01]), CLIENT, SERVER, NO_CHECK);
    expect(r.ok && r.value.repr.mss).toBe(1460);
  });

  it('stops at End of Option List, ignoring what follows it', () => {
    // RFC 9293 §3.2: EOL marks the end of all options; the padding after it may be anything.
    const r = parseTcp(withOptions([0x02, 0x04, 0x05, 0xb4, 0x00, 0xff, 0x00, 0x13], [0xab]), CLIENT, SERVER, NO_CHECK);
    expect(r.ok && r.value.repr.mss).toBe(1460);
    expect(r.ok && toHex(r.value.payload)).toBe('ab');
  });

  it('keeps the reserved bits out of the flags', () => {
    const bytes = withOptions([]);
    bytes[12] = 0x5f;
    const r = parseTcp(bytes, CLIENT, SERVER, NO_CHECK);
    expect(r.ok && r.value.repr.flags).toBe(TcpFlags.SYN);
  });

  it('lays out SACK-permitted without timestamps as Linux does: NOP NOP SACK_PERM', () => {
    const repr: TcpRepr = { ...SYN_REPR, timestamp: undefined };
    const out = new Uint8Array(tcpHeaderLen(repr));
    emitTcp(repr, out, 0, 0, CLIENT, SERVER);
    expect(toHex(out.subarray(TCP_HEADER_LEN))).toBe('02040582' + '01010402' + '0103030a');
  });

  it('emits at most as many SACK blocks as fit, the first ones', () => {
    const blocks: [number, number][] = [1, 2, 3, 4, 5].map((n) => [n * 100, n * 100 + 50]);
    const withTs: TcpRepr = { ...SACK_2_REPR, sackBlocks: blocks };
    expect(tcpMaxSackBlocks(withTs)).toBe(3);
    const out = new Uint8Array(tcpHeaderLen(withTs));
    expect(out.length).toBe(60);
    emitTcp(withTs, out, 0, 0, CLIENT, SERVER);
    const r = parseTcp(out, CLIENT, SERVER);
    expect(r.ok && r.value.repr.sackBlocks).toEqual(blocks.slice(0, 3));
    const noTs: TcpRepr = { ...withTs, timestamp: undefined };
    expect(tcpMaxSackBlocks(noTs)).toBe(4);
    const out2 = new Uint8Array(tcpHeaderLen(noTs));
    emitTcp(noTs, out2, 0, 0, CLIENT, SERVER);
    const r2 = parseTcp(out2, CLIENT, SERVER);
    expect(r2.ok && r2.value.repr.sackBlocks).toEqual(blocks.slice(0, 4));
  });

  it('throws RangeError when the buffer has no room', () => {
    expect(() => emitTcp(REQUEST_REPR, new Uint8Array(32), 0, 1, CLIENT, SERVER)).toThrow(RangeError);
  });

  const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const arbBase = fc.record({
    srcPort: u16,
    dstPort: u16,
    seq: u32,
    ack: u32,
    flags: fc.integer({ min: 0, max: 0xff }),
    window: u16,
    urgent: u16,
    mss: fc.option(u16, { nil: undefined }),
    windowScale: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    sackPermitted: fc.option(fc.constant(true), { nil: undefined }),
    timestamp: fc.option(fc.record({ tsVal: u32, tsEcr: u32 }), { nil: undefined }),
  });
  const arbRepr = arbBase.chain((base) =>
    fc
      .option(fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: tcpMaxSackBlocks(base) }), { nil: undefined })
      .map((sackBlocks): TcpRepr => ({ ...base, sackBlocks })),
  );

  it('emit then parse is the identity on any valid segment', () => {
    fc.assert(
      fc.property(arbRepr, fc.uint8Array({ maxLength: 64 }), u32, u32, (repr, payload, src, dst) => {
        const headerLen = tcpHeaderLen(repr);
        expect(headerLen % 4).toBe(0);
        expect(headerLen).toBeLessThanOrEqual(60);
        const buf = new Uint8Array(headerLen + payload.length);
        buf.set(payload, headerLen);
        expect(emitTcp(repr, buf, 0, payload.length, src, dst)).toBe(headerLen);
        const r = parseTcp(buf, src, dst);
        if (!r.ok) throw new Error(r.error);
        expect(r.value.repr).toEqual(repr);
        expect(toHex(r.value.payload)).toBe(toHex(payload));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('parse never throws on any bytes, and refuses only with a reason', () => {
    const anyHeader = fc.uint8Array({ minLength: 0, maxLength: 80 });
    // Mostly-valid headers with random option bytes reach the option parser far more often.
    const optionHeavy = fc
      .tuple(fc.integer({ min: 5, max: 15 }), fc.uint8Array({ minLength: 0, maxLength: 48 }))
      .map(([words, rest]) => {
        const bytes = new Uint8Array(TCP_HEADER_LEN + rest.length);
        bytes.set(rest, TCP_HEADER_LEN);
        bytes[12] = words << 4;
        return bytes;
      });
    fc.assert(
      fc.property(fc.oneof(anyHeader, optionHeavy), (bytes) => {
        const r = parseTcp(bytes, CLIENT, SERVER, NO_CHECK);
        if (r.ok) expect(r.value.payload.length).toBe(bytes.length - (bytes[12]! >>> 4) * 4);
        else expect(['truncated', 'bad-header-length', 'bad-option']).toContain(r.error);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('tcp checksum', () => {
  it('agrees with RFC 1071 summing at every alignment and length', () => {
    // The codec sums 4 bytes at a time and reads aligned words natively; the reference sums
    // big-endian words one at a time (src/wire/checksum.ts).
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ minLength: 20, maxLength: 300 }), (shift, body) => {
        const backing = new Uint8Array(body.length + 8);
        const seg = backing.subarray(shift, shift + body.length);
        seg.set(body);
        seg[12] = 0x50; // data offset 5: a bare header
        const src = 0x64400001;
        const dst = 0x64400002;
        seg[16] = 0;
        seg[17] = 0;
        const expected = ~foldSum(sumWords(seg, ipv4PseudoHeaderSum(src, dst, 6, seg.length))) & 0xffff;
        seg[16] = expected >>> 8;
        seg[17] = expected & 0xff;
        expect(parseTcp(seg, src, dst).ok).toBe(true);
        const repr = parseTcp(seg, src, dst, NO_CHECK);
        if (!repr.ok) throw new Error(repr.error);
        const copy = new Uint8Array(seg.length + shift + 3).subarray(shift + 3);
        copy.set(seg.subarray(20), 20);
        emitTcp(repr.value.repr, copy, 0, seg.length - 20, src, dst);
        expect(toHex(copy.subarray(16, 18))).toBe(toHex(seg.subarray(16, 18)));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});
