/**
 * The DNS message format (RFC 1035 §4.1), as much of it as a stub-facing server needs: a
 * query parser that never throws and says how bad input must be answered, and a response
 * writer with name compression (§4.1.4) and a size budget for truncation (§4.2.1, RFC 6891 §7).
 *
 * Why not dns-packet here: its decoder throws on hostile input, re-encodes the question (a
 * resolver using 0x20 case randomisation needs its own bytes back, RFC 1035 §7.3 / draft-vixie-
 * dnsext-dns0x20) and never compresses names, so fewer answers fit in 512 bytes; and this path
 * is the one the dnsperf benchmark measures. Tests use dns-packet as an independent oracle.
 */

export const DNS_HEADER_LEN = 12;
/** RFC 1035 §4.2.1: a UDP message without EDNS carries at most 512 bytes. */
export const DNS_UDP_MIN_PAYLOAD = 512;
/** A TCP message's two-byte length prefix caps it (RFC 7766 §8). */
export const DNS_MAX_MESSAGE = 65535;
/** RFC 1035 §2.3.4. */
export const DNS_MAX_NAME_LEN = 255;
export const DNS_MAX_LABEL_LEN = 63;

/** RR TYPE values (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 6891). */
export const RrType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const;

/** CLASS values (RFC 1035 §3.2.4). */
export const RrClass = { IN: 1, CH: 3, HS: 4, ANY: 255 } as const;

/** RCODE values (RFC 1035 §4.1.1; BADVERS is an extended RCODE, RFC 6891 §9). */
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export type RcodeValue = (typeof Rcode)[keyof typeof Rcode];

export const OPCODE_QUERY = 0;

/** Header flag bits in the second 16-bit word (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD). */
export const Flag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;
const OPCODE_SHIFT = 11;
const OPCODE_MASK = 0x0f;
const RCODE_MASK = 0x000f;

