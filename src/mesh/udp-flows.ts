/**
 * UDP published ports have no connections, so the ingress keeps a flow per client address
 * (Linux conntrack's view of UDP): the first datagram from a client chooses an endpoint, and
 * every later one from that client goes to the same endpoint, whose answers go back to the
 * client from the published port. Flows expire after `idleTimeoutMs` without traffic
 * (conntrack's `nf_conntrack_udp_timeout`, 30 s) and are bounded: at `maxFlows`, a new client
 * is dropped and counted, existing flows keep working.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';

/** One upstream flow: a connected UDP socket to the chosen endpoint. */
export interface UdpUpstream {
  send(bytes: Uint8Array): void;
  /** Sets the receiver of the endpoint's answers. */
  onMessage(handler: (bytes: Uint8Array) => void): void;
  close(): void;
}

export const UDP_FLOW_COUNTERS = [
  'mesh_udp_rx_datagrams',
  'mesh_udp_tx_datagrams',
  'mesh_udp_flows_total',
  'mesh_udp_flows_expired',
  /** A new client while the flow table was full. */
  'mesh_udp_dropped_flows_full',
  /** A new client with no healthy endpoint (or whose upstream could not be opened). */
  'mesh_udp_dropped_no_upstream',
] as const;

export interface UdpFlowTableOptions {
  readonly clock: Clock;
  readonly maxFlows?: number;
  readonly idleTimeoutMs?: number;
}

export const DEFAULT_MAX_UDP_FLOWS = 4096;
export const DEFAULT_UDP_FLOW_IDLE_MS = 30_000;

interface Flow<T> {
  readonly value: T;
  lastSeen: number;
  readonly onExpire: () => void;
}

/** Flows by client key, expiring on an injected clock. */
export class UdpFlowTable<T> {
  readonly counters = new Counters(UDP_FLOW_COUNTERS);
  readonly maxFlows: number;
  readonly idleTimeoutMs: number;
  readonly #clock: Clock;
  readonly #flows = new Map<string, Flow<T>>();
  #sweep: Timer | undefined;

  constructor(options: UdpFlowTableOptions) {
    this.#clock = options.clock;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_UDP_FLOWS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_UDP_FLOW_IDLE_MS;
  }

  get size(): number {
    return this.#flows.size;
  }

  get full(): boolean {
    return this.#flows.size >= this.maxFlows;
  }

  /** The flow of `key`, marked as used now. */
  get(key: string): T | undefined {
    const f = this.#flows.get(key);
    if (!f) return undefined;
    f.lastSeen = this.#clock.now();
    return f.value;
  }

  /** Adds a flow; false (and counted) when the table is full. `onExpire` runs when it idles out or the table closes. */
  add(key: string, value: T, onExpire: () => void): boolean {
    if (this.#flows.has(key)) return true;
    if (this.full) {
      this.counters.inc('mesh_udp_dropped_flows_full');
      return false;
    }
    this.#flows.set(key, { value, lastSeen: this.#clock.now(), onExpire });
    this.counters.inc('mesh_udp_flows_total');
    this.#arm();
    return true;
  }

  /** Ends one flow now (its upstream failed, say). */
  delete(key: string): void {
    const f = this.#flows.get(key);
    if (!f) return;
    this.#flows.delete(key);
    f.onExpire();
  }

  close(): void {
    this.#sweep?.cancel();
    this.#sweep = undefined;
    for (const key of [...this.#flows.keys()]) this.delete(key);
  }

  #arm(): void {
    if (this.#sweep || this.#flows.size === 0) return;
    // One sweep timer for the table, at the earliest possible expiry.
    let oldest = Infinity;
    for (const f of this.#flows.values()) oldest = Math.min(oldest, f.lastSeen);
    this.#sweep = this.#clock.setTimer(Math.max(0, oldest + this.idleTimeoutMs - this.#clock.now()), () => {
      this.#sweep = undefined;
      const now = this.#clock.now();
      for (const [key, f] of [...this.#flows]) {
        if (now - f.lastSeen >= this.idleTimeoutMs) {
          this.counters.inc('mesh_udp_flows_expired');
          this.delete(key);
        }
      }
      this.#arm();
    });
  }
}
