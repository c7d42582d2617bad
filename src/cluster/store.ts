/**
 * The managers' desired-state store, behind an interface so that a later issue can put it on
 * etcd. Objects are JSON values filed by kind and ID. Writes are transactions run one at a
 * time: a transaction reads the state as left by every earlier one, and its promise resolves
 * only once its writes are durable (for the log store: written and fdatasync'd), so an
 * acknowledged change survives kill -9. The store index counts committed transactions;
 * objects take it as their Version.Index, as swarmkit objects take the raft index.
 */

export type StoreKind = 'cluster' | 'node' | 'service' | 'task' | 'network';
export const STORE_KINDS: readonly StoreKind[] = ['cluster', 'node', 'service', 'task', 'network'];

export type StoreOp =
  | { readonly op: 'put'; readonly kind: StoreKind; readonly id: string; readonly value: unknown }
  | { readonly op: 'delete'; readonly kind: StoreKind; readonly id: string };

export interface StoreReader {
  get<T>(kind: StoreKind, id: string): T | undefined;
  list<T>(kind: StoreKind): T[];
}

export interface StoreTx extends StoreReader {
  /** The index this transaction commits at, if it writes anything. */
  readonly index: number;
  put(kind: StoreKind, id: string, value: unknown): void;
  delete(kind: StoreKind, id: string): void;
}

export interface Store extends StoreReader {
  /** Index of the last committed transaction (0 for an empty store). */
  readonly index: number;
  /**
   * Runs `fn` after every earlier transaction has committed; commits what it wrote durably and
   * resolves with its result. When `fn` throws, nothing is written and the promise rejects with
   * that error. A transaction that writes nothing does not move the index.
   */
  update<R>(fn: (tx: StoreTx) => R): Promise<R>;
  /** Deletes everything (swarm leave --force on the last manager), durably. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** The in-memory tables every store implementation applies its records to. */
export class StoreTables implements StoreReader {
  index = 0;
  readonly #tables = new Map<StoreKind, Map<string, unknown>>(STORE_KINDS.map((k) => [k, new Map()]));

  get<T>(kind: StoreKind, id: string): T | undefined {
    return this.#tables.get(kind)?.get(id) as T | undefined;
  }

  list<T>(kind: StoreKind): T[] {
    return [...(this.#tables.get(kind)?.values() ?? [])] as T[];
  }

  /** [id, value] of every object of a kind. */
  entries(kind: StoreKind): [string, unknown][] {
    return [...(this.#tables.get(kind)?.entries() ?? [])];
  }

  apply(index: number, ops: readonly StoreOp[]): void {
    for (const op of ops) {
      const table = this.#tables.get(op.kind);
      if (!table) continue;
      if (op.op === 'put') table.set(op.id, op.value);
      else table.delete(op.id);
    }
    this.index = index;
  }

  reset(): void {
    for (const table of this.#tables.values()) table.clear();
  }

  /** Every object, by kind then ID: the body of a snapshot. */
  dump(): Record<string, Record<string, unknown>> {
    const out: Record<string, Record<string, unknown>> = {};
    for (const [kind, table] of this.#tables) out[kind] = Object.fromEntries(table);
    return out;
  }

  load(index: number, dump: Record<string, Record<string, unknown>>): void {
    this.reset();
    for (const kind of STORE_KINDS) {
      for (const [id, value] of Object.entries(dump[kind] ?? {})) this.#tables.get(kind)!.set(id, value);
    }
    this.index = index;
  }
}

/**
 * Builds a transaction over `tables`: reads see the transaction's own writes. Values are
 * deep-copied in and out, so no caller can change stored state behind the store's back.
 */
export function openTx(tables: StoreTables): { tx: StoreTx; ops: StoreOp[] } {
  const ops: StoreOp[] = [];
  const pending = new Map<string, { value: unknown } | null>();
  const key = (kind: StoreKind, id: string): string => `${kind}\u0000${id}`;
  const tx: StoreTx = {
    index: tables.index + 1,
    get<T>(kind: StoreKind, id: string): T | undefined {
      const p = pending.get(key(kind, id));
      if (p === null) return undefined;
      return structuredClone((p ? p.value : tables.get(kind, id)) as T | undefined);
    },
    list<T>(kind: StoreKind): T[] {
      const ids = new Set<string>();
      const out: T[] = [];
      for (const op of ops) if (op.kind === kind) ids.add(op.id);
      // By the key it was put under: networks have `Id`, not `ID`.
      for (const [id, v] of tables.entries(kind)) if (!ids.has(id)) out.push(structuredClone(v) as T);
      for (const id of ids) {
        const v = tx.get<T>(kind, id);
        if (v !== undefined) out.push(v);
      }
      return out;
    },
    put(kind: StoreKind, id: string, value: unknown): void {
      const copy = structuredClone(value);
      pending.set(key(kind, id), { value: copy });
      ops.push({ op: 'put', kind, id, value: copy });
    },
    delete(kind: StoreKind, id: string): void {
      pending.set(key(kind, id), null);
      ops.push({ op: 'delete', kind, id });
    },
  };
  return { tx, ops };
}

/** A store that forgets everything when the process ends: for tests and simulations. */
export class MemoryStore implements Store {
  readonly #tables = new StoreTables();
  #tail: Promise<unknown> = Promise.resolve();

  get index(): number {
    return this.#tables.index;
  }

  get<T>(kind: StoreKind, id: string): T | undefined {
    return structuredClone(this.#tables.get<T>(kind, id));
  }

  list<T>(kind: StoreKind): T[] {
    return structuredClone(this.#tables.list<T>(kind));
  }

  update<R>(fn: (tx: StoreTx) => R): Promise<R> {
    const run = this.#tail.then(() => {
      const { tx, ops } = openTx(this.#tables);
      const result = fn(tx);
      if (ops.length > 0) this.#tables.apply(tx.index, ops);
      return result;
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  clear(): Promise<void> {
    const run = this.#tail.then(() => this.#tables.reset());
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.#tail;
  }
}
