/**
 * The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt, 2020-03-05): a header a
 * proxy writes at the very start of a TCP connection to a backend, carrying the original
 * client's address and the address it connected to, so the backend sees the real client even
 * though the connection comes from the proxy (moby#25526: Swarm's routing mesh loses it).
 *
 * - v1 (§2.1): one text line, at most 107 bytes with its CRLF:
 *   `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, or `PROXY UNKNOWN…\r\n`.
 * - v2 (§2.2): the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, then version/command, family/
 *   transport, a 16-bit length of what follows, the addresses (IPv4 + TCP: 12 bytes:
 *   src, dst, sport, dport), and optional TLVs (skipped here).
 *
 * Only TCP over IPv4 carries addresses here. Other families still parse (their header is
 * skipped) with `addresses` undefined: the receiver then uses the connection's own endpoints,
 * as §2.1/§2.2 tell a receiver to do with UNKNOWN / LOCAL / AF_UNSPEC.
 *
 * Parsing works on a prefix of a stream: `truncated` means "could still be a header, read more"
 * (at most PROXY_HEADER_MAX_LEN bytes are ever needed), `not-proxy` means the bytes cannot start
 * one (the connection simply does not begin with a PROXY header). Never throws on bytes.
 */
import { type Result, err, ok } from '../lib/result.js';
import { type Ipv4Address, formatIpv4Address, parseIpv4Address, readIpv4, writeIpv4 } from './address.js';
import { readU16, writeU16 } from './bytes.js';

/** §2.2: the v2 signature. */
export const PROXY_V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** §2.1: the longest v1 line, CRLF included (`PROXY UNKNOWN` + two full IPv6 addresses + ports). */
export const PROXY_V1_MAX_LEN = 107;
/** v2's fixed part: signature, ver/cmd, fam, len. */
export const PROXY_V2_HEADER_LEN = 16;
/** v2 TCP over IPv4 addresses: src 4, dst 4, sport 2, dport 2. */
export const PROXY_V2_INET_LEN = 12;
/**
 * The most bytes a receiver reads before it must have a whole header: v2's length field allows
 * 16 + 65535, but a header with TLVs past this is refused as `bad-length` (no sender here writes
 * TLVs; HAProxy's own receive buffer is smaller still).
 */
export const PROXY_HEADER_MAX_LEN = 1024;

const V1_PREFIX = 'PROXY ';
const OFF_VER_CMD = 12;
const OFF_FAM = 13;
const OFF_LEN = 14;
const OFF_SRC = 16;
const OFF_DST = 20;
const OFF_SPORT = 24;
const OFF_DPORT = 26;
const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
const FAM_TCP4 = 0x11;

export type ProxyProtocolVersion = 1 | 2;

export interface ProxyAddresses {
  readonly sourceAddress: Ipv4Address;
  readonly sourcePort: number;
  readonly destinationAddress: Ipv4Address;
  readonly destinationPort: number;
}

export interface ProxyHeaderRepr {
  readonly version: ProxyProtocolVersion;
  /**
   * The original connection, TCP over IPv4. Undefined: v1 `UNKNOWN` (or TCP6), v2 `LOCAL` (or
   * another family): the receiver uses the connection's own endpoints.
   */
  readonly addresses?: ProxyAddresses;
}

export type ProxyProtocolError =
  /** A prefix of a header: read more bytes (but never more than PROXY_HEADER_MAX_LEN). */
  | 'truncated'
  /** These bytes cannot start a PROXY header. */
  | 'not-proxy'
  /** v1: no CRLF within 107 bytes; v2: a length too small for its family, or past PROXY_HEADER_MAX_LEN. */
  | 'bad-length'
  /** v2: a version nibble other than 2, or a command other than LOCAL and PROXY. */
  | 'bad-version'
  /** v1: a line that is not `PROXY TCP4 a.b.c.d a.b.c.d port port` (or UNKNOWN / TCP6). */
  | 'bad-header';

export const PROXY_PROTOCOL_ERRORS: readonly ProxyProtocolError[] = ['truncated', 'not-proxy', 'bad-length', 'bad-version', 'bad-header'];

export interface ParsedProxyHeader {
  readonly header: ProxyHeaderRepr;
  /** Bytes the header took: the connection's own data starts there. */
  readonly length: number;
}

/** The length `emitProxyHeader` writes for `repr`. */
export function proxyHeaderLen(repr: ProxyHeaderRepr): number {
  if (repr.version === 2) return PROXY_V2_HEADER_LEN + (repr.addresses ? PROXY_V2_INET_LEN : 0);
  return v1Line(repr).length;
}

function v1Line(repr: ProxyHeaderRepr): string {
  const a = repr.addresses;
  if (!a) return 'PROXY UNKNOWN\r\n';
  return `PROXY TCP4 ${formatIpv4Address(a.sourceAddress)} ${formatIpv4Address(a.destinationAddress)} ${a.sourcePort} ${a.destinationPort}\r\n`;
}

/**
 * Writes the header for `repr` at `offset`; returns the bytes written (proxyHeaderLen(repr)).
 * Throws RangeError when `buf` is too short or a port is not 0–65535: both are the caller's bugs.
 */
