/**
 * Two TCP stacks joined by an in-memory link with seeded loss, duplication, reordering and
 * delay, all on one ManualClock: a run is a pure function of its seed.
 */
import { ManualClock } from '../../../src/lib/clock.js';
import { SeededRng } from '../../../src/lib/rng.js';
import { TcpDriver } from '../../../src/netstack/tcp/driver.js';
import { TcpStack, type TcpStackOptions } from '../../../src/netstack/tcp/stack.js';
import type { TcpConfig } from '../../../src/netstack/tcp/config.js';

export interface LinkProfile {
  /** Probability each packet is dropped. */
  readonly loss: number;
  /** Probability a delivered packet is delivered twice. */
  readonly duplicate: number;
  /** Probability a packet is held back by up to `reorderMs` extra. */
  readonly reorder: number;
  readonly reorderMs: number;
  /** One-way delay, plus uniform jitter. */
  readonly delayMs: number;
  readonly jitterMs: number;
}

export const PERFECT_LINK: LinkProfile = { loss: 0, duplicate: 0, reorder: 0, reorderMs: 0, delayMs: 1, jitterMs: 0 };

export const A_ADDR = 0x64400001; // 100.64.0.1
export const B_ADDR = 0x64400002; // 100.64.0.2

export interface SimOptions {
  /**
   * Deliver packets in runs, as node:dgram does per event-loop turn: arrivals are rounded up to
   * a multiple of `batchMs`, and each host's driver (batchedReceive) hears endReceiveBatch()
   * half a step after every instant that brought it packets.
   */
  readonly batchMs?: number;
}

export interface SimHost {
  readonly addr: number;
  readonly stack: TcpStack;
  readonly driver: TcpDriver;
}

export interface CapturedSegment {
  readonly at: number;
  readonly src: number;
  readonly dst: number;
  readonly bytes: Uint8Array;
  readonly dropped: boolean;
}

export class SimNet {
  readonly clock = new ManualClock(1_000);
  readonly rng: SeededRng;
  readonly a: SimHost;
  readonly b: SimHost;
  link: LinkProfile;
  packets = 0;
  readonly captured: CapturedSegment[] = [];
  capture = false;

  constructor(seed: number, link: LinkProfile, config: Partial<TcpConfig> = {}, extra: Partial<TcpStackOptions> = {}, sim: SimOptions = {}) {
    this.rng = new SeededRng(seed);
    this.link = link;
    const linkRng = this.rng.fork();
    const batchMs = sim.batchMs;
    const batchEnds = new Map<SimHost, Set<number>>();
    const deliver = (target: SimHost, delay: number, src: number, dst: number, seg: Uint8Array): void => {
      if (batchMs === undefined) {
        this.clock.setTimer(delay, () => target.driver.receive(src, dst, seg));
        return;
      }
      const now = this.clock.now();
      const at = Math.ceil((now + delay) / batchMs) * batchMs;
      this.clock.setTimer(at - now, () => target.driver.receive(src, dst, seg));
      const ends = batchEnds.get(target) ?? new Set<number>();
      batchEnds.set(target, ends);
      if (ends.has(at)) return;
      ends.add(at);
      this.clock.setTimer(at + batchMs / 2 - now, () => {
        ends.delete(at);
        target.driver.endReceiveBatch();
      });
    };
    const make = (addr: number, peer: () => SimHost): SimHost => {
      const stack = new TcpStack({
        rng: this.rng.fork(),
        localAddress: addr,
        config,
        ...extra,
        transmit: (src, dst, len, write) => {
          const headroom = 50;
          const buf = new Uint8Array(headroom + len);
          write(buf, headroom);
          const seg = buf.subarray(headroom);
          this.packets++;
          const l = this.link;
          const dropped = linkRng.float() < l.loss;
          if (this.capture) this.captured.push({ at: this.clock.now(), src, dst, bytes: seg.slice(), dropped });
          if (dropped) return;
          const copies = linkRng.float() < l.duplicate ? 2 : 1;
          for (let i = 0; i < copies; i++) {
            let delay = l.delayMs + linkRng.float() * l.jitterMs;
            if (linkRng.float() < l.reorder) delay += linkRng.float() * l.reorderMs;
            deliver(peer(), delay, src, dst, seg);
          }
        },
      });
      const driver = new TcpDriver(stack, this.clock, { immediate: 'timer', batchedReceive: batchMs !== undefined });
      return { addr, stack, driver };
    };
    const hosts: { b?: SimHost } = {};
    this.a = make(A_ADDR, () => hosts.b!);
    this.b = hosts.b = make(B_ADDR, () => this.a);
  }

  /** Runs clock events until `done()` holds or no timer is left; returns whether done() held. */
  run(done: () => boolean, maxSteps = 5_000_000): boolean {
    for (let i = 0; i < maxSteps; i++) {
      if (done()) return true;
      const t = this.clock.nextDeadline();
      if (t === undefined) return done();
      this.clock.advanceTo(t);
    }
    return done();
  }

  /** Runs until every timer has fired: the end state of a finished simulation. */
  drain(maxSteps = 5_000_000): boolean {
    return this.run(() => this.clock.pendingTimers === 0, maxSteps);
  }
}

/** Deterministic pseudo-random bytes for a transfer. */
export function randomBytes(seed: number, n: number): Uint8Array {
  return new SeededRng(seed).fill(new Uint8Array(n));
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
