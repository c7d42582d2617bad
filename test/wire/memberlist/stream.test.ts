import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_STREAM_SIZE, StreamReader, decodeStream, encodeStream, type StreamMessage, type StreamReadResult } from '../../../src/wire/memberlist/stream.js';
import { Keyring, decryptPayload } from '../../../src/wire/memberlist/crypto.js';
import { compress, encodeMessage } from '../../../src/wire/memberlist/codec.js';
import { MEMBERLIST_WIRE_ERRORS } from '../../../src/wire/memberlist/messages.js';
import { MsgpackWriter } from '../../../src/wire/memberlist/msgpack.js';
import { toHex } from '../../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../../helpers/fuzz.js';
import { arbAck, arbErr, arbPing, arbPushPull, arbUser, plain } from './arbitraries.js';
import {
  GO_ERR_STREAM,
  GO_PUSH_PULL_HEADER,
  GO_SUSPECT,
  GO_TCP_PING_PLAIN,
  GO_TCP_PING_STREAM,
  LOOPBACK,
  TS_PUSH_PULL,
  loadSerfCapture,
} from './fixtures.js';

const RING = new Keyring([new Uint8Array(32).fill(3)]);

/** Feeds `bytes` in chunks of the given sizes (cycled) and returns each push's status. */
function feed(reader: StreamReader, bytes: Uint8Array, sizes: readonly number[] = [1]): StreamReadResult[] {
  const out: StreamReadResult[] = [];
  let o = 0;
  for (let i = 0; o < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    out.push(reader.push(bytes.subarray(o, o + n)));
    o += n;
  }
  return out;
}

describe('stream reader against serf 0.9.4 streams', () => {
  it('frames serf’s compressed TCP ping (§17.7) only once its last byte has arrived', () => {
    const results = feed(new StreamReader(), GO_TCP_PING_STREAM);
    expect(results.slice(0, -1).every((r) => r.status === 'incomplete')).toBe(true);
    expect(plain(results.at(-1))).toEqual(
      plain({
        status: 'message',
        message: { type: 'ping', body: { seqNo: 128, node: 'tstcp', sourceAddr: LOOPBACK, sourcePort: 7946, sourceNode: 's1' } },
        encrypted: false,
        compressed: true,
      }),
    );
  });

  it('reads serf’s err reply (§17.8)', () => {
    expect(decodeStream(GO_ERR_STREAM)).toEqual({ ok: true, value: { type: 'err', body: { error: 'Cannot decompress unknown algorithm 5' } } });
  });

  it('frames a plain push/pull (§17.9) byte by byte', () => {
    const results = feed(new StreamReader(), TS_PUSH_PULL);
    expect(results.filter((r) => r.status !== 'incomplete')).toHaveLength(1);
    const last = results.at(-1)!;
    expect(last.status === 'message' && last.message.type === 'pushPull' && last.message.body.nodes.map((n) => n.name)).toEqual(['ts1']);
  });

  it('waits for the user state a push/pull header announces (§17.10)', () => {
    const reader = new StreamReader();
    expect(reader.push(GO_PUSH_PULL_HEADER).status).toBe('incomplete');
    expect(reader.end()).toEqual({ status: 'error', error: 'truncated' });
  });

  it('reads every stream in the capture and re-encodes the plaintext ones byte-exact', () => {
    const cap = loadSerfCapture();
    const ring = Keyring.fromBase64(cap.key);
    const names = new Set<string>();
    for (const s of cap.tcp) {
      const results = feed(new StreamReader(s.encrypted ? { keyring: ring } : {}), s.bytes, [1000, 7, 1460]);
      const last = results.at(-1)!;
      expect(last.status).toBe('message');
      if (last.status !== 'message') continue;
      expect(last.encrypted).toBe(s.encrypted);
      expect(last.compressed).toBe(true); // v0.2.2 compresses every stream write
      expect(last.message.type).toBe('pushPull');
      if (last.message.type !== 'pushPull') continue;
      for (const n of last.message.body.nodes) names.add(n.name);
      expect(last.message.body.userState[0]).toBe(2); // serf's push/pull user state prefix (§14.4)
      let content = s.bytes;
      if (s.encrypted) {
        const opened = decryptPayload(ring, s.bytes.subarray(5), s.bytes.subarray(0, 5));
        expect(opened.ok).toBe(true);
        if (opened.ok) content = opened.value;
      }
      expect(toHex(encodeStream(last.message, { compress: true }))).toBe(toHex(content));
    }
    expect([...names].sort()).toEqual(['e1', 'e2', 'p1', 'p2']);
  });
});

