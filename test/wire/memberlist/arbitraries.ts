/** fast-check arbitraries for memberlist messages (shared by the codec and stream tests). */
import fc from 'fast-check';
import type { Message, PushNodeState } from '../../../src/wire/memberlist/messages.js';

const u32 = fc.nat({ max: 0xffff_ffff });
const u16 = fc.nat({ max: 0xffff });
const name = fc.string({ unit: 'grapheme', maxLength: 40 });
const bytes = fc.uint8Array({ maxLength: 40 });
const addr = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }));

/** The Source* fields as Go's omitempty leaves them: present only when non-empty/non-zero. */
const source = fc.record({
  sourceAddr: fc.option(addr, { nil: undefined }),
  sourcePort: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
  sourceNode: fc.option(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), { nil: undefined }),
});

const withSource = <T extends object>(body: T, s: { sourceAddr: Uint8Array | undefined; sourcePort: number | undefined; sourceNode: string | undefined }) => ({
  ...body,
  ...(s.sourceAddr && { sourceAddr: s.sourceAddr }),
  ...(s.sourcePort !== undefined && { sourcePort: s.sourcePort }),
  ...(s.sourceNode !== undefined && { sourceNode: s.sourceNode }),
});

export const arbPushNodeState: fc.Arbitrary<PushNodeState> = fc.record({
  name,
  addr,
  port: u16,
  meta: bytes,
  incarnation: u32,
  state: fc.nat({ max: 3 }),
  vsn: fc.uint8Array({ minLength: 6, maxLength: 6 }),
});

export const arbPushPull = fc.record({
  join: fc.boolean(),
  nodes: fc.array(arbPushNodeState, { maxLength: 6 }),
  userState: fc.uint8Array({ maxLength: 300 }),
});

export const arbPing = fc.tuple(fc.record({ seqNo: u32, node: name }), source).map(([b, s]) => ({ type: 'ping' as const, body: withSource(b, s) }));
export const arbAck = fc.record({ seqNo: u32, payload: bytes }).map((body) => ({ type: 'ackResp' as const, body }));
export const arbErr = fc.record({ error: fc.string({ unit: 'grapheme', maxLength: 80 }) }).map((body) => ({ type: 'err' as const, body }));
export const arbUser = fc.uint8Array({ maxLength: 200 }).map((payload) => ({ type: 'user' as const, payload }));

/** Any message encodeMessage writes and decodeMessage reads back unchanged. */
export const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  arbPing,
  fc
    .tuple(fc.record({ seqNo: u32, target: addr, port: u16, node: name, nack: fc.boolean() }), source)
    .map(([b, s]) => ({ type: 'indirectPing' as const, body: withSource(b, s) })),
  arbAck,
  fc.record({ seqNo: u32 }).map((body) => ({ type: 'nackResp' as const, body })),
  fc.record({ incarnation: u32, node: name, from: name }).map((body) => ({ type: 'suspect' as const, body })),
  fc.record({ incarnation: u32, node: name, from: name }).map((body) => ({ type: 'dead' as const, body })),
  fc
    .record({ incarnation: u32, node: name, addr, port: u16, meta: bytes, vsn: fc.uint8Array({ minLength: 6, maxLength: 6 }) })
    .map((body) => ({ type: 'alive' as const, body })),
  arbPushPull.map((body) => ({ type: 'pushPull' as const, body })),
  arbErr,
  arbUser,
);

/** The messages that travel in UDP packets. */
export const arbPacketMessage: fc.Arbitrary<Message> = arbMessage.filter((m) => m.type !== 'pushPull' && m.type !== 'err');

/** Plain comparable form: Uint8Array fields as hex, for toEqual across buffer kinds. */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return `hex:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}
