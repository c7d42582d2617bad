/**
 * DNS over TCP on a real socket (RFC 7766): two-byte length framing (§8), several queries in
 * flight per connection and answers sent as they are ready, in any order (§6.2.1.1), an idle
 * timeout (§6.2.3) and a bound on connections (§6.2.2: servers must protect themselves from
 * connection exhaustion). Each message goes to the same transport-agnostic handler as UDP.
 */
import net from 'node:net';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { DnsSocketError } from '../lib/errors.js';
import type { DnsListener } from './node-udp-server.js';
import type { DnsView } from './records.js';
import { viewOf } from './records.js';
import type { DnsHandler } from './resolver.js';
import { LengthPrefixedReader, frameMessage } from './tcp-framing.js';

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

export const TCP_SERVER_COUNTERS = [
  'dns_tcp_connections',
  'dns_tcp_connections_rejected',
  'dns_tcp_idle_timeouts',
  'dns_tcp_rx_messages',
  'dns_tcp_tx_messages',
  'dns_tcp_socket_errors',
] as const;
export type TcpServerCounter = (typeof TCP_SERVER_COUNTERS)[number];

export type TcpDnsServer = DnsListener<TcpServerCounter> & {
  /** Connections open now. */
  readonly connections: number;
};

/** Binds and starts answering. Throws DnsSocketError when the address cannot be bound. */
export async function startTcpDnsServer(options: TcpDnsServerOptions): Promise<TcpDnsServer> {
  const counters = new Counters<TcpServerCounter>(TCP_SERVER_COUNTERS);
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
    serve(socket);
  });

  const serve = (socket: net.Socket): void => {
    const reader = new LengthPrefixedReader();
    const client = {
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      transport: 'tcp' as const,
      view: options.view ?? viewOf(socket.remoteAddress ?? ''),
    };
    let inFlight = 0;
    let waitingDrain = false;
    let idle: Timer | undefined;
    let open = true;
    let serving = false;

    /**
     * The idle clock runs while nothing is in flight and restarts only when an answer goes out,
     * not when bytes arrive: a client trickling a message a byte at a time cannot hold the
     * connection past the timeout.
     */
    const armIdle = (): void => {
      idle?.cancel();
      idle = inFlight === 0 && open ? options.clock.setTimer(idleTimeoutMs, onIdle) : undefined;
    };
    const onIdle = (): void => {
      if (!open || inFlight > 0) return;
      counters.inc('dns_tcp_idle_timeouts');
      socket.end();
    };
    const updateFlow = (): void => {
      if (!open) return;
      if (inFlight >= maxInFlight || waitingDrain) socket.pause();
      else socket.resume();
    };
    const send = (bytes: Uint8Array): void => {
      inFlight--;
      if (open && bytes.length > 0) {
        counters.inc('dns_tcp_tx_messages');
        if (!socket.write(frameMessage(bytes))) waitingDrain = true;
      }
      if (inFlight === 0) armIdle();
      // A late (forwarded) answer frees a slot; an answer given inside the loop below does not recurse.
      if (!serving) serveBuffered();
    };
    /**
     * Hands buffered messages to the resolver while fewer than maxInFlight are unanswered and
     * the socket's write buffer is below its high watermark; reading pauses otherwise.
     */
    const serveBuffered = (): void => {
      serving = true;
      while (open && inFlight < maxInFlight && !waitingDrain) {
        const message = reader.next();
        if (!message) break;
        counters.inc('dns_tcp_rx_messages');
        inFlight++;
        idle?.cancel();
        idle = undefined;
        const outcome = options.handler.handle(message, client);
        switch (outcome.kind) {
          case 'response':
            send(outcome.bytes);
            break;
          case 'forwarded':
            void outcome.response.then(send);
            break;
          case 'drop':
            send(new Uint8Array(0));
            break;
          default: {
            const never: never = outcome;
            return never;
          }
        }
      }
      serving = false;
      updateFlow();
    };

    socket.on('drain', () => {
      waitingDrain = false;
      serveBuffered();
    });
    socket.on('data', (chunk) => {
      reader.append(chunk);
      serveBuffered();
    });
    socket.on('error', () => counters.inc('dns_tcp_socket_errors'));
    socket.on('close', () => {
      open = false;
      idle?.cancel();
      sockets.delete(socket);
    });
    armIdle();
  };

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
