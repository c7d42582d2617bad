/**
 * Shared DNS test material: queries built and responses read with dns-packet (an independent
 * codec, so the server's own is not its own oracle), and a small swarm of records.
 */
import * as dnsPacket from 'dns-packet';
import { MemoryRecords } from '../../src/dns/memory-records.js';
import type { DnsClient } from '../../src/dns/records.js';

export const HOST_CLIENT: DnsClient = { address: '127.0.0.1', port: 40000, transport: 'udp', view: 'host' };
export const OVERLAY_CLIENT: DnsClient = { address: '100.64.1.99', port: 40000, transport: 'udp', view: 'overlay' };
export const TCP_CLIENT: DnsClient = { ...HOST_CLIENT, transport: 'tcp' };

/** Swarm task IDs: 25 lowercase base-36 characters. */
export const WEB1 = 'k5q3n9x2m7c4v8b1z6a0s3d5f';
export const WEB2 = 'p0o9i8u7y6t5r4e3w2q1a2s3d';
export const WEB3 = 'l1k2j3h4g5f6d7s8a9z0x1c2v';
export const DB1 = 'm3n4b5v6c7x8z9a0s1d2f3g4h';
export const DB2 = 'q7w8e9r0t1y2u3i4o5p6a7s8d';

/**
 * web: vip 100.64.1.2, port 80/tcp named http and 53/udp; three tasks, the third unhealthy.
 * db: dnsrr, two healthy tasks. empty: dnsrr without tasks. pending: vip mode, no VIP yet.
 */
export function swarmRecords(): MemoryRecords {
  const r = new MemoryRecords();
  r.setService({ name: 'web', endpointMode: 'vip', vip: '100.64.1.2', ports: [{ protocol: 'tcp', port: 80, name: 'http' }, { protocol: 'udp', port: 53 }] });
  r.setTask({ service: 'web', slot: '1', taskId: WEB1, address: '100.64.1.10', healthy: true });
  r.setTask({ service: 'web', slot: '2', taskId: WEB2, address: '100.64.1.11', healthy: true });
  r.setTask({ service: 'web', slot: '3', taskId: WEB3, address: '100.64.1.12', healthy: false });
  r.setService({ name: 'db', endpointMode: 'dnsrr', ports: [{ protocol: 'tcp', port: 5432 }] });
  r.setTask({ service: 'db', slot: '1', taskId: DB1, address: '100.64.1.20', healthy: true });
  r.setTask({ service: 'db', slot: '2', taskId: DB2, address: '100.64.1.21', healthy: true });
  r.setService({ name: 'empty', endpointMode: 'dnsrr', ports: [] });
  r.setService({ name: 'pending', endpointMode: 'vip', ports: [] });
  return r;
}

export interface QueryOptions {
  readonly id?: number;
  readonly edns?: number;
  readonly ednsVersion?: number;
  readonly rd?: boolean;
  readonly qclass?: dnsPacket.RecordClass;
}

export function query(name: string, type: dnsPacket.RecordType = 'A', options: QueryOptions = {}): Buffer {
  const packet: dnsPacket.Packet = {
    type: 'query',
    id: options.id ?? 0x1234,
    flags: options.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: options.qclass ?? 'IN' }],
  };
  if (options.edns !== undefined) {
    const opt: dnsPacket.OptAnswer = { type: 'OPT', name: '.', udpPayloadSize: options.edns, extendedRcode: 0, ednsVersion: options.ednsVersion ?? 0, flags: 0, flag_do: false, options: [] };
    packet.additionals = [opt];
  }
  return dnsPacket.encode(packet);
}

export interface Decoded extends dnsPacket.DecodedPacket {
  readonly rcode: string;
  readonly opcode: string;
}

export function decode(bytes: Uint8Array): Decoded {
  return dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Decoded;
}

/** The data of every answer of `type`, sorted. */
export function answersOf(response: Decoded, type: dnsPacket.RecordType = 'A'): unknown[] {
  return (response.answers ?? []).filter((a) => a.type === type).map((a) => ('data' in a ? a.data : undefined)).sort();
}

/** A response to `query` with the given answers, as an upstream server would send it. */
export function upstreamAnswer(queryBytes: Uint8Array, answers: dnsPacket.Answer[], options: { flags?: number; rcode?: number } = {}): Buffer {
  const q = decode(queryBytes);
  return dnsPacket.encode({
    type: 'response',
    id: q.id ?? 0,
    flags: (options.flags ?? dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE) | (options.rcode ?? 0),
    questions: q.questions ?? [],
    answers,
  });
}

/** Resource records other than OPT (whose shape has no ttl or data). */
export type Rr = Exclude<dnsPacket.Answer, dnsPacket.OptAnswer>;
export function rrs(list: readonly dnsPacket.Answer[] | undefined): Rr[] {
  return (list ?? []).filter((a): a is Rr => a.type !== 'OPT');
}
