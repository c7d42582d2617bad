/**
 * The embedded DNS server's core, with no sockets: one query's bytes and where they came from
 * in, a response's bytes (now, or once forwarded) or a decision to drop out. The UDP and TCP
 * listeners (node-udp-server.ts, node-tcp-server.ts) and later the overlay's own UDP sockets
 * all feed this one function.
 *
 * What it answers, after Docker's embedded DNS (libnetwork resolver.go) where Swarm has a rule:
 * - `<service>`: the VIP (endpoint mode vip) or every healthy task address (dnsrr);
 *   `tasks.<service>`: every healthy task address; `<service>.<slot>.<taskId>`: that task;
 *   `_<port>._tcp.<service>` / `_udp`: SRV per healthy task (RFC 2782), addresses as
 *   additional data; PTR for VIPs and task addresses. Several addresses come in random order,
 *   as Swarm shuffles them, so naive clients spread their connections.
 * - Host clients get the 127.X.Y.Z mirror of every overlay address, overlay clients the
 *   100.X.Y.Z address itself (ARCHITECTURE.md, "East–west").
 * - TTLs are seconds, not Swarm's 600 s, so a client never holds a dead task's address long.
 * - A Swarm-shaped name that does not exist is NXDOMAIN here; any other name goes to the
 *   forwarder. An existing name without records of the asked type is NOERROR with no answers
 *   (NODATA, RFC 2308 §2.2), e.g. AAAA for a service, as Docker answers it. Negative answers
 *   carry no SOA: RFC 2308 §5 then forbids caching them, which is what we want for names that
 *   appear the moment a service is created.
 */
import { Counters } from '../lib/counters.js';
import { AnswerCache, POINTER_A_RR_LEN, type AnswerCacheOptions, type CachedAnswer } from './answer-cache.js';
import type { Rng } from '../lib/rng.js';
import type { DnsForwarding, ForwardResult } from './forwarder.js';
import {
  DNS_MAX_MESSAGE,
  DNS_UDP_MIN_PAYLOAD,
  Flag,
  Rcode,
  RrClass,
  RrType,
  ResponseWriter,
  DNS_HEADER_LEN,
  copyBytes,
  headerOnlyResponse,
  parseQuery,
  questionLabels,
  rcodeOf,
  readU16,
  fitResponse,
  type DnsQuery,
  type RcodeValue,
} from './message.js';
import { classifyName, isServiceLabel, isTaskShaped, type NameShape } from './names.js';
import type { DnsClient, DnsRecords, ServiceRecord, TaskRecord } from './records.js';
import { fromMirror, formatIpv4, parseIpv4, toMirror } from './records.js';

export type DnsOutcome =
  | { readonly kind: 'response'; readonly bytes: Uint8Array }
  /** Forwarded: the response arrives later; the promise never rejects. */
  | { readonly kind: 'forwarded'; readonly response: Promise<Uint8Array> }
  | { readonly kind: 'drop'; readonly reason: 'short' | 'response' };

/** What a listener needs: the resolver, or anything answering the same way. */
export interface DnsHandler {
  handle(query: Uint8Array, client: DnsClient): DnsOutcome;
}

export interface DnsTtls {
  /** Seconds for VIP answers (A and PTR): a VIP lives as long as its service. Default 5. */
  readonly vip?: number;
  /** Seconds for anything naming tasks (dnsrr, tasks.*, task names, SRV, task PTR). Default 1. */
  readonly task?: number;
}

export interface DnsResolverOptions {
  readonly records: DnsRecords;
  /**
   * Shuffles multi-address answers. Needs no secrecy and is called per answer: a SeededRng
   * seeded from CryptoRng, not CryptoRng itself (microseconds a call).
   */
  readonly rng: Rng;
  /** Where other names go; without one they are answered SERVFAIL. */
  readonly forwarder?: DnsForwarding;
  readonly ttl?: DnsTtls;
  /**
   * The largest UDP response we send, and the payload size our OPT RR advertises
   * (RFC 6891 §6.2.5). Default 1232, the DNS Flag Day 2020 value that avoids IP fragmentation.
   */
  readonly maxUdpPayload?: number;
  /**
   * Address queries (A, AAAA, ANY) for a single label that names no service are NXDOMAIN by
   * default: no public host name has one label (ICANN bans dotless domains). Other types for
   * one label (NS or DS for a TLD) and `localhost` (RFC 6761 §6.3) are always forwarded.
   * Set this to forward the address queries too, as Docker does, when the host's resolver
   * knows bare LAN host names (a home router's dnsmasq, say).
   */
  readonly forwardSingleLabel?: boolean;
  /**
   * Domains stripped before a local lookup: with `corp.example` here, `web.corp.example`
   * answers as `web` when `web` exists, and is forwarded otherwise. Lets host clients whose
   * libc appends search domains first (ndots:1) hit locally without an upstream round trip.
   * Docker does not do this; default none.
   */
  readonly searchDomains?: readonly string[];
  /**
   * Keep encoded local answers (answer-cache.ts): a repeated question skips the records and
   * the response build. Invalidated by `records.version()` when the records have it, and in
   * any case `ttlMs` (default 250) after it was built. Default: no cache.
   */
  readonly answerCache?: AnswerCacheOptions;
}

