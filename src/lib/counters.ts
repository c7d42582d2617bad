/**
 * A component's counters (CONVENTIONS.md §10): named monotonic counts such as
 * `vtep_rx_frames` or `vtep_rx_dropped_malformed`, read by the agent's /metrics endpoint and
 * by tests. Names are fixed per component so a snapshot always has the same keys.
 */
export class Counters<K extends string> {
  readonly #values: Record<K, number>;

  constructor(names: readonly K[]) {
    this.#values = Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;
  }

  inc(name: K, by = 1): void {
    this.#values[name] += by;
  }

  get(name: K): number {
    return this.#values[name];
  }

  snapshot(): Readonly<Record<K, number>> {
    return { ...this.#values };
  }
}
