/**
 * A store transaction over plain maps, for tests of the functions that run inside one
 * (networks, dispatcher status updates). Values are copied in and out like the real store's.
 * Every write moves `index`, as every commit moves a real store's, so it also stands in for a
 * Store that readers (the Dispatcher) watch.
 */
import type { StoreKind, StoreTx } from '../../src/cluster/store.js';

export class FakeTx implements StoreTx {
  index = 1;
  readonly tables = new Map<StoreKind, Map<string, unknown>>();

  get<T>(kind: StoreKind, id: string): T | undefined {
    return structuredClone(this.tables.get(kind)?.get(id)) as T | undefined;
  }

  list<T>(kind: StoreKind): T[] {
    return structuredClone([...(this.tables.get(kind)?.values() ?? [])]) as T[];
  }

  put(kind: StoreKind, id: string, value: unknown): void {
    let table = this.tables.get(kind);
    if (!table) this.tables.set(kind, (table = new Map()));
    table.set(id, structuredClone(value));
    this.index++;
  }

  delete(kind: StoreKind, id: string): void {
    this.tables.get(kind)?.delete(id);
    this.index++;
  }
}
