/**
 * One DNS-over-TCP connection (RFC 7766) on any byte stream: a kernel socket
 * (node-tcp-server.ts) or the overlay's userspace TCP (the agent's DNS on its overlay
 * address). Two-byte length framing (§8), several queries in flight and answers sent as they
 * are ready, in any order (§6.2.1.1), a bound on queries in flight (reading pauses), and an
 * idle timeout (§6.2.3).
 */
import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import type { DnsView } from './records.js';
import type { DnsHandler } from './resolver.js';
import { LengthPrefixedReader, frameMessage } from './tcp-framing.js';

export const TCP_SERVER_COUNTERS = [
  'dns_tcp_connections',
  'dns_tcp_connections_rejected',
  'dns_tcp_idle_timeouts',
  'dns_tcp_rx_messages',
  'dns_tcp_tx_messages',
  'dns_tcp_socket_errors',
] as const;
export type TcpServerCounter = (typeof TCP_SERVER_COUNTERS)[number];

export function tcpServerCounters(): Counters<TcpServerCounter> {
  return new Counters<TcpServerCounter>(TCP_SERVER_COUNTERS);
}

export interface DnsStreamOptions {
  readonly handler: DnsHandler;
  readonly clock: Clock;
  readonly counters: Counters<TcpServerCounter>;
  /** A connection with nothing in flight is closed after this long. */
  readonly idleTimeoutMs: number;
  /** Queries in flight before reading pauses (pipelining bound). */
  readonly maxInFlight: number;
}

/** Serves DNS queries on `socket` until it closes. The caller counts and bounds connections. */
export function serveDnsStream(socket: Duplex, peer: { readonly address: string; readonly port: number; readonly view: DnsView }, options: DnsStreamOptions): void {
  const { counters } = options;
  const maxInFlight = Math.max(1, options.maxInFlight);
  const reader = new LengthPrefixedReader();
  const client = { address: peer.address, port: peer.port, transport: 'tcp' as const, view: peer.view };
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
    idle = inFlight === 0 && open ? options.clock.setTimer(options.idleTimeoutMs, onIdle) : undefined;
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
  socket.on('data', (chunk: Uint8Array) => {
    reader.append(chunk);
    serveBuffered();
  });
  socket.on('error', () => counters.inc('dns_tcp_socket_errors'));
  socket.on('close', () => {
    open = false;
    idle?.cancel();
  });
  armIdle();
}
