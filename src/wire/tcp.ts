/**
 * TCP segments (RFC 9293 §3.1) with the options a modern stack exchanges: End of Option List,
 * No-Operation and Maximum Segment Size (RFC 9293 §3.2, §3.7.1), Window Scale and Timestamps
 * (RFC 7323 §2, §3), SACK-Permitted and SACK (RFC 2018 §2, §3). Options of any other kind are
 * skipped by their length byte (RFC 9293 §3.2: "must be prepared to handle an illegal option
 * length ... without crashing").
 *
 * Parsing allocates the Repr (and, only when present, the timestamp and SACK block objects);
 * the payload is a view into the caller's buffer. Emitting writes the header in place in front
 * of a payload that is already there (headroom, CONVENTIONS.md §2) and lays options out the
 * way Linux does (net/ipv4/tcp_output.c, tcp_options_write), so that a segment Linux sent
 * re-emits byte for byte and every option stays 4-byte aligned with NOP padding:
 *
 *   MSS(4) | SACK_PERM(2) TS(10) | NOP NOP TS(10) | NOP NOP SACK_PERM(2) | NOP WS(3) | NOP NOP SACK(2+8n)
 */
import { type Result, ok, err } from '../lib/result.js';
import type { Ipv4Address } from './address.js';
import { foldSum, ipv4PseudoHeaderSum, sumWords } from './checksum.js';
import type { WireError } from './errors.js';
import { readU16, writeU16, readU32, writeU32 } from './bytes.js';

const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFFSET = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;
export const TCP_HEADER_LEN = 20;
/** The data offset field is 4 bits of 32-bit words: at most 60 bytes of header, 40 of options. */
export const TCP_MAX_HEADER_LEN = 60;
/** The IPv4 protocol number of TCP, for the pseudo-header. */
export const IP_PROTOCOL_TCP = 6;

/** The control bits of RFC 9293 §3.1 (with ECE and CWR from RFC 3168 §6.1). */
export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptionKind = {
  EndOfList: 0,
  NoOperation: 1,
  MaxSegmentSize: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamps: 8,
} as const;

/** RFC 7323 §2.3: a shift above 14 is treated as 14 by the receiver; the codec reports what was sent. */
export const TCP_MAX_WINDOW_SCALE = 14;

export interface TcpTimestamp {
  readonly tsVal: number;
  readonly tsEcr: number;
}

/** A SACK block: the left edge (first sequence number) and the right edge (one past the last), RFC 2018 §3. */
export type TcpSackBlock = readonly [left: number, right: number];

/**
 * The fields of a segment that matter above the codec. Sequence and acknowledgment numbers are
 * unsigned 32-bit values; `window` is the raw 16-bit field (the scaling is the connection's
 * business, RFC 7323 §2.3). Absent options are undefined (parse always sets every key, so every
 * Repr has one shape for the JIT).
 */
export interface TcpRepr {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  /** TcpFlags bits; the four reserved bits are dropped on parse and written as zero. */
  readonly flags: number;
  readonly window: number;
  readonly urgent: number;
  readonly mss?: number | undefined;
  readonly windowScale?: number | undefined;
  readonly sackPermitted?: boolean | undefined;
  readonly sackBlocks?: readonly TcpSackBlock[] | undefined;
  readonly timestamp?: TcpTimestamp | undefined;
}

/** A zero-copy view of a TCP segment. Getters read, setters write; nothing is checked. */
export class TcpSegment {
  constructor(readonly bytes: Uint8Array) {}

  get srcPort(): number {
    return readU16(this.bytes, SRC_PORT);
  }
  set srcPort(value: number) {
    writeU16(this.bytes, SRC_PORT, value);
  }
  get dstPort(): number {
    return readU16(this.bytes, DST_PORT);
  }
  set dstPort(value: number) {
    writeU16(this.bytes, DST_PORT, value);
  }
  get seq(): number {
    return readU32(this.bytes, SEQ);
  }
  set seq(value: number) {
    writeU32(this.bytes, SEQ, value);
  }
  get ack(): number {
    return readU32(this.bytes, ACK);
  }
  set ack(value: number) {
    writeU32(this.bytes, ACK, value);
  }
  /** Header length in bytes: the data offset field times four. */
  get headerLen(): number {
    return (this.bytes[DATA_OFFSET]! >>> 4) * 4;
  }
  set headerLen(value: number) {
    this.bytes[DATA_OFFSET] = (value / 4) << 4;
  }
  get flags(): number {
    return this.bytes[FLAGS]!;
  }
  set flags(value: number) {
    this.bytes[FLAGS] = value;
  }
  get window(): number {
    return readU16(this.bytes, WINDOW);
  }
  set window(value: number) {
    writeU16(this.bytes, WINDOW, value);
  }
  get checksum(): number {
    return readU16(this.bytes, CHECKSUM);
  }
  set checksum(value: number) {
    writeU16(this.bytes, CHECKSUM, value);
  }
  get urgent(): number {
    return readU16(this.bytes, URGENT);
  }
  set urgent(value: number) {
    writeU16(this.bytes, URGENT, value);
  }
  /** The option bytes, sharing the segment's memory. */
  get options(): Uint8Array {
    return this.bytes.subarray(TCP_HEADER_LEN, this.headerLen);
  }
  /** The bytes after the header, sharing the segment's memory. */
  get payload(): Uint8Array {
    return this.bytes.subarray(this.headerLen);
  }

}

