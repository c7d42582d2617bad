/**
 * The embedded DNS's records (src/dns/records.ts `DnsRecords`) over the live endpoint table
 * and the control plane's service routes: the resolver applies Swarm's naming rules, health
 * filtering and the host-side mirror form; this answers only the data questions.
 *
 * - Services come from `setServices` (ServiceRoute: name, endpoint mode, VIP, ports). A service
 *   with rows in the table but no route yet (the gossip brought its tasks before the
 *   dispatcher's routes reached us) answers as `dnsrr`, so `tasks.<service>` and task names
 *   work from the first row; `<service>` then lists the tasks until its VIP is known.
 * - Tasks are the table's rows of that service, read on every query: an answer changes as soon
 *   as a row does (the resolver's TTLs are 1 s for tasks, 5 s for VIPs). Each node's own
 *   `lb-ingress` row is not a task and is never answered.
 * - A task's health is the row's: only `none` and `healthy` are answered (mesh `isRoutable`).
 * - Task names `<service>.<slot>.<taskId>`: the slot is the row's slot, or for a global task
 *   (slot 0) its node's name, as Swarm names global tasks by node. A task ID with characters
 *   a DNS label cannot hold (the catalog's `whoami.1`) is written with `-` in their place
 *   (`whoami-1`).
 * - Reverse lookups use an index by overlay address kept from the table's own change events.
 */
import type { AddressOwner, DnsRecords, ServicePort, ServiceRecord, TaskRecord } from '../dns/records.js';
import type { EndpointRow } from '../mesh/endpoint-codec.js';
import type { EndpointTable } from '../mesh/endpoint-table.js';
import { isRoutable } from '../mesh/router.js';
import type { ServiceRoute } from '../cluster/service-types.js';
import { formatIpv4Address } from '../wire/address.js';
import { LB_SERVICE } from './catalog-mesh.js';

interface RouteEntry {
  readonly route: ServiceRoute;
  /** The name as the table's rows spell it. */
  readonly tableName: string;
  /** Built once per setServices: its `ports` reads the rows live, only when asked (SRV). */
  readonly record: ServiceRecord;
  readonly vip?: string;
}

export class MeshDnsRecords implements DnsRecords {
  readonly #table: EndpointTable;
  readonly #skip: ReadonlySet<string>;
  /** Lowercase service name → route. */
  #routes = new Map<string, RouteEntry>();
  /** VIP (dotted quad) → lowercase service name. */
  #vips = new Map<string, string>();
  /** Overlay address → rows there (by table key); usually one. */
  readonly #byAddress = new Map<number, Map<string, EndpointRow>>();
  readonly #unsubscribe: () => void;
  /** Moves on every row or route change: the embedded DNS's answer cache is valid while it stands. */
  #version = 0;

