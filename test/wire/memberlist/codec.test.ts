import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_COMPOUND_PARTS,
  compress,
  decodeCompound,
  decodeMessage,
  decodePacket,
  decompress,
  encodeCompound,
  encodeMessage,
  encodePacket,
  unwrapCrc,
  wrapCrc,
} from '../../../src/wire/memberlist/codec.js';
import { Keyring } from '../../../src/wire/memberlist/crypto.js';
import { MEMBERLIST_WIRE_ERRORS, type MemberlistWireError, type Message } from '../../../src/wire/memberlist/messages.js';
import { encodeMsgpack, MsgpackWriter } from '../../../src/wire/memberlist/msgpack.js';
import { hex, toHex } from '../../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../../helpers/fuzz.js';
import { arbMessage, arbPacketMessage, plain } from './arbitraries.js';
import {
  GO_ALIVE,
  GO_ALIVE_TS1,
  GO_CRC_COMPOUND,
  GO_DEAD,
  GO_INDIRECT_PING,
  GO_PING,
  GO_SUSPECT,
  GO_TCP_PING_PLAIN,
  LOOPBACK,
  SERF_VSN,
  TS1_META,
  TS_ACK,
  TS_LEAVE_INTENT,
  TS_PUSH_PULL,
  loadSerfCapture,
} from './fixtures.js';

const S1_META = hex('ff80');

/** The spec §17 vectors and what they mean. */
const VECTORS: [string, Uint8Array, Message][] = [
  ['§17.1 Go ping', GO_PING, { type: 'ping', body: { seqNo: 1, node: 'ts1', sourceAddr: LOOPBACK, sourcePort: 7946, sourceNode: 's1' } }],
  ['§17.2 TS ack, nil payload', TS_ACK, { type: 'ackResp', body: { seqNo: 1, payload: new Uint8Array(0) } }],
  ['§17.3 Go alive', GO_ALIVE, { type: 'alive', body: { incarnation: 1, node: 's1', addr: LOOPBACK, port: 7946, meta: S1_META, vsn: SERF_VSN } }],
  ['§17.4 alive with tags', GO_ALIVE_TS1, { type: 'alive', body: { incarnation: 1, node: 'ts1', addr: LOOPBACK, port: 7950, meta: TS1_META, vsn: SERF_VSN } }],
  ['§17.5 Go suspect', GO_SUSPECT, { type: 'suspect', body: { incarnation: 1, node: 'ts2', from: 's1' } }],
  ['§17.5 Go dead', GO_DEAD, { type: 'dead', body: { incarnation: 1, node: 'ts2', from: 's1' } }],
  [
    '§17.6 Go indirectPingReq',
    GO_INDIRECT_PING,
    {
      type: 'indirectPing',
      body: { seqNo: 41, target: LOOPBACK, port: 7951, node: 'ts2', nack: true, sourceAddr: LOOPBACK, sourcePort: 7946, sourceNode: 's1' },
    },
  ],
  ['§17.7 Go TCP ping, SeqNo 128', GO_TCP_PING_PLAIN, { type: 'ping', body: { seqNo: 128, node: 'tstcp', sourceAddr: LOOPBACK, sourcePort: 7946, sourceNode: 's1' } }],
  [
    '§17.9 TS push/pull join',
    TS_PUSH_PULL,
    {
      type: 'pushPull',
      body: { join: true, nodes: [{ name: 'ts1', addr: LOOPBACK, port: 7950, meta: TS1_META, incarnation: 1, state: 0, vsn: SERF_VSN }], userState: new Uint8Array(0) },
    },
  ],
  ['§17.11 TS serf leave intent (user)', TS_LEAVE_INTENT, { type: 'user', payload: TS_LEAVE_INTENT.subarray(1) }],
];