export interface ParsedTcp {
  readonly repr: TcpRepr;
  /** A view into the input: the caller's buffer, not a copy. */
  readonly payload: Uint8Array;
}

/**
 * Parses a TCP segment: `bytes` is the whole IP payload (header and data), `src` and `dst` the
 * IPv4 addresses of the packet, for the pseudo-header checksum (RFC 9293 §3.1). The checksum is
 * verified unless `verifyChecksum` is false (for a link that vouches for it).
 */
export function parseTcp(
  bytes: Uint8Array,
  src: Ipv4Address,
  dst: Ipv4Address,
  options?: { readonly verifyChecksum?: boolean },
): Result<ParsedTcp, WireError> {
  if (bytes.length < TCP_HEADER_LEN) return err('truncated');
  const headerLen = (bytes[DATA_OFFSET]! >>> 4) * 4;
  if (headerLen < TCP_HEADER_LEN || headerLen > bytes.length) return err('bad-header-length');
  if (options?.verifyChecksum !== false) {
    const sum = sumWords(bytes, ipv4PseudoHeaderSum(src, dst, IP_PROTOCOL_TCP, bytes.length));
    if (foldSum(sum) !== 0xffff) return err('bad-checksum');
  }

  let mss: number | undefined;
  let windowScale: number | undefined;
  let sackPermitted: boolean | undefined;
  let sackBlocks: TcpSackBlock[] | undefined;
  let timestamp: TcpTimestamp | undefined;
  // RFC 9293 §3.2: options are a kind byte, or a kind byte, a length byte counting both, and data.
  let i = TCP_HEADER_LEN;
  while (i < headerLen) {
    const kind = bytes[i]!;
    if (kind === TcpOptionKind.EndOfList) break;
    if (kind === TcpOptionKind.NoOperation) {
      i += 1;
      continue;
    }
    if (i + 1 >= headerLen) return err('bad-option');
    const len = bytes[i + 1]!;
    if (len < 2 || i + len > headerLen) return err('bad-option');
    switch (kind) {
      case TcpOptionKind.MaxSegmentSize:
        if (len !== 4) return err('bad-option');
        mss = (bytes[i + 2]! << 8) | bytes[i + 3]!;
        break;
      case TcpOptionKind.WindowScale:
        if (len !== 3) return err('bad-option');
        windowScale = bytes[i + 2]!;
        break;
      case TcpOptionKind.SackPermitted:
        if (len !== 2) return err('bad-option');
        sackPermitted = true;
        break;
      case TcpOptionKind.Sack: {
        // RFC 2018 §3: 8 bytes per block, at least one block.
        if (len < 10 || (len - 2) % 8 !== 0) return err('bad-option');
        sackBlocks = [];
        for (let b = i + 2; b < i + len; b += 8) sackBlocks.push([readU32(bytes, b), readU32(bytes, b + 4)]);
        break;
      }
      case TcpOptionKind.Timestamps:
        if (len !== 10) return err('bad-option');
        timestamp = { tsVal: readU32(bytes, i + 2), tsEcr: readU32(bytes, i + 6) };
        break;
      default:
        break; // RFC 9293 §3.2: an unknown option is skipped by its length.
    }
    i += len;
  }

  const repr: TcpRepr = {
    srcPort: (bytes[SRC_PORT]! << 8) | bytes[SRC_PORT + 1]!,
    dstPort: (bytes[DST_PORT]! << 8) | bytes[DST_PORT + 1]!,
    seq: readU32(bytes, SEQ),
    ack: readU32(bytes, ACK),
    flags: bytes[FLAGS]!,
    window: (bytes[WINDOW]! << 8) | bytes[WINDOW + 1]!,
    urgent: (bytes[URGENT]! << 8) | bytes[URGENT + 1]!,
    mss,
    windowScale,
    sackPermitted,
    sackBlocks,
    timestamp,
  };
  return ok({ repr, payload: bytes.subarray(headerLen) });
}

/** How many SACK blocks fit beside the other options of `repr` (RFC 2018 §3: 4, or 3 with timestamps). */
export function tcpMaxSackBlocks(repr: Omit<TcpRepr, 'sackBlocks'>): number {
  return Math.floor((TCP_MAX_HEADER_LEN - TCP_HEADER_LEN - fixedOptionsLen(repr) - 4) / 8);
}

/** The header length `emitTcp` writes for `repr`: 20 plus the options, padded to 4 bytes. */
export function tcpHeaderLen(repr: TcpRepr): number {
  return TCP_HEADER_LEN + fixedOptionsLen(repr) + sackOptionLen(repr);
}

