/**
 * The VTEP's forwarding database: (VNI, inner destination MAC) → the underlay endpoint of the
 * VTEP that owns that MAC, plus per VNI a flood list for broadcast and unknown unicast (BUM)
 * frames, sent by head-end replication as Linux does for its all-zeros FDB entries.
 *
 * Entries are static (configuration now, the gossiped endpoint table later: Swarm programs its
 * FDB from NetworkDB and never floods to learn). Bounded: an add beyond `maxEntries` throws
 * CapacityError rather than evicting a route someone relies on.
 */
import { CapacityError } from '../lib/errors.js';
import { type MacAddress, formatMacAddress } from '../wire/address.js';
import type { UdpEndpoint } from './datagram.js';

export const DEFAULT_MAX_FDB_ENTRIES = 65_536;

export class ForwardingTable {
  readonly #entries = new Map<string, UdpEndpoint>();
  readonly #flood = new Map<number, UdpEndpoint[]>();
  readonly #maxEntries: number;

  constructor(options: { maxEntries?: number } = {}) {
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_FDB_ENTRIES;
  }

  /** Adds or replaces the route for (vni, mac). Throws CapacityError when the table is full. */
  set(vni: number, mac: MacAddress, remote: UdpEndpoint): void {
    const key = fdbKey(vni, mac);
    if (!this.#entries.has(key) && this.#entries.size >= this.#maxEntries) {
      throw new CapacityError(`Forwarding table full (${this.#maxEntries} entries): cannot add ${formatMacAddress(mac)} on VNI ${vni}`);
    }
    this.#entries.set(key, { address: remote.address, port: remote.port });
  }

  delete(vni: number, mac: MacAddress): boolean {
    return this.#entries.delete(fdbKey(vni, mac));
  }

  lookup(vni: number, mac: MacAddress): UdpEndpoint | undefined {
    return this.#entries.get(fdbKey(vni, mac));
  }

  /** Adds a VTEP to the flood list of `vni` (idempotent). */
  addFlood(vni: number, remote: UdpEndpoint): void {
    const list = this.#flood.get(vni) ?? [];
    if (!list.some((r) => r.address === remote.address && r.port === remote.port)) list.push({ address: remote.address, port: remote.port });
    this.#flood.set(vni, list);
  }

  removeFlood(vni: number, remote: UdpEndpoint): void {
    const list = (this.#flood.get(vni) ?? []).filter((r) => r.address !== remote.address || r.port !== remote.port);
    this.#flood.set(vni, list);
  }

  floodList(vni: number): readonly UdpEndpoint[] {
    return this.#flood.get(vni) ?? [];
  }

  get size(): number {
    return this.#entries.size;
  }
}

function fdbKey(vni: number, mac: MacAddress): string {
  return `${vni}/${mac}`;
}
