/**
 * The endpoint table's rows and their wire encoding, for gossip broadcasts and push/pull.
 *
 * A row says where one task of one service lives (Swarm's NetworkDB `endpoint_table` and
 * `overlay_peer_table` folded into one): the owning node, the task's overlay address and the
 * VTEP that reaches it (so the forwarding table needs no ARP flooding), the host address and
 * ports the owner relays to, and the task's health.
 *
 * ## Encoding (version 1), big-endian
 * ```
 * message  = magic(0x6d) version(1) kind payload
 * kind 1   = ROWS:  count:u8 row*count                       (a broadcast: usually one row)
 * kind 2   = STATE: ltime:u64 count:u32 row*count            (push/pull: the whole table)
 * row      = flags:u8 (bit 0 = deleted) version:u64
 *            service:str taskId:str node:str slot:u32
 *            overlay:u32 vni:u32 vtepAddr:u32 vtepPort:u16 hostAddr:u32 health:u8
 *            nports:u8 (protocol:u8 target:u16 hostPort:u16)*nports
 * str      = len:u8 utf8[len]   (1..MAX_NAME_BYTES bytes)
 * u64      = hi:u32 lo:u32, hi ≤ 0x1fffff (a Lamport time stays a safe JS integer)
 * ```
 * The first byte keeps our messages apart from serf's (its message types are 0–9), should a
 * serf agent share the gossip: it logs an unknown type and moves on, and so do we.
 *
 * Bounds: names ≤ 128 bytes and ≤ 16 ports make a row ≤ 500 bytes, so a one-row broadcast
 * always fits a memberlist UDP packet (1400 bytes) with room to piggyback others.
 *
 * Decoders never throw on bytes: every refusal is a `Result` with a reason the table counts.
 */
import { type Result, err, ok } from '../lib/result.js';
import type { Ipv4Address } from '../wire/address.js';

export const MESH_MESSAGE_MAGIC = 0x6d;
export const MESH_CODEC_VERSION = 1;
export const MAX_NAME_BYTES = 128;
export const MAX_PORTS_PER_ROW = 16;
/** Rows one ROWS message carries at most (a u8 count). */
export const MAX_ROWS_PER_BROADCAST = 255;
const MAX_SAFE_HI = 0x1f_ffff;

/**
 * Docker's health states plus `none` for a task without a health check. `none` and `healthy`
 * take traffic; `starting` (first check not passed yet) and `unhealthy` do not, as Swarm keeps
 * a task with a health check out of the load balancer until it is healthy.
 */
export type Health = 'none' | 'starting' | 'healthy' | 'unhealthy';
const HEALTH_VALUES: readonly Health[] = ['none', 'starting', 'healthy', 'unhealthy'];

export type PortProtocol = 'tcp' | 'udp';
const PROTOCOL_VALUES: readonly PortProtocol[] = ['tcp', 'udp'];

export interface EndpointPort {
  readonly protocol: PortProtocol;
  /** The port the service publishes for this task (the container's port, in Swarm). */
  readonly target: number;
  /** Where the task really listens on its node's host address (the owner relays there). */
  readonly hostPort: number;
}

/** One endpoint: a task of a service, on the node that owns the row. */
export interface EndpointRow {
  readonly service: string;
  readonly taskId: string;
  /** Swarm's slot: the task's position in a replicated service (1-based; 0 for global). */
  readonly slot: number;
  /** The owning node's gossip name. */
  readonly node: string;
  readonly overlayAddress: Ipv4Address;
  readonly vni: number;
  /** The owning node's VTEP (underlay address and data path port). */
  readonly vtepAddress: Ipv4Address;
  readonly vtepPort: number;
  /** The task's address on its own node (usually 127.0.0.1). */
  readonly hostAddress: Ipv4Address;
  readonly ports: readonly EndpointPort[];
  readonly health: Health;
}

/** A row as the table stores and replicates it: the owner's Lamport version and whether it is a tombstone. */
export interface VersionedRow {
  readonly row: EndpointRow;
  readonly version: number;
  readonly deleted: boolean;
}