/**
 * Writes the header of `repr` at `out[offset]` and its checksum over the `payloadLen` bytes that
 * are already at `offset + tcpHeaderLen(repr)` (RFC 9293 §3.1, with the IPv4 pseudo-header of
 * `src` and `dst`). SACK blocks beyond what fits (tcpMaxSackBlocks) are left out, first ones
 * kept: RFC 2018 §4 puts the most recent block first. Returns the header length.
 * Throws RangeError when `out` has no room for the header and payload.
 */
export function emitTcp(
  repr: TcpRepr,
  out: Uint8Array,
  offset: number,
  payloadLen: number,
  src: Ipv4Address,
  dst: Ipv4Address,
): number {
  const headerLen = tcpHeaderLen(repr);
  if (offset + headerLen + payloadLen > out.length) throw new RangeError('No room for a TCP segment');
  const b = out;
  const o = offset;
  b[o + SRC_PORT] = repr.srcPort >>> 8;
  b[o + SRC_PORT + 1] = repr.srcPort & 0xff;
  b[o + DST_PORT] = repr.dstPort >>> 8;
  b[o + DST_PORT + 1] = repr.dstPort & 0xff;
  writeU32(b, o + SEQ, repr.seq);
  writeU32(b, o + ACK, repr.ack);
  b[o + DATA_OFFSET] = (headerLen / 4) << 4;
  b[o + FLAGS] = repr.flags & 0xff;
  b[o + WINDOW] = repr.window >>> 8;
  b[o + WINDOW + 1] = repr.window & 0xff;
  b[o + CHECKSUM] = 0;
  b[o + CHECKSUM + 1] = 0;
  b[o + URGENT] = repr.urgent >>> 8;
  b[o + URGENT + 1] = repr.urgent & 0xff;

  let i = o + TCP_HEADER_LEN;
  if (repr.mss !== undefined) {
    b[i] = TcpOptionKind.MaxSegmentSize;
    b[i + 1] = 4;
    b[i + 2] = repr.mss >>> 8;
    b[i + 3] = repr.mss & 0xff;
    i += 4;
  }
  const ts = repr.timestamp;
  if (ts !== undefined) {
    if (repr.sackPermitted === true) {
      b[i] = TcpOptionKind.SackPermitted;
      b[i + 1] = 2;
    } else {
      b[i] = TcpOptionKind.NoOperation;
      b[i + 1] = TcpOptionKind.NoOperation;
    }
    b[i + 2] = TcpOptionKind.Timestamps;
    b[i + 3] = 10;
    writeU32(b, i + 4, ts.tsVal);
    writeU32(b, i + 8, ts.tsEcr);
    i += 12;
  } else if (repr.sackPermitted === true) {
    b[i] = TcpOptionKind.NoOperation;
    b[i + 1] = TcpOptionKind.NoOperation;
    b[i + 2] = TcpOptionKind.SackPermitted;
    b[i + 3] = 2;
    i += 4;
  }
  if (repr.windowScale !== undefined) {
    b[i] = TcpOptionKind.NoOperation;
    b[i + 1] = TcpOptionKind.WindowScale;
    b[i + 2] = 3;
    b[i + 3] = repr.windowScale;
    i += 4;
  }
  const blocks = repr.sackBlocks;
  if (blocks !== undefined && blocks.length > 0) {
    const n = Math.min(blocks.length, tcpMaxSackBlocks(repr));
    b[i] = TcpOptionKind.NoOperation;
    b[i + 1] = TcpOptionKind.NoOperation;
    b[i + 2] = TcpOptionKind.Sack;
    b[i + 3] = 2 + 8 * n;
    i += 4;
    for (let k = 0; k < n; k++) {
      const block = blocks[k]!;
      writeU32(b, i, block[0]);
      writeU32(b, i + 4, block[1]);
      i += 8;
    }
  }

  const total = headerLen + payloadLen;
  const sum = sumWords(b.subarray(o, o + total), ipv4PseudoHeaderSum(src, dst, IP_PROTOCOL_TCP, total));
  const checksum = ~foldSum(sum) & 0xffff;
  b[o + CHECKSUM] = checksum >>> 8;
  b[o + CHECKSUM + 1] = checksum & 0xff;
  return headerLen;
}

/** Bytes of every option but SACK blocks, in emit's layout. */
function fixedOptionsLen(repr: Omit<TcpRepr, 'sackBlocks'>): number {
  let len = 0;
  if (repr.mss !== undefined) len += 4;
  if (repr.timestamp !== undefined) len += 12;
  else if (repr.sackPermitted === true) len += 4;
  if (repr.windowScale !== undefined) len += 4;
  return len;
}

function sackOptionLen(repr: TcpRepr): number {
  const blocks = repr.sackBlocks;
  if (blocks === undefined || blocks.length === 0) return 0;
  return 4 + 8 * Math.min(blocks.length, tcpMaxSackBlocks(repr));
}



