import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type * as dnsPacket from 'dns-packet';
import { DnsResolver } from '../../src/dns/resolver.js';
import { MemoryRecords } from '../../src/dns/memory-records.js';
import type { DnsClient, DnsRecords } from '../../src/dns/records.js';
import { AnswerCache, hashKey } from '../../src/dns/answer-cache.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { FUZZ_RUNS } from '../helpers/fuzz.js';
import { DB1, HOST_CLIENT, OVERLAY_CLIENT, TCP_CLIENT, WEB1, WEB2, answersOf, decode, query, rrs, swarmRecords, type Decoded } from './fixtures.js';

function cached(records: DnsRecords = swarmRecords(), options: { ttlMs?: number; maxEntries?: number } = {}) {
  const clock = new ManualClock();
  const resolver = new DnsResolver({ records, rng: new SeededRng(7), answerCache: { clock, ...options } });
  return { clock, resolver };
}

function askBytes(resolver: DnsResolver, bytes: Uint8Array, client: DnsClient = HOST_CLIENT): Uint8Array {
  const outcome = resolver.handle(bytes, client);
  if (outcome.kind !== 'response') throw new Error(`Expected a local response, got ${outcome.kind}`);
  return outcome.bytes;
}

const ask = (resolver: DnsResolver, bytes: Uint8Array, client: DnsClient = HOST_CLIENT): Decoded => decode(askBytes(resolver, bytes, client));

/** What a user sees of an answer: rcode, flags, and every record sorted (order is shuffled on purpose). */
function seen(d: Decoded): unknown {
  const sortRrs = (list: readonly dnsPacket.Answer[] | undefined): string[] => rrs(list).map((r) => JSON.stringify(r)).sort();
  return { id: d.id, rcode: d.rcode, flags: d.flags, questions: d.questions, answers: sortRrs(d.answers), additionals: sortRrs(d.additionals), opt: (d.additionals ?? []).some((a) => a.type === 'OPT') };
}

/** Records as an implementation without version() would be: the cache can only rely on its TTL. */
function unversioned(records: MemoryRecords): DnsRecords {
  return {
    service: (name) => records.service(name),
    tasks: (service) => records.tasks(service),
    byAddress: (address) => records.byAddress(address),
    network: (name) => records.network(name),
  };
}

const QUERIES: readonly [string, dnsPacket.RecordType][] = [
  ['web', 'A'],
  ['tasks.web', 'A'],
  ['db', 'A'],
  [`web.1.${WEB1}`, 'A'],
  ['_http._tcp.web', 'SRV'],
  ['2.1.64.127.in-addr.arpa', 'PTR'],
  ['10.1.64.100.in-addr.arpa', 'PTR'],
  ['web', 'AAAA'],
  ['nosuch', 'A'],
  ['pending', 'A'],
];

describe('answer cache: hits answer as the records would', () => {
  it.each(QUERIES)('%s %s: the second answer (a hit) is what an uncached resolver answers', (name, type) => {
    const { resolver } = cached();
    const plain = new DnsResolver({ records: swarmRecords(), rng: new SeededRng(7) });
    for (const client of [HOST_CLIENT, OVERLAY_CLIENT, TCP_CLIENT]) {
      for (const edns of [undefined, 1232]) {
        const q = query(name, type, edns === undefined ? {} : { edns });
        const first = ask(resolver, q, client);
        const second = ask(resolver, q, client);
        expect(seen(second)).toEqual(seen(first));
        expect(seen(second)).toEqual(seen(ask(plain, q, client)));
      }
    }
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(6);
    expect(resolver.counters.get('dns_answer_cache_misses')).toBe(6);
  });

  it('a hit carries the asker’s ID and the question as the asker spelled it', () => {
    const { resolver } = cached();
    ask(resolver, query('web', 'A', { id: 1 }));
    const hit = ask(resolver, query('WeB', 'A', { id: 0xbeef }));
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(1);
    expect(hit.id).toBe(0xbeef);
    expect(hit.questions?.[0]?.name).toBe('WeB');
    expect(answersOf(hit)).toEqual(['127.64.1.2']);
    const again = ask(resolver, query('web', 'A', { id: 2 }));
    expect(again.id).toBe(2);
    expect(again.questions?.[0]?.name).toBe('web');
  });

  it('a hit is counted as the answer it repeats (rcode, answered locally)', () => {
    const { resolver } = cached();
    for (let i = 0; i < 3; i++) ask(resolver, query('nosuch'));
    for (let i = 0; i < 3; i++) ask(resolver, query('web'));
    expect(resolver.counters.get('dns_responses_nxdomain')).toBe(3);
    expect(resolver.counters.get('dns_responses_noerror')).toBe(3);
    expect(resolver.counters.get('dns_answered_local')).toBe(6);
  });

  it('multi-address answers are still shuffled on hits, always the same addresses', () => {
    const { resolver } = cached();
    const orders = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const d = ask(resolver, query('tasks.web'));
      expect(answersOf(d)).toEqual(['127.64.1.10', '127.64.1.11']);
      orders.add(rrs(d.answers).map((a) => ('data' in a ? String(a.data) : '')).join(','));
    }
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(63);
    expect(orders.size).toBe(2);
  });
});