/** What RFC 6891 §6.1.2 carries in an OPT RR that this server uses. */
export interface Edns {
  /** The requestor's UDP payload size; values below 512 are treated as 512 (§6.2.3). */
  readonly udpPayloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

/** A well-formed standard query with exactly one question (RFC 1035 §4.1.2). */
export interface DnsQuery {
  readonly id: number;
  /** The raw second header word. */
  readonly flags: number;
  /**
   * The question's labels, ASCII-lowercased (RFC 4343: names compare case-insensitively),
   * decoded as latin1 so every byte survives. The root name has no labels.
   */
  readonly labels: readonly string[];
  readonly qtype: number;
  readonly qclass: number;
  /** The question section as sent is bytes[DNS_HEADER_LEN, questionEnd): echoed verbatim. */
  readonly questionEnd: number;
  readonly edns: Edns | undefined;
}

export type QueryParse =
  /** Not worth an answer: too short to carry even an ID, or a response (answering it could loop). */
  | { readonly kind: 'drop'; readonly reason: 'short' | 'response' }
  /** Has a header, so gets a header-only answer with this rcode (RFC 1035 §4.1.1). */
  | { readonly kind: 'error'; readonly id: number; readonly flags: number; readonly rcode: RcodeValue; readonly reason: string }
  | { readonly kind: 'query'; readonly query: DnsQuery };

export function readU16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function writeU16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = (value >>> 8) & 0xff;
  bytes[at + 1] = value & 0xff;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = (value >>> 24) & 0xff;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

export function opcodeOf(flags: number): number {
  return (flags >>> OPCODE_SHIFT) & OPCODE_MASK;
}

export function rcodeOf(flags: number): number {
  return flags & RCODE_MASK;
}

/**
 * Skips one possibly compressed name in an RR (RFC 1035 §4.1.4). Returns the offset after it,
 * or -1 when it runs off the end or uses the reserved label types 0x40/0x80 (RFC 6891 §5).
 */
export function skipName(bytes: Uint8Array, at: number): number {
  let offset = at;
  for (;;) {
    if (offset >= bytes.length) return -1;
    const len = bytes[offset]!;
    if (len === 0) return offset + 1;
    const kind = len & 0xc0;
    if (kind === 0xc0) return offset + 2 <= bytes.length ? offset + 2 : -1;
    if (kind !== 0) return -1;
    offset += 1 + len;
  }
}

const error = (id: number, flags: number, rcode: RcodeValue, reason: string): QueryParse => ({ kind: 'error', id, flags, rcode, reason });

/**
 * Judges one message a client sent. Never throws. Order of checks: fewer than 2 bytes has no
 * ID to answer to and is dropped; QR=1 is dropped; a message with an ID but no whole header
 * gets FORMERR (a header-only answer needs nothing more); opcode ≠ QUERY gets NOTIMP before
 * the body is read (RFC 1035
 * §4.1.1: "not implemented"); QDCOUNT ≠ 1 gets FORMERR (the only count a query can carry,
 * RFC 1035 §4.1.2 in practice; multi-question queries were never given semantics); a
 * question name must be uncompressed (nothing precedes it to point at) and within §2.3.4's
 * limits; the additional section may hold at most one OPT RR, with the root as owner
 * (RFC 6891 §6.1.1). Bytes after the last counted RR are ignored.
 * With `decodeLabels` false the name is checked the same way but `labels` is left empty, for a
 * caller that may not need them (an answer cache hit); `questionLabels` decodes them later.
 */
export function parseQuery(bytes: Uint8Array, decodeLabels = true): QueryParse {
  if (bytes.length < 2) return { kind: 'drop', reason: 'short' };
  const id = readU16(bytes, 0);
  // With a third byte we know QR and the opcode; without one, assume a plain query.
  const flags = bytes.length >= 4 ? readU16(bytes, 2) : bytes.length === 3 ? bytes[2]! << 8 : 0;
  if (flags & Flag.QR) return { kind: 'drop', reason: 'response' };
  if (bytes.length < DNS_HEADER_LEN) return error(id, flags, Rcode.FORMERR, 'header truncated');
  if (opcodeOf(flags) !== OPCODE_QUERY) return error(id, flags, Rcode.NOTIMP, 'opcode');
  const qdcount = readU16(bytes, 4);
  if (qdcount !== 1) return error(id, flags, Rcode.FORMERR, 'qdcount');

  const labels: string[] = [];
  let offset = DNS_HEADER_LEN;
  let nameLen = 1;
  for (;;) {
    if (offset >= bytes.length) return error(id, flags, Rcode.FORMERR, 'question truncated');
    const len = bytes[offset]!;
    if (len === 0) {
      offset++;
      break;
    }
    if (len > DNS_MAX_LABEL_LEN) return error(id, flags, Rcode.FORMERR, 'question label');
    nameLen += len + 1;
    if (nameLen > DNS_MAX_NAME_LEN) return error(id, flags, Rcode.FORMERR, 'question name too long');
    if (offset + 1 + len > bytes.length) return error(id, flags, Rcode.FORMERR, 'question truncated');
    if (decodeLabels) labels.push(lowerLatin1(bytes, offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  if (offset + 4 > bytes.length) return error(id, flags, Rcode.FORMERR, 'question truncated');
  const qtype = readU16(bytes, offset);
  const qclass = readU16(bytes, offset + 2);
  const questionEnd = offset + 4;

  // Answer and authority RRs have no meaning in a query; they are skipped, not refused.
  const skipped = readU16(bytes, 6) + readU16(bytes, 8);
  const arcount = readU16(bytes, 10);
  offset = questionEnd;
  let edns: Edns | undefined;
  for (let i = 0; i < skipped + arcount; i++) {
    const owner = offset;
    offset = skipName(bytes, offset);
    if (offset < 0 || offset + 10 > bytes.length) return error(id, flags, Rcode.FORMERR, 'rr truncated');
    const type = readU16(bytes, offset);
    const rdlength = readU16(bytes, offset + 8);
    const end = offset + 10 + rdlength;
    if (end > bytes.length) return error(id, flags, Rcode.FORMERR, 'rr truncated');
    if (type === RrType.OPT) {
      if (i < skipped) return error(id, flags, Rcode.FORMERR, 'opt outside additional');
      if (edns) return error(id, flags, Rcode.FORMERR, 'second opt');
      if (bytes[owner] !== 0) return error(id, flags, Rcode.FORMERR, 'opt owner');
      edns = {
        udpPayloadSize: Math.max(DNS_UDP_MIN_PAYLOAD, readU16(bytes, offset + 2)),
        version: bytes[offset + 5]!,
        dnssecOk: (bytes[offset + 6]! & 0x80) !== 0,
      };
    }
    offset = end;
  }
  return { kind: 'query', query: { id, flags, labels, qtype, qclass, questionEnd, edns } };
}

/**
 * The question's labels, lowercased as parseQuery gives them, from a message parseQuery
 * accepted (its name is already known to be well formed and within the bytes).
 */
export function questionLabels(bytes: Uint8Array): string[] {
  const labels: string[] = [];
  let offset = DNS_HEADER_LEN;
  for (let len = bytes[offset] ?? 0; len !== 0 && offset + 1 + len <= bytes.length; len = bytes[offset] ?? 0) {
    labels.push(lowerLatin1(bytes, offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  return labels;
}

/** RFC 4343 §3: only ASCII A–Z fold; other bytes are kept as they are. */
function lowerLatin1(bytes: Uint8Array, start: number, end: number): string {
  // Labels are at most 63 bytes: one fromCharCode call over a small array beats concatenation.
  const codes = LABEL_CODES;
  codes.length = end - start;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    codes[i - start] = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
  }
  return String.fromCharCode.apply(null, codes);
}
const LABEL_CODES: number[] = [];

/**
 * Compares two question sections (name, type, class) with ASCII case folded, as a forwarder
 * must before trusting a response (RFC 5452 §9.1). `a` and `b` are whole messages.
 */
export function sameQuestion(a: Uint8Array, aEnd: number, b: Uint8Array): boolean {
  if (b.length < aEnd) return false;
  let offset = DNS_HEADER_LEN;
  for (;;) {
    const len = a[offset]!;
    if (b[offset] !== len) return false;
    if (len === 0) break;
    for (let i = offset + 1; i <= offset + len; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x !== y && !((x | 0x20) === (y | 0x20) && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7a)) return false;
    }
    offset += len + 1;
  }
  for (let i = offset + 1; i < aEnd; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The question section's end in a message whose one question starts at offset 12, or -1. */
export function questionEnd(bytes: Uint8Array): number {
  let offset = DNS_HEADER_LEN;
  for (;;) {
    if (offset >= bytes.length) return -1;
    const len = bytes[offset]!;
    if (len === 0) break;
    if (len > DNS_MAX_LABEL_LEN) return -1;
    offset += len + 1;
  }
  return offset + 5 <= bytes.length ? offset + 5 : -1;
}

/** An OPT RR without options: root owner, TYPE, CLASS, TTL, RDLENGTH (RFC 6891 §6.1.2). */
export const OPT_RR_LEN = 11;

/** The flags of an answer to `queryFlags`: QR, the query's opcode and RD (RFC 1035 §4.1.1), RA since we recurse by forwarding. */
export function responseFlags(queryFlags: number, rcode: number, extra = 0): number {
  return Flag.QR | (queryFlags & (OPCODE_MASK << OPCODE_SHIFT)) | (queryFlags & Flag.RD) | Flag.RA | extra | (rcode & RCODE_MASK);
}

/**
 * Builds one response in a scratch buffer owned by the writer; finish() returns a copy the
 * caller owns. Records are written section by section (answers, then additional); each add
 * returns false, writing nothing, when the record would not fit in the budget, so a caller can
 * set TC (RFC 2181 §9: only when the answer section lost records). When the query carried
 * EDNS, room for our own OPT RR is kept back and it is written by finish() (RFC 6891 §7).
 */
export class ResponseWriter {
  readonly #buf = new Uint8Array(DNS_MAX_MESSAGE);
  #len = 0;
  #limit = 0;
  #flags = 0;
  #ancount = 0;
  #arcount = 0;
  #opt: { size: number; extendedRcode: number } | undefined;
  /**
   * Names written in this message: suffix (labels joined by NUL) → offset of its first label,
   * for RFC 1035 §4.1.4 pointers. Answer owners point straight at the question (offset 12);
   * the question's own suffixes are not indexed, as no name we write ends in one of them.
   */
  readonly #names = new Map<string, number>();

  /**
   * Starts a response: header and the query's question section copied verbatim. `limit` is the largest message the client accepts.
   * `rcode` may be an extended one (BADVERS), whose upper bits go in the OPT RR.
   */
  begin(query: DnsQuery, source: Uint8Array, rcode: number, extraFlags: number, limit: number, opt?: { size: number }): void {
    this.#names.clear();
    this.#ancount = 0;
    this.#arcount = 0;
    this.#opt = opt ? { size: opt.size, extendedRcode: rcode >>> 4 } : undefined;
    this.#limit = Math.min(limit, DNS_MAX_MESSAGE) - (opt ? OPT_RR_LEN : 0);
    this.#flags = responseFlags(query.flags, rcode, extraFlags);
    writeU16(this.#buf, 0, query.id);
    // A byte loop: the question is short, and subarray() on a Buffer allocates.
    for (let i = DNS_HEADER_LEN; i < query.questionEnd; i++) this.#buf[i] = source[i]!;
    this.#len = query.questionEnd;
  }

  setFlag(flag: number): void {
    this.#flags |= flag;
  }

  get answerCount(): number {
    return this.#ancount;
  }

  /** An A record (RFC 1035 §3.4.1); `owner` undefined means the question's name. */
  addA(section: 'answer' | 'additional', owner: readonly string[] | undefined, ttl: number, address: number): boolean {
    return this.#add(section, owner, RrType.A, ttl, 4, (at) => {
      writeU32(this.#buf, at, address);
      return 4;
    });
  }

  /** A PTR record (RFC 1035 §3.3.12) naming `target`. */
  addPtr(owner: readonly string[] | undefined, ttl: number, target: readonly string[]): boolean {
    return this.#add('answer', owner, RrType.PTR, ttl, nameLength(target), (at) => this.#writeName(at, target));
  }

  /** An SRV record (RFC 2782): priority, weight, port, target (never compressed there, §"Target"). */
  addSrv(owner: readonly string[] | undefined, ttl: number, priority: number, weight: number, port: number, target: readonly string[]): boolean {
    return this.#add('answer', owner, RrType.SRV, ttl, 6 + nameLength(target), (at) => {
      writeU16(this.#buf, at, priority);
      writeU16(this.#buf, at + 2, weight);
      writeU16(this.#buf, at + 4, port);
      return 6 + this.#writeName(at + 6, target, false);
    });
  }

  /** Returns a copy of the message, which the caller owns (from node's small-buffer pool). */
  finish(): Uint8Array {
    const buf = this.#buf;
    if (this.#opt) {
      // RFC 6891 §6.1.3: root owner, CLASS = our UDP payload size, TTL = extended RCODE, version 0, DO clear.
      let at = this.#len;
      buf[at++] = 0;
      writeU16(buf, at, RrType.OPT);
      writeU16(buf, at + 2, this.#opt.size);
      writeU32(buf, at + 4, (this.#opt.extendedRcode & 0xff) << 24);
      writeU16(buf, at + 8, 0);
      this.#len = at + 10;
      this.#arcount++;
    }
    writeU16(buf, 2, this.#flags);
    writeU16(buf, 4, 1);
    writeU16(buf, 6, this.#ancount);
    writeU16(buf, 8, 0);
    writeU16(buf, 10, this.#arcount);
    const out = Buffer.allocUnsafe(this.#len);
    out.set(buf.subarray(0, this.#len));
    return out;
  }

  #add(section: 'answer' | 'additional', owner: readonly string[] | undefined, type: number, ttl: number, maxRdata: number, rdata: (at: number) => number): boolean {
    if (section === 'answer' && this.#arcount > 0) throw new RangeError('Answers must be written before additional records');
    // Worst case: owner uncompressed. A record that might not fit is left out.
    const ownerMax = owner ? nameLength(owner) : 2;
    if (this.#len + ownerMax + 10 + maxRdata > this.#limit) return false;
    let at = this.#len;
    at += owner ? this.#writeName(at, owner) : this.#writePointer(at, DNS_HEADER_LEN);
    writeU16(this.#buf, at, type);
    writeU16(this.#buf, at + 2, RrClass.IN);
    writeU32(this.#buf, at + 4, ttl);
    const rdlen = rdata(at + 10);
    writeU16(this.#buf, at + 8, rdlen);
    this.#len = at + 10 + rdlen;
    if (section === 'answer') this.#ancount++;
    else this.#arcount++;
    return true;
  }

  #writePointer(at: number, target: number): number {
    writeU16(this.#buf, at, 0xc000 | target);
    return 2;
  }

  /** Writes `labels` at `at`, compressed against names already written; returns bytes written. */
  #writeName(at: number, labels: readonly string[], compress = true): number {
    // Suffix keys built from the last label back: one concatenation per label.
    const n = labels.length;
    const keys: string[] = new Array<string>(n);
    let key = '';
    for (let i = n - 1; i >= 0; i--) {
      key = i === n - 1 ? labels[i]! : `${labels[i]!}\0${key}`;
      keys[i] = key;
    }
    let split = n;
    let pointer = -1;
    if (compress) {
      for (let i = 0; i < n; i++) {
        const known = this.#names.get(keys[i]!);
        if (known !== undefined) {
          split = i;
          pointer = known;
          break;
        }
      }
    }
    const start = at;
    for (let i = 0; i < split; i++) {
      // Pointers are 14 bits (RFC 1035 §4.1.4).
      if (at < 0x4000 && !this.#names.has(keys[i]!)) this.#names.set(keys[i]!, at);
      const label = labels[i]!;
      this.#buf[at++] = label.length;
      for (let j = 0; j < label.length; j++) this.#buf[at++] = label.charCodeAt(j) & 0xff;
    }
    if (pointer >= 0) return at - start + this.#writePointer(at, pointer);
    this.#buf[at++] = 0;
    return at - start;
  }

}

/** Uncompressed wire length of a name (RFC 1035 §3.1). */
export function nameLength(labels: readonly string[]): number {
  let n = 1;
  for (const label of labels) n += label.length + 1;
  return n;
}

/**
 * A header-only answer for a message we could parse only as far as its header: FORMERR,
 * NOTIMP (RFC 1035 §4.1.1). QDCOUNT is 0 because the question is not echoed.
 */
export function headerOnlyResponse(id: number, queryFlags: number, rcode: number): Uint8Array {
  const out = new Uint8Array(DNS_HEADER_LEN);
  writeU16(out, 0, id);
  writeU16(out, 2, responseFlags(queryFlags, rcode));
  return out;
}

/**
 * Someone else's (an upstream's) response cut to the client's budget: header, question and as
 * many whole answer RRs as fit, in order; authority and additional data go (RFC 2181 §9: only
 * a lost answer needs TC, and TC is then set); our OPT RR is appended when the query had EDNS
 * (RFC 6891 §7). Clients that never retry over TCP (musl before 1.2.4) still get what fits.
 * Kept RRs' compression pointers stay valid: they point backwards into the kept prefix. The
 * question is the client's own bytes (`source`), as are the ID; the flags and rcode are the
 * upstream's. Never throws: a response whose RRs do not parse keeps none of them.
 */
export function fitResponse(response: Uint8Array, query: DnsQuery, source: Uint8Array, limit: number, optSize: number | undefined): Uint8Array {
  const qEnd = query.questionEnd;
  const budget = limit - (optSize !== undefined ? OPT_RR_LEN : 0);
  const ancount = response.length >= DNS_HEADER_LEN ? readU16(response, 6) : 0;
  const theirQEnd = response.length >= DNS_HEADER_LEN && readU16(response, 4) === 1 ? questionEnd(response) : -1;
  // Answers are copied from the upstream's message after its question, which must be as long as ours.
  let kept = 0;
  let end = qEnd;
  if (theirQEnd === qEnd) {
    for (let offset = qEnd; kept < ancount; kept++) {
      const nameEnd = skipName(response, offset);
      if (nameEnd < 0 || nameEnd + 10 > response.length) break;
      const rrEnd = nameEnd + 10 + readU16(response, nameEnd + 8);
      if (rrEnd > response.length || rrEnd > budget) break;
      offset = end = rrEnd;
    }
  }
  const out = new Uint8Array(end + (optSize !== undefined ? OPT_RR_LEN : 0));
  out.set(response.subarray(0, end));
  out.set(source.subarray(DNS_HEADER_LEN, qEnd), DNS_HEADER_LEN);
  writeU16(out, 0, query.id);
  writeU16(out, 2, readU16(response, 2) | (kept < ancount ? Flag.TC : 0));
  writeU16(out, 4, 1);
  writeU16(out, 6, kept);
  writeU16(out, 8, 0);
  writeU16(out, 10, 0);
  if (optSize !== undefined) {
    out[end] = 0;
    writeU16(out, end + 1, RrType.OPT);
    writeU16(out, end + 3, optSize);
    writeU16(out, 10, 1);
  }
  return out;
}

/**
 * A copy of bytes[start, end) that shares no memory with them. (Buffer#slice, unlike
 * Uint8Array#slice, returns a view; node hands us Buffers.)
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes, start, end);
}

/** Returns a copy of `message` with its ID replaced (the forwarder's upstream IDs are its own). */
export function withId(message: Uint8Array, id: number): Uint8Array {
  const out = copyBytes(message);
  writeU16(out, 0, id);
  return out;
}
