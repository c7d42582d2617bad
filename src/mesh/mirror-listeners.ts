/**
 * East–west without root (ARCHITECTURE.md, "East–west"): which host-side mirror listeners
 * should exist, as a pure function of the services' VIPs and the endpoint table's rows.
 *
 * A host process cannot route to the overlay (100.64.0.0/10), so the agent listens on the
 * mirror 127.X.Y.Z of every overlay address 100.X.Y.Z it can carry a connection to:
 * - a service's VIP, on each of its TCP target ports: the connection is load-balanced over the
 *   service's healthy tasks by the router, as an ingress connection is;
 * - a task's overlay address, on each of its TCP target ports: the connection goes to that task
 *   only (kernel TCP when it is local, the overlay when it is not).
 *
 * 127.64.0.0/10 is loopback on Linux (RFC 1122 §3.2.1.3: all of 127/8), so binding there
 * needs neither root nor setup. The number of listeners is bounded: VIPs come first (they are
 * what DNS answers `<service>` with), then tasks; what does not fit is left out and counted.
 */
import type { Ipv4Address } from '../wire/address.js';
import type { EndpointRow } from './endpoint-codec.js';

/** A service in endpoint mode `vip`, as the mesh needs it: the control plane's ServiceRoute, reduced. */
export interface VipService {
  /** The service name, as the endpoint table's rows spell it. */
  readonly name: string;
  /** Its virtual IP, an overlay address in 100.64.0.0/10. */
  readonly vip: Ipv4Address;
  /** TCP target ports the service declares; the target ports its tasks' rows serve are added. */
  readonly tcpPorts: readonly number[];
}

export type MirrorTarget =
  /** Balanced over the service's healthy tasks. */
  | { readonly kind: 'vip'; readonly service: string; readonly target: number }
  /** That task only. */
  | { readonly kind: 'task'; readonly service: string; readonly taskId: string; readonly target: number };

export interface MirrorListener {
  /** The mirror address (127.X.Y.Z) to listen on. */
  readonly address: Ipv4Address;
  readonly port: number;
  readonly target: MirrorTarget;
}

export interface MirrorPlan {
  /** VIP listeners first (by service name, then port), then task listeners (by address, then port). */
  readonly listeners: readonly MirrorListener[];
  /** Listeners left out because of `maxListeners`. */
  readonly overLimit: number;
}

/** Listeners at most by default: each is one kernel socket (a file descriptor) in the agent. */
export const DEFAULT_MAX_MIRROR_LISTENERS = 4096;

const OVERLAY_PREFIX = 0x64400000; // 100.64.0.0/10 (RFC 6598)
const MIRROR_PREFIX = 0x7f400000; // 127.64.0.0/10
const SLASH_10 = 0xffc00000;

export function isOverlay(address: Ipv4Address): boolean {
  return ((address & SLASH_10) >>> 0) === OVERLAY_PREFIX;
}

/** 100.X.Y.Z → 127.X.Y.Z; undefined for an address outside 100.64.0.0/10 (it has no mirror). */
export function mirrorOf(overlay: Ipv4Address): Ipv4Address | undefined {
  return isOverlay(overlay) ? ((overlay & ~SLASH_10) | MIRROR_PREFIX) >>> 0 : undefined;
}

/**
 * The TCP ports a VIP serves: those the service declares plus every TCP target port of its
 * tasks' rows. A Swarm service reaches its VIP on any port its tasks listen on, published or
 * not; the rows are what tells us which those are. Sorted, without duplicates.
 */
export function vipPorts(service: VipService, rows: readonly EndpointRow[]): number[] {
  const ports = new Set<number>(service.tcpPorts);
  for (const row of rows) for (const p of row.ports) if (p.protocol === 'tcp') ports.add(p.target);
  return [...ports].filter((p) => Number.isInteger(p) && p >= 1 && p <= 65535).sort((a, b) => a - b);
}

/**
 * The listeners that should exist for `services` (with VIPs) and `rows` (every live row; a
 * row whose service is in `skipServices` — the nodes' own `lb-*` rows — or whose address has
 * no mirror gets none). Two wishes for the same address and port (a VIP equal to a task
 * address, which IPAM never allocates) keep the first, the VIP.
 */
export function planMirrors(
  services: readonly VipService[],
  rows: readonly EndpointRow[],
  options: { readonly maxListeners?: number; readonly skipServices?: ReadonlySet<string> } = {},
): MirrorPlan {
  const max = options.maxListeners ?? DEFAULT_MAX_MIRROR_LISTENERS;
  const byService = new Map<string, EndpointRow[]>();
  for (const row of rows) {
    if (options.skipServices?.has(row.service)) continue;
    let list = byService.get(row.service);
    if (!list) byService.set(row.service, (list = []));
    list.push(row);
  }
  const wanted: MirrorListener[] = [];
  for (const service of [...services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const address = mirrorOf(service.vip);
    if (address === undefined) continue;
    for (const port of vipPorts(service, byService.get(service.name) ?? [])) wanted.push({ address, port, target: { kind: 'vip', service: service.name, target: port } });
  }
  const tasks: MirrorListener[] = [];
  for (const list of byService.values()) {
    for (const row of list) {
      const address = mirrorOf(row.overlayAddress);
      if (address === undefined) continue;
      for (const p of row.ports) {
        if (p.protocol !== 'tcp') continue;
        tasks.push({ address, port: p.target, target: { kind: 'task', service: row.service, taskId: row.taskId, target: p.target } });
      }
    }
  }
  tasks.sort((a, b) => a.address - b.address || a.port - b.port || (a.target.kind === 'task' && b.target.kind === 'task' ? cmp(a.target.taskId, b.target.taskId) : 0));
  wanted.push(...tasks);

  const seen = new Set<string>();
  const listeners: MirrorListener[] = [];
  let overLimit = 0;
  for (const l of wanted) {
    const key = mirrorKey(l);
    if (seen.has(key)) continue;
    seen.add(key);
    if (listeners.length >= max) overLimit++;
    else listeners.push(l);
  }
  return { listeners, overLimit };
}

/** `address:port`, the identity of a listener. */
export function mirrorKey(l: { readonly address: Ipv4Address; readonly port: number }): string {
  return `${l.address}:${l.port}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