describe('answer cache: never shared where answers differ', () => {
  it('host and overlay views get their own address forms', () => {
    const { resolver } = cached();
    expect(answersOf(ask(resolver, query('web'), HOST_CLIENT))).toEqual(['127.64.1.2']);
    expect(answersOf(ask(resolver, query('web'), OVERLAY_CLIENT))).toEqual(['100.64.1.2']);
    expect(answersOf(ask(resolver, query('web'), HOST_CLIENT))).toEqual(['127.64.1.2']);
    expect(answersOf(ask(resolver, query('web'), OVERLAY_CLIENT))).toEqual(['100.64.1.2']);
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(2);
  });

  it('qtypes, classes, EDNS and RD each get their own entry', () => {
    const { resolver } = cached();
    const a = ask(resolver, query('web', 'A'));
    const aaaa = ask(resolver, query('web', 'AAAA'));
    expect(answersOf(a)).toEqual(['127.64.1.2']);
    expect(aaaa.answers).toEqual([]);
    expect(ask(resolver, query('web', 'A', { qclass: 'CH' })).rcode).toBe('REFUSED');
    const withOpt = ask(resolver, query('web', 'A', { edns: 1232 }));
    expect((withOpt.additionals ?? []).some((r) => r.type === 'OPT')).toBe(true);
    expect((ask(resolver, query('web', 'A')).additionals ?? []).some((r) => r.type === 'OPT')).toBe(false);
    expect((ask(resolver, query('web', 'A', { rd: false })).flags ?? 0) & 0x0100).toBe(0);
    expect((ask(resolver, query('web', 'A')).flags ?? 0) & 0x0100).toBe(0x0100);
  });

  it('clients at different addresses never share an entry (records may scope by client)', () => {
    const { resolver } = cached();
    ask(resolver, query('web'), HOST_CLIENT);
    ask(resolver, query('web'), { ...HOST_CLIENT, address: '127.0.0.2' });
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(0);
    expect(resolver.cachedAnswers).toBe(2);
  });

  it('truncated answers are not kept', () => {
    const records = new MemoryRecords();
    records.setService({ name: 'big', endpointMode: 'dnsrr', ports: [] });
    for (let i = 0; i < 40; i++) records.setTask({ service: 'big', slot: String(i + 1), taskId: `t${i}`, address: `100.64.2.${i + 1}`, healthy: true });
    const { resolver } = cached(records);
    expect((ask(resolver, query('big')).flags ?? 0) & 0x0200).toBe(0x0200);
    expect((ask(resolver, query('big')).flags ?? 0) & 0x0200).toBe(0x0200);
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(0);
    expect(resolver.cachedAnswers).toBe(0);
  });
});

describe('answer cache: answers follow the records', () => {
  it('with version(): a task turning unhealthy is gone from the very next answer', () => {
    const records = swarmRecords();
    const { resolver } = cached(records);
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.10', '127.64.1.11']);
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.10', '127.64.1.11']);
    records.setHealthy(WEB1, false);
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.11']);
    records.removeTask(WEB2);
    expect(ask(resolver, query('tasks.web')).answers).toEqual([]);
    expect(answersOf(ask(resolver, query('db')))).toEqual(['127.64.1.20', '127.64.1.21']);
    records.removeService('db');
    expect(ask(resolver, query('db')).rcode).toBe('NXDOMAIN');
  });

  it('without version(): a change shows once the TTL has passed, never later', () => {
    const records = swarmRecords();
    const { clock, resolver } = cached(unversioned(records), { ttlMs: 250 });
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.10', '127.64.1.11']);
    records.setHealthy(WEB1, false);
    clock.advance(249);
    // Within the bound the cached answer may still be served; that is the documented lag.
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.10', '127.64.1.11']);
    clock.advance(1);
    expect(answersOf(ask(resolver, query('tasks.web')))).toEqual(['127.64.1.11']);
  });

  it('entries expire after the TTL even when the generation is unchanged', () => {
    const { clock, resolver } = cached(swarmRecords(), { ttlMs: 100 });
    ask(resolver, query('web'));
    clock.advance(100);
    ask(resolver, query('web'));
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(0);
    expect(resolver.counters.get('dns_answer_cache_misses')).toBe(2);
  });

  it('property: with version(), any interleaving of changes and questions answers as without a cache', () => {
    const names: readonly [string, dnsPacket.RecordType][] = [['web', 'A'], ['tasks.web', 'A'], ['db', 'A'], [`web.2.${WEB2}`, 'A'], ['_http._tcp.web', 'SRV'], ['11.1.64.127.in-addr.arpa', 'PTR']];
    const step = fc.oneof(
      fc.record({ op: fc.constant('ask' as const), q: fc.integer({ min: 0, max: names.length - 1 }), overlay: fc.boolean() }),
      fc.record({ op: fc.constant('health' as const), task: fc.constantFrom(WEB1, WEB2, DB1), healthy: fc.boolean() }),
      fc.record({ op: fc.constant('move' as const), octet: fc.integer({ min: 30, max: 40 }) }),
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 300 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const records = swarmRecords();
        const { clock, resolver } = cached(records);
        const plain = new DnsResolver({ records, rng: new SeededRng(7) });
        for (const s of steps) {
          if (s.op === 'health') records.setHealthy(s.task, s.healthy);
          else if (s.op === 'move') records.setTask({ service: 'web', slot: '2', taskId: WEB2, address: `100.64.1.${s.octet}`, healthy: true });
          else if (s.op === 'advance') clock.advance(s.ms);
          else {
            const [name, type] = names[s.q]!;
            const client = s.overlay ? OVERLAY_CLIENT : HOST_CLIENT;
            expect(seen(ask(resolver, query(name, type), client))).toEqual(seen(ask(plain, query(name, type), client)));
          }
        }
      }),
      { numRuns: Math.min(FUZZ_RUNS, 500) },
    );
  });
});