export const RESOLVER_COUNTERS = [
  'dns_queries_udp',
  'dns_queries_tcp',
  'dns_dropped_short',
  'dns_dropped_response',
  'dns_responses_noerror',
  'dns_responses_nodata',
  'dns_responses_nxdomain',
  'dns_responses_servfail',
  'dns_responses_formerr',
  'dns_responses_notimp',
  'dns_responses_refused',
  'dns_responses_badvers',
  'dns_responses_truncated',
  'dns_answered_local',
  'dns_forwarded',
  'dns_records_errors',
  'dns_answer_cache_hits',
  'dns_answer_cache_misses',
] as const;
export type ResolverCounter = (typeof RESOLVER_COUNTERS)[number];

type LocalAnswer =
  | { readonly kind: 'a'; readonly addresses: readonly number[]; readonly ttl: number }
  | { readonly kind: 'ptr'; readonly target: readonly string[]; readonly ttl: number }
  | { readonly kind: 'srv'; readonly targets: readonly { readonly name: readonly string[]; readonly port: number; readonly address: number }[]; readonly ttl: number }
  | { readonly kind: 'nodata' }
  | { readonly kind: 'nxdomain' }
  | { readonly kind: 'forward' };

/** Query flags that may shape a response (RD is echoed, RFC 1035 §4.1.1; CD, RFC 4035 §3.2.2): part of an answer cache key. */
const ECHOED_FLAGS = Flag.RD | Flag.CD;

const NODATA: LocalAnswer = { kind: 'nodata' };
const NXDOMAIN: LocalAnswer = { kind: 'nxdomain' };
const FORWARD: LocalAnswer = { kind: 'forward' };

export class DnsResolver implements DnsHandler {
  readonly counters = new Counters<ResolverCounter>(RESOLVER_COUNTERS);
  readonly #records: DnsRecords;
  readonly #rng: Rng;
  readonly #forwarder: DnsForwarding | undefined;
  readonly #vipTtl: number;
  readonly #taskTtl: number;
  readonly #maxUdp: number;
  readonly #forwardSingleLabel: boolean;
  readonly #searchDomains: readonly (readonly string[])[];
  readonly #writer = new ResponseWriter();
  readonly #cache: AnswerCache | undefined;

  constructor(options: DnsResolverOptions) {
    this.#records = options.records;
    this.#rng = options.rng;
    this.#forwarder = options.forwarder;
    this.#vipTtl = options.ttl?.vip ?? 5;
    this.#taskTtl = options.ttl?.task ?? 1;
    this.#maxUdp = Math.min(DNS_MAX_MESSAGE, Math.max(DNS_UDP_MIN_PAYLOAD, options.maxUdpPayload ?? 1232));
    this.#forwardSingleLabel = options.forwardSingleLabel ?? false;
    this.#searchDomains = (options.searchDomains ?? [])
      .map((d) => d.toLowerCase().replace(/^\.+|\.+$/g, ''))
      .filter((d) => d.length > 0)
      .map((d) => d.split('.'));
    this.#cache = options.answerCache ? new AnswerCache(options.answerCache) : undefined;
  }

  /** Entries in the answer cache (0 without one). */
  get cachedAnswers(): number {
    return this.#cache?.size ?? 0;
  }

