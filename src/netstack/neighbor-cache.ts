/**
 * The neighbour table (RFC 826's translation table, RFC 1122 §2.3.2.1's cache): overlay IPv4
 * address → MAC. Static entries (configured, or programmed from the endpoint table later) never
 * expire; learned ones expire after `ttlMs` and are then resolved again. Bounded: when full,
 * the oldest learned entry gives way; static entries are never evicted, and adding a static
 * entry beyond the limit throws CapacityError.
 */
import { CapacityError } from '../lib/errors.js';
import type { Ipv4Address, MacAddress } from '../wire/address.js';

interface Entry {
  readonly mac: MacAddress;
  /** Absolute expiry time in clock ms; Infinity for static entries. */
  readonly expiresAt: number;
}

export class NeighborCache {
  readonly #entries = new Map<Ipv4Address, Entry>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#maxEntries = options.maxEntries;
    this.#ttlMs = options.ttlMs;
  }

  /** The MAC for `ip` if known and not expired at `now`. */
  lookup(ip: Ipv4Address, now: number): MacAddress | undefined {
    const entry = this.#entries.get(ip);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(ip);
      return undefined;
    }
    return entry.mac;
  }

  has(ip: Ipv4Address): boolean {
    return this.#entries.has(ip);
  }

  /** Records a learned mapping; a static entry for `ip` is left as it is. */
  learn(ip: Ipv4Address, mac: MacAddress, now: number): void {
    const existing = this.#entries.get(ip);
    if (existing?.expiresAt === Infinity) return;
    if (!existing && this.#entries.size >= this.#maxEntries && !this.#evictOldestLearned()) return;
    this.#entries.delete(ip); // re-insert so Map order stays oldest-first
    this.#entries.set(ip, { mac, expiresAt: now + this.#ttlMs });
  }

  /** Adds a permanent mapping. Throws CapacityError when the table is full of static entries. */
  setStatic(ip: Ipv4Address, mac: MacAddress): void {
    if (!this.#entries.has(ip) && this.#entries.size >= this.#maxEntries && !this.#evictOldestLearned()) {
      throw new CapacityError(`Neighbour table full (${this.#maxEntries} static entries)`);
    }
    this.#entries.delete(ip);
    this.#entries.set(ip, { mac, expiresAt: Infinity });
  }

  delete(ip: Ipv4Address): boolean {
    return this.#entries.delete(ip);
  }

  get size(): number {
    return this.#entries.size;
  }

  #evictOldestLearned(): boolean {
    for (const [ip, entry] of this.#entries) {
      if (entry.expiresAt !== Infinity) {
        this.#entries.delete(ip);
        return true;
      }
    }
    return false;
  }
}
