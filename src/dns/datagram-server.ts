/**
 * DNS over any datagram socket that is not node:dgram: the overlay's own UDP (src/netstack/udp.ts
 * `UdpLayer.bind`), so that a task or a kernel VXLAN host on the overlay asks
 * `dig @<agent's overlay address> web` and gets overlay-form answers (100.X.Y.Z).
 *
 * Structural, so src/dns needs nothing of the netstack: `bind(port, onDatagram)` returns a
 * socket with `send(bytes, to)` and `close()`, which is UdpLayer's shape. Addresses are
 * unsigned 32-bit IPv4 numbers there.
 */
import { Counters } from '../lib/counters.js';
import type { DnsView } from './records.js';
import { formatIpv4 } from './records.js';
import type { DnsHandler } from './resolver.js';

export interface DatagramPeer {
  readonly address: number;
  readonly port: number;
}

export interface DatagramSocket {
  send(data: Uint8Array, to: DatagramPeer): void;
  close(): void;
}

export interface DatagramBinder {
  /** `data` is valid only during the call. Throws when the port is taken. */
  bind(port: number, onDatagram: (data: Uint8Array, from: DatagramPeer) => void): DatagramSocket;
}

export const DATAGRAM_SERVER_COUNTERS = ['dns_overlay_udp_rx', 'dns_overlay_udp_tx', 'dns_overlay_udp_late_answers'] as const;
export type DatagramServerCounter = (typeof DATAGRAM_SERVER_COUNTERS)[number];

export interface DatagramDnsServer {
  readonly port: number;
  readonly counters: Counters<DatagramServerCounter>;
  close(): void;
}

/** Binds `port` (53) and answers every query there in `view` form (default 'overlay'). Throws what `bind` throws. */
export function serveDnsOverDatagrams(binder: DatagramBinder, handler: DnsHandler, options: { readonly port?: number; readonly view?: DnsView } = {}): DatagramDnsServer {
  const counters = new Counters<DatagramServerCounter>(DATAGRAM_SERVER_COUNTERS);
  const port = options.port ?? 53;
  const view = options.view ?? 'overlay';
  let closed = false;
  const reply = (bytes: Uint8Array, to: DatagramPeer): void => {
    if (closed) {
      counters.inc('dns_overlay_udp_late_answers');
      return;
    }
    counters.inc('dns_overlay_udp_tx');
    socket.send(bytes, to);
  };
  const socket = binder.bind(port, (data, from) => {
    counters.inc('dns_overlay_udp_rx');
    // The peer is copied: `from` may be reused by the stack once we return.
    const to: DatagramPeer = { address: from.address, port: from.port };
    const outcome = handler.handle(data, { address: formatIpv4(to.address), port: to.port, transport: 'udp', view });
    switch (outcome.kind) {
      case 'response':
        reply(outcome.bytes, to);
        break;
      case 'forwarded':
        void outcome.response.then((bytes) => reply(bytes, to));
        break;
      case 'drop':
        break;
      default: {
        const never: never = outcome;
        return never;
      }
    }
  });
  return {
    port,
    counters,
    close: () => {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}
