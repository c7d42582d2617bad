import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type * as dnsPacket from 'dns-packet';
import { DnsResolver, type DnsOutcome, type DnsResolverOptions } from '../../src/dns/resolver.js';
import type { DnsForwarding, ForwardResult } from '../../src/dns/forwarder.js';
import type { DnsClient, DnsRecords } from '../../src/dns/records.js';
import { SeededRng } from '../../src/lib/rng.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';
import { DB1, HOST_CLIENT, OVERLAY_CLIENT, TCP_CLIENT, WEB1, WEB2, WEB3, answersOf, decode, query, swarmRecords, upstreamAnswer, rrs, type Decoded } from './fixtures.js';

/**
 * A forwarder that answers from a table and records what it was asked. It decodes with
 * dns-packet, which throws on some bytes the resolver accepts: then it throws too, as a
 * broken forwarder might, and the resolver must still answer.
 */
class TableForwarder implements DnsForwarding {
  readonly asked: string[] = [];
  constructor(readonly answer: (q: Decoded, bytes: Uint8Array) => ForwardResult) {}
  forward(q: Uint8Array): Promise<ForwardResult> {
    const decoded = decode(q);
    this.asked.push(decoded.questions?.[0]?.name ?? '');
    return Promise.resolve(this.answer(decoded, q));
  }
}

class ThrowingForwarder implements DnsForwarding {
  constructor(readonly how: 'throw' | 'reject') {}
  forward(): Promise<ForwardResult> {
    if (this.how === 'throw') throw new Error('Broken forwarder');
    return Promise.reject(new Error('Broken forwarder'));
  }
}

const exampleForwarder = (): TableForwarder =>
  new TableForwarder((q, bytes) => {
    const name = q.questions?.[0]?.name ?? '';
    if (name === 'example.com') return { ok: true, response: upstreamAnswer(bytes, [{ type: 'A', name, ttl: 300, data: '93.184.215.14' }]) };
    return { ok: false, reason: 'timeout' };
  });

function setup(options: Partial<DnsResolverOptions> = {}) {
  const records = swarmRecords();
  const forwarder = exampleForwarder();
  const resolver = new DnsResolver({ records, rng: new SeededRng(1), forwarder, ...options });
  return { records, forwarder, resolver };
}

async function outcomeBytes(outcome: DnsOutcome): Promise<Uint8Array> {
  if (outcome.kind === 'drop') throw new Error(`Dropped: ${outcome.reason}`);
  return outcome.kind === 'response' ? outcome.bytes : await outcome.response;
}

/** Asks and decodes; local answers must be synchronous. */
function ask(resolver: DnsResolver, bytes: Uint8Array, client: DnsClient = HOST_CLIENT): Decoded {
  const outcome = resolver.handle(bytes, client);
  if (outcome.kind !== 'response') throw new Error(`Expected a local response, got ${outcome.kind}`);
  return decode(outcome.bytes);
}