export function emitProxyHeader(repr: ProxyHeaderRepr, buf: Uint8Array, offset = 0): number {
  const len = proxyHeaderLen(repr);
  if (offset < 0 || offset + len > buf.length) throw new RangeError(`A PROXY v${repr.version} header needs ${len} bytes at offset ${offset}; the buffer has ${buf.length}`);
  const a = repr.addresses;
  if (a && !(isPort(a.sourcePort) && isPort(a.destinationPort))) throw new RangeError('PROXY header ports must be integers from 0 to 65535');
  if (repr.version === 1) {
    const line = v1Line(repr);
    for (let i = 0; i < line.length; i++) buf[offset + i] = line.charCodeAt(i);
    return len;
  }
  buf.set(PROXY_V2_SIGNATURE, offset);
  buf[offset + OFF_VER_CMD] = 0x20 | (a ? CMD_PROXY : CMD_LOCAL);
  buf[offset + OFF_FAM] = a ? FAM_TCP4 : 0x00;
  writeU16(buf, offset + OFF_LEN, a ? PROXY_V2_INET_LEN : 0);
  if (a) {
    writeIpv4(buf, offset + OFF_SRC, a.sourceAddress);
    writeIpv4(buf, offset + OFF_DST, a.destinationAddress);
    writeU16(buf, offset + OFF_SPORT, a.sourcePort);
    writeU16(buf, offset + OFF_DPORT, a.destinationPort);
  }
  return len;
}

/** A new buffer holding the header for `repr`. Throws as emitProxyHeader. */
export function encodeProxyHeader(repr: ProxyHeaderRepr): Uint8Array {
  const buf = new Uint8Array(proxyHeaderLen(repr));
  emitProxyHeader(repr, buf, 0);
  return buf;
}

/**
 * Parses a PROXY header (either version) at the start of `bytes`, a prefix of a connection's
 * stream. Never throws.
 */
export function parseProxyHeader(bytes: Uint8Array): Result<ParsedProxyHeader, ProxyProtocolError> {
  if (bytes.length === 0) return err('truncated');
  if (bytes[0] === PROXY_V2_SIGNATURE[0]) return parseV2(bytes);
  if (bytes[0] === 0x50) return parseV1(bytes);
  return err('not-proxy');
}

function parseV2(b: Uint8Array): Result<ParsedProxyHeader, ProxyProtocolError> {
  const n = Math.min(b.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) if (b[i] !== PROXY_V2_SIGNATURE[i]) return err('not-proxy');
  if (b.length < PROXY_V2_HEADER_LEN) return err('truncated');
  const verCmd = b[OFF_VER_CMD]!;
  const command = verCmd & 0x0f;
  if (verCmd >> 4 !== 2 || (command !== CMD_LOCAL && command !== CMD_PROXY)) return err('bad-version');
  const fam = b[OFF_FAM]!;
  const bodyLen = readU16(b, OFF_LEN);
  const length = PROXY_V2_HEADER_LEN + bodyLen;
  if (length > PROXY_HEADER_MAX_LEN) return err('bad-length');
  // §2.2: a LOCAL header's addresses (if any) are to be ignored; so are other families'.
  if (command === CMD_PROXY && fam === FAM_TCP4) {
    if (bodyLen < PROXY_V2_INET_LEN) return err('bad-length');
    if (b.length < length) return err('truncated');
    return ok({
      header: {
        version: 2,
        addresses: { sourceAddress: readIpv4(b, OFF_SRC), destinationAddress: readIpv4(b, OFF_DST), sourcePort: readU16(b, OFF_SPORT), destinationPort: readU16(b, OFF_DPORT) },
      },
      length,
    });
  }
  if (b.length < length) return err('truncated');
  return ok({ header: { version: 2 }, length });
}

function parseV1(b: Uint8Array): Result<ParsedProxyHeader, ProxyProtocolError> {
  const n = Math.min(b.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) if (b[i] !== V1_PREFIX.charCodeAt(i)) return err('not-proxy');
  let lf = -1;
  const limit = Math.min(b.length, PROXY_V1_MAX_LEN);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (b[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf < 0) return b.length < PROXY_V1_MAX_LEN ? err('truncated') : err('bad-length');
  if (b[lf - 1] !== 0x0d) return err('bad-header');
  let line = '';
  for (let i = V1_PREFIX.length; i < lf - 1; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e) return err('bad-header');
    line += String.fromCharCode(c);
  }
  const length = lf + 1;
  // §2.1: after UNKNOWN the receiver must ignore everything up to the CRLF.
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return ok({ header: { version: 1 }, length });
  const f = line.split(' ');
  if (f.length !== 5) return err('bad-header');
  const [proto, src, dst, sport, dport] = f as [string, string, string, string, string];
  if (proto === 'TCP6') {
    // Well-formed enough to skip; shoal carries IPv4 only.
    return [src, dst].every((a) => /^[0-9a-fA-F:.]{2,45}$/.test(a)) && isPortText(sport) && isPortText(dport) ? ok({ header: { version: 1 }, length }) : err('bad-header');
  }
  if (proto !== 'TCP4' || !isPortText(sport) || !isPortText(dport)) return err('bad-header');
  const s = parseIpv4Address(src);
  const d = parseIpv4Address(dst);
  if (!s.ok || !d.ok || formatIpv4Address(s.value) !== src || formatIpv4Address(d.value) !== dst) return err('bad-header');
  return ok({ header: { version: 1, addresses: { sourceAddress: s.value, destinationAddress: d.value, sourcePort: Number(sport), destinationPort: Number(dport) } }, length });
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

/** §2.1: ports in decimal, no leading zero (except 0 itself). */
function isPortText(t: string): boolean {
  return /^(0|[1-9][0-9]{0,4})$/.test(t) && Number(t) <= 65535;
}
