/**
 * An in-memory UDP network for simulations: sockets bound to "address:port" exchange datagrams
 * after `delayMs` of the injected clock. Delivery always goes through the clock, never
 * re-entrantly from send(), as on a real network.
 */
import type { Clock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import type { DatagramSocket, UdpEndpoint } from './datagram.js';

export class MemoryDatagramNetwork {
  readonly #sockets = new Map<string, (bytes: Uint8Array, from: UdpEndpoint) => void>();
  readonly #clock: Clock;
  readonly #delayMs: number;
  /** Datagrams sent to an address nobody is bound to. */
  undeliverable = 0;

  constructor(clock: Clock, options: { delayMs?: number } = {}) {
    this.#clock = clock;
    this.#delayMs = options.delayMs ?? 0;
  }

  /** Binds a socket. Throws InvalidArgumentError when the address is taken. */
  open(local: UdpEndpoint): DatagramSocket {
    const key = `${local.address}:${local.port}`;
    if (this.#sockets.has(key)) throw new InvalidArgumentError(`Address in use: ${key}`);
    let handler: (bytes: Uint8Array, from: UdpEndpoint) => void = () => {};
    this.#sockets.set(key, (bytes, from) => handler(bytes, from));
    return {
      local: () => local,
      send: (bytes, to) => {
        const copy = bytes.slice();
        this.#clock.setTimer(this.#delayMs, () => {
          const deliver = this.#sockets.get(`${to.address}:${to.port}`);
          if (deliver) deliver(copy, local);
          else this.undeliverable++;
        });
      },
      onMessage: (h) => {
        handler = h;
      },
      close: () => {
        this.#sockets.delete(key);
        return Promise.resolve();
      },
    };
  }
}