describe('stream reader refusals', () => {
  it('refuses encrypted input without a keyring, plaintext with one, and a wrong key', () => {
    const enc = encodeStream({ type: 'ping', body: { seqNo: 1, node: 'a' } }, { keyring: RING });
    expect(decodeStream(enc)).toEqual({ ok: false, error: 'no-keyring' });
    expect(decodeStream(GO_TCP_PING_STREAM, { keyring: RING })).toEqual({ ok: false, error: 'not-encrypted' });
    expect(decodeStream(enc, { keyring: new Keyring([new Uint8Array(32).fill(4)]) })).toEqual({ ok: false, error: 'decrypt-failed' });
    expect(decodeStream(GO_TCP_PING_STREAM, { keyring: RING, verifyIncoming: false }).ok).toBe(true);
  });

  it('binds the 5-byte header as AAD: a changed length byte fails authentication', () => {
    const enc = encodeStream({ type: 'ping', body: { seqNo: 1, node: 'a' } }, { keyring: RING });
    const bad = Uint8Array.of(...enc, 0);
    bad[4]! += 1;
    expect(decodeStream(bad, { keyring: RING })).toEqual({ ok: false, error: 'decrypt-failed' });
  });

  it('refuses absurd lengths at once instead of buffering for them', () => {
    const hugeBlob = Uint8Array.of(10, 0x01, 0x40, 0x00, 0x01); // 20 MiB + 1
    expect(new StreamReader({ keyring: RING }).push(hugeBlob)).toEqual({ status: 'error', error: 'too-large' });
    const w = new MsgpackWriter();
    w.byte(6).mapHeader(3).str('Join').bool(false).str('Nodes').uint(0).str('UserStateLen').uint(MAX_STREAM_SIZE + 1);
    expect(new StreamReader().push(w.finish())).toEqual({ status: 'error', error: 'too-large' });
    const u = new MsgpackWriter();
    u.byte(8).mapHeader(1).str('UserMsgLen').uint(2 ** 40);
    expect(new StreamReader().push(u.finish())).toEqual({ status: 'error', error: 'too-large' });
  });

  it('stops buffering at its size bound', () => {
    const reader = new StreamReader({ maxSize: 1000 });
    const w = new MsgpackWriter();
    w.byte(6).mapHeader(3).str('Join').bool(false).str('Nodes').uint(0).str('UserStateLen').uint(900);
    expect(reader.push(w.finish()).status).toBe('incomplete');
    expect(reader.push(new Uint8Array(600)).status).toBe('incomplete');
    expect(reader.push(new Uint8Array(600))).toEqual({ status: 'error', error: 'too-large' });
  });

  it('refuses message types that do not travel on streams', () => {
    expect(decodeStream(GO_SUSPECT)).toEqual({ ok: false, error: 'unknown-type' });
    expect(decodeStream(compress(compress(GO_TCP_PING_PLAIN)))).toEqual({ ok: false, error: 'unknown-type' });
    expect(decodeStream(Uint8Array.of(244, 3, 97, 98, 99))).toEqual({ ok: false, error: 'unknown-type' });
  });

  it('reports the end of a stream before a message as empty or truncated', () => {
    expect(new StreamReader().end()).toEqual({ status: 'error', error: 'empty' });
    const r = new StreamReader();
    r.push(GO_TCP_PING_STREAM.subarray(0, 20));
    expect(r.end()).toEqual({ status: 'error', error: 'truncated' });
  });

  it('keeps its first final result and ignores bytes after the message', () => {
    const r = new StreamReader();
    const first = r.push(Uint8Array.of(...GO_TCP_PING_STREAM, 1, 2, 3));
    expect(first.status).toBe('message');
    expect(r.push(GO_SUSPECT)).toBe(first);
    expect(r.end()).toBe(first);
  });
});

describe('stream writer (ML net.go:811-842)', () => {
  it('writes a TCP user message with its userMsgHeader (spec §8.4)', () => {
    expect(toHex(encodeStream({ type: 'user', payload: Uint8Array.of(1, 2) }))).toBe('0881aa557365724d73674c656e020102');
  });

  it('compresses even when that makes the stream larger, as v0.2.2 does', () => {
    const plainAck = encodeMessage({ type: 'ackResp', body: { seqNo: 1, payload: new Uint8Array(0) } });
    const s = encodeStream({ type: 'ackResp', body: { seqNo: 1, payload: new Uint8Array(0) } }, { compress: true });
    expect(s[0]).toBe(9);
    expect(s.length).toBeGreaterThan(plainAck.length);
  });

  it('frames encryption as [10][uint32 BE length][blob] (spec §10, §17.12)', () => {
    const s = encodeStream({ type: 'ping', body: { seqNo: 1, node: 'a' } }, { keyring: RING, compress: true });
    expect(s[0]).toBe(10);
    expect(new DataView(s.buffer, s.byteOffset).getUint32(1)).toBe(s.length - 5);
    expect(s[5]).toBe(1); // encryption version 1
  });
});

const arbStreamMessage: fc.Arbitrary<StreamMessage> = fc.oneof(arbPing, arbAck, arbErr, arbUser, arbPushPull.map((body) => ({ type: 'pushPull' as const, body })));

describe('stream properties', () => {
  it('reads back any message the writer wrote, however the bytes are chunked', () => {
    fc.assert(
      fc.property(arbStreamMessage, fc.boolean(), fc.boolean(), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 5 }), (msg, comp, enc, sizes) => {
        const bytes = encodeStream(msg, { compress: comp, ...(enc && { keyring: RING }) });
        const results = feed(new StreamReader(enc ? { keyring: RING } : {}), bytes, sizes);
        expect(results.slice(0, -1).every((r) => r.status === 'incomplete')).toBe(true);
        expect(plain(results.at(-1))).toEqual(plain({ status: 'message', message: msg, encrypted: enc, compressed: comp }));
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  const reasons = new Set<string>(MEMBERLIST_WIRE_ERRORS);

  it('never throws on any bytes in any chunking', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 4 }), (bytes, withRing, sizes) => {
        const reader = new StreamReader(withRing ? { keyring: RING, verifyIncoming: false } : {});
        const results = [...feed(reader, bytes, sizes), reader.end()];
        for (const r of results) if (r.status === 'error') expect(reasons.has(r.error)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never throws on mutated real streams', () => {
    const streams = [GO_TCP_PING_STREAM, GO_ERR_STREAM, TS_PUSH_PULL];
    fc.assert(
      fc.property(fc.constantFrom(...streams), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 3 }), (bytes, edits) => {
        const b = bytes.slice();
        for (const [i, v] of edits) b[i % b.length] = v;
        const r = decodeStream(b);
        if (!r.ok) expect(reasons.has(r.error)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