describe('memberlist messages against serf 0.9.4 (spec §17)', () => {
  for (const [label, bytes, msg] of VECTORS) {
    it(`decodes ${label}`, () => {
      const r = decodeMessage(bytes);
      expect(r.ok && plain(r.value)).toEqual(plain(msg));
    });
    it(`encodes ${label} byte-exact`, () => {
      expect(toHex(encodeMessage(msg))).toBe(toHex(bytes));
    });
  }

  it('encodes the serf leave intent body that serf accepted (§17.11)', () => {
    const body = encodeMsgpack(
      new Map<string, string | number | boolean>([
        ['Prune', false],
        ['LTime', 5],
        ['Node', 'ts4'],
      ]),
    );
    expect(toHex(encodeMessage({ type: 'user', payload: Uint8Array.of(0, ...body) }))).toBe(toHex(TS_LEAVE_INTENT));
  });

  it('omits empty Source fields from a ping, as Go’s omitempty does', () => {
    const bytes = encodeMessage({ type: 'ping', body: { seqNo: 7, node: 'n', sourceAddr: new Uint8Array(0), sourcePort: 0, sourceNode: '' } });
    expect(toHex(bytes)).toBe('0082a44e6f6465a16ea55365714e6f07');
  });
});

describe('decodeMessage leniency (what Go accepts, spec §6.2)', () => {
  it('accepts unsorted keys, str8 names, bin8 bytes and wide integers, as serf did', () => {
    const w = new MsgpackWriter();
    w.byte(4).mapHeader(6);
    w.str('Vsn').byte(0xc4).byte(6).raw(SERF_VSN);
    w.str('Node').byte(0xd9).byte(3).raw(new TextEncoder().encode('ts1'));
    w.str('Port').byte(0xce).raw(Uint8Array.of(0, 0, 0x1f, 0x0e));
    w.str('Meta').byte(0xc4).byte(TS1_META.length).raw(TS1_META);
    w.str('Incarnation').byte(0xcf).raw(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1));
    w.str('Addr').byte(0xc4).byte(4).raw(LOOPBACK);
    const r = decodeMessage(w.finish());
    expect(r.ok && plain(r.value)).toEqual(plain(decodeMessage(GO_ALIVE_TS1).ok && (decodeMessage(GO_ALIVE_TS1) as { value: Message }).value));
  });

  it('skips unknown keys and leaves missing ones at their zero value', () => {
    const w = new MsgpackWriter();
    w.byte(2).mapHeader(2).str('Extra').value(new Map([['x', [1, 2, 3]]])).str('SeqNo').uint(9);
    expect(plain(decodeMessage(w.finish()))).toEqual(plain({ ok: true, value: { type: 'ackResp', body: { seqNo: 9, payload: new Uint8Array(0) } } }));
  });

  it('reads a struct sent as an array, by Go field position', () => {
    // suspect{Incarnation, Node, From} in declaration order.
    const w = new MsgpackWriter();
    w.byte(3).arrayHeader(3).uint(4).str('ts2').str('s1');
    expect(decodeMessage(w.finish())).toEqual({ ok: true, value: { type: 'suspect', body: { incarnation: 4, node: 'ts2', from: 's1' } } });
  });

  it('ignores bytes after the body, as Go’s decoder does', () => {
    const r = decodeMessage(Uint8Array.of(...GO_SUSPECT, 0xff, 0xff));
    expect(r.ok && r.value.type).toBe('suspect');
  });

  it('refuses a negative or oversized number for a Go unsigned field', () => {
    const w = new MsgpackWriter();
    w.byte(11).mapHeader(1).str('SeqNo').uint(0x1_0000_0000);
    expect(decodeMessage(w.finish())).toEqual({ ok: false, error: 'bad-field' });
    const v = new MsgpackWriter();
    v.byte(4).mapHeader(1).str('Port').int(-1);
    expect(decodeMessage(v.finish())).toEqual({ ok: false, error: 'bad-field' });
  });

  it('refuses absurd lengths as truncated without allocating for them', () => {
    // Node as str32 of 4 GiB, a byte field as bin32 of 4 GiB, an array-form byte field of 4 G entries.
    expect(decodeMessage(hex('0081a44e6f6465dbffffffff'))).toEqual({ ok: false, error: 'truncated' });
    expect(decodeMessage(hex('0481a441646472c6ffffffff7f'))).toEqual({ ok: false, error: 'truncated' });
    expect(decodeMessage(hex('0481a441646472ddffffffff7f'))).toEqual({ ok: false, error: 'truncated' });
    // A map header announcing 4 G keys, and a push/pull announcing 2^31 node states.
    expect(decodeMessage(hex('03dfffffffff'))).toEqual({ ok: false, error: 'truncated' });
    const w = new MsgpackWriter();
    w.byte(6).mapHeader(3).str('Join').bool(false).str('Nodes').uint(2 ** 31).str('UserStateLen').uint(0);
    expect(decodeMessage(w.finish())).toEqual({ ok: false, error: 'truncated' });
    // Compound lengths of 65535 over a few bytes: every part counted as truncated.
    const drops: MemberlistWireError[] = [];
    expect(decodePacket(hex('0703ffffffffffff0102'), { onDrop: (e) => drops.push(e) })).toEqual({ ok: true, value: [] });
    expect(drops).toEqual(['truncated', 'truncated', 'truncated']);
  });

  it('refuses framing and unknown types, 244 hasLabel included (spec §15)', () => {
    for (const t of [7, 9, 10, 12, 14, 100, 244, 255]) expect(decodeMessage(Uint8Array.of(t, 0x80))).toEqual({ ok: false, error: 'unknown-type' });
    expect(decodeMessage(new Uint8Array(0))).toEqual({ ok: false, error: 'empty' });
  });

  it('reports truncation at every cut of every vector', () => {
    for (const [, bytes] of VECTORS) {
      if (bytes[0] === 8) continue; // a UDP user message is any bytes
      for (let n = 1; n < bytes.length; n++) {
        const r = decodeMessage(bytes.subarray(0, n));
        // A cut after a complete body cannot be seen (trailing data is ignored); before it, always.
        if (!r.ok) expect(r.error).toBe('truncated');
        else expect(n).toBe(bytes.length);
      }
    }
  });
});

