/**
 * DNS over UDP on a real socket (RFC 1035 §4.2.1): each datagram is one query, handed with its
 * source to the transport-agnostic handler (resolver.ts); the answer goes back to the source.
 * The agent binds 127.0.0.11:53 where it may, else a configured address and port.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { Counters } from '../lib/counters.js';
import { DnsSocketError } from '../lib/errors.js';
import type { DnsView } from './records.js';
import { parseIpv4, viewOf } from './records.js';
import type { DnsHandler } from './resolver.js';

export interface UdpDnsServerOptions {
  readonly address: string;
  readonly port: number;
  readonly handler: DnsHandler;
  /** The answer form for every client of this listener; default: judged by source address. */
  readonly view?: DnsView;
  /** SO_RCVBUF: bursts (dnsperf, many tasks starting) overflow the default buffer. */
  readonly recvBufferSize?: number;
  /** SO_SNDBUF, for the same bursts in the other direction. */
  readonly sendBufferSize?: number;
}

export const UDP_SERVER_COUNTERS = ['dns_udp_rx', 'dns_udp_tx', 'dns_udp_send_errors', 'dns_udp_late_answers'] as const;
export type UdpServerCounter = (typeof UDP_SERVER_COUNTERS)[number];

export interface DnsListener<K extends string> {
  /** The address and port actually bound (port 0 picks one). */
  readonly address: string;
  readonly port: number;
  readonly counters: Counters<K>;
  /** Stops listening; answers still being forwarded are discarded. */
  close(): Promise<void>;
}

export type UdpDnsServer = DnsListener<UdpServerCounter>;

/** Binds and starts answering. Throws DnsSocketError when the address cannot be bound (EACCES on 53 without privilege, EADDRINUSE). */
export async function startUdpDnsServer(options: UdpDnsServerOptions): Promise<UdpDnsServer> {
  const counters = new Counters<UdpServerCounter>(UDP_SERVER_COUNTERS);
  // Replies go to the datagram's source, always an IPv4 literal: answering node:dgram's lookup at
  // once skips dns.lookup's validation, its nextTick and the async-hooks scope around it, per send.
  const socket = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(new DnsSocketError(`Cannot bind DNS UDP ${options.address}:${options.port}: ${error.message}`, { cause: error }));
    socket.once('error', onError);
    socket.bind({ address: options.address, port: options.port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  if (options.recvBufferSize) socket.setRecvBufferSize(options.recvBufferSize);
  if (options.sendBufferSize) socket.setSendBufferSize(options.sendBufferSize);
  // Without a callback, a failed send() is reported here (node:dgram); a bound socket has no other errors.
  socket.on('error', () => counters.inc('dns_udp_send_errors'));
  let closed = false;

  const reply = (bytes: Uint8Array, port: number, address: string): void => {
    if (closed) {
      counters.inc('dns_udp_late_answers');
      return;
    }
    counters.inc('dns_udp_tx');
    socket.send(bytes, port, address);
  };

  socket.on('message', (msg, rinfo) => {
    counters.inc('dns_udp_rx');
    const outcome = options.handler.handle(msg, { address: rinfo.address, port: rinfo.port, transport: 'udp', view: options.view ?? viewOf(rinfo.address) });
    switch (outcome.kind) {
      case 'response':
        reply(outcome.bytes, rinfo.port, rinfo.address);
        break;
      case 'forwarded':
        void outcome.response.then((bytes) => reply(bytes, rinfo.port, rinfo.address));
        break;
      case 'drop':
        break;
      default: {
        const never: never = outcome;
        return never;
      }
    }
  });

  const bound = socket.address();
  return {
    address: bound.address,
    port: bound.port,
    counters,
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
}

/**
 * node:dgram's `lookup` hook for a socket that only ever sends to the IPv4 literals its
 * datagrams came from: answers synchronously (dns.lookup answers literals on the next tick).
 * Anything else (never expected) goes to dns.lookup.
 */
export function literalLookup(address: string, family: unknown, callback: (error: Error | null, address: string, family: number) => void): void {
  if (parseIpv4(address) !== undefined) callback(null, address, 4);
  else dns.lookup(address, 4, callback);
}