  /**
   * Answers one message. Never throws on any bytes. `query` is read during the call only.
   * Over UDP the response fits the client's budget (512 bytes, or its EDNS size up to
   * maxUdpPayload) with TC set when answers were left out; over TCP up to 65535 bytes.
   */
  handle(query: Uint8Array, client: DnsClient): DnsOutcome {
    this.counters.inc(client.transport === 'tcp' ? 'dns_queries_tcp' : 'dns_queries_udp');
    // With a cache, the labels are decoded only on a miss.
    const parsed = parseQuery(query, this.#cache === undefined);
    switch (parsed.kind) {
      case 'drop':
        this.counters.inc(parsed.reason === 'short' ? 'dns_dropped_short' : 'dns_dropped_response');
        return { kind: 'drop', reason: parsed.reason };
      case 'error':
        this.#countRcode(parsed.rcode, 0);
        return { kind: 'response', bytes: headerOnlyResponse(parsed.id, parsed.flags, parsed.rcode) };
      case 'query':
        return this.#answer(parsed.query, query, client);
      default: {
        const never: never = parsed;
        return never;
      }
    }
  }

  #answer(parsed: DnsQuery, source: Uint8Array, client: DnsClient): DnsOutcome {
    let query = parsed;
    // RFC 6891 §6.1.3: we speak EDNS version 0 only.
    if (query.edns && query.edns.version > 0) return this.#simple(query, source, client, Rcode.BADVERS);
    if (query.qclass !== RrClass.IN && query.qclass !== RrClass.ANY) return this.#simple(query, source, client, Rcode.REFUSED);
    // Zone transfers and the obsolete MAILA/MAILB: not a stub resolver's business.
    if (query.qtype >= RrType.IXFR && query.qtype <= RrType.MAILA) return this.#simple(query, source, client, Rcode.NOTIMP);

    const cache = this.#cache;
    let generation = 0;
    let limit = 0;
    let bits = 0;
    if (cache) {
      limit = this.#limit(query, client);
      // Everything besides the question that shapes the bytes (the view's address form, the
      // OPT RR, the echoed RD and CD bits); the DO bit too, though we sign nothing yet.
      bits = (client.view === 'host' ? 1 : 0) | (client.transport === 'tcp' ? 2 : 0) | (query.edns ? 4 : 0) | (query.edns?.dnssecOk ? 8 : 0);
      try {
        generation = this.#records.version?.() ?? 0;
      } catch {
        this.counters.inc('dns_records_errors');
        return this.#simple(query, source, client, Rcode.SERVFAIL);
      }
      const hit = cache.get(source, query.questionEnd, limit, bits, query.flags & ECHOED_FLAGS, client.address, generation);
      if (hit) {
        this.counters.inc('dns_answer_cache_hits');
        return { kind: 'response', bytes: this.#fromCache(hit, query, source) };
      }
      this.counters.inc('dns_answer_cache_misses');
      query = { ...parsed, labels: questionLabels(source) };
    }

    let local: LocalAnswer;
    try {
      local = this.#resolveLocal(query, client);
    } catch {
      // The records broke their promise not to throw: the client gets SERVFAIL, the listener
      // (and the agent's process) live on.
      this.counters.inc('dns_records_errors');
      return this.#simple(query, source, client, Rcode.SERVFAIL);
    }
    let bytes: Uint8Array;
    switch (local.kind) {
      case 'forward':
        return this.#forward(query, source, client);
      case 'nxdomain':
        bytes = this.#simpleBytes(query, source, client, Rcode.NXDOMAIN, Flag.AA);
        break;
      case 'nodata':
        bytes = this.#simpleBytes(query, source, client, Rcode.NOERROR, Flag.AA);
        break;
      case 'a':
      case 'ptr':
      case 'srv':
        bytes = this.#writeAnswer(query, source, client, local);
        break;
      default: {
        const never: never = local;
        return never;
      }
    }
    if (cache) this.#remember(cache, source, limit, bits, client, generation, local, query, bytes);
    return { kind: 'response', bytes };
  }

  /**
   * Keeps a local answer's bytes (a copy: the caller owns `bytes`). Truncated answers are not
   * kept: each one should leave out a freshly chosen subset.
   */
  #remember(cache: AnswerCache, source: Uint8Array, limit: number, bits: number, client: DnsClient, generation: number, local: LocalAnswer, query: DnsQuery, bytes: Uint8Array): void {
    const flags = readU16(bytes, 2);
    if (flags & Flag.TC) return;
    const answers = readU16(bytes, 6);
    // A-only answers are fixed-size RRs straight after the question: reshuffled on every hit,
    // as Swarm shuffles every answer. SRV answers keep their order for the TTL: RFC 2782
    // clients choose among equal priorities by weight at random themselves.
    const shuffleA = local.kind === 'a' && answers > 1 && query.questionEnd + answers * POINTER_A_RR_LEN <= bytes.length ? answers : 0;
    const answer = { bytes: copyBytes(bytes), rcode: rcodeOf(flags), answers, shuffleA, answerOffset: query.questionEnd };
    cache.set(source, query.questionEnd, limit, bits, query.flags & ECHOED_FLAGS, client.address, generation, answer);
  }