describe('resolver: Swarm names', () => {
  it('answers a vip service with its VIP, in the mirror form for host clients', () => {
    const { resolver } = setup();
    const r = ask(resolver, query('web'));
    expect(r.rcode).toBe('NOERROR');
    expect(r.flag_aa).toBe(true);
    expect(r.flag_qr).toBe(true);
    expect(r.id).toBe(0x1234);
    expect(answersOf(r)).toEqual(['127.64.1.2']);
    expect(r.answers?.[0]?.name).toBe('web');
  });

  it('answers overlay clients with the overlay address', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query('web'), OVERLAY_CLIENT))).toEqual(['100.64.1.2']);
  });

  it('answers a dnsrr service with every healthy task address', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query('db'), OVERLAY_CLIENT))).toEqual(['100.64.1.20', '100.64.1.21']);
  });

  it('answers tasks.<service> with healthy task addresses only', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query('tasks.web'), OVERLAY_CLIENT))).toEqual(['100.64.1.10', '100.64.1.11']);
    expect(answersOf(ask(resolver, query('tasks.web'), HOST_CLIENT))).toEqual(['127.64.1.10', '127.64.1.11']);
  });

  it('answers <service>.<slot>.<taskId> with that task', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query(`web.2.${WEB2}`), OVERLAY_CLIENT))).toEqual(['100.64.1.11']);
    expect(answersOf(ask(resolver, query(`db.1.${DB1}`)))).toEqual(['127.64.1.20']);
  });

  it('gives an unhealthy task name no address (NODATA), never its address', () => {
    const { resolver } = setup();
    const r = ask(resolver, query(`web.3.${WEB3}`));
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers).toEqual([]);
  });

  it('answers SRV _<port>._tcp.<service> per healthy task, with addresses as additional data', () => {
    const { resolver } = setup();
    for (const name of ['_80._tcp.web', '_http._tcp.web']) {
      const r = ask(resolver, query(name, 'SRV'), OVERLAY_CLIENT);
      expect(r.rcode).toBe('NOERROR');
      const srv = answersOf(r, 'SRV') as dnsPacket.SrvData[];
      expect(srv.map((s) => `${s.target}:${s.port}`).sort()).toEqual([`web.1.${WEB1}:80`, `web.2.${WEB2}:80`]);
      const glue = rrs(r.additionals).filter((a) => a.type === 'A').map((a) => `${a.name}=${String(a.data)}`).sort();
      expect(glue).toEqual([`web.1.${WEB1}=100.64.1.10`, `web.2.${WEB2}=100.64.1.11`]);
    }
  });

  it('answers SRV _<port>._udp and gives host clients mirror glue', () => {
    const { resolver } = setup();
    const r = ask(resolver, query('_53._udp.web', 'SRV'));
    expect((answersOf(r, 'SRV') as dnsPacket.SrvData[]).map((s) => s.port)).toEqual([53, 53]);
    expect(rrs(r.additionals).map((a) => a.data).sort()).toEqual(['127.64.1.10', '127.64.1.11']);
  });

  it('answers NXDOMAIN for an SRV port the service does not expose', () => {
    const { resolver } = setup();
    expect(ask(resolver, query('_81._tcp.web', 'SRV')).rcode).toBe('NXDOMAIN');
    expect(ask(resolver, query('_80._udp.web', 'SRV')).rcode).toBe('NXDOMAIN');
  });

  it('answers PTR for a VIP and for task addresses, overlay and mirror forms alike', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query('2.1.64.100.in-addr.arpa', 'PTR')), 'PTR')).toEqual(['web']);
    expect(answersOf(ask(resolver, query('2.1.64.127.in-addr.arpa', 'PTR')), 'PTR')).toEqual(['web']);
    expect(answersOf(ask(resolver, query('10.1.64.100.in-addr.arpa', 'PTR')), 'PTR')).toEqual([`web.1.${WEB1}`]);
    expect(answersOf(ask(resolver, query('21.1.64.127.in-addr.arpa', 'PTR')), 'PTR')).toEqual([`db.2.q7w8e9r0t1y2u3i4o5p6a7s8d`]);
  });

  it('answers NXDOMAIN for reverse names of unknown or unhealthy addresses in the overlay range', () => {
    const { resolver } = setup();
    expect(ask(resolver, query('99.1.64.100.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    expect(ask(resolver, query('12.1.64.100.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
  });

  it('answers NODATA for a partial reverse name inside the overlay range (an empty non-terminal)', () => {
    const r = ask(setup().resolver, query('1.64.100.in-addr.arpa', 'PTR'));
    expect(r.rcode).toBe('NOERROR');
    expect(r.answers).toEqual([]);
  });

  it('forwards reverse names outside the overlay and mirror ranges', async () => {
    const { resolver, forwarder } = setup();
    const outcome = resolver.handle(query('1.0.0.127.in-addr.arpa', 'PTR'), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    await outcomeBytes(outcome);
    expect(forwarder.asked).toEqual(['1.0.0.127.in-addr.arpa']);
  });

  it('matches names case-insensitively and echoes the question as sent (0x20)', () => {
    const { resolver } = setup();
    const r = ask(resolver, query('TaSkS.WeB'), OVERLAY_CLIENT);
    expect(r.questions?.[0]?.name).toBe('TaSkS.WeB');
    expect(answersOf(r)).toEqual(['100.64.1.10', '100.64.1.11']);
    expect(answersOf(ask(resolver, query(`WEB.1.${WEB1.toUpperCase()}`), OVERLAY_CLIENT))).toEqual(['100.64.1.10']);
    expect(answersOf(ask(resolver, query('_HTTP._TCP.Web', 'SRV')), 'SRV')).toHaveLength(2);
  });

  it('treats a trailing dot as the same name', () => {
    const { resolver } = setup();
    expect(answersOf(ask(resolver, query('web.'), OVERLAY_CLIENT))).toEqual(['100.64.1.2']);
  });

  it('strips configured search domains before a local lookup and forwards the full name when it is not local', async () => {
    const { resolver, forwarder } = setup({ searchDomains: ['corp.example.'] });
    const r = ask(resolver, query('web.corp.example'), OVERLAY_CLIENT);
    expect(answersOf(r)).toEqual(['100.64.1.2']);
    expect(r.answers?.[0]?.name).toBe('web.corp.example');
    const outcome = resolver.handle(query('printer.corp.example'), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    await outcomeBytes(outcome);
    expect(forwarder.asked).toEqual(['printer.corp.example']);
  });

  it('resolves <name>.<network> as <name> scoped to that network (Docker), and forwards it when no such network', async () => {
    const { records, forwarder } = setup();
    records.addNetwork('mynet');
    const scopes: (string | undefined)[] = [];
    // The records see which network the query named.
    const spy: DnsRecords = {
      service: (name, client) => (scopes.push(client.network), records.service(name)),
      tasks: (service) => records.tasks(service),
      byAddress: (address) => records.byAddress(address),
      network: (name) => records.network(name),
    };
    const resolver = new DnsResolver({ records: spy, rng: new SeededRng(1), forwarder });
    expect(answersOf(ask(resolver, query('web.mynet'), OVERLAY_CLIENT))).toEqual(['100.64.1.2']);
    expect(answersOf(ask(resolver, query('tasks.db.MyNet'), OVERLAY_CLIENT))).toEqual(['100.64.1.20', '100.64.1.21']);
    expect(scopes).toEqual(['mynet', 'mynet']);
    expect(ask(resolver, query('nosuch.mynet')).rcode).toBe('NXDOMAIN');
    const outcome = resolver.handle(query('web.othernet'), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    await outcomeBytes(outcome);
    expect(forwarder.asked).toEqual(['web.othernet']);
  });

  it('uses short TTLs: VIP answers the vip TTL, task answers the task TTL, both configurable', () => {
    const defaults = setup().resolver;
    expect(rrs(ask(defaults, query('web')).answers)[0]?.ttl).toBe(5);
    expect(rrs(ask(defaults, query('db')).answers)[0]?.ttl).toBe(1);
    const custom = setup({ ttl: { vip: 3, task: 2 } }).resolver;
    expect(rrs(ask(custom, query('web')).answers)[0]?.ttl).toBe(3);
    expect(rrs(ask(custom, query('tasks.web')).answers).every((a) => a.ttl === 2)).toBe(true);
    expect(rrs(ask(custom, query('_80._tcp.web', 'SRV')).answers).every((a) => a.ttl === 2)).toBe(true);
  });

  it('spreads multi-address answers: the order varies between queries', () => {
    const records = swarmRecords();
    for (let i = 0; i < 8; i++) records.setTask({ service: 'db', slot: String(3 + i), taskId: `task${i}xxxxxxxxxxxxxxxxxxxx`, address: `100.64.2.${i + 1}`, healthy: true });
    const resolver = new DnsResolver({ records, rng: new SeededRng(5) });
    const orders = new Set<string>();
    for (let i = 0; i < 20; i++) orders.add(JSON.stringify(rrs(ask(resolver, query('db')).answers).map((a) => a.data)));
    expect(orders.size).toBeGreaterThan(1);
  });
});

describe('resolver: negative answers', () => {
  it('answers NXDOMAIN for a service name that does not exist, without forwarding it', () => {
    const { resolver, forwarder } = setup();
    const r = ask(resolver, query('nosuch'));
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.flag_aa).toBe(true);
    expect(r.answers).toEqual([]);
    expect(forwarder.asked).toEqual([]);
    expect(resolver.counters.get('dns_responses_nxdomain')).toBe(1);
  });

  it('forwards single-label queries that are not for addresses (NS for a TLD), and localhost', async () => {
    const { resolver, forwarder } = setup();
    for (const [name, type] of [['com', 'NS'], ['org', 'DS'], ['localhost', 'A']] as const) {
      const outcome = resolver.handle(query(name, type), HOST_CLIENT);
      expect(outcome.kind).toBe('forwarded');
      await outcomeBytes(outcome);
    }
    expect(forwarder.asked).toEqual(['com', 'org', 'localhost']);
    expect(ask(resolver, query('nosuch', 'AAAA')).rcode).toBe('NXDOMAIN');
  });

  it('forwards unknown single-label names when told to (LAN host names, as Docker does)', async () => {
    const { resolver, forwarder } = setup({ forwardSingleLabel: true });
    const outcome = resolver.handle(query('printer'), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    await outcomeBytes(outcome);
    expect(forwarder.asked).toEqual(['printer']);
  });

  it('answers NXDOMAIN for a task-shaped name of an existing service whose task does not exist', () => {
    const { resolver } = setup();
    expect(ask(resolver, query('web.7.zzzzzzzzzzzzzzzzzzzzzzzzz')).rcode).toBe('NXDOMAIN');
  });

  it('forwards three-label names of an existing service that are not task-shaped (no shadowing of real names)', async () => {
    const { resolver, forwarder } = setup();
    const outcome = resolver.handle(query('web.example.com'), HOST_CLIENT);
    expect(outcome.kind).toBe('forwarded');
    await outcomeBytes(outcome);
    expect(forwarder.asked).toEqual(['web.example.com']);
  });

  it('forwards tasks.<name> when no such service exists (tasks.google could be real)', () => {
    expect(setup().resolver.handle(query('tasks.nosuch'), HOST_CLIENT).kind).toBe('forwarded');
  });

  it.each([
    ['AAAA for a vip service', 'web', 'AAAA'],
    ['MX for a service', 'web', 'MX'],
    ['AAAA for tasks.<service>', 'tasks.db', 'AAAA'],
    ['A for a dnsrr service without tasks', 'empty', 'A'],
    ['A for a vip service without a VIP yet', 'pending', 'A'],
    ['A for tasks.<service> without tasks', 'tasks.empty', 'A'],
    ['TXT for an SRV name', '_80._tcp.web', 'TXT'],
    ['A for a reverse name', '2.1.64.100.in-addr.arpa', 'A'],
  ] as const)('answers NODATA (NOERROR, no answers) for %s', (_what, name, type) => {
    const { resolver } = setup();
    const r = ask(resolver, query(name, type));
    expect(r.rcode).toBe('NOERROR');
    expect(r.flag_aa).toBe(true);
    expect(r.answers).toEqual([]);
    expect(resolver.counters.get('dns_responses_nodata')).toBe(1);
  });

  it('answers SERVFAIL when forwarding fails', async () => {
    const { resolver } = setup();
    const r = decode(await outcomeBytes(resolver.handle(query('unreachable.example'), HOST_CLIENT)));
    expect(r.rcode).toBe('SERVFAIL');
    expect(r.id).toBe(0x1234);
    expect(r.questions?.[0]?.name).toBe('unreachable.example');
    expect(resolver.counters.get('dns_responses_servfail')).toBe(1);
  });

  it('answers SERVFAIL when the forwarder throws or rejects', async () => {
    for (const how of ['throw', 'reject'] as const) {
      const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1), forwarder: new ThrowingForwarder(how) });
      const r = decode(await outcomeBytes(resolver.handle(query('example.com', 'A', { id: 3 }), HOST_CLIENT)));
      expect(r.rcode).toBe('SERVFAIL');
      expect(r.id).toBe(3);
    }
  });

  it('answers SERVFAIL, and counts it, when the records throw', () => {
    const records: DnsRecords = {
      service: () => {
        throw new Error('Endpoint table broken');
      },
      tasks: () => [],
      byAddress: () => undefined,
    };
    const resolver = new DnsResolver({ records, rng: new SeededRng(1) });
    expect(ask(resolver, query('web')).rcode).toBe('SERVFAIL');
    expect(resolver.counters.get('dns_records_errors')).toBe(1);
  });

  it('answers SERVFAIL for other names when there is no forwarder', () => {
    const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1) });
    expect(ask(resolver, query('example.com')).rcode).toBe('SERVFAIL');
  });

  it('relays a forwarded answer with the client ID and counts it', async () => {
    const { resolver } = setup();
    const r = decode(await outcomeBytes(resolver.handle(query('example.com', 'A', { id: 777 }), HOST_CLIENT)));
    expect(r.id).toBe(777);
    expect(answersOf(r)).toEqual(['93.184.215.14']);
    expect(resolver.counters.get('dns_forwarded')).toBe(1);
    expect(resolver.counters.get('dns_responses_noerror')).toBe(1);
  });
});