/** Message kinds: protocol, append-only. */
export const MessageKind = {
  Rows: 1,
  State: 2,
} as const;

export type DecodeError =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-version'
  | 'unknown-kind'
  | 'bad-flags'
  | 'bad-version-number'
  | 'bad-name'
  | 'bad-health'
  | 'bad-protocol'
  | 'bad-port'
  | 'too-many-ports'
  | 'too-many-rows'
  | 'trailing-bytes';

export const DECODE_ERRORS: readonly DecodeError[] = [
  'truncated',
  'bad-magic',
  'unsupported-version',
  'unknown-kind',
  'bad-flags',
  'bad-version-number',
  'bad-name',
  'bad-health',
  'bad-protocol',
  'bad-port',
  'too-many-ports',
  'too-many-rows',
  'trailing-bytes',
];

export type DecodedMessage =
  | { readonly kind: 'rows'; readonly rows: readonly VersionedRow[] }
  | { readonly kind: 'state'; readonly ltime: number; readonly rows: readonly VersionedRow[] };

const ROW_FIXED_LEN = 1 + 8 + 3 + 4 + 4 + 4 + 4 + 2 + 4 + 1 + 1;
const PORT_LEN = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Why a row cannot be encoded, or undefined when it can. The table checks this before accepting a local row. */
export function validateRow(row: EndpointRow): string | undefined {
  for (const [field, value] of [
    ['service', row.service],
    ['taskId', row.taskId],
    ['node', row.node],
  ] as const) {
    const len = encoder.encode(value).length;
    if (len === 0 || len > MAX_NAME_BYTES) return `${field} must be 1 to ${MAX_NAME_BYTES} bytes, got ${len}`;
  }
  if (!isU32(row.slot)) return `slot must be a 32-bit unsigned integer, got ${row.slot}`;
  for (const [field, value] of [
    ['overlayAddress', row.overlayAddress],
    ['vni', row.vni],
    ['vtepAddress', row.vtepAddress],
    ['hostAddress', row.hostAddress],
  ] as const) {
    if (!isU32(value)) return `${field} must be a 32-bit unsigned integer, got ${value}`;
  }
  if (!isPort(row.vtepPort, true)) return `vtepPort must be 0 to 65535, got ${row.vtepPort}`;
  if (!HEALTH_VALUES.includes(row.health)) return `health must be one of ${HEALTH_VALUES.join(', ')}`;
  if (row.ports.length > MAX_PORTS_PER_ROW) return `a row has at most ${MAX_PORTS_PER_ROW} ports, got ${row.ports.length}`;
  for (const p of row.ports) {
    if (!PROTOCOL_VALUES.includes(p.protocol)) return `port protocol must be tcp or udp, got ${String(p.protocol)}`;
    if (!isPort(p.target, false) || !isPort(p.hostPort, false)) return `ports must be 1 to 65535, got ${p.target}:${p.hostPort}`;
  }
  return undefined;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}

function isPort(n: number, zeroOk: boolean): boolean {
  return Number.isInteger(n) && n >= (zeroOk ? 0 : 1) && n <= 0xffff;
}

function rowLength(v: VersionedRow): number {
  const r = v.row;
  return ROW_FIXED_LEN + encoder.encode(r.service).length + encoder.encode(r.taskId).length + encoder.encode(r.node).length + PORT_LEN * r.ports.length;
}

/** Encodes a broadcast of `rows` (1 to 255, each passing validateRow). Throws RangeError otherwise: the table only passes valid rows. */
export function encodeRows(rows: readonly VersionedRow[]): Uint8Array {
  if (rows.length === 0 || rows.length > MAX_ROWS_PER_BROADCAST) throw new RangeError(`A ROWS message carries 1 to ${MAX_ROWS_PER_BROADCAST} rows`);
  const len = 4 + rows.reduce((a, r) => a + rowLength(r), 0);
  const buf = new Uint8Array(len);
  const view = new DataView(buf.buffer);
  buf[0] = MESH_MESSAGE_MAGIC;
  buf[1] = MESH_CODEC_VERSION;
  buf[2] = MessageKind.Rows;
  buf[3] = rows.length;
  let at = 4;
  for (const r of rows) at = writeRow(buf, view, at, r);
  return buf;
}

