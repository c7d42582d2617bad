/**
 * What the embedded DNS answers from: the records interface the agent implements over the
 * mesh's endpoint table, and the address forms it answers in.
 *
 * The resolver asks only data questions here (which service, which tasks, who owns an
 * address); Swarm's naming rules (`tasks.<service>`, `<service>.<slot>.<taskId>`, SRV and
 * reverse names), health filtering and the host-side mirror form live in the resolver, so
 * every implementation gets them the same.
 */

/** Where a query came from, which decides the address form of the answer (ARCHITECTURE.md). */
export type DnsView = 'host' | 'overlay';

export interface DnsClient {
  readonly address: string;
  readonly port: number;
  readonly transport: 'udp' | 'tcp';
  /** 'host': answered with 127.X.Y.Z mirrors; 'overlay': with 100.X.Y.Z overlay addresses. */
  readonly view: DnsView;
  /**
   * Set by the resolver, never by a listener, when the query named a network (`web.mynet`,
   * Docker's rule): the records should answer from that network only.
   */
  readonly network?: string;
}

/** Swarm's endpoint modes: one virtual IP per service, or DNS round robin over the tasks. */
export type EndpointMode = 'vip' | 'dnsrr';

export interface ServicePort {
  readonly protocol: 'tcp' | 'udp';
  /** The port the tasks listen on (Swarm's TargetPort), reached at the VIP or a task address. */
  readonly port: number;
  /** Swarm's optional port name; `_<name>._tcp.<service>` finds it as well as `_<port>._tcp`. */
  readonly name?: string;
}

export interface ServiceRecord {
  /** Lowercase; a single DNS label (swarmkit allows no dots in service names). */
  readonly name: string;
  readonly endpointMode: EndpointMode;
  /** Overlay IPv4 address in 100.64.0.0/10; present in mode 'vip' once allocated. */
  readonly vip?: string;
  readonly ports: readonly ServicePort[];
}

export interface TaskRecord {
  /** Lowercase service name. */
  readonly service: string;
  /** The replica's slot number, or for a global service the node ID (as in Swarm's task names). */
  readonly slot: string;
  /** Lowercase task ID. */
  readonly taskId: string;
  /** Overlay IPv4 address in 100.64.0.0/10. */
  readonly address: string;
  /** Only healthy tasks are ever answered; unhealthy ones are still listed so names exist. */
  readonly healthy: boolean;
}

export type AddressOwner = { readonly kind: 'vip'; readonly service: ServiceRecord } | { readonly kind: 'task'; readonly task: TaskRecord };

/**
 * The agent implements this over the endpoint table. Calls are synchronous and on the query
 * path: they must be cheap (index by name and address) and must not throw. Names arrive
 * lowercased; `client` lets an implementation scope answers to the networks the client is
 * attached to (Swarm resolves only services that share a network with the asker).
 */
export interface DnsRecords {
  /** The service called `name`, or undefined. */
  service(name: string, client: DnsClient): ServiceRecord | undefined;
  /** Every task of the service, healthy or not (the resolver filters). */
  tasks(service: string, client: DnsClient): readonly TaskRecord[];
  /** The VIP or task that owns an overlay address, for reverse lookups. */
  byAddress(overlayAddress: string, client: DnsClient): AddressOwner | undefined;
  /**
   * Optional: whether `name` (one lowercase label) is an overlay network the client may
   * resolve in. When it is, `<name>.<network>` names resolve with `client.network` set.
   */
  network?(name: string, client: DnsClient): boolean;
  /**
   * Optional: a number that changes whenever any answer could change (a service, a task, a
   * task's health, a network), read once per query. With it the resolver's answer cache
   * (answer-cache.ts) is invalidated by the next query after a change; without it, cached
   * answers live only their short TTL, and startEmbeddedDns keeps the cache off by default.
   */
  version?(): number;
}

/**
 * Parses dotted-quad IPv4 (no leading zeros) into an unsigned 32-bit number, or undefined.
 * Hand-written: it runs for every address of every answer.
 */
export function parseIpv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

const OVERLAY_PREFIX = 0x64400000; // 100.64.0.0/10 (RFC 6598)
const MIRROR_PREFIX = 0x7f400000; // 127.64.0.0/10 (loopback on Linux, RFC 1122 §3.2.1.3)
const SLASH_10 = 0xffc00000;

export function isOverlayAddress(address: number): boolean {
  return ((address & SLASH_10) >>> 0) === OVERLAY_PREFIX;
}

export function isMirrorAddress(address: number): boolean {
  return ((address & SLASH_10) >>> 0) === MIRROR_PREFIX;
}

/** 100.X.Y.Z → 127.X.Y.Z; other addresses unchanged (they have no mirror). */
export function toMirror(address: number): number {
  return isOverlayAddress(address) ? ((address & ~SLASH_10) | MIRROR_PREFIX) >>> 0 : address;
}

/** 127.X.Y.Z → 100.X.Y.Z for X in 64–127; other addresses unchanged. */
export function fromMirror(address: number): number {
  return isMirrorAddress(address) ? ((address & ~SLASH_10) | OVERLAY_PREFIX) >>> 0 : address;
}

/** The view a source address implies when the listener does not know better. */
export function viewOf(sourceAddress: string): DnsView {
  const value = parseIpv4(sourceAddress);
  return value !== undefined && isOverlayAddress(value) ? 'overlay' : 'host';
}