describe('resolver: bad and unusual queries', () => {
  it('drops (and counts) messages too short to carry an ID', () => {
    const { resolver } = setup();
    for (const bytes of [new Uint8Array(0), new Uint8Array([0x12])]) {
      expect(resolver.handle(bytes, HOST_CLIENT)).toEqual({ kind: 'drop', reason: 'short' });
    }
    expect(resolver.counters.get('dns_dropped_short')).toBe(2);
  });

  it('answers FORMERR, with the ID, to a message with an ID but no whole header', () => {
    const { resolver } = setup();
    for (const bytes of [new Uint8Array([0xab, 0xcd]), new Uint8Array([0xab, 0xcd, 0x01]), new Uint8Array([0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0])]) {
      const r = ask(resolver, bytes);
      expect(r.id).toBe(0xabcd);
      expect(r.rcode).toBe('FORMERR');
      expect(r.flag_qr).toBe(true);
    }
    // ... unless it already says it is a response.
    expect(resolver.handle(new Uint8Array([0xab, 0xcd, 0x81]), HOST_CLIENT)).toEqual({ kind: 'drop', reason: 'response' });
    expect(resolver.counters.get('dns_responses_formerr')).toBe(3);
  });

  it('drops responses (QR=1), which must never be answered', () => {
    const { resolver } = setup();
    const response = upstreamAnswer(query('web'), []);
    expect(resolver.handle(response, HOST_CLIENT)).toEqual({ kind: 'drop', reason: 'response' });
    expect(resolver.counters.get('dns_dropped_response')).toBe(1);
  });

  it.each([
    ['a truncated question', () => query('web').subarray(0, 16)],
    ['QDCOUNT 0', () => withCount(query('web'), 4, 0)],
    ['QDCOUNT 2', () => withCount(query('web'), 4, 2)],
    ['a label longer than 63 bytes', () => Buffer.concat([query('web').subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])])],
    ['a compression pointer in the question', () => Buffer.concat([query('web').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])])],
    ['an additional count with no record', () => withCount(query('web'), 10, 1)],
    ['two OPT records', () => withCount(Buffer.concat([query('web', 'A', { edns: 1232 }), query('web', 'A', { edns: 1232 }).subarray(-11)]), 10, 2)],
  ])('answers FORMERR with the query ID to %s', (_what, make) => {
    const { resolver } = setup();
    const bytes = make();
    const r = ask(resolver, bytes);
    expect(r.rcode).toBe('FORMERR');
    expect(r.id).toBe(0x1234);
    expect(r.flag_qr).toBe(true);
    expect(resolver.counters.get('dns_responses_formerr')).toBe(1);
  });

  it('answers NOTIMP to opcodes other than QUERY (NOTIFY, UPDATE)', () => {
    const { resolver } = setup();
    for (const opcode of [4, 5]) {
      const bytes = Buffer.from(query('web'));
      bytes[2] = (bytes[2]! & 0x87) | (opcode << 3);
      const r = ask(resolver, bytes);
      expect(r.rcode).toBe('NOTIMP');
      expect(r.opcode).toBe(opcode === 4 ? 'NOTIFY' : 'UPDATE');
      expect(r.id).toBe(0x1234);
    }
    expect(resolver.counters.get('dns_responses_notimp')).toBe(2);
  });

  it('answers REFUSED to classes other than IN and ANY, and NOTIMP to zone transfers', () => {
    const { resolver } = setup();
    expect(ask(resolver, query('version.bind', 'TXT', { qclass: 'CH' })).rcode).toBe('REFUSED');
    expect(ask(resolver, query('web', 'AXFR')).rcode).toBe('NOTIMP');
    expect(answersOf(ask(resolver, query('web', 'A', { qclass: 'ANY' })))).toEqual(['127.64.1.2']);
  });

  it('answers BADVERS to EDNS versions above 0 (RFC 6891 §6.1.3)', () => {
    const { resolver } = setup();
    const outcome = resolver.handle(query('web', 'A', { edns: 1232, ednsVersion: 1 }), HOST_CLIENT);
    const r = decode(outcome.kind === 'response' ? outcome.bytes : new Uint8Array());
    const opt = r.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    expect(opt?.extendedRcode).toBe(1);
    expect(r.answers).toEqual([]);
    expect(resolver.counters.get('dns_responses_badvers')).toBe(1);
  });

  it('answers EDNS queries with an OPT record advertising its own payload size', () => {
    const { resolver } = setup({ maxUdpPayload: 1400 });
    const r = ask(resolver, query('web', 'A', { edns: 4096 }));
    const opt = r.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    expect(opt?.udpPayloadSize).toBe(1400);
    expect(answersOf(r)).toEqual(['127.64.1.2']);
  });

  it('answers an oversized query whose question is sound, ignoring the bytes after its records', () => {
    const { resolver } = setup();
    const padded = Buffer.concat([query('web'), Buffer.alloc(60_000, 0xff)]);
    const r = ask(resolver, padded);
    expect(answersOf(r)).toEqual(['127.64.1.2']);
  });

  it('answers FORMERR to an oversized query whose counts claim more records than it holds', () => {
    const { resolver } = setup();
    const claims = Buffer.concat([query('web'), Buffer.alloc(4000, 0)]);
    claims.writeUInt16BE(0xffff, 10);
    expect(ask(resolver, claims).rcode).toBe('FORMERR');
  });

  it('never throws, and answers or drops, whatever the bytes', () => {
    const { resolver } = setup();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, tcp) => {
        const outcome = resolver.handle(bytes, tcp ? TCP_CLIENT : HOST_CLIENT);
        if (outcome.kind === 'response') {
          expect(outcome.bytes.length).toBeGreaterThanOrEqual(12);
          if (!tcp) expect(outcome.bytes.length).toBeLessThanOrEqual(512);
          expect(outcome.bytes[2]! & 0x80).toBe(0x80);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never throws on mutations of real queries, and keeps the ID in every answer', () => {
    const { resolver } = setup();
    const seeds = [query('web'), query('_80._tcp.web', 'SRV', { edns: 1232 }), query('2.1.64.100.in-addr.arpa', 'PTR'), query(`web.1.${WEB1}`)];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(80), (seed, edits, cut) => {
        const bytes = Buffer.from(seed.subarray(0, Math.max(0, seed.length - cut)));
        for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
        const outcome = resolver.handle(bytes, HOST_CLIENT);
        if (outcome.kind === 'response') expect((outcome.bytes[0]! << 8) | outcome.bytes[1]!).toBe((bytes[0]! << 8) | bytes[1]!);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('resolver: truncation', () => {
  /** A dnsrr service with `n` healthy tasks: 16 bytes per A answer with a compressed owner. */
  function big(n: number) {
    const records = swarmRecords();
    records.setService({ name: 'big', endpointMode: 'dnsrr', ports: [{ protocol: 'tcp', port: 8080 }] });
    for (let i = 0; i < n; i++) records.setTask({ service: 'big', slot: String(i + 1), taskId: `t${String(i).padStart(24, '0')}`, address: `100.64.${3 + (i >> 8)}.${i & 0xff}`, healthy: true });
    return new DnsResolver({ records, rng: new SeededRng(3) });
  }

  it('fits a UDP answer in 512 bytes without EDNS, as many whole records as fit, TC set', () => {
    const resolver = big(100);
    const outcome = resolver.handle(query('big'), HOST_CLIENT);
    const bytes = outcome.kind === 'response' ? outcome.bytes : new Uint8Array();
    expect(bytes.length).toBeLessThanOrEqual(512);
    const r = decode(bytes);
    expect(r.flag_tc).toBe(true);
    // 12 header + 7 question + 16 per answer: 30 answers fit in 512.
    expect(r.answers).toHaveLength(30);
    expect(resolver.counters.get('dns_responses_truncated')).toBe(1);
  });

  it('uses the EDNS payload size the client advertises, up to our own maximum', () => {
    const resolver = big(100);
    const r = decode((resolver.handle(query('big', 'A', { edns: 1000 }), HOST_CLIENT) as { bytes: Uint8Array }).bytes);
    expect(r.flag_tc).toBe(true);
    expect(r.answers!.length).toBeGreaterThan(30);
    expect(r.answers!.length).toBeLessThan(100);
    // Asked for 4096, capped at our 1232: (1232 - 12 header - 7 question - 11 OPT) / 16 = 75 answers.
    const capped = (resolver.handle(query('big', 'A', { edns: 4096 }), HOST_CLIENT) as { bytes: Uint8Array }).bytes;
    expect(capped.length).toBeLessThanOrEqual(1232);
    expect(decode(capped).flag_tc).toBe(true);
    expect(decode(capped).answers).toHaveLength(75);
    const all = decode((big(50).handle(query('big', 'A', { edns: 4096 }), HOST_CLIENT) as { bytes: Uint8Array }).bytes);
    expect(all.flag_tc).toBe(false);
    expect(all.answers).toHaveLength(50);
  });

  it('gives every record over TCP, where there is no UDP limit', () => {
    const resolver = big(1000);
    const r = decode((resolver.handle(query('big'), TCP_CLIENT) as { bytes: Uint8Array }).bytes);
    expect(r.flag_tc).toBe(false);
    expect(r.answers).toHaveLength(1000);
  });

  it('drops SRV glue that does not fit without setting TC, and sets TC when SRV answers do not fit', () => {
    const resolver = big(40);
    const udp = decode((resolver.handle(query('_8080._tcp.big', 'SRV'), HOST_CLIENT) as { bytes: Uint8Array }).bytes);
    expect(udp.flag_tc).toBe(true);
    const few = big(3);
    const ok = decode((few.handle(query('_8080._tcp.big', 'SRV'), HOST_CLIENT) as { bytes: Uint8Array }).bytes);
    expect(ok.flag_tc).toBe(false);
    expect(ok.answers).toHaveLength(3);
    expect(ok.additionals).toHaveLength(3);
  });

  it('cuts an oversized forwarded answer to the whole answers that fit, with TC', async () => {
    const forwarder = new TableForwarder((q, bytes) => ({
      ok: true,
      response: upstreamAnswer(
        bytes,
        Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, name: q.questions?.[0]?.name ?? '', ttl: 60, data: `198.51.100.${i}` })),
      ),
    }));
    const resolver = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(1), forwarder });
    const udpBytes = await outcomeBytes(resolver.handle(query('many.example'), HOST_CLIENT));
    expect(udpBytes.length).toBeLessThanOrEqual(512);
    const udp = decode(udpBytes);
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers!.length).toBeGreaterThan(10);
    expect(udp.answers!.length).toBeLessThan(60);
    expect(udp.questions?.[0]?.name).toBe('many.example');
    expect(resolver.counters.get('dns_responses_truncated')).toBe(1);
    const tcp = decode(await outcomeBytes(resolver.handle(query('many.example'), TCP_CLIENT)));
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(60);
  });
});

describe('resolver: records change', () => {
  it('answers the new records on the very next query after a task dies, scales or a service is removed', () => {
    const { resolver, records } = setup();
    expect(answersOf(ask(resolver, query('tasks.web'), OVERLAY_CLIENT))).toEqual(['100.64.1.10', '100.64.1.11']);
    records.setHealthy(WEB1, false);
    expect(answersOf(ask(resolver, query('tasks.web'), OVERLAY_CLIENT))).toEqual(['100.64.1.11']);
    records.setTask({ service: 'web', slot: '4', taskId: 'n3w7a5k0000000000000000ab', address: '100.64.1.13', healthy: true });
    expect(answersOf(ask(resolver, query('tasks.web'), OVERLAY_CLIENT))).toEqual(['100.64.1.11', '100.64.1.13']);
    records.removeService('web');
    expect(ask(resolver, query('web')).rcode).toBe('NXDOMAIN');
  });
});

function withCount(bytes: Uint8Array, at: number, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt16BE(value, at);
  return copy;
}
