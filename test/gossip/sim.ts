/**
 * A gossip cluster on the in-memory network with a ManualClock, for simulation tests and the
 * benchmark. Every node gets its own forked Rng, so a run is a function of its seed alone.
 */
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { Memberlist, type MemberlistConfig, type MemberEvent } from '../../src/gossip/memberlist.js';
import { MemoryNetwork, type MemoryNetworkOptions } from '../../src/gossip/memory-transport.js';
import type { GossipAddress } from '../../src/gossip/transport.js';
import type { Keyring } from '../../src/wire/memberlist/crypto.js';

/** Seeds per simulation test: a few locally, more under CI (SHOAL_SIM_SEEDS overrides). */
export const SIM_SEEDS = Number(process.env['SHOAL_SIM_SEEDS'] ?? (process.env['CI'] === 'true' ? 12 : 3));

export interface SimNode {
  readonly name: string;
  readonly address: GossipAddress;
  readonly ml: Memberlist;
  readonly events: MemberEvent[];
  readonly messages: Uint8Array[];
}

export interface SimOptions {
  readonly seed: number;
  readonly config?: Partial<MemberlistConfig>;
  readonly network?: Omit<MemoryNetworkOptions, 'clock' | 'rng'>;
  readonly keyring?: Keyring;
}

export class Sim {
  readonly clock = new ManualClock();
  readonly rng: SeededRng;
  readonly net: MemoryNetwork;
  readonly nodes: SimNode[] = [];
  readonly #options: SimOptions;

  constructor(options: SimOptions) {
    this.#options = options;
    this.rng = new SeededRng(options.seed);
    this.net = new MemoryNetwork({ clock: this.clock, rng: this.rng.fork(), ...options.network });
  }

  static address(i: number): GossipAddress {
    // RFC 2544 benchmarking space (ARCHITECTURE.md: test networks use only these ranges).
    return { host: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 7946 };
  }

  /** Starts node number `i` (named n<i>) without joining anyone. */
  add(i: number, overrides: { keyring?: Keyring; config?: Partial<MemberlistConfig> } = {}): SimNode {
    const address = Sim.address(i);
    const events: MemberEvent[] = [];
    const messages: Uint8Array[] = [];
    const keyring = overrides.keyring ?? this.#options.keyring;
    const ml = Memberlist.create({
      name: `n${i}`,
      transport: this.net.bind(address),
      clock: this.clock,
      rng: this.rng.fork(),
      config: { ...this.#options.config, ...overrides.config },
      ...(keyring && { keyring }),
      delegate: {
        notifyEvent: (e) => events.push(e),
        notifyMsg: (m) => messages.push(m),
      },
    });
    const node = { name: `n${i}`, address, ml, events, messages };
    this.nodes.push(node);
    return node;
  }

  /** Starts `count` nodes n0…; every node but n0 joins n0 (joins run concurrently). */
  async startCluster(count: number): Promise<void> {
    this.add(0);
    const joins: Promise<number>[] = [];
    for (let i = 1; i < count; i++) joins.push(this.add(i).ml.join([Sim.address(0)]));
    await this.run(2000, () => false);
    await Promise.all(joins);
  }

  /**
   * Advances time in `stepMs` steps until `until()` holds or `maxMs` passes; returns the time
   * taken, or undefined when it never held. Yields to the event loop each step so promises settle.
   */
  async run(maxMs: number, until: () => boolean, stepMs = 100): Promise<number | undefined> {
    const start = this.clock.now();
    for (let t = 0; t <= maxMs; t += stepMs) {
      if (until()) return this.clock.now() - start;
      this.clock.advance(stepMs);
      await Promise.resolve();
    }
    return until() ? this.clock.now() - start : undefined;
  }

  live(): SimNode[] {
    return this.nodes.filter((n) => !n.ml.isShutdown);
  }

  /** True when every live node sees exactly the live nodes as alive. */
  converged(): boolean {
    const names = this.live()
      .map((n) => n.name)
      .sort();
    return this.live().every((n) => {
      const seen = n.ml
        .members()
        .filter((m) => m.state === 'alive')
        .map((m) => m.name)
        .sort();
      return seen.length === names.length && seen.every((s, i) => s === names[i]);
    });
  }

  shutdown(): void {
    for (const n of this.nodes) n.ml.shutdown();
  }
}

/** A test timeout for `perSeedMs` of work per seed (loaded CI machines run several times slower). */
export function simTimeout(perSeedMs: number): number {
  return Math.max(60_000, perSeedMs * seeds(0).length * 4);
}

/** Runs `body` for each seed; a failure names the seed so it can be replayed alone. */
export async function forSeeds(seeds: readonly number[], body: (seed: number) => Promise<void>): Promise<void> {
  for (const seed of seeds) {
    try {
      await body(seed);
    } catch (e) {
      if (e instanceof Error) e.message = `[seed ${seed}; replay with SHOAL_SIM_SEED=${seed}] ${e.message}`;
      throw e;
    }
  }
}

/** The seeds to run: SHOAL_SIM_SEED replays one; otherwise SIM_SEEDS seeds derived from `base`. */
export function seeds(base: number): number[] {
  const one = process.env['SHOAL_SIM_SEED'];
  if (one !== undefined) return [Number(one)];
  return Array.from({ length: SIM_SEEDS }, (_, i) => base + i * 7919);
}
