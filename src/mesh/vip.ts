/**
 * VIPs on the overlay: every agent answers for every service's virtual IP on its overlay
 * interface (ARP, ICMP echo, TCP) and balances each TCP connection to VIP:target through the
 * router, as an ingress connection. A host in a kernel VXLAN namespace on the same VNI then
 * reaches a service by its VIP (curl http://100.64.0.254/): its ARP for the VIP is flooded to
 * every VTEP, every agent answers with the VIP's 02:42 MAC, and the kernel sends the
 * connection to whichever answer it kept — any agent balances it equally well (Swarm's IPVS
 * does the same on every node).
 *
 * The ports of a VIP are the service's TCP target ports plus those its tasks' rows serve
 * (mirror-listeners.ts `vipPorts`); listeners follow the table and `setServices`. No I/O of
 * its own: the interface and the userspace TCP are passed in.
 */
import { Counters } from '../lib/counters.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { type Ipv4Address, formatIpv4Address } from '../wire/address.js';
import type { EndpointTable } from './endpoint-table.js';
import { DEFAULT_MAX_MIRROR_LISTENERS, type VipService, vipPorts } from './mirror-listeners.js';
import type { MeshRouter } from './router.js';
import type { OverlayAddresses, OverlayTcpSockets } from './task-listeners.js';

export const OVERLAY_VIP_COUNTERS = [
  'vip_overlay_cx_total',
  /** An address or port that could not be taken (outside the interface's subnet, port already listened on). */
  'vip_overlay_listen_failures',
  'vip_overlay_listeners_over_limit',
] as const;
export type OverlayVipCounter = (typeof OVERLAY_VIP_COUNTERS)[number];

export interface OverlayVipListenersOptions {
  readonly table: EndpointTable;
  readonly router: MeshRouter;
  readonly sockets: OverlayTcpSockets;
  /** The overlay interface; `hasAddress` keeps us off an address someone else added (never removed by us). */
  readonly addresses: OverlayAddresses & { hasAddress(ip: Ipv4Address): boolean };
  readonly maxListeners?: number;
  readonly logger?: Logger;
}

interface VipState {
  readonly service: VipService;
  /** Whether we added the address (and so remove it). */
  readonly ownsAddress: boolean;
  readonly ports: Map<number, { close(): void }>;
}

export class OverlayVipListeners {
  readonly counters = new Counters<OverlayVipCounter>(OVERLAY_VIP_COUNTERS);
  readonly #o: OverlayVipListenersOptions;
  readonly #log: Logger;
  readonly #vips = new Map<Ipv4Address, VipState>();
  readonly #unsubscribe: () => void;
  /** Failures already logged (retried at each change, logged once). */
  readonly #warned = new Set<string>();
  #services: readonly VipService[] = [];
  #closed = false;

  constructor(options: OverlayVipListenersOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ component: 'overlay-vips' });
    this.#unsubscribe = options.table.subscribe((e) => {
      if (this.#services.some((s) => s.name === e.row.service)) this.#reconcile();
    });
  }

  setServices(services: readonly VipService[]): void {
    this.#services = services;
    this.#reconcile();
  }

  /** VIP addresses and ports listened on now. */
  listening(): { address: string; port: number; service: string }[] {
    return [...this.#vips.entries()].flatMap(([vip, s]) => [...s.ports.keys()].map((port) => ({ address: formatIpv4Address(vip), port, service: s.service.name })));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const vip of [...this.#vips.keys()]) this.#drop(vip);
  }

  #reconcile(): void {
    if (this.#closed) return;
    const wanted = new Map<Ipv4Address, VipService>();
    for (const s of this.#services) if (!wanted.has(s.vip)) wanted.set(s.vip, s);
    for (const [vip, state] of [...this.#vips]) if (wanted.get(vip)?.name !== state.service.name) this.#drop(vip);
    let budget = (this.#o.maxListeners ?? DEFAULT_MAX_MIRROR_LISTENERS) - [...this.#vips.values()].reduce((n, s) => n + s.ports.size, 0);
    let overLimit = 0;
    for (const [vip, service] of wanted) {
      let state = this.#vips.get(vip);
      if (!state) {
        const owned = !this.#o.addresses.hasAddress(vip);
        try {
          if (owned) this.#o.addresses.addAddress(vip);
        } catch (error) {
          this.#fail(error, vip, 0);
          continue;
        }
        state = { service, ownsAddress: owned, ports: new Map() };
        this.#vips.set(vip, state);
      }
      const ports = vipPorts(service, this.#o.table.endpoints(service.name));
      for (const [port, l] of [...state.ports]) {
        if (ports.includes(port)) continue;
        l.close();
        state.ports.delete(port);
        budget++;
      }
      for (const port of ports) {
        if (state.ports.has(port)) continue;
        if (budget <= 0) {
          overLimit++;
          continue;
        }
        try {
          const name = service.name;
          state.ports.set(port, this.#o.sockets.listen(port, (socket) => void this.#accept(socket, name, port), { address: vip }));
          budget--;
        } catch (error) {
          this.#fail(error, vip, port);
        }
      }
    }
    if (overLimit > 0) this.counters.inc('vip_overlay_listeners_over_limit', overLimit);
  }

  async #accept(socket: Parameters<MeshRouter['handle']>[0], service: string, port: number): Promise<void> {
    this.counters.inc('vip_overlay_cx_total');
    await this.#o.router.handle(socket, { service, protocol: 'tcp', published: port, target: port });
  }

  #drop(vip: Ipv4Address): void {
    const state = this.#vips.get(vip);
    if (!state) return;
    this.#vips.delete(vip);
    for (const l of state.ports.values()) l.close();
    if (state.ownsAddress) this.#o.addresses.removeAddress(vip);
  }

  #fail(error: unknown, vip: Ipv4Address, port: number): void {
    this.counters.inc('vip_overlay_listen_failures');
    const key = `${vip}:${port}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn({ err: error, vip: formatIpv4Address(vip), port }, 'Cannot serve a VIP on the overlay');
  }
}
