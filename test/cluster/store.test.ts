/**
 * The store's contract (store.ts) for both implementations, and the log store's crash rules
 * (node-log-store.ts): torn or corrupted tails are cut, snapshots and logs replay to the same
 * state, a reopened store carries on from the same index.
 */
import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogStore } from '../../src/cluster/node-log-store.js';
import { MemoryStore, type Store } from '../../src/cluster/store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const node = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ID: id, ...extra });

describe.each([
  ['MemoryStore', async (): Promise<Store> => new MemoryStore()],
  ['LogStore', async (): Promise<Store> => LogStore.open(dir)],
])('%s', (_name, open) => {
  it('commits transactions in order, each at the next index', async () => {
    const store = await open();
    await store.update((tx) => tx.put('node', 'a', node('a', { v: tx.index })));
    await store.update((tx) => tx.put('node', 'b', node('b', { v: tx.index })));
    expect(store.index).toBe(2);
    expect(store.list('node')).toEqual([node('a', { v: 1 }), node('b', { v: 2 })]);
    await store.close();
  });

  it('writes nothing when the transaction throws, and keeps serving', async () => {
    const store = await open();
    await expect(
      store.update((tx) => {
        tx.put('node', 'a', node('a'));
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(store.get('node', 'a')).toBeUndefined();
    expect(store.index).toBe(0);
    await store.update((tx) => tx.put('node', 'b', node('b')));
    expect(store.index).toBe(1);
    await store.close();
  });

  it('lets a transaction read its own writes and deletes', async () => {
    const store = await open();
    await store.update((tx) => tx.put('node', 'a', node('a')));
    const seen = await store.update((tx) => {
      tx.put('node', 'b', node('b'));
      tx.delete('node', 'a');
      return tx.list<{ ID: string }>('node').map((n) => n.ID);
    });
    expect(seen).toEqual(['b']);
    expect(store.list('node')).toEqual([node('b')]);
    await store.close();
  });

  it('runs concurrent read-modify-write transactions one at a time (no lost update)', async () => {
    const store = await open();
    await store.update((tx) => tx.put('node', 'c', node('c', { n: 0 })));
    await Promise.all(
      Array.from({ length: 50 }, () => store.update((tx) => tx.put('node', 'c', node('c', { n: tx.get<{ n: number }>('node', 'c')!.n + 1 })))),
    );
    expect(store.get('node', 'c')).toEqual(node('c', { n: 50 }));
    await store.close();
  });

  it('hands out copies: changing a read value does not change the store', async () => {
    const store = await open();
    await store.update((tx) => tx.put('node', 'a', node('a', { labels: { x: '1' } })));
    const read = store.get<{ labels: Record<string, string> }>('node', 'a')!;
    read.labels['x'] = 'changed';
    expect(store.get('node', 'a')).toEqual(node('a', { labels: { x: '1' } }));
    await store.close();
  });
});

describe('LogStore on disk', () => {
  it('reopens to the same state and index', async () => {
    const a = await LogStore.open(dir);
    for (let i = 0; i < 10; i++) await a.update((tx) => tx.put('node', `n${i % 3}`, node(`n${i % 3}`, { i })));
    await a.update((tx) => tx.delete('node', 'n0'));
    await a.close();
    const b = await LogStore.open(dir);
    expect(b.index).toBe(11);
    expect(b.list('node')).toEqual([node('n1', { i: 7 }), node('n2', { i: 8 })]);
    await b.close();
  });

  it('cuts a torn last record (a crash mid-write) and appends after it', async () => {
    const a = await LogStore.open(dir);
    await a.update((tx) => tx.put('node', 'a', node('a')));
    await a.update((tx) => tx.put('node', 'b', node('b')));
    await a.close();
    const log = path.join(dir, 'store.log');
    const size = (await stat(log)).size;
    await truncate(log, size - 5);
    const b = await LogStore.open(dir);
    expect(b.list('node')).toEqual([node('a')]);
    expect(b.index).toBe(1);
    await b.update((tx) => tx.put('node', 'c', node('c')));
    await b.close();
    const c = await LogStore.open(dir);
    expect(c.list('node')).toEqual([node('a'), node('c')]);
    await c.close();
  });

  it('stops replay at a record whose checksum does not match', async () => {
    const a = await LogStore.open(dir);
    await a.update((tx) => tx.put('node', 'a', node('a')));
    await a.update((tx) => tx.put('node', 'b', node('b', { x: 'yyyy' })));
    await a.close();
    const log = path.join(dir, 'store.log');
    const text = await readFile(log, 'utf8');
    await writeFile(log, text.replace('yyyy', 'zzzz'));
    const b = await LogStore.open(dir);
    expect(b.list('node')).toEqual([node('a')]);
    await b.close();
  });

  it('ignores garbage appended after the last whole record', async () => {
    const a = await LogStore.open(dir);
    await a.update((tx) => tx.put('node', 'a', node('a')));
    await a.close();
    await appendFile(path.join(dir, 'store.log'), '0000');
    const b = await LogStore.open(dir);
    expect(b.list('node')).toEqual([node('a')]);
    await b.close();
  });

  it('compacts into a snapshot and replays snapshot + log to the same state', async () => {
    const a = await LogStore.open(dir, { compactEvery: 4 });
    for (let i = 0; i < 10; i++) await a.update((tx) => tx.put('node', `n${i}`, node(`n${i}`)));
    expect((await stat(path.join(dir, 'store.snapshot'))).size).toBeGreaterThan(0);
    await a.close();
    const b = await LogStore.open(dir);
    expect(b.index).toBe(10);
    expect(b.list('node')).toHaveLength(10);
    await b.close();
  });

  it('skips log records already in the snapshot (a crash between the two renames)', async () => {
    const a = await LogStore.open(dir, { compactEvery: 1000 });
    for (let i = 0; i < 3; i++) await a.update((tx) => tx.put('node', `n${i}`, node(`n${i}`, { v: 1 })));
    await a.close();
    const oldLog = await readFile(path.join(dir, 'store.log'));
    const b = await LogStore.open(dir, { compactEvery: 1 });
    await b.update((tx) => tx.put('node', 'n0', node('n0', { v: 2 }))); // compacts: snapshot at index 4, empty log
    await b.close();
    await writeFile(path.join(dir, 'store.log'), oldLog); // as if the log rename never happened
    const c = await LogStore.open(dir);
    expect(c.index).toBe(4);
    expect(c.get('node', 'n0')).toEqual(node('n0', { v: 2 }));
    await c.close();
  });

  it('clear() empties the store durably', async () => {
    const a = await LogStore.open(dir);
    await a.update((tx) => tx.put('node', 'a', node('a')));
    await a.clear();
    await a.close();
    const b = await LogStore.open(dir);
    expect(b.list('node')).toEqual([]);
    await b.close();
  });

  it('refuses writes after close', async () => {
    const a = await LogStore.open(dir);
    await a.close();
    await expect(a.update((tx) => tx.put('node', 'a', node('a')))).rejects.toThrow('The store is closed');
  });
});