describe('compound, CRC and compression framing', () => {
  it('decodes serf’s CRC-wrapped compound of two alives (§17.4) and rebuilds it byte-exact', () => {
    const r = decodePacket(GO_CRC_COMPOUND);
    expect(r.ok && r.value.map((m) => m.type === 'alive' && m.body.node)).toEqual(['ts1', 's1']);
    expect(toHex(wrapCrc(encodeCompound([GO_ALIVE_TS1, GO_ALIVE])))).toBe(toHex(GO_CRC_COMPOUND));
    expect(toHex(encodePacket([GO_ALIVE_TS1, GO_ALIVE], { crc: true }))).toBe(toHex(GO_CRC_COMPOUND));
  });

  it('drops a packet whose CRC does not match', () => {
    for (const i of [1, 4, 5, 20, GO_CRC_COMPOUND.length - 1]) {
      const bad = GO_CRC_COMPOUND.slice();
      bad[i]! ^= 0x01;
      expect(decodePacket(bad)).toEqual({ ok: false, error: 'bad-crc' });
    }
    expect(unwrapCrc(GO_CRC_COMPOUND.subarray(0, 4))).toEqual({ ok: false, error: 'truncated' });
  });

  it('keeps the parts before a truncated one and counts every missing part', () => {
    const compound = encodeCompound([GO_PING, GO_SUSPECT, GO_DEAD]);
    const cut = compound.subarray(0, compound.length - GO_DEAD.length - 3); // into the second part
    const drops: MemberlistWireError[] = [];
    const r = decodePacket(cut, { onDrop: (e) => drops.push(e) });
    expect(r.ok && r.value.map((m) => m.type)).toEqual(['ping']);
    expect(drops).toEqual(['truncated', 'truncated']);
    expect(decodeCompound(cut)).toEqual({ ok: true, value: { parts: [compound.subarray(8, 8 + GO_PING.length)], truncated: 2 } });
    // Too short for its own length table: the whole packet is refused.
    expect(decodePacket(compound.subarray(0, 5))).toEqual({ ok: false, error: 'truncated' });
  });

  it('drops a bad part of a compound and keeps the others', () => {
    const drops: MemberlistWireError[] = [];
    const r = decodePacket(encodeCompound([GO_SUSPECT, Uint8Array.of(244, 1, 2), GO_TCP_PING_PLAIN.subarray(0, 10), GO_DEAD]), { onDrop: (e) => drops.push(e) });
    expect(r.ok && r.value.map((m) => m.type)).toEqual(['suspect', 'dead']);
    expect(drops).toEqual(['unknown-type', 'truncated']);
  });

  it('unwraps compression and compounds inside compounds', () => {
    const inner = encodeCompound([GO_ALIVE, compress(GO_SUSPECT)]);
    const r = decodePacket(compress(encodeCompound([GO_PING, inner])));
    expect(r.ok && r.value.map((m) => m.type)).toEqual(['ping', 'alive', 'suspect']);
  });

  it('bounds nesting', () => {
    let msg = GO_SUSPECT;
    for (let i = 0; i < 12; i++) msg = compress(msg);
    expect(decodePacket(msg)).toEqual({ ok: false, error: 'too-deep' });
  });

  it('refuses an unknown compression algorithm and a broken LZW stream', () => {
    const w = new MsgpackWriter();
    w.byte(9).mapHeader(2).str('Algo').uint(5).str('Buf').bytes(Uint8Array.of(1, 2, 3));
    expect(decodePacket(w.finish())).toEqual({ ok: false, error: 'unknown-algo' });
    const c = compress(GO_ALIVE);
    expect(decodePacket(c.subarray(0, c.length - 2))).toEqual({ ok: false, error: 'truncated' });
    const broken = c.slice();
    broken[broken.length - 1] = 0xff;
    broken[broken.length - 2] = 0xff;
    expect(decodePacket(broken)).toEqual({ ok: false, error: 'bad-compression' });
  });

  it('refuses more than 127 compound parts (Go reads N*2 as a uint8)', () => {
    expect(() => encodeCompound(Array.from({ length: MAX_COMPOUND_PARTS + 1 }, () => GO_DEAD))).toThrow(RangeError);
    expect(decodeCompound(encodeCompound(Array.from({ length: MAX_COMPOUND_PARTS }, () => GO_DEAD))).ok).toBe(true);
  });

  it('compresses a UDP packet only when that makes it smaller (ML net.go:752-763)', () => {
    expect(toHex(encodePacket([GO_PING], { compress: true }))).toBe(toHex(GO_PING));
    const many = Array.from({ length: 10 }, () => GO_ALIVE);
    const packet = encodePacket(many, { compress: true });
    expect(packet[0]).toBe(9);
    expect(toHex(packet)).toBe(toHex(compress(encodeCompound(many))));
  });

  it('applies compress, then CRC, then encryption, and decodePacket undoes them in reverse', () => {
    const ring = new Keyring([new Uint8Array(32).fill(5)]);
    const parts = Array.from({ length: 6 }, () => GO_ALIVE_TS1);
    const packet = encodePacket(parts, { compress: true, crc: true, keyring: ring });
    expect(packet[0]).toBe(1); // encryption version: no type byte on UDP (spec §10)
    const r = decodePacket(packet, { keyring: ring });
    expect(r.ok && r.value.length).toBe(6);
    expect(decodePacket(packet, { keyring: new Keyring([new Uint8Array(32).fill(6)]) })).toEqual({ ok: false, error: 'decrypt-failed' });
  });

  it('refuses undecryptable packets, or reads them as plaintext when verifyIncoming is off', () => {
    const ring = new Keyring([new Uint8Array(16).fill(5)]);
    expect(decodePacket(GO_SUSPECT, { keyring: ring })).toEqual({ ok: false, error: 'bad-encryption-version' });
    expect(decodePacket(Uint8Array.of(1, ...GO_SUSPECT.subarray(1), ...new Uint8Array(40)), { keyring: ring })).toEqual({ ok: false, error: 'decrypt-failed' });
    const r = decodePacket(GO_SUSPECT, { keyring: ring, verifyIncoming: false });
    expect(r.ok && r.value[0]?.type).toBe('suspect');
  });

  it('decompress refuses output beyond its bound', () => {
    const c = compress(new Uint8Array(50_000));
    expect(decompress(c, 49_999)).toEqual({ ok: false, error: 'too-large' });
  });
});

