/**
 * Initial sequence numbers per RFC 6528 §3: ISN = M + F(localip, localport, remoteip,
 * remoteport, secretkey), where M is a timer ticking every 4 microseconds and F a keyed hash.
 * F here is HMAC-SHA-256 truncated to 32 bits; the key comes from the injected Rng once per
 * stack, so a simulation with a seeded Rng replays exactly and production keys are unguessable.
 */
import { createHmac } from 'node:crypto';
import type { Rng } from '../../lib/rng.js';
import type { Ipv4Address } from '../../wire/address.js';

export class IsnGenerator {
  readonly #key: Uint8Array;
  readonly #msg = new Uint8Array(12);

  constructor(rng: Rng) {
    // RFC 6528 §3: "secretkey is a secret key ... 128 bits is recommended".
    this.#key = rng.fill(new Uint8Array(16));
  }

  /** The ISN for a connection at `nowMs` (the stack's monotonic time). */
  isn(localAddr: Ipv4Address, localPort: number, remoteAddr: Ipv4Address, remotePort: number, nowMs: number): number {
    const m = this.#msg;
    const view = new DataView(m.buffer);
    view.setUint32(0, localAddr >>> 0);
    view.setUint16(4, localPort);
    view.setUint32(6, remoteAddr >>> 0);
    view.setUint16(10, remotePort);
    const f = createHmac('sha256', this.#key).update(m).digest().readUInt32BE(0);
    // M: 4 µs ticks (RFC 6528 §3, after RFC 793's clock), modulo 2^32.
    const ticks = Math.floor(nowMs * 250) % 0x1_0000_0000;
    return (ticks + f) >>> 0;
  }
}
