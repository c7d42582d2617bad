/**
 * Encoding and decoding memberlist messages and UDP packets (spec §2–§7, §10).
 *
 * A message is `[type byte][go-msgpack body]`; bodies are written byte-identical to Go (keys in
 * Go's sorted order, str family for bytes, unsigned integers, nil for empty byte slices) and
 * read as leniently as Go reads them (any key order, unknown keys skipped, array form, bin or
 * str for bytes). A packet may wrap messages in compound (7), compress (9), CRC (12) and
 * encryption, in memberlist's order: compress → CRC → encrypt on send, the reverse on receipt.
 *
 * Nothing here throws on received bytes: decoders return `Result<…, MemberlistWireError>`.
 * Encoders throw RangeError only for values Go could not have sent (a 128-part compound, a
 * negative sequence number …): those are caller bugs, not input.
 */
import { type Result, ok, err } from '../../lib/result.js';
import { crc32 } from './crc32.js';
import { type EncryptionVersion, type FillRandom, type Keyring, decryptPayload, encryptPayload } from './crypto.js';
import { lzwCompress, lzwDecompress } from './lzw.js';
import {
  type AckResp,
  type Alive,
  type Compress,
  type Dead,
  type ErrResp,
  type IndirectPingReq,
  type MemberlistWireError,
  type Message,
  type NackResp,
  type Ping,
  type PushNodeState,
  type PushPull,
  type PushPullHeader,
  type Suspect,
  type UserMsgHeader,
  CompressionAlgo,
  MessageType,
} from './messages.js';
import { MsgpackFailure, MsgpackReader, MsgpackWriter, decodeUtf8 } from './msgpack.js';

/** memberlist's UDP fill target: gossip and piggyback packets stay within it (`ML config.go:307`). */
export const UDP_BUFFER_SIZE = 1400;
/** Largest datagram memberlist reads (`ML net_transport.go:20`). */
export const UDP_RECV_BUFFER_SIZE = 65536;
/** Compound header: type byte and count byte (`ML net.go:70-73`). */
export const COMPOUND_HEADER_OVERHEAD = 2;
/** Each compound part costs a uint16 length. */
export const COMPOUND_OVERHEAD_PER_PART = 2;
/**
 * Go's compound decoder computes `N*2` in uint8 arithmetic (`ML util.go:192,202`): more than
 * 127 parts would be misread, so encodeCompound refuses them.
 */
export const MAX_COMPOUND_PARTS = 127;
/** hasCrc header: type byte and uint32 CRC (`ML net.go:344-354`). */
export const CRC_HEADER_LEN = 5;
/** Bound on a UDP packet's decompressed size (memberlist 0.2.2 has none; a datagram is ≤ 64 KiB). */
export const MAX_PACKET_DECOMPRESSED = 1 << 20;
/** Bound on nested compound/compress inside one packet. */
export const MAX_PACKET_DEPTH = 8;

// ---------------------------------------------------------------------------------------------
// Struct bodies. Key lists are Go's field declaration order (`ML net.go:80-188`), used when a
// body arrives in msgpack array form; writers emit keys in sorted order (spec §6.1, §7).