/** Rebuilds a datagram layer by layer from what the decoders return. */
function rebuild(bytes: Uint8Array): Uint8Array {
  if (bytes[0] === 12) {
    const r = unwrapCrc(bytes);
    if (!r.ok) throw new Error(r.error);
    return wrapCrc(rebuild(r.value));
  }
  if (bytes[0] === 7) {
    const r = decodeCompound(bytes);
    if (!r.ok) throw new Error(r.error);
    return encodeCompound(r.value.parts.map(rebuild));
  }
  if (bytes[0] === 9) {
    const r = decompress(bytes);
    if (!r.ok) throw new Error(r.error);
    return compress(rebuild(r.value));
  }
  const m = decodeMessage(bytes);
  if (!m.ok) throw new Error(m.error);
  return encodeMessage(m.value);
}

describe('every datagram serf sent in the capture', () => {
  const cap = loadSerfCapture();

  it('decodes with nothing dropped', () => {
    const seen = new Set<string>();
    for (const d of cap.udpPlain) {
      const drops: MemberlistWireError[] = [];
      const r = decodePacket(d.bytes, { onDrop: (e) => drops.push(e) });
      expect(r.ok).toBe(true);
      expect(drops).toEqual([]);
      if (r.ok) for (const m of r.value) seen.add(m.type);
      seen.add(`first byte ${d.bytes[0]}`);
    }
    // The capture exercises every UDP form serf uses.
    for (const t of ['ping', 'ackResp', 'alive', 'dead', 'user', 'first byte 7', 'first byte 9', 'first byte 12']) expect(seen).toContain(t);
  });

  it('rebuilds byte-exact from the decoded messages, CRC, compound and LZW included', () => {
    for (const d of cap.udpPlain) expect(toHex(rebuild(d.bytes))).toBe(toHex(d.bytes));
  });
});

