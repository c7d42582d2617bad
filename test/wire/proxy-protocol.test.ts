import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PROXY_HEADER_MAX_LEN,
  PROXY_PROTOCOL_ERRORS,
  PROXY_V1_MAX_LEN,
  type ProxyHeaderRepr,
  emitProxyHeader,
  encodeProxyHeader,
  parseProxyHeader,
  proxyHeaderLen,
} from '../../src/wire/proxy-protocol.js';
import { parseIpv4Address } from '../../src/wire/address.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS, PROPERTY_RUNS } from '../helpers/fuzz.js';

const ip = (text: string): number => {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const ascii = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

// The example of proxy-protocol.txt §2.1, and the same connection in v2 (§2.2: TCP over IPv4,
// ver/cmd 0x21, fam 0x11, len 12).
const V1 = ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
const V2 = hex('0d0a0d0a000d0a515549540a 21 11 000c c0a80001 c0a8000b dc04 01bb');
const ADDRESSES = { sourceAddress: ip('192.168.0.1'), destinationAddress: ip('192.168.0.11'), sourcePort: 56324, destinationPort: 443 };
const V2_LOCAL = hex('0d0a0d0a000d0a515549540a 20 00 0000');

describe('PROXY protocol v1', () => {
  it('parses the spec example, and says where the connection data starts', () => {
    const r = parseProxyHeader(Uint8Array.from([...V1, ...ascii('GET / HTTP/1.1\r\n')]));
    expect(r).toEqual({ ok: true, value: { header: { version: 1, addresses: ADDRESSES }, length: V1.length } });
  });

  it('emits the spec example byte for byte', () => {
    const repr: ProxyHeaderRepr = { version: 1, addresses: ADDRESSES };
    expect(Buffer.from(encodeProxyHeader(repr)).toString('latin1')).toBe('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
    expect(proxyHeaderLen(repr)).toBe(V1.length);
  });

  it('UNKNOWN (and TCP6, which shoal does not carry) parse with no addresses: use the socket’s own', () => {
    expect(parseProxyHeader(ascii('PROXY UNKNOWN\r\n'))).toEqual({ ok: true, value: { header: { version: 1 }, length: 15 } });
    expect(parseProxyHeader(ascii('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx'))).toMatchObject({ ok: true, value: { header: { version: 1 }, length: 35 } });
    expect(parseProxyHeader(ascii('PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n'))).toMatchObject({ ok: true, value: { header: { version: 1 } } });
    expect(encodeProxyHeader({ version: 1 })).toEqual(ascii('PROXY UNKNOWN\r\n'));
  });

  it('every strict prefix is truncated; a line without CRLF within 107 bytes is bad-length', () => {
    for (let n = 1; n < V1.length; n++) expect(parseProxyHeader(V1.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
    expect(parseProxyHeader(ascii(`PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX_LEN)}`))).toEqual({ ok: false, error: 'bad-length' });
  });

  it.each([
    ['a bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['a leading zero in a port', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['a non-canonical address', 'PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n'],
    ['an address out of range', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['a missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a control byte', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'],
  ])('refuses %s as bad-header', (_what, line) => {
    expect(parseProxyHeader(ascii(line))).toEqual({ ok: false, error: 'bad-header' });
  });

  it('bytes that cannot start a header are not-proxy at once (a plain HTTP request)', () => {
    expect(parseProxyHeader(ascii('GET / HTTP/1.1\r\n'))).toEqual({ ok: false, error: 'not-proxy' });
    expect(parseProxyHeader(ascii('PUT / HTTP/1.1\r\n'))).toEqual({ ok: false, error: 'not-proxy' });
    expect(parseProxyHeader(ascii('PROXZ'))).toEqual({ ok: false, error: 'not-proxy' });
  });
});

describe('PROXY protocol v2', () => {
  it('parses and emits TCP over IPv4 byte for byte', () => {
    expect(parseProxyHeader(Uint8Array.from([...V2, 0x47, 0x45, 0x54]))).toEqual({ ok: true, value: { header: { version: 2, addresses: ADDRESSES }, length: 28 } });
    expect(toHex(encodeProxyHeader({ version: 2, addresses: ADDRESSES }))).toBe(toHex(V2));
  });

  it('LOCAL carries no addresses, and emits as LOCAL/UNSPEC with length 0', () => {
    expect(parseProxyHeader(V2_LOCAL)).toEqual({ ok: true, value: { header: { version: 2 }, length: 16 } });
    expect(toHex(encodeProxyHeader({ version: 2 }))).toBe(toHex(V2_LOCAL));
  });

  it('skips TLVs after the addresses, and the addresses of other families', () => {
    const withTlv = Uint8Array.from([...V2.subarray(0, 14), 0x00, 0x0f, ...V2.subarray(16), 0x04, 0x00, 0x00]);
    expect(parseProxyHeader(withTlv)).toEqual({ ok: true, value: { header: { version: 2, addresses: ADDRESSES }, length: 31 } });
    // TCP over IPv6: 36 bytes of addresses, skipped.
    const inet6 = Uint8Array.from([...V2.subarray(0, 13), 0x21, 0x00, 36, ...new Uint8Array(36)]);
    expect(parseProxyHeader(inet6)).toEqual({ ok: true, value: { header: { version: 2 }, length: 52 } });
  });

  it('every strict prefix is truncated', () => {
    for (let n = 1; n < V2.length; n++) expect(parseProxyHeader(V2.subarray(0, n))).toEqual({ ok: false, error: 'truncated' });
  });

  it('refuses a wrong signature, version or command, and impossible lengths', () => {
    const bad = (at: number, value: number): Uint8Array => {
      const b = Uint8Array.from(V2);
      b[at] = value;
      return b;
    };
    expect(parseProxyHeader(bad(6, 0x00))).toEqual({ ok: false, error: 'not-proxy' });
    expect(parseProxyHeader(bad(12, 0x11))).toEqual({ ok: false, error: 'bad-version' });
    expect(parseProxyHeader(bad(12, 0x22))).toEqual({ ok: false, error: 'bad-version' });
    expect(parseProxyHeader(bad(15, 0x08))).toEqual({ ok: false, error: 'bad-length' });
    const huge = bad(14, 0xff);
    expect(parseProxyHeader(huge)).toEqual({ ok: false, error: 'bad-length' });
  });
});

describe('PROXY protocol properties', () => {
  const addresses = fc.record({
    sourceAddress: fc.nat({ max: 0xffff_ffff }),
    destinationAddress: fc.nat({ max: 0xffff_ffff }),
    sourcePort: fc.nat({ max: 65535 }),
    destinationPort: fc.nat({ max: 65535 }),
  });
  const repr = fc.record({ version: fc.constantFrom(1 as const, 2 as const), addresses: fc.option(addresses, { nil: undefined }) }).map((r): ProxyHeaderRepr => (r.addresses ? { version: r.version, addresses: r.addresses } : { version: r.version }));

  it('round-trips every header, with any bytes after it, at any offset', () => {
    fc.assert(
      fc.property(repr, fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 8 }), (r, rest, offset) => {
        const len = proxyHeaderLen(r);
        const buf = new Uint8Array(offset + len + rest.length);
        expect(emitProxyHeader(r, buf, offset)).toBe(len);
        buf.set(rest, offset + len);
        const parsed = parseProxyHeader(buf.subarray(offset));
        expect(parsed).toEqual({ ok: true, value: { header: r, length: len } });
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('never throws on arbitrary bytes, and answers only its own reasons', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 120 }).map((b) => Uint8Array.from([...ascii('PROXY '), ...b])), fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.from([...V2.subarray(0, 12), ...b]))), (bytes) => {
        const r = parseProxyHeader(bytes);
        if (r.ok) expect(r.value.length).toBeLessThanOrEqual(Math.min(bytes.length, PROXY_HEADER_MAX_LEN));
        else expect(PROXY_PROTOCOL_ERRORS).toContain(r.error);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('emit refuses a short buffer or a bad port instead of writing past it', () => {
    expect(() => emitProxyHeader({ version: 2, addresses: ADDRESSES }, new Uint8Array(27))).toThrow(RangeError);
    expect(() => emitProxyHeader({ version: 1, addresses: { ...ADDRESSES, sourcePort: 70000 } }, new Uint8Array(200))).toThrow(RangeError);
  });
});
