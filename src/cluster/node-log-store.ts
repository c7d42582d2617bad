/**
 * The embedded manager's durable store: an append-only log of transactions plus a snapshot,
 * in one directory. Chosen over SQLite because the state is small (a cluster object, nodes,
 * later services and tasks), because a native module is one more thing that must build on
 * every fresh machine, and because the crash rule is easy to state and test for a log:
 *
 * - Every committed transaction is one line, `<crc32 hex> <json {"i":index,"ops":[…]}>\n`,
 *   written and fdatasync'd before the transaction's promise resolves. A change the API has
 *   acknowledged is therefore on disk.
 * - On open, lines are replayed in order until the first that is torn or fails its CRC (a
 *   crash mid-write); the file is truncated there. Nothing after a bad line was acknowledged,
 *   because writes are sequential and each waits for the previous one's fdatasync.
 * - Every `compactEvery` records the tables are written to `snapshot.tmp`, fsync'd, renamed
 *   over `snapshot` and the directory fsync'd; then a fresh log replaces the old one the same
 *   way. Records whose index is at or below the snapshot's are skipped on replay, so a crash
 *   between the two renames loses nothing.
 */
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { StoreError } from '../lib/errors.js';
import { type Store, type StoreKind, type StoreOp, type StoreTx, StoreTables, openTx } from './store.js';

const LOG = 'store.log';
const SNAPSHOT = 'store.snapshot';
const DEFAULT_COMPACT_EVERY = 5000;

interface LogRecord {
  readonly i: number;
  readonly ops?: readonly StoreOp[];
  readonly snapshot?: Record<string, Record<string, unknown>>;
}

export interface LogStoreOptions {
  /** Records between compactions. */
  readonly compactEvery?: number;
}

export class LogStore implements Store {
  readonly dir: string;
  readonly #tables = new StoreTables();
  readonly #compactEvery: number;
  #log: fs.FileHandle;
  #records: number;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Set when a write failed: the on-disk state is unknown, so refuse further writes. */
  #broken: unknown;

  private constructor(dir: string, log: fs.FileHandle, records: number, compactEvery: number) {
    this.dir = dir;
    this.#log = log;
    this.#records = records;
    this.#compactEvery = compactEvery;
  }

  /** Opens (creating if needed) the store in `dir` and replays it. Throws StoreError on I/O failure. */
  static async open(dir: string, options: LogStoreOptions = {}): Promise<LogStore> {
    try {
      await fs.mkdir(dir, { recursive: true });
      const tables = new StoreTables();
      const snapshot = await readRecords(path.join(dir, SNAPSHOT));
      const snap = snapshot.records[0];
      if (snap?.snapshot) tables.load(snap.i, snap.snapshot);
      const logPath = path.join(dir, LOG);
      const log = await readRecords(logPath);
      for (const record of log.records) {
        if (record.i <= tables.index || !record.ops) continue;
        tables.apply(record.i, record.ops);
      }
      const handle = await fs.open(logPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND);
      // A torn tail from a crash mid-write: cut it so new records follow a whole line.
      if (log.goodBytes < log.totalBytes) {
        await handle.truncate(log.goodBytes);
        await handle.datasync();
      }
      const store = new LogStore(dir, handle, log.records.length, options.compactEvery ?? DEFAULT_COMPACT_EVERY);
      store.#tables.load(tables.index, tables.dump());
      return store;
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError(`Cannot open the store in ${dir}: ${(error as Error).message}`, { cause: error });
    }
  }

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
    return this.#serialise(async () => {
      const { tx, ops } = openTx(this.#tables);
      const result = fn(tx);
      if (ops.length === 0) return result;
      await this.#append({ i: tx.index, ops });
      this.#tables.apply(tx.index, ops);
      if (this.#records >= this.#compactEvery) await this.#compact();
      return result;
    });
  }

  clear(): Promise<void> {
    return this.#serialise(async () => {
      this.#tables.reset();
      await this.#compact();
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    await this.#log.close();
  }

  #serialise<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.#tail.then(() => {
      if (this.#closed) throw new StoreError('The store is closed');
      if (this.#broken !== undefined) throw new StoreError('The store failed an earlier write and refuses new ones', { cause: this.#broken });
      return fn();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #append(record: LogRecord): Promise<void> {
    try {
      await this.#log.write(encodeRecord(record));
      await this.#log.datasync();
      this.#records++;
    } catch (error) {
      this.#broken = error;
      throw new StoreError(`Cannot write the store log: ${(error as Error).message}`, { cause: error });
    }
  }

  async #compact(): Promise<void> {
    try {
      await writeFileDurably(path.join(this.dir, SNAPSHOT), encodeRecord({ i: this.#tables.index, snapshot: this.#tables.dump() }));
      await this.#log.close();
      await writeFileDurably(path.join(this.dir, LOG), Buffer.alloc(0));
      this.#log = await fs.open(path.join(this.dir, LOG), constants.O_WRONLY | constants.O_APPEND);
      this.#records = 0;
    } catch (error) {
      this.#broken = error;
      throw new StoreError(`Cannot compact the store: ${(error as Error).message}`, { cause: error });
    }
  }
}

function encodeRecord(record: LogRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record), 'utf8');
  const sum = crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${sum} `, 'ascii'), json, Buffer.from('\n', 'ascii')]);
}

/** Every whole, intact record of a file, and how many bytes they span; a missing file is empty. */
async function readRecords(file: string): Promise<{ records: LogRecord[]; goodBytes: number; totalBytes: number }> {
  let data: Buffer;
  try {
    data = await fs.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], goodBytes: 0, totalBytes: 0 };
    throw error;
  }
  const records: LogRecord[] = [];
  let offset = 0;
  for (;;) {
    const end = data.indexOf(0x0a, offset);
    if (end < 0) break;
    const record = decodeRecord(data.subarray(offset, end));
    if (!record) break;
    records.push(record);
    offset = end + 1;
  }
  return { records, goodBytes: offset, totalBytes: data.length };
}

function decodeRecord(line: Buffer): LogRecord | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const json = line.subarray(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('ascii')) return undefined;
  try {
    const value = JSON.parse(json.toString('utf8')) as LogRecord;
    return typeof value?.i === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `file` so that after a crash it holds either its old content or all of `data`. */
async function writeFileDurably(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.write(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