describe('codec properties', () => {
  it('decodeMessage(encodeMessage(m)) is m for any message', () => {
    fc.assert(
      fc.property(arbMessage, (m) => {
        expect(plain(decodeMessage(encodeMessage(m)))).toEqual(plain({ ok: true, value: m }));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('decodePacket(encodePacket(parts)) gives the messages back under every option', () => {
    const ring = new Keyring([new Uint8Array(24).fill(9)]);
    fc.assert(
      fc.property(fc.array(arbPacketMessage, { minLength: 1, maxLength: 8 }), fc.boolean(), fc.boolean(), fc.boolean(), (msgs, crc, comp, enc) => {
        const packet = encodePacket(msgs.map(encodeMessage), { crc, compress: comp, ...(enc && { keyring: ring }) });
        const r = decodePacket(packet, enc ? { keyring: ring } : {});
        // A UDP user message runs to the end of its part, so it is only recovered whole as a part.
        expect(plain(r)).toEqual(plain({ ok: true, value: msgs }));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  const reasons = new Set<string>(MEMBERLIST_WIRE_ERRORS);

  it('decodePacket never throws on any bytes, and names a known reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const drops: string[] = [];
        const r = decodePacket(bytes, { onDrop: (e) => drops.push(e) });
        if (!r.ok) expect(reasons.has(r.error)).toBe(true);
        for (const d of drops) expect(reasons.has(d)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('decodePacket never throws on mutated real datagrams', () => {
    const cap = loadSerfCapture();
    fc.assert(
      fc.property(fc.constantFrom(...cap.udpPlain.map((d) => d.bytes)), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (bytes, edits, cut) => {
        const b = bytes.slice(0, Math.max(1, bytes.length - (cut % 8)));
        for (const [i, v] of edits) b[i % b.length] = v;
        const r = decodePacket(b, { onDrop: () => {} });
        if (!r.ok) expect(reasons.has(r.error)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('decodeMessage never throws on any bytes after any type byte', () => {
    fc.assert(
      fc.property(fc.nat({ max: 15 }), fc.uint8Array({ maxLength: 120 }), (type, body) => {
        const r = decodeMessage(Uint8Array.of(type, ...body));
        if (!r.ok) expect(reasons.has(r.error)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