/** Runs `field` for every key of a struct map (or element of a struct array), skipping unknown ones. */
function readStruct(r: MsgpackReader, declared: readonly string[], field: (key: string) => boolean): void {
  const b = r.peek();
  if ((b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd) {
    const n = r.readArrayHeader();
    for (let i = 0; i < n; i++) {
      const key = declared[i];
      if (key === undefined || !field(key)) r.skip();
    }
    return;
  }
  const n = r.readMapHeader();
  for (let i = 0; i < n; i++) {
    const key = decodeUtf8(r.readStrBytes());
    if (!field(key)) r.skip();
  }
}

/**
 * The `omitempty` Source fields that ping and indirectPingReq share (`ML net.go:88-90, 104-107`):
 * where the ack or nack goes. Absent on the wire when empty, and absent from the repr then.
 */
interface SourceFields {
  sourceAddr: Uint8Array;
  sourcePort: number;
  sourceNode: string;
}

function emptySource(): SourceFields {
  return { sourceAddr: new Uint8Array(0), sourcePort: 0, sourceNode: '' };
}

/** Reads key `k` into `into` when it is a Source field; false otherwise. */
function readSourceField(r: MsgpackReader, k: string, into: SourceFields): boolean {
  if (k === 'SourceAddr') into.sourceAddr = r.readBytes();
  else if (k === 'SourcePort') into.sourcePort = r.readUint(16);
  else if (k === 'SourceNode') into.sourceNode = r.readString();
  else return false;
  return true;
}

function sourceRepr(src: SourceFields): Partial<SourceFields> {
  return {
    ...(src.sourceAddr.length > 0 && { sourceAddr: src.sourceAddr }),
    ...(src.sourcePort !== 0 && { sourcePort: src.sourcePort }),
    ...(src.sourceNode !== '' && { sourceNode: src.sourceNode }),
  };
}

/** How many Source fields go on the wire, for the map header. */
function sourceFieldCount(p: Partial<SourceFields>): number {
  return Number(p.sourceAddr !== undefined && p.sourceAddr.length > 0) + Number(p.sourceNode !== undefined && p.sourceNode !== '') + Number(p.sourcePort !== undefined && p.sourcePort !== 0);
}

/** Writes the non-empty Source fields in Go's sorted key order (they sort together). */
function writeSourceFields(w: MsgpackWriter, p: Partial<SourceFields>): void {
  if (p.sourceAddr !== undefined && p.sourceAddr.length > 0) w.str('SourceAddr').bytes(p.sourceAddr);
  if (p.sourceNode !== undefined && p.sourceNode !== '') w.str('SourceNode').str(p.sourceNode);
  if (p.sourcePort !== undefined && p.sourcePort !== 0) w.str('SourcePort').uint(u16(p.sourcePort));
}

function readPing(r: MsgpackReader): Ping {
  let seqNo = 0;
  let node = '';
  const source = emptySource();
  readStruct(r, ['SeqNo', 'Node', 'SourceAddr', 'SourcePort', 'SourceNode'], (k) => {
    if (k === 'SeqNo') seqNo = r.readUint(32);
    else if (k === 'Node') node = r.readString();
    else return readSourceField(r, k, source);
    return true;
  });
  return { seqNo, node, ...sourceRepr(source) };
}

function writePing(w: MsgpackWriter, p: Ping): void {
  w.mapHeader(2 + sourceFieldCount(p));
  w.str('Node').str(p.node);
  w.str('SeqNo').uint(u32(p.seqNo));
  writeSourceFields(w, p);
}

function readIndirectPing(r: MsgpackReader): IndirectPingReq {
  let seqNo = 0;
  let target: Uint8Array = new Uint8Array(0);
  let port = 0;
  let node = '';
  let nack = false;
  const source = emptySource();
  readStruct(r, ['SeqNo', 'Target', 'Port', 'Node', 'Nack', 'SourceAddr', 'SourcePort', 'SourceNode'], (k) => {
    if (k === 'SeqNo') seqNo = r.readUint(32);
    else if (k === 'Target') target = r.readBytes();
    else if (k === 'Port') port = r.readUint(16);
    else if (k === 'Node') node = r.readString();
    else if (k === 'Nack') nack = r.readBool();
    else return readSourceField(r, k, source);
    return true;
  });
  return { seqNo, target, port, node, nack, ...sourceRepr(source) };
}

function writeIndirectPing(w: MsgpackWriter, p: IndirectPingReq): void {
  w.mapHeader(5 + sourceFieldCount(p));
  w.str('Nack').bool(p.nack);
  w.str('Node').str(p.node);
  w.str('Port').uint(u16(p.port));
  w.str('SeqNo').uint(u32(p.seqNo));
  writeSourceFields(w, p);
  w.str('Target').bytes(p.target);
}

function readAck(r: MsgpackReader): AckResp {
  let seqNo = 0;
  let payload: Uint8Array = new Uint8Array(0);
  readStruct(r, ['SeqNo', 'Payload'], (k) => {
    if (k === 'SeqNo') seqNo = r.readUint(32);
    else if (k === 'Payload') payload = r.readBytes();
    else return false;
    return true;
  });
  return { seqNo, payload };
}

function writeAck(w: MsgpackWriter, a: AckResp): void {
  w.mapHeader(2);
  w.str('Payload').bytes(a.payload);
  w.str('SeqNo').uint(u32(a.seqNo));
}

function readNack(r: MsgpackReader): NackResp {
  let seqNo = 0;
  readStruct(r, ['SeqNo'], (k) => {
    if (k !== 'SeqNo') return false;
    seqNo = r.readUint(32);
    return true;
  });
  return { seqNo };
}

function readErr(r: MsgpackReader): ErrResp {
  let error = '';
  readStruct(r, ['Error'], (k) => {
    if (k !== 'Error') return false;
    error = r.readString();
    return true;
  });
  return { error };
}

/** suspect and dead share one shape (`ML net.go:130-156`). */
function readAccusation(r: MsgpackReader): Suspect & Dead {
  let incarnation = 0;
  let node = '';
  let from = '';
  readStruct(r, ['Incarnation', 'Node', 'From'], (k) => {
    if (k === 'Incarnation') incarnation = r.readUint(32);
    else if (k === 'Node') node = r.readString();
    else if (k === 'From') from = r.readString();
    else return false;
    return true;
  });
  return { incarnation, node, from };
}

function writeAccusation(w: MsgpackWriter, s: Suspect | Dead): void {
  w.mapHeader(3);
  w.str('From').str(s.from);
  w.str('Incarnation').uint(u32(s.incarnation));
  w.str('Node').str(s.node);
}

function readAlive(r: MsgpackReader): Alive {
  let incarnation = 0;
  let node = '';
  let addr: Uint8Array = new Uint8Array(0);
  let port = 0;
  let meta: Uint8Array = new Uint8Array(0);
  let vsn: Uint8Array = new Uint8Array(0);
  readStruct(r, ['Incarnation', 'Node', 'Addr', 'Port', 'Meta', 'Vsn'], (k) => {
    if (k === 'Incarnation') incarnation = r.readUint(32);
    else if (k === 'Node') node = r.readString();
    else if (k === 'Addr') addr = r.readBytes();
    else if (k === 'Port') port = r.readUint(16);
    else if (k === 'Meta') meta = r.readBytes();
    else if (k === 'Vsn') vsn = r.readBytes();
    else return false;
    return true;
  });
  return { incarnation, node, addr, port, meta, vsn };
}

function writeAlive(w: MsgpackWriter, a: Alive): void {
  w.mapHeader(6);
  w.str('Addr').bytes(a.addr);
  w.str('Incarnation').uint(u32(a.incarnation));
  w.str('Meta').bytes(a.meta);
  w.str('Node').str(a.node);
  w.str('Port').uint(u16(a.port));
  w.str('Vsn').bytes(a.vsn);
}

/** Reads a pushPullHeader struct (spec §7.6). Raises MsgpackFailure on bad or missing bytes. */
export function readPushPullHeader(r: MsgpackReader): PushPullHeader {
  let nodes = 0;
  let userStateLen = 0;
  let join = false;
  readStruct(r, ['Nodes', 'UserStateLen', 'Join'], (k) => {
    if (k === 'Nodes') nodes = r.readCount();
    else if (k === 'UserStateLen') userStateLen = r.readCount();
    else if (k === 'Join') join = r.readBool();
    else return false;
    return true;
  });
  return { nodes, userStateLen, join };
}

function writePushPullHeader(w: MsgpackWriter, h: PushPullHeader): void {
  w.mapHeader(3);
  w.str('Join').bool(h.join);
  w.str('Nodes').uint(h.nodes);
  w.str('UserStateLen').uint(h.userStateLen);
}

/** Reads one pushNodeState struct (spec §7.6). Raises MsgpackFailure on bad or missing bytes. */
export function readPushNodeState(r: MsgpackReader): PushNodeState {
  let name = '';
  let addr: Uint8Array = new Uint8Array(0);
  let port = 0;
  let meta: Uint8Array = new Uint8Array(0);
  let incarnation = 0;
  let state = 0;
  let vsn: Uint8Array = new Uint8Array(0);
  readStruct(r, ['Name', 'Addr', 'Port', 'Meta', 'Incarnation', 'State', 'Vsn'], (k) => {
    if (k === 'Name') name = r.readString();
    else if (k === 'Addr') addr = r.readBytes();
    else if (k === 'Port') port = r.readUint(16);
    else if (k === 'Meta') meta = r.readBytes();
    else if (k === 'Incarnation') incarnation = r.readUint(32);
    else if (k === 'State') state = r.readCount();
    else if (k === 'Vsn') vsn = r.readBytes();
    else return false;
    return true;
  });
  return { name, addr, port, meta, incarnation, state, vsn };
}

function writePushNodeState(w: MsgpackWriter, s: PushNodeState): void {
  w.mapHeader(7);
  w.str('Addr').bytes(s.addr);
  w.str('Incarnation').uint(u32(s.incarnation));
  w.str('Meta').bytes(s.meta);
  w.str('Name').str(s.name);
  w.str('Port').uint(u16(s.port));
  w.str('State').uint(s.state);
  w.str('Vsn').bytes(s.vsn);
}

function readUserMsgHeader(r: MsgpackReader): UserMsgHeader {
  let userMsgLen = 0;
  readStruct(r, ['UserMsgLen'], (k) => {
    if (k !== 'UserMsgLen') return false;
    userMsgLen = r.readCount();
    return true;
  });
  return { userMsgLen };
}

function readCompress(r: MsgpackReader): Compress {
  let algo = 0;
  let buf: Uint8Array = new Uint8Array(0);
  readStruct(r, ['Algo', 'Buf'], (k) => {
    if (k === 'Algo') algo = r.readUint(8);
    else if (k === 'Buf') buf = r.readBytes();
    else return false;
    return true;
  });
  return { algo, buf };
}

function u32(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`Not a uint32: ${v}`);
  return v;
}

