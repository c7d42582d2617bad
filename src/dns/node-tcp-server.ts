/**
 * DNS over TCP on a real socket (RFC 7766): two-byte length framing (§8), several queries in
 * flight per connection and answers sent as they are ready, in any order (§6.2.1.1), an idle
 * timeout (§6.2.3) and a bound on connections (§6.2.2: servers must protect themselves from
 * connection exhaustion). Each message goes to the same transport-agnostic handler as UDP.
 */
import net from 'node:net';
import type { Clock } from '../lib/clock.js';
import { DnsSocketError } from '../lib/errors.js';
import type { DnsListener } from './node-udp-server.js';
import type { DnsView } from './records.js';
import { viewOf } from './records.js';
import type { DnsHandler } from './resolver.js';
import { type TcpServerCounter, serveDnsStream, tcpServerCounters } from './stream-server.js';

export interface TcpDnsServerOptions {
  readonly address: string;
  readonly port: number;
  readonly handler: DnsHandler;
  readonly clock: Clock;
  readonly view?: DnsView;
  /**
   * A connection with nothing in flight is closed after this long. Default 10 s: RFC 7766
   * §6.2.3 asks for "seconds", and stub resolvers open a connection per retry anyway.
   */
  readonly idleTimeoutMs?: number;
  /** Connections at once; more are closed at accept. Default 128. */
  readonly maxConnections?: number;
  /** Queries in flight per connection before reading pauses (pipelining bound). Default 32. */
  readonly maxInFlight?: number;
}

export { TCP_SERVER_COUNTERS, type TcpServerCounter } from './stream-server.js';

export type TcpDnsServer = DnsListener<TcpServerCounter> & {
  /** Connections open now. */
  readonly connections: number;
};

/** Binds and starts answering. Throws DnsSocketError when the address cannot be bound. */
export async function startTcpDnsServer(options: TcpDnsServerOptions): Promise<TcpDnsServer> {
  const counters = tcpServerCounters();
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  const maxConnections = options.maxConnections ?? 128;
  const maxInFlight = Math.max(1, options.maxInFlight ?? 32);
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ noDelay: true }, (socket) => {
    if (sockets.size >= maxConnections) {
      counters.inc('dns_tcp_connections_rejected');
      socket.destroy();
      return;
    }
    counters.inc('dns_tcp_connections');
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveDnsStream(socket, { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, view: options.view ?? viewOf(socket.remoteAddress ?? '') }, { handler: options.handler, clock: options.clock, counters, idleTimeoutMs, maxInFlight });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(new DnsSocketError(`Cannot bind DNS TCP ${options.address}:${options.port}: ${error.message}`, { cause: error }));
    server.once('error', onError);
    server.listen({ host: options.address, port: options.port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address: bound.address,
    port: bound.port,
    counters,
    get connections() {
      return sockets.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