/** Encodes the whole table for a push/pull, with the sender's Lamport time. Throws RangeError for an invalid row. */
export function encodeState(ltime: number, rows: readonly VersionedRow[]): Uint8Array {
  const len = 3 + 8 + 4 + rows.reduce((a, r) => a + rowLength(r), 0);
  const buf = new Uint8Array(len);
  const view = new DataView(buf.buffer);
  buf[0] = MESH_MESSAGE_MAGIC;
  buf[1] = MESH_CODEC_VERSION;
  buf[2] = MessageKind.State;
  writeU64(view, 3, ltime);
  view.setUint32(11, rows.length);
  let at = 15;
  for (const r of rows) at = writeRow(buf, view, at, r);
  return buf;
}

function writeU64(view: DataView, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Not a Lamport time: ${n}`);
  view.setUint32(at, Math.floor(n / 0x1_0000_0000));
  view.setUint32(at + 4, n >>> 0);
}

function writeRow(buf: Uint8Array, view: DataView, start: number, v: VersionedRow): number {
  const problem = validateRow(v.row);
  if (problem) throw new RangeError(`Cannot encode row: ${problem}`);
  const r = v.row;
  let at = start;
  buf[at++] = v.deleted ? 1 : 0;
  writeU64(view, at, v.version);
  at += 8;
  for (const s of [r.service, r.taskId, r.node]) {
    const bytes = encoder.encode(s);
    buf[at++] = bytes.length;
    buf.set(bytes, at);
    at += bytes.length;
  }
  view.setUint32(at, r.slot);
  view.setUint32(at + 4, r.overlayAddress);
  view.setUint32(at + 8, r.vni);
  view.setUint32(at + 12, r.vtepAddress);
  view.setUint16(at + 16, r.vtepPort);
  view.setUint32(at + 18, r.hostAddress);
  buf[at + 22] = HEALTH_VALUES.indexOf(r.health);
  buf[at + 23] = r.ports.length;
  at += 24;
  for (const p of r.ports) {
    buf[at] = PROTOCOL_VALUES.indexOf(p.protocol);
    view.setUint16(at + 1, p.target);
    view.setUint16(at + 3, p.hostPort);
    at += PORT_LEN;
  }
  return at;
}

/**
 * Decodes a mesh message. Never throws. `maxRows` bounds a STATE message (the table's own
 * size limit): a larger one is refused whole rather than half-applied.
 */
export function decodeMessage(bytes: Uint8Array, maxRows: number): Result<DecodedMessage, DecodeError> {
  if (bytes.length === 0) return err('truncated');
  if (bytes[0] !== MESH_MESSAGE_MAGIC) return err('bad-magic');
  if (bytes.length < 3) return err('truncated');
  if (bytes[1] !== MESH_CODEC_VERSION) return err('unsupported-version');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = bytes[2];
  let at: number;
  let count: number;
  let ltime = 0;
  if (kind === MessageKind.Rows) {
    if (bytes.length < 4) return err('truncated');
    count = bytes[3]!;
    at = 4;
  } else if (kind === MessageKind.State) {
    if (bytes.length < 15) return err('truncated');
    const t = readU64(view, 3);
    if (t === undefined) return err('bad-version-number');
    ltime = t;
    count = view.getUint32(11);
    at = 15;
  } else {
    return err('unknown-kind');
  }
  if (count > maxRows) return err('too-many-rows');
  // Every row takes at least ROW_FIXED_LEN + 3 bytes: refuse a count the bytes cannot hold before allocating for it.
  if (count * (ROW_FIXED_LEN + 3) > bytes.length - at) return err('truncated');
  const rows: VersionedRow[] = [];
  for (let i = 0; i < count; i++) {
    const r = readRow(bytes, view, at);
    if (!r.ok) return r;
    rows.push(r.value.row);
    at = r.value.next;
  }
  if (at !== bytes.length) return err('trailing-bytes');
  return ok(kind === MessageKind.Rows ? { kind: 'rows', rows } : { kind: 'state', ltime, rows });
}

function readU64(view: DataView, at: number): number | undefined {
  const hi = view.getUint32(at);
  if (hi > MAX_SAFE_HI) return undefined;
  return hi * 0x1_0000_0000 + view.getUint32(at + 4);
}

function readRow(bytes: Uint8Array, view: DataView, start: number): Result<{ row: VersionedRow; next: number }, DecodeError> {
  let at = start;
  if (bytes.length - at < 9) return err('truncated');
  const flags = bytes[at++]!;
  if (flags > 1) return err('bad-flags');
  const version = readU64(view, at);
  if (version === undefined) return err('bad-version-number');
  at += 8;
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    if (bytes.length - at < 1) return err('truncated');
    const len = bytes[at++]!;
    if (len === 0 || len > MAX_NAME_BYTES) return err('bad-name');
    if (bytes.length - at < len) return err('truncated');
    let s: string;
    try {
      s = decoder.decode(bytes.subarray(at, at + len));
    } catch {
      return err('bad-name');
    }
    names.push(s);
    at += len;
  }
  if (bytes.length - at < 24) return err('truncated');
  const slot = view.getUint32(at);
  const overlayAddress = view.getUint32(at + 4);
  const vni = view.getUint32(at + 8);
  const vtepAddress = view.getUint32(at + 12);
  const vtepPort = view.getUint16(at + 16);
  const hostAddress = view.getUint32(at + 18);
  const health = HEALTH_VALUES[bytes[at + 22]!];
  if (health === undefined) return err('bad-health');
  const nports = bytes[at + 23]!;
  if (nports > MAX_PORTS_PER_ROW) return err('too-many-ports');
  at += 24;
  if (bytes.length - at < nports * PORT_LEN) return err('truncated');
  const ports: EndpointPort[] = [];
  for (let i = 0; i < nports; i++) {
    const protocol = PROTOCOL_VALUES[bytes[at]!];
    if (protocol === undefined) return err('bad-protocol');
    const target = view.getUint16(at + 1);
    const hostPort = view.getUint16(at + 3);
    if (target === 0 || hostPort === 0) return err('bad-port');
    ports.push({ protocol, target, hostPort });
    at += PORT_LEN;
  }
  const row: EndpointRow = {
    service: names[0]!,
    taskId: names[1]!,
    slot,
    node: names[2]!,
    overlayAddress,
    vni,
    vtepAddress,
    vtepPort,
    hostAddress,
    ports,
    health,
  };
  return ok({ row: { row, version: version, deleted: flags === 1 }, next: at });
}

/** The table key of a row: service and task id (a task id is unique only within its service in shoal's catalog). */
export function rowKey(service: string, taskId: string): string {
  return `${service}\u0000${taskId}`;
}

/**
 * Last-writer-wins with a deterministic tie-break, so every replica keeps the same row whatever
 * order news arrives in. Higher Lamport version wins; at equal versions a tombstone beats a
 * live row (a delete is never undone by a stale copy), then the larger encoding wins. Returns
 * true when `incoming` should replace `current`.
 */
export function supersedes(incoming: VersionedRow, current: VersionedRow): boolean {
  if (incoming.version !== current.version) return incoming.version > current.version;
  if (incoming.deleted !== current.deleted) return incoming.deleted;
  return compareBytes(encodeRows([incoming]), encodeRows([current])) > 0;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** True when both rows say the same thing (ports in the same order). */
export function rowsEqual(a: EndpointRow, b: EndpointRow): boolean {
  return (
    a.service === b.service &&
    a.taskId === b.taskId &&
    a.slot === b.slot &&
    a.node === b.node &&
    a.overlayAddress === b.overlayAddress &&
    a.vni === b.vni &&
    a.vtepAddress === b.vtepAddress &&
    a.vtepPort === b.vtepPort &&
    a.hostAddress === b.hostAddress &&
    a.health === b.health &&
    a.ports.length === b.ports.length &&
    a.ports.every((p, i) => p.protocol === b.ports[i]!.protocol && p.target === b.ports[i]!.target && p.hostPort === b.ports[i]!.hostPort)
  );
}
