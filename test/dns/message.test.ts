import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as dnsPacket from 'dns-packet';
import { Flag, Rcode, ResponseWriter, fitResponse, parseQuery, questionEnd, questionLabels, sameQuestion, type DnsQuery } from '../../src/dns/message.js';
import { hex, toHex } from '../helpers/hex.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';
import { decode, query, rrs, upstreamAnswer } from './fixtures.js';

// Captured from `dig @127.0.0.1 -p 19499 Tasks.Web A` (DiG 9.18.49, Debian 12): RD and AD set,
// EDNS0 with a 1232-byte payload and a client COOKIE option (RFC 7873).
const DIG_EDNS = hex(`
  a6ba 0120 0001 0000 0000 0001
  05 5461736b73 03 576562 00 0001 0001
  00 0029 04d0 00000000 000c 000a 0008 79eaa1e71ff948a0`);
// `dig +noedns web`.
const DIG_PLAIN = hex('27f5 0120 0001 0000 0000 0000 03 776562 00 0001 0001');

function parsed(bytes: Uint8Array): DnsQuery {
  const r = parseQuery(bytes);
  if (r.kind !== 'query') throw new Error(`Not a query: ${JSON.stringify(r)}`);
  return r.query;
}

describe('parseQuery', () => {
  it('deconstructs dig’s EDNS query: lowercased labels, question end, OPT fields', () => {
    const q = parsed(DIG_EDNS);
    expect(q.id).toBe(0xa6ba);
    expect(q.flags & Flag.RD).toBe(Flag.RD);
    expect(q.labels).toEqual(['tasks', 'web']);
    expect(q.qtype).toBe(1);
    expect(q.qclass).toBe(1);
    expect(q.questionEnd).toBe(27);
    expect(q.edns).toEqual({ udpPayloadSize: 1232, version: 0, dnssecOk: false });
  });

  it('deconstructs a query without EDNS', () => {
    const q = parsed(DIG_PLAIN);
    expect(q.labels).toEqual(['web']);
    expect(q.edns).toBeUndefined();
  });

  it('reads an advertised payload below 512 as 512, and the DO bit (RFC 6891 §6.2.3, §6.1.4)', () => {
    const bytes = Buffer.from(query('web', 'A', { edns: 100 }));
    bytes[bytes.length - 4] = 0x80; // the high byte of the OPT flags, just before RDLENGTH
    expect(parsed(bytes).edns).toEqual({ udpPayloadSize: 512, version: 0, dnssecOk: true });
  });

  it('accepts the root name', () => {
    expect(parsed(hex('0001 0000 0001 0000 0000 0000 00 0002 0001')).labels).toEqual([]);
  });

  it('refuses a name longer than 255 bytes (RFC 1035 §2.3.4)', () => {
    const label = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]);
    const name = Buffer.concat([label, label, label, label, Buffer.from([0])]); // 257 bytes
    const bytes = Buffer.concat([hex('0001 0000 0001 0000 0000 0000'), name, hex('0001 0001')]);
    expect(parseQuery(bytes)).toMatchObject({ kind: 'error', rcode: Rcode.FORMERR, reason: 'question name too long' });
  });

  it('refuses an OPT RR whose owner is not the root (RFC 6891 §6.1.2)', () => {
    const bytes = Buffer.concat([DIG_PLAIN.subarray(0, 12), DIG_PLAIN.subarray(12), hex('01 61 00 0029 0200 00000000 0000')]);
    bytes.writeUInt16BE(1, 10);
    expect(parseQuery(bytes)).toMatchObject({ kind: 'error', reason: 'opt owner' });
  });

  it('skips answer and authority records in a query, but not an OPT among them', () => {
    const rr = hex('c00c 0001 0001 0000003c 0004 01020304');
    const bytes = Buffer.concat([DIG_PLAIN, rr]);
    bytes.writeUInt16BE(1, 6);
    expect(parsed(bytes).labels).toEqual(['web']);
    const opt = Buffer.concat([DIG_PLAIN, hex('00 0029 0200 00000000 0000')]);
    opt.writeUInt16BE(1, 8);
    expect(parseQuery(opt)).toMatchObject({ kind: 'error', reason: 'opt outside additional' });
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseQuery(bytes);
        expect(['drop', 'error', 'query']).toContain(r.kind);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('without label decoding judges every message the same, and questionLabels gives the labels it skipped', () => {
    const label = fc.uint8Array({ minLength: 1, maxLength: 8 });
    // Random bytes, and well-formed questions with random label bytes (upper case, 0x80+, dots).
    const messages = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.array(label, { maxLength: 5 }), fc.integer({ min: 0, max: 2 })).map(([labels, arcount]) => {
        const name = labels.flatMap((l) => [l.length, ...l]);
        return Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, arcount, ...name, 0, 0, 1, 0, 1, ...(arcount > 0 ? [0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0] : [])]);
      }),
    );
    fc.assert(
      fc.property(messages, (bytes) => {
        const full = parseQuery(bytes);
        const lazy = parseQuery(bytes, false);
        if (full.kind !== 'query' || lazy.kind !== 'query') expect(lazy).toEqual(full);
        else expect({ ...lazy.query, labels: questionLabels(bytes) }).toEqual(full.query);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('ResponseWriter', () => {
  it('points answer owners at the question name (RFC 1035 §4.1.4) and echoes the question bytes', () => {
    const w = new ResponseWriter();
    w.begin(parsed(DIG_PLAIN), DIG_PLAIN, Rcode.NOERROR, Flag.AA, 512);
    expect(w.addA('answer', undefined, 5, 0x7f400102)).toBe(true);
    const out = w.finish();
    expect(toHex(out)).toBe(
      '27f5' + '8580' + '0001 0001 0000 0000'.replace(/ /g, '') + '03776562000001 0001'.replace(/ /g, '') + 'c00c 0001 0001 00000005 0004 7f400102'.replace(/ /g, ''),
    );
  });

  it('compresses later names against earlier ones, and decodes with an independent codec', () => {
    const w = new ResponseWriter();
    const bytes = query('_80._tcp.web', 'SRV');
    w.begin(parsed(bytes), bytes, Rcode.NOERROR, 0, 512);
    w.addSrv(undefined, 1, 0, 1, 80, ['web', '1', 'abc']);
    w.addSrv(undefined, 1, 0, 1, 80, ['web', '2', 'abc']);
    w.addA('additional', ['web', '1', 'abc'], 1, 0x64400001);
    const out = w.finish();
    const r = decode(out);
    expect(rrs(r.answers).map((a) => a.data)).toEqual([
      { priority: 0, weight: 1, port: 80, target: 'web.1.abc' },
      { priority: 0, weight: 1, port: 80, target: 'web.2.abc' },
    ]);
    expect(rrs(r.additionals).map((a) => `${a.name} ${String(a.data)}`)).toEqual(['web.1.abc 100.64.0.1']);
    // The glue owner is a 2-byte pointer into the first SRV target: 16 bytes for the whole A RR.
    const uncompressedGlue = 1 + 3 + 1 + 1 + 1 + 3 + 1 + 10 + 4;
    expect(out.length).toBeLessThan(bytes.length + 2 * (2 + 10 + 6 + 15) + uncompressedGlue);
  });

  it('refuses a record that would pass the budget, writing nothing', () => {
    const w = new ResponseWriter();
    w.begin(parsed(DIG_PLAIN), DIG_PLAIN, Rcode.NOERROR, 0, DIG_PLAIN.length + 16);
    expect(w.addA('answer', undefined, 1, 1)).toBe(true);
    expect(w.addA('answer', undefined, 1, 2)).toBe(false);
    expect(decode(w.finish()).answers).toHaveLength(1);
  });
});

describe('helpers', () => {
  it('fitResponse keeps whole answers that fit, in order, sets TC, and appends our OPT', () => {
    const bytes = query('many.example', 'A', { id: 77, edns: 1232 });
    const q = parsed(bytes);
    const answers = Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, name: 'many.example', ttl: 60, data: `198.51.100.${i}` }));
    const upstream = upstreamAnswer(bytes, answers);
    const out = fitResponse(upstream, q, bytes, 512, 1232);
    expect(out.length).toBeLessThanOrEqual(512);
    const r = decode(out);
    expect(r.id).toBe(77);
    expect(r.flag_tc).toBe(true);
    // dns-packet wrote each answer's owner as a full name (14 bytes): 14 + 10 + 4 = 28 per RR.
    expect(rrs(r.answers).map((a) => a.data)).toEqual(answers.slice(0, Math.floor((512 - 11 - q.questionEnd) / 28)).map((a) => a.data));
    expect(r.additionals?.map((a) => a.type)).toEqual(['OPT']);
  });

  it('fitResponse drops authority data without TC when every answer fits (RFC 2181 §9)', () => {
    const bytes = query('nosuch.example');
    const q = parsed(bytes);
    const soa = { type: 'SOA' as const, name: 'example', ttl: 60, data: { mname: 'ns.example', rname: `${'h'.repeat(60)}.${'o'.repeat(60)}.${'s'.repeat(60)}.example`, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } };
    const upstream = Buffer.from(dnsPacket.encode({ type: 'response', id: 1, flags: 0x8183, questions: [{ type: 'A', name: 'nosuch.example' }], authorities: [soa, soa, soa] }));
    expect(upstream.length).toBeGreaterThan(512);
    const r = decode(fitResponse(upstream, q, bytes, 512, undefined));
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.flag_tc).toBe(false);
    expect(r.authorities).toEqual([]);
  });

  it('fitResponse keeps no answers, with TC, from a response whose records do not parse', () => {
    const bytes = query('bad.example');
    const q = parsed(bytes);
    const upstream = Buffer.concat([upstreamAnswer(bytes, []), Buffer.alloc(600, 0xc0)]);
    upstream.writeUInt16BE(3, 6);
    const r = decode(fitResponse(upstream, q, bytes, 512, undefined));
    expect(r.flag_tc).toBe(true);
    expect(r.answers).toEqual([]);
    expect(r.questions?.[0]?.name).toBe('bad.example');
  });

  it('fitResponse never throws on any upstream bytes', () => {
    const bytes = query('x.example', 'A', { edns: 1232 });
    const q = parsed(bytes);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.integer({ min: 512, max: 1232 }), (junk, limit) => {
        const out = fitResponse(junk, q, bytes, limit, 1232);
        expect(out.length).toBeLessThanOrEqual(Math.max(limit, q.questionEnd + 11));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('sameQuestion folds ASCII case only', () => {
    const end = questionEnd(DIG_PLAIN);
    expect(end).toBe(DIG_PLAIN.length);
    const upper = Buffer.from(DIG_PLAIN);
    upper.write('WeB', 13, 'latin1');
    expect(sameQuestion(DIG_PLAIN, end, upper)).toBe(true);
    const other = Buffer.from(DIG_PLAIN);
    other.write('wec', 13, 'latin1');
    expect(sameQuestion(DIG_PLAIN, end, other)).toBe(false);
    // '@' (0x40) and '`' (0x60) differ only in bit 0x20 but are not letters.
    const a = Buffer.from(DIG_PLAIN);
    a[13] = 0x40;
    const b = Buffer.from(DIG_PLAIN);
    b[13] = 0x60;
    expect(sameQuestion(a, end, b)).toBe(false);
    const aaaa = Buffer.from(DIG_PLAIN);
    aaaa.writeUInt16BE(28, end - 4);
    expect(sameQuestion(DIG_PLAIN, end, aaaa)).toBe(false);
  });
});