function u16(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`Not a uint16: ${v}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Whole messages.

/** Runs a reader-based decode, turning MsgpackFailure into an error value. */
export function catchMsgpack<T>(fn: () => T): Result<T, MemberlistWireError> {
  try {
    return ok(fn());
  } catch (e) {
    if (e instanceof MsgpackFailure) return err(e.reason === 'truncated' ? 'truncated' : e.reason === 'bad-field' ? 'bad-field' : 'bad-msgpack');
    throw e; // a bug in this file, not a property of the input
  }
}

/**
 * Writes a push/pull stream's plain content (spec §8.2): `[6]`, header, N node states, raw
 * user state.
 */
export function writePushPull(w: MsgpackWriter, p: PushPull): void {
  w.byte(MessageType.pushPull);
  writePushPullHeader(w, { nodes: p.nodes.length, userStateLen: p.userState.length, join: p.join });
  for (const s of p.nodes) writePushNodeState(w, s);
  w.raw(p.userState);
}

/**
 * Reads a whole push/pull body after its type byte. Raises MsgpackFailure('truncated') while
 * parts are missing; returns 'too-large' when the header announces more user state than
 * `maxUserState`. Byte fields and the user state share `r.bytes`' memory.
 */
export function readPushPull(r: MsgpackReader, maxUserState: number): PushPull | 'too-large' {
  const h = readPushPullHeader(r);
  if (h.userStateLen > maxUserState) return 'too-large';
  // Each node state is a msgpack map of at least one byte: a larger count cannot be satisfied
  // by the bytes at hand, so the loop below runs into 'truncated' instead of allocating.
  const nodes: PushNodeState[] = [];
  for (let i = 0; i < h.nodes; i++) nodes.push(readPushNodeState(r));
  const end = r.offset + h.userStateLen;
  if (end > r.bytes.length) throw new MsgpackFailure('truncated');
  const userState = r.bytes.subarray(r.offset, end);
  r.offset = end;
  return { join: h.join, nodes, userState };
}

/** Reads a TCP user message body after its type byte: header, then UserMsgLen raw bytes (spec §8.4). */
export function readStreamUser(r: MsgpackReader, maxLen: number): Uint8Array | 'too-large' {
  const h = readUserMsgHeader(r);
  if (h.userMsgLen > maxLen) return 'too-large';
  const end = r.offset + h.userMsgLen;
  if (end > r.bytes.length) throw new MsgpackFailure('truncated');
  const payload = r.bytes.subarray(r.offset, end);
  r.offset = end;
  return payload;
}

/** Writes a TCP user message: `[8][userMsgHeader][raw]` (spec §8.4). */
export function writeStreamUser(w: MsgpackWriter, payload: Uint8Array): void {
  w.byte(MessageType.user);
  w.mapHeader(1).str('UserMsgLen').uint(payload.length);
  w.raw(payload);
}

/** Writes `[type][msgpack body]` for every message kind (user: UDP form, raw bytes). */
function writeMessage(w: MsgpackWriter, msg: Message): void {
  switch (msg.type) {
    case 'ping':
      w.byte(MessageType.ping);
      return writePing(w, msg.body);
    case 'indirectPing':
      w.byte(MessageType.indirectPing);
      return writeIndirectPing(w, msg.body);
    case 'ackResp':
      w.byte(MessageType.ackResp);
      return writeAck(w, msg.body);
    case 'nackResp':
      w.byte(MessageType.nackResp);
      w.mapHeader(1).str('SeqNo').uint(u32(msg.body.seqNo));
      return;
    case 'suspect':
      w.byte(MessageType.suspect);
      return writeAccusation(w, msg.body);
    case 'alive':
      w.byte(MessageType.alive);
      return writeAlive(w, msg.body);
    case 'dead':
      w.byte(MessageType.dead);
      return writeAccusation(w, msg.body);
    case 'pushPull':
      return writePushPull(w, msg.body);
    case 'err':
      w.byte(MessageType.err);
      w.mapHeader(1).str('Error').str(msg.body.error);
      return;
    case 'user':
      // UDP form: the delegate's bytes follow the type byte as they are (`ML memberlist.go:540-573`).
      w.byte(MessageType.user);
      w.raw(msg.payload);
      return;
    default: {
      const never: never = msg;
      throw new RangeError(`Unknown message ${String(never)}`);
    }
  }
}

/**
 * Encodes one message as `[type byte][go-msgpack body]`, byte-identical to what memberlist
 * 0.2.2 sends (spec §6, §7, §17). `user` is the UDP form (raw bytes after the type byte; use
 * stream.ts for TCP); `pushPull` is the stream content of spec §8.2. Returns a new buffer.
 * Throws RangeError on out-of-range numbers (a seqNo above 2^32 − 1, a port above 65535).
 */
export function encodeMessage(msg: Message): Uint8Array {
  const w = new MsgpackWriter(msg.type === 'pushPull' ? 256 + msg.body.userState.length : msg.type === 'user' ? 1 + msg.payload.length : 128);
  writeMessage(w, msg);
  return w.finish();
}

/** Decodes a body after the type byte at `r.offset`; shared with the stream reader. */
export function readBody(type: number, r: MsgpackReader): Message | MemberlistWireError {
  switch (type) {
    case MessageType.ping:
      return { type: 'ping', body: readPing(r) };
    case MessageType.indirectPing:
      return { type: 'indirectPing', body: readIndirectPing(r) };
    case MessageType.ackResp:
      return { type: 'ackResp', body: readAck(r) };
    case MessageType.nackResp:
      return { type: 'nackResp', body: readNack(r) };
    case MessageType.suspect:
      return { type: 'suspect', body: readAccusation(r) };
    case MessageType.alive:
      return { type: 'alive', body: readAlive(r) };
    case MessageType.dead:
      return { type: 'dead', body: readAccusation(r) };
    case MessageType.err:
      return { type: 'err', body: readErr(r) };
    default:
      return 'unknown-type';
  }
}

/**
 * Decodes one plain message: ping, indirectPing, ackResp, nackResp, suspect, alive, dead, err,
 * user (UDP form: everything after the type byte is the payload) or a whole pushPull.
 * Framing types (compound, compress, hasCrc, encrypt) and unknown types such as 244 hasLabel
 * are refused with 'unknown-type': use decodePacket for those. Bytes after the msgpack body
 * are ignored, as Go's decoder ignores them. Never throws; byte fields share `bytes`' memory.
 */
export function decodeMessage(bytes: Uint8Array): Result<Message, MemberlistWireError> {
  if (bytes.length === 0) return err('empty');
  const type = bytes[0]!;
  if (type === MessageType.user) return ok({ type: 'user', payload: bytes.subarray(1) });
  const r = new MsgpackReader(bytes, 1);
  const res = catchMsgpack(() => {
    if (type === MessageType.pushPull) {
      const p = readPushPull(r, bytes.length);
      return p === 'too-large' ? 'truncated' : ({ type: 'pushPull', body: p } as const);
    }
    return readBody(type, r);
  });
  if (!res.ok) return res;
  return typeof res.value === 'string' ? err(res.value) : ok(res.value);
}

// ---------------------------------------------------------------------------------------------
// Framing: compound, CRC, compression.

/**
 * Builds a compound message (spec §3, `ML util.go:157-178`): `[7][N][N × uint16 BE length][parts]`.
 * Throws RangeError for more than 127 parts or a part over 65535 bytes (Go could not read them).
 */
export function encodeCompound(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length > MAX_COMPOUND_PARTS) throw new RangeError(`A compound holds at most ${MAX_COMPOUND_PARTS} parts, not ${parts.length}`);
  let total = COMPOUND_HEADER_OVERHEAD + COMPOUND_OVERHEAD_PER_PART * parts.length;
  for (const p of parts) {
    if (p.length > 0xffff) throw new RangeError(`A compound part is at most 65535 bytes, not ${p.length}`);
    total += p.length;
  }
  const out = new Uint8Array(total);
  out[0] = MessageType.compound;
  out[1] = parts.length;
  let o = COMPOUND_HEADER_OVERHEAD;
  for (const p of parts) {
    out[o++] = p.length >>> 8;
    out[o++] = p.length & 0xff;
  }
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The parts of a compound body, and how many listed parts were missing (truncated). */
export interface CompoundParts {
  readonly parts: Uint8Array[];
  readonly truncated: number;
}

/**
 * Splits a compound message (type byte included) into its parts (`ML util.go:183-217`). Parts
 * the buffer is too short for, and every later one, are counted as truncated; earlier ones
 * are kept. Refuses only a buffer too short for the count or the length table. Parts share
 * `bytes`' memory. Never throws.
 */
export function decodeCompound(bytes: Uint8Array): Result<CompoundParts, MemberlistWireError> {
  if (bytes.length < 2) return err('truncated');
  const n = bytes[1]!;
  let o = COMPOUND_HEADER_OVERHEAD + 2 * n;
  if (bytes.length < o) return err('truncated');
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const len = (bytes[2 + 2 * i]! << 8) | bytes[3 + 2 * i]!;
    if (o + len > bytes.length) return ok({ parts, truncated: n - i });
    parts.push(bytes.subarray(o, o + len));
    o += len;
  }
  return ok({ parts, truncated: 0 });
}

/** Prefixes `msg` with `[12][CRC-32/IEEE of msg, uint32 BE]` (spec §4). Returns a new buffer. */
export function wrapCrc(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(CRC_HEADER_LEN + msg.length);
  const crc = crc32(msg);
  out[0] = MessageType.hasCrc;
  out[1] = crc >>> 24;
  out[2] = (crc >>> 16) & 0xff;
  out[3] = (crc >>> 8) & 0xff;
  out[4] = crc & 0xff;
  out.set(msg, CRC_HEADER_LEN);
  return out;
}

/**
 * Checks and strips a hasCrc header (`ML net.go:343-354`): the inner message, or 'bad-crc'.
 * `bytes` must start with type 12; shorter than 5 bytes is 'truncated'.
 */
export function unwrapCrc(bytes: Uint8Array): Result<Uint8Array, MemberlistWireError> {
  if (bytes.length < CRC_HEADER_LEN) return err('truncated');
  const want = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  const inner = bytes.subarray(CRC_HEADER_LEN);
  return crc32(inner) === want ? ok(inner) : err('bad-crc');
}

/**
 * Wraps a complete message (type byte included) as `[9][msgpack compress{Algo: 0, Buf: LZW}]`
 * (spec §5.1), the bytes memberlist's compressPayload produces. Returns a new buffer.
 */
export function compress(msg: Uint8Array): Uint8Array {
  const buf = lzwCompress(msg);
  const w = new MsgpackWriter(buf.length + 24);
  w.byte(MessageType.compress);
  w.mapHeader(2);
  w.str('Algo').uint(CompressionAlgo.lzw);
  w.str('Buf').bytes(buf);
  return w.finish();
}

/**
 * Reads the compress struct at `r.offset` and inflates it: the complete inner message.
 * Raises MsgpackFailure('truncated') while the struct is incomplete (for the stream reader).
 */
export function readCompressed(r: MsgpackReader, maxOutput: number): Result<Uint8Array, MemberlistWireError> {
  const c = readCompress(r);
  if (c.algo !== CompressionAlgo.lzw) return err('unknown-algo');
  const out = lzwDecompress(c.buf, maxOutput);
  return out.ok ? out : err(out.error);
}

/**
 * Inflates a compress message (type byte 9 included) into the complete message it carries.
 * Never throws.
 */
export function decompress(bytes: Uint8Array, maxOutput = MAX_PACKET_DECOMPRESSED): Result<Uint8Array, MemberlistWireError> {
  if (bytes.length === 0) return err('empty');
  const r = new MsgpackReader(bytes, 1);
  const res = catchMsgpack(() => readCompressed(r, maxOutput));
  return res.ok ? res.value : res;
}

// ---------------------------------------------------------------------------------------------
// Packets (UDP).

export interface EncodePacketOptions {
  /** Wrap in hasCrc: only for recipients whose PMax ≥ 5 (spec §4). */
  readonly crc?: boolean;
  /** Compress, keeping the compressed form only when it is smaller (`ML net.go:752-763`). */
  readonly compress?: boolean;
  /** Encrypt the whole datagram with the primary key, no AAD (spec §10). */
  readonly keyring?: Keyring;
  /** 1 unless speaking memberlist protocol 1. */
  readonly encryptionVersion?: EncryptionVersion;
  /** Nonce source for tests; node:crypto otherwise. */
  readonly fillRandom?: FillRandom;
}

/**
 * Builds one UDP datagram from encoded messages, in memberlist's send order
 * (`ML net.go:747-807`): one part goes bare and several as a compound, then compress (only if
 * smaller), then CRC, then encryption. Returns a new buffer; throws RangeError as encodeCompound.
 */
export function encodePacket(parts: readonly Uint8Array[], options: EncodePacketOptions = {}): Uint8Array {
  let msg = parts.length === 1 ? parts[0]! : encodeCompound(parts);
  if (options.compress) {
    const c = compress(msg);
    if (c.length < msg.length) msg = c;
  }
  if (options.crc) msg = wrapCrc(msg);
  if (options.keyring) {
    msg = encryptPayload(options.keyring, msg, new Uint8Array(0), {
      ...(options.encryptionVersion !== undefined && { version: options.encryptionVersion }),
      ...(options.fillRandom && { fillRandom: options.fillRandom }),
    });
  }
  return msg;
}

export interface DecodePacketOptions {
  /** Decrypt with these keys first (spec §10). */
  readonly keyring?: Keyring;
  /**
   * GossipVerifyIncoming (default true): with a keyring, a datagram that does not decrypt is
   * refused. When false, it is read as plaintext instead (`ML net.go:324-341`).
   */
  readonly verifyIncoming?: boolean;
  /**
   * Told about each part dropped inside an otherwise readable packet (a truncated compound
   * part, a bad inner message, a bad CRC on a nested part), so the caller can count it.
   */
  readonly onDrop?: (reason: MemberlistWireError) => void;
  /** Bound on decompressed bytes; MAX_PACKET_DECOMPRESSED by default. */
  readonly maxDecompressed?: number;
}

/**
 * Decodes one UDP datagram into its messages, in order (`ML net.go:324-409`): decrypt when a
 * keyring is given, check and strip a CRC, then unwrap compound and compress recursively (up
 * to MAX_PACKET_DEPTH). Returns an error when the datagram as a whole is unusable (empty,
 * undecryptable, bad CRC, or a single message that does not decode); inside a compound, bad or
 * truncated parts are reported to `onDrop` and the rest are returned. Never throws.
 * Byte fields of the messages are views into `bytes` (or into the decrypted or inflated copy):
 * the caller must not reuse `bytes` while it keeps them.
 */
export function decodePacket(bytes: Uint8Array, options: DecodePacketOptions = {}): Result<Message[], MemberlistWireError> {
  if (bytes.length === 0) return err('empty');
  let buf = bytes;
  if (options.keyring) {
    const plain = decryptPayload(options.keyring, buf);
    if (plain.ok) buf = plain.value;
    else if (options.verifyIncoming ?? true) return err(plain.error);
  }
  // The CRC is checked only at the top, after decryption (`ML net.go:343-354`).
  if (buf.length >= CRC_HEADER_LEN && buf[0] === MessageType.hasCrc) {
    const inner = unwrapCrc(buf);
    if (!inner.ok) return inner;
    buf = inner.value;
  }
  const out: Message[] = [];
  const drop = options.onDrop ?? (() => {});
  const res = dispatch(buf, 0, out, drop, options.maxDecompressed ?? MAX_PACKET_DECOMPRESSED);
  return res === undefined ? ok(out) : err(res);
}

/** memberlist's handleCommand (`ML net.go:357-409`): appends messages, returns why `buf` failed. */
function dispatch(
  buf: Uint8Array,
  depth: number,
  out: Message[],
  drop: (reason: MemberlistWireError) => void,
  maxDecompressed: number,
): MemberlistWireError | undefined {
  if (buf.length === 0) return 'empty';
  if (depth > MAX_PACKET_DEPTH) return 'too-deep';
  const type = buf[0]!;
  if (type === MessageType.compound) {
    const c = decodeCompound(buf);
    if (!c.ok) return c.error;
    for (const part of c.value.parts) {
      const e = dispatch(part, depth + 1, out, drop, maxDecompressed);
      if (e !== undefined) drop(e);
    }
    for (let i = 0; i < c.value.truncated; i++) drop('truncated');
    return undefined;
  }
  if (type === MessageType.compress) {
    const inner = decompress(buf, maxDecompressed);
    if (!inner.ok) return inner.error;
    return dispatch(inner.value, depth + 1, out, drop, maxDecompressed);
  }
  // pushPull, err and hasCrc (below the top) are not UDP messages in memberlist 0.2.2.
  if (type === MessageType.pushPull || type === MessageType.err || type === MessageType.hasCrc) return 'unknown-type';
  const m = decodeMessage(buf);
  if (!m.ok) return m.error;
  out.push(m.value);
  return undefined;
}