  constructor(table: EndpointTable, options: { readonly skipServices?: readonly string[] } = {}) {
    this.#table = table;
    this.#skip = new Set(options.skipServices ?? [LB_SERVICE]);
    for (const row of table.endpoints()) this.#index(row);
    this.#unsubscribe = table.subscribe((e) => {
      this.#version++;
      if (e.previous) this.#unindex(e.previous);
      if (e.type === 'removed') this.#unindex(e.row);
      else this.#index(e.row);
    });
  }

  /** The services as the control plane routes them now (replaces the previous set). */
  setServices(routes: readonly ServiceRoute[]): void {
    const next = new Map<string, RouteEntry>();
    const vips = new Map<string, string>();
    for (const route of routes) {
      const name = route.Name.toLowerCase();
      const ports: ServicePort[] = [];
      for (const p of route.Ports) {
        if (p.Protocol !== 'tcp' && p.Protocol !== 'udp') continue;
        if (ports.some((q) => q.protocol === p.Protocol && q.port === p.TargetPort)) continue;
        ports.push({ protocol: p.Protocol, port: p.TargetPort, ...(p.Name !== undefined && p.Name !== '' && { name: p.Name }) });
      }
      // "100.64.0.130", or as the API shows VirtualIPs, "100.64.0.130/24".
      const vip = route.VirtualIP?.split('/')[0];
      const tableName = route.Name;
      const rowsOf = (): EndpointRow[] => this.#rows(tableName);
      const record: ServiceRecord = {
        name,
        endpointMode: route.EndpointMode,
        ...(route.EndpointMode === 'vip' && vip !== undefined && { vip }),
        get ports() {
          return withRowPorts(ports, rowsOf());
        },
      };
      next.set(name, { route, tableName, record, ...(vip && { vip }) });
      if (route.EndpointMode === 'vip' && vip) vips.set(vip, name);
    }
    this.#routes = next;
    this.#vips = vips;
    this.#version++;
  }

  version(): number {
    return this.#version;
  }

  close(): void {
    this.#unsubscribe();
  }

  service(name: string): ServiceRecord | undefined {
    const entry = this.#routes.get(name);
    if (entry) return entry.record;
    if (this.#skip.has(name)) return undefined;
    const rows = this.#rows(name);
    if (rows.length === 0) return undefined;
    return { name, endpointMode: 'dnsrr', ports: withRowPorts([], rows) };
  }

  tasks(service: string): readonly TaskRecord[] {
    if (this.#skip.has(service)) return [];
    return this.#rows(this.#routes.get(service)?.tableName ?? service).map(taskRecord);
  }

  byAddress(overlayAddress: string): AddressOwner | undefined {
    const vipOf = this.#vips.get(overlayAddress);
    if (vipOf !== undefined) {
      const service = this.service(vipOf);
      if (service) return { kind: 'vip', service };
    }
    const parts = overlayAddress.split('.').map(Number);
    if (parts.length !== 4) return undefined;
    const address = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
    const rows = this.#byAddress.get(address);
    if (!rows) return undefined;
    // Prefer a routable row if a moved task left a stale one behind for a moment.
    let chosen: EndpointRow | undefined;
    for (const row of rows.values()) if (!chosen || (!isRoutable(chosen.health) && isRoutable(row.health))) chosen = row;
    return chosen ? { kind: 'task', task: taskRecord(chosen) } : undefined;
  }

  #rows(tableName: string): EndpointRow[] {
    return this.#skip.has(tableName) ? [] : this.#table.endpoints(tableName);
  }

  #index(row: EndpointRow): void {
    if (this.#skip.has(row.service)) return;
    let m = this.#byAddress.get(row.overlayAddress);
    if (!m) this.#byAddress.set(row.overlayAddress, (m = new Map()));
    m.set(`${row.service}/${row.taskId}`, row);
  }

  #unindex(row: EndpointRow): void {
    const m = this.#byAddress.get(row.overlayAddress);
    if (!m) return;
    m.delete(`${row.service}/${row.taskId}`);
    if (m.size === 0) this.#byAddress.delete(row.overlayAddress);
  }
}

/**
 * Task records by row: rows are immutable and replaced on every change, so a record derived
 * from one stays exact for as long as the row is the table's (and is collected with it).
 */
const TASK_RECORDS = new WeakMap<EndpointRow, TaskRecord>();

/** A row as the resolver sees a task. */
export function taskRecord(row: EndpointRow): TaskRecord {
  let record = TASK_RECORDS.get(row);
  if (!record) TASK_RECORDS.set(row, (record = toTaskRecord(row)));
  return record;
}

function toTaskRecord(row: EndpointRow): TaskRecord {
  return {
    service: row.service.toLowerCase(),
    slot: row.slot === 0 ? dnsLabel(row.node) : String(row.slot),
    taskId: dnsLabel(row.taskId),
    address: formatIpv4Address(row.overlayAddress),
    healthy: isRoutable(row.health),
  };
}

/** Lowercase, with every character a DNS label cannot hold (RFC 1035 §2.3.1, plus `_`) as `-`. */
export function dnsLabel(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
}

/** The route's ports plus every target port the rows serve, so SRV works for ports not published. */
function withRowPorts(ports: readonly ServicePort[], rows: readonly EndpointRow[]): ServicePort[] {
  const out = [...ports];
  for (const row of rows) {
    for (const p of row.ports) if (!out.some((q) => q.protocol === p.protocol && q.port === p.target)) out.push({ protocol: p.protocol, port: p.target });
  }
  return out;
}