  /** A cached answer for this asker: its ID, its question's spelling (0x20 case), counted as a fresh one would be. */
  #fromCache(hit: CachedAnswer, query: DnsQuery, source: Uint8Array): Uint8Array {
    const cached = hit.bytes;
    const out = Buffer.allocUnsafe(cached.length);
    out.set(cached);
    out[0] = query.id >>> 8;
    out[1] = query.id & 0xff;
    for (let i = DNS_HEADER_LEN; i < query.questionEnd; i++) out[i] = source[i]!;
    if (hit.shuffleA > 1) shuffleBlocks(out, hit.answerOffset, POINTER_A_RR_LEN, hit.shuffleA, this.#rng);
    this.#countRcode(hit.rcode, hit.answers);
    this.counters.inc('dns_answered_local');
    return out;
  }

  #resolveLocal(query: DnsQuery, client: DnsClient): LocalAnswer {
    const labels = query.labels;
    for (const domain of this.#searchDomains) {
      if (labels.length <= domain.length || !endsWith(labels, domain)) continue;
      const stripped = this.#lookupName(labels.slice(0, labels.length - domain.length), query.qtype, client);
      if (stripped.kind !== 'nxdomain' && stripped.kind !== 'forward') return stripped;
    }
    return this.#lookupName(labels, query.qtype, client);
  }

  /**
   * Docker's rule for a name ending in a network's name: `web.mynet` is `web` looked up in
   * network `mynet` (libnetwork's Sandbox.ResolveName). Only single-label network names; the
   * records decide which labels are networks, and answer that lookup scoped to it.
   */
  #lookupName(labels: readonly string[], qtype: number, client: DnsClient): LocalAnswer {
    if (labels.length >= 2 && this.#records.network) {
      const network = labels[labels.length - 1]!;
      if (this.#records.network(network, client)) {
        const scoped = this.#lookup(classifyName(labels.slice(0, -1)), qtype, { ...client, network });
        if (scoped.kind !== 'forward') return scoped;
      }
    }
    return this.#lookup(classifyName(labels), qtype, client);
  }

  #lookup(shape: NameShape, qtype: number, client: DnsClient): LocalAnswer {
    const wantsA = qtype === RrType.A || qtype === RrType.ANY;
    switch (shape.kind) {
      case 'service': {
        const service = this.#records.service(shape.service, client);
        if (!service) return this.#forwardSingleLabel || !asksAddress(qtype) || shape.service === 'localhost' ? FORWARD : NXDOMAIN;
        if (!wantsA) return NODATA;
        if (service.endpointMode === 'vip') {
          const vip = service.vip === undefined ? undefined : parseIpv4(service.vip);
          return vip === undefined ? NODATA : { kind: 'a', addresses: [vip], ttl: this.#vipTtl };
        }
        return this.#taskAddresses(this.#records.tasks(service.name, client));
      }
      case 'tasks': {
        const service = this.#records.service(shape.service, client);
        if (!service) return FORWARD;
        return wantsA ? this.#taskAddresses(this.#records.tasks(service.name, client)) : NODATA;
      }
      case 'task': {
        const service = this.#records.service(shape.service, client);
        if (!service) return FORWARD;
        const task = this.#records.tasks(service.name, client).find((t) => t.taskId === shape.taskId && t.slot === shape.slot);
        if (!task) return isTaskShaped(shape.slot, shape.taskId) ? NXDOMAIN : FORWARD;
        const address = parseIpv4(task.address);
        if (!wantsA || !task.healthy || address === undefined) return NODATA;
        return { kind: 'a', addresses: [address], ttl: this.#taskTtl };
      }
      case 'srv': {
        const service = this.#records.service(shape.service, client);
        if (!service) return FORWARD;
        const port = findPort(service, shape.port, shape.protocol);
        if (port === undefined) return NXDOMAIN;
        if (qtype !== RrType.SRV && qtype !== RrType.ANY) return NODATA;
        const targets = [];
        for (const task of shuffled(this.#records.tasks(service.name, client), this.#rng)) {
          const address = task.healthy ? parseIpv4(task.address) : undefined;
          if (address !== undefined && isTaskLabelSafe(task)) targets.push({ name: taskName(task), port, address });
        }
        return targets.length > 0 ? { kind: 'srv', targets, ttl: this.#taskTtl } : NODATA;
      }
      case 'reverse': {
        const owner = this.#records.byAddress(formatIpv4(fromMirror(shape.address)), client);
        if (!owner) return NXDOMAIN;
        if (owner.kind === 'task' && (!owner.task.healthy || !isTaskLabelSafe(owner.task))) return NXDOMAIN;
        if (owner.kind === 'vip' && !isServiceLabel(owner.service.name)) return NXDOMAIN;
        if (qtype !== RrType.PTR && qtype !== RrType.ANY) return NODATA;
        return owner.kind === 'vip'
          ? { kind: 'ptr', target: [owner.service.name], ttl: this.#vipTtl }
          : { kind: 'ptr', target: taskName(owner.task), ttl: this.#taskTtl };
      }
      case 'reverse-zone':
        return NODATA;
      case 'other':
        return FORWARD;
      default: {
        const never: never = shape;
        return never;
      }
    }
  }

  #taskAddresses(tasks: readonly TaskRecord[]): LocalAnswer {
    const addresses: number[] = [];
    for (const task of tasks) {
      if (!task.healthy) continue;
      const address = parseIpv4(task.address);
      if (address !== undefined) addresses.push(address);
    }
    if (addresses.length === 0) return NODATA;
    return { kind: 'a', addresses: shuffled(addresses, this.#rng), ttl: this.#taskTtl };
  }

  /** The largest response this client accepts (RFC 1035 §4.2.1, RFC 6891 §6.2.3–6.2.5). */
  #limit(query: DnsQuery, client: DnsClient): number {
    if (client.transport === 'tcp') return DNS_MAX_MESSAGE;
    return query.edns ? Math.min(query.edns.udpPayloadSize, this.#maxUdp) : DNS_UDP_MIN_PAYLOAD;
  }

  #opt(query: DnsQuery): { size: number } | undefined {
    return query.edns ? { size: this.#maxUdp } : undefined;
  }

  /** A response with the question and no records: errors, NXDOMAIN, NODATA. */
  #simple(query: DnsQuery, source: Uint8Array, client: DnsClient, rcode: RcodeValue, flags = 0): DnsOutcome {
    return { kind: 'response', bytes: this.#simpleBytes(query, source, client, rcode, flags) };
  }

  #simpleBytes(query: DnsQuery, source: Uint8Array, client: DnsClient, rcode: RcodeValue, flags = 0): Uint8Array {
    this.#countRcode(rcode, 0);
    if (rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN) this.counters.inc('dns_answered_local');
    this.#writer.begin(query, source, rcode, flags, this.#limit(query, client), this.#opt(query));
    return this.#writer.finish();
  }

  #writeAnswer(query: DnsQuery, source: Uint8Array, client: DnsClient, answer: LocalAnswer & { kind: 'a' | 'ptr' | 'srv' }): Uint8Array {
    const w = this.#writer;
    w.begin(query, source, Rcode.NOERROR, Flag.AA, this.#limit(query, client), this.#opt(query));
    const form = client.view === 'host' ? toMirror : (a: number): number => a;
    let complete = true;
    switch (answer.kind) {
      case 'a':
        for (const address of answer.addresses) complete = w.addA('answer', undefined, answer.ttl, form(address)) && complete;
        break;
      case 'ptr':
        complete = w.addPtr(undefined, answer.ttl, answer.target);
        break;
      case 'srv': {
        const written = [];
        for (const target of answer.targets) {
          // RFC 2782: priority 0 for all, weight 1 each so clients spread evenly.
          if (w.addSrv(undefined, answer.ttl, 0, 1, target.port, target.name)) written.push(target);
          else complete = false;
        }
        // Additional data (RFC 2782 "Usage rules"): dropping it does not need TC (RFC 2181 §9).
        for (const target of written) if (!w.addA('additional', target.name, answer.ttl, form(target.address))) break;
        break;
      }
      default: {
        const never: never = answer;
        return never;
      }
    }
    if (!complete) {
      w.setFlag(Flag.TC);
      this.counters.inc('dns_responses_truncated');
    }
    this.counters.inc('dns_answered_local');
    this.#countRcode(Rcode.NOERROR, w.answerCount);
    return w.finish();
  }

  #forward(query: DnsQuery, source: Uint8Array, client: DnsClient): DnsOutcome {
    this.counters.inc('dns_forwarded');
    if (!this.#forwarder) return this.#simple(query, source, client, Rcode.SERVFAIL);
    // The caller may reuse `source` once handle() returns: keep what the answer needs.
    const question = copyBytes(source, 0, query.questionEnd);
    // A forwarder that breaks its promise never to throw or reject still gets the client a SERVFAIL.
    const failed = (): Uint8Array => this.#relay(query, question, client, { ok: false, reason: 'closed' });
    let forwarded: Promise<ForwardResult>;
    try {
      forwarded = this.#forwarder.forward(copyBytes(source), query.questionEnd);
    } catch {
      return { kind: 'response', bytes: failed() };
    }
    const response = forwarded.then((result) => this.#relay(query, question, client, result), failed);
    return { kind: 'forwarded', response };
  }

  /** The forwarder's answer, fitted to the client; SERVFAIL when there is none (RFC 1035 §4.1.1). */
  #relay(query: DnsQuery, question: Uint8Array, client: DnsClient, result: ForwardResult): Uint8Array {
    if (!result.ok) return this.#simpleBytes(query, question, client, Rcode.SERVFAIL);
    const response = result.response;
    const flags = readU16(response, 2);
    this.#countRcode(rcodeOf(flags), readU16(response, 6));
    const limit = this.#limit(query, client);
    if (response.length <= limit) return response;
    const fitted = fitResponse(response, query, question, limit, this.#opt(query)?.size);
    if (readU16(fitted, 2) & Flag.TC) this.counters.inc('dns_responses_truncated');
    return fitted;
  }

  #countRcode(rcode: number, answers: number): void {
    switch (rcode) {
      case Rcode.NOERROR:
        this.counters.inc(answers > 0 ? 'dns_responses_noerror' : 'dns_responses_nodata');
        break;
      case Rcode.NXDOMAIN:
        this.counters.inc('dns_responses_nxdomain');
        break;
      case Rcode.SERVFAIL:
        this.counters.inc('dns_responses_servfail');
        break;
      case Rcode.FORMERR:
        this.counters.inc('dns_responses_formerr');
        break;
      case Rcode.NOTIMP:
        this.counters.inc('dns_responses_notimp');
        break;
      case Rcode.REFUSED:
        this.counters.inc('dns_responses_refused');
        break;
      case Rcode.BADVERS:
        this.counters.inc('dns_responses_badvers');
        break;
      default:
        break;
    }
  }
}

/**
 * Whether a query for a single label that names no service is a Swarm lookup (an address for
 * a service: NXDOMAIN here) or something else, such as NS or DS for a top-level domain, which
 * exists in the public DNS and must be forwarded.
 */
function asksAddress(qtype: number): boolean {
  return qtype === RrType.A || qtype === RrType.AAAA || qtype === RrType.ANY;
}

function endsWith(labels: readonly string[], suffix: readonly string[]): boolean {
  const offset = labels.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (labels[offset + i] !== suffix[i]) return false;
  return true;
}

/** Whether a task's name can be written as DNS labels (the agent's IDs should always pass). */
const SAFE_LABEL = /^[a-z0-9_-]{1,63}$/;
function isTaskLabelSafe(task: TaskRecord): boolean {
  return SAFE_LABEL.test(task.service) && SAFE_LABEL.test(task.slot) && SAFE_LABEL.test(task.taskId);
}

/** Swarm's task name `<service>.<slot>.<taskId>`, as labels. */
function taskName(task: TaskRecord): readonly string[] {
  return [task.service, task.slot, task.taskId];
}

/** `_<port>` by number or by Swarm's port name, for the protocol asked. */
function findPort(service: ServiceRecord, label: string, protocol: 'tcp' | 'udp'): number | undefined {
  for (const p of service.ports) {
    if (p.protocol !== protocol) continue;
    if (String(p.port) === label || (p.name !== undefined && p.name.toLowerCase() === label)) return p.port;
  }
  return undefined;
}

/** Fisher–Yates over `count` records of `size` bytes each, in place from `offset`. */
function shuffleBlocks(bytes: Uint8Array, offset: number, size: number, count: number, rng: Rng): void {
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    if (j === i) continue;
    const a = offset + i * size;
    const b = offset + j * size;
    for (let k = 0; k < size; k++) {
      const t = bytes[a + k]!;
      bytes[a + k] = bytes[b + k]!;
      bytes[b + k] = t;
    }
  }
}

/** Fisher–Yates on a copy, with the injected Rng (Swarm shuffles multi-address answers too). */
function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