describe('answer cache: bounded', () => {
  it('never holds more than maxEntries; the oldest goes first', () => {
    const { resolver } = cached(swarmRecords(), { maxEntries: 3 });
    const names = ['web', 'db', 'tasks.web', 'tasks.db', 'nosuch', 'empty'];
    for (const name of names) {
      ask(resolver, query(name));
      expect(resolver.cachedAnswers).toBeLessThanOrEqual(3);
    }
    expect(resolver.cachedAnswers).toBe(3);
    ask(resolver, query('empty'));
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(1);
    ask(resolver, query('web'));
    expect(resolver.counters.get('dns_answer_cache_hits')).toBe(1);
  });

  it('ttlMs 0 keeps nothing', () => {
    const cache = new AnswerCache({ clock: new ManualClock(), ttlMs: 0 });
    const q = query('web');
    cache.set(q, q.length, 512, 1, 0x100, '127.0.0.1', 0, { bytes: new Uint8Array(12), rcode: 0, answers: 0, shuffleA: 0, answerOffset: 12 });
    expect(cache.size).toBe(0);
    expect(cache.get(q, q.length, 512, 1, 0x100, '127.0.0.1', 0)).toBeUndefined();
  });

  it('keys fold ASCII case only and differ by every other input', () => {
    const cache = new AnswerCache({ clock: new ManualClock() });
    const answer = { bytes: new Uint8Array(12), rcode: 0, answers: 0, shuffleA: 0, answerOffset: 12 };
    const web = query('web');
    cache.set(web, web.length, 512, 1, 0x100, '127.0.0.1', 0, answer);
    const hit = (q: Uint8Array, limit = 512, bits = 1, flags = 0x100, client = '127.0.0.1', generation = 0): boolean => cache.get(q, q.length, limit, bits, flags, client, generation) !== undefined;
    expect(hit(query('WEB'))).toBe(true);
    expect(hit(query('wec'))).toBe(false);
    expect(hit(query('web', 'AAAA'))).toBe(false);
    expect(hit(query('w\u00e9b'))).toBe(false);
    expect(hit(web, 1232)).toBe(false);
    expect(hit(web, 512, 0)).toBe(false);
    expect(hit(web, 512, 1, 0)).toBe(false);
    expect(hit(web, 512, 1, 0x100, '127.0.0.2')).toBe(false);
    expect(hit(web)).toBe(true);
    expect(hit(web, 512, 1, 0x100, '127.0.0.1', 1)).toBe(false);
    // A stale generation drops the entry.
    expect(hit(web)).toBe(false);
  });

  it('two keys with one hash never answer for each other', () => {
    // A real 32-bit collision, found by the birthday bound among 300k one-label questions.
    const question = (name: string): Uint8Array => {
      const q = new Uint8Array(12 + 1 + name.length + 1 + 4);
      q[12] = name.length;
      for (let i = 0; i < name.length; i++) q[13 + i] = name.charCodeAt(i);
      q[q.length - 3] = 1; // QTYPE A
      q[q.length - 1] = 1; // QCLASS IN
      return q;
    };
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; i < 300_000 && !pair; i++) {
      const name = `n${i.toString(36)}`;
      const q = question(name);
      const h = hashKey(q, q.length, 512, 1, 0x100, '127.0.0.1');
      const other = seen.get(h);
      if (other !== undefined) pair = [other, name];
      else seen.set(h, name);
    }
    expect(pair).toBeDefined();
    const qa = question(pair![0]);
    const qb = question(pair![1]);
    expect(hashKey(qa, qa.length, 512, 1, 0x100, '127.0.0.1')).toBe(hashKey(qb, qb.length, 512, 1, 0x100, '127.0.0.1'));
    const cache = new AnswerCache({ clock: new ManualClock() });
    cache.set(qa, qa.length, 512, 1, 0x100, '127.0.0.1', 0, { bytes: new Uint8Array(12), rcode: 0, answers: 0, shuffleA: 0, answerOffset: 12 });
    expect(cache.get(qb, qb.length, 512, 1, 0x100, '127.0.0.1', 0)).toBeUndefined();
    expect(cache.get(qa, qa.length, 512, 1, 0x100, '127.0.0.1', 0)).toBeDefined();
  });
});
