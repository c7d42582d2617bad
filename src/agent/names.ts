/**
 * Names and east–west reachability for one agent (ARCHITECTURE.md, "East–west"), composed
 * from the endpoint table and the router the mesh already runs:
 *
 * - the embedded DNS over MeshDnsRecords (dns-records.ts), for host processes on
 *   127.0.0.11:53 where the agent may bind it, else on the configured address (`dns`), and
 *   for the overlay on the node's overlay address, port 53, UDP and TCP (a truncated answer
 *   is retried over TCP, RFC 7766), through the userspace stack, answering in overlay form;
 * - with `mirrors`, host-side listeners on the mirror 127.X.Y.Z of every VIP and task address
 *   (src/mesh/node-mirror.ts): a VIP is balanced through the router, a task address goes to
 *   that task only;
 * - with an overlay, every VIP on the overlay interface, balanced through the router
 *   (src/mesh/vip.ts), so a kernel VXLAN host on the same VNI reaches services by VIP.
 *
 * Several agents on one host (127.0.0.2, .3 …) share 127.64.0.0/10 and 127.0.0.11: the first
 * agent to bind 127.0.0.11:53 gets it and the others fall back to their `dns` address; only
 * one agent per host should run with `mirrors` on (the others would fail to bind every mirror:
 * counted as `mirror_listen_failures`, logged once per address, harmless). SO_REUSEADDR does
 * not share a TCP listening port between processes on Linux, and SO_REUSEPORT would split the
 * connections between agents, which is correct but confusing; an explicit owner is simpler.
 */
import type { Duplex } from 'node:stream';
import type { ServiceRoute } from '../cluster/service-types.js';
import { type DatagramBinder, type DatagramDnsServer, serveDnsOverDatagrams } from '../dns/datagram-server.js';
import type { UpstreamServer } from '../dns/forwarder.js';
import { type EmbeddedDns, type ListenAddress, startEmbeddedDns } from '../dns/node-dns-server.js';
import { EMBEDDED_DNS_ADDRESS } from '../dns/resolv-conf.js';
import { type TcpServerCounter, serveDnsStream, tcpServerCounters } from '../dns/stream-server.js';
import type { Counters } from '../lib/counters.js';
import type { Clock } from '../lib/clock.js';
import { CatalogError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { renderCounters } from '../lib/metrics.js';
import { CryptoRng, type Rng } from '../lib/rng.js';
import type { EndpointTable } from '../mesh/endpoint-table.js';
import type { VipService } from '../mesh/mirror-listeners.js';
import { MirrorListeners } from '../mesh/node-mirror.js';
import { localTcpConnector } from '../mesh/node-upstream.js';
import type { MeshRouter, UpstreamConnector } from '../mesh/router.js';
import { type OverlayAddresses, type OverlayTcpSockets, overlayTcpConnector } from '../mesh/task-listeners.js';
import { OverlayVipListeners } from '../mesh/vip.js';
import { type Ipv4Address, formatIpv4Address, parseIpv4Address } from '../wire/address.js';
import type { Catalog } from './catalog.js';
import { LB_SERVICE } from './catalog-mesh.js';
import { MeshDnsRecords } from './dns-records.js';

/**
 * The host-side DNS port when 127.0.0.11:53 cannot be bound (not root, or another agent on
 * this host has it): `<listen-addr>:8053`. Not 5353: that is mDNS, which avahi-daemon holds
 * on 0.0.0.0 on many hosts, and a wildcard holder blocks a bind to one address of the port.
 */
export const DEFAULT_DNS_FALLBACK_PORT = 8053;

/** Where the agent's host-side DNS falls back to: its listen address (loopback for 0.0.0.0), port 8053. */
export function defaultDnsFallback(listenAddr: string): ListenAddress {
  return { address: listenAddr === '0.0.0.0' || listenAddr === '' ? '127.0.0.1' : listenAddr, port: DEFAULT_DNS_FALLBACK_PORT };
}

export interface NameServiceOverlay {
  /** The overlay interface (OverlayInterface): VIP addresses are added to it. */
  readonly iface: OverlayAddresses & { hasAddress(ip: Ipv4Address): boolean };
  /** The overlay's UDP (`new UdpLayer(iface)`): DNS binds port 53 there. */
  readonly udp: DatagramBinder;
  /** The overlay's TCP sockets (`attachTcp(iface, …).sockets`). */
  readonly tcpSockets: OverlayTcpSockets;
  /** This node's overlay address, where overlay clients ask (the interface's primary address). */
  readonly nodeAddress: Ipv4Address;
}

export interface NameServiceOptions {
  readonly table: EndpointTable;
  readonly router: MeshRouter;
  readonly overlay?: NameServiceOverlay;
  /** The host-side DNS address used when 127.0.0.11:53 cannot be bound (`--dns-addr`; see defaultDnsFallback). */
  readonly dns: ListenAddress;
  /** Try 127.0.0.11:53 first (default true). Tests turn it off to stay in their own address range. */
  readonly tryEmbeddedAddress?: boolean;
  /**
   * When neither 127.0.0.11:53 nor `dns` binds, listen on `dns.address` at a port the kernel
   * picks (logged; `hostDns` says which) instead of failing. For agents whose DNS address is
   * the default rather than configured: several agents on one address (tests, demos) would
   * otherwise refuse to start over a name server nobody asked for. Default false.
   */
  readonly dnsAnyPortLastResort?: boolean;
  /** Listen on the mirrors of VIPs and task addresses (one agent per host; see the module comment). */
  readonly mirrors: boolean;
  readonly clock: Clock;
  /** Upstream query IDs and answer shuffling (default CryptoRng). */
  readonly rng?: Rng;
  readonly logger?: Logger;
  /** Where other names are forwarded; default the nameservers of /etc/resolv.conf. */
  readonly upstreamResolvers?: readonly UpstreamServer[];
  readonly resolvConfPath?: string;
  /** Kernel TCP to local tasks (default node-upstream.ts `localTcpConnector()`). */
  readonly connectLocal?: UpstreamConnector;
  /** Mirror listeners at most (host side), and VIP listeners at most (overlay side). Default 4096 each. */
  readonly maxListeners?: number;
}

export class NameService {
  readonly records: MeshDnsRecords;
  readonly dns: EmbeddedDns;
  readonly overlayDns: DatagramDnsServer | undefined;
  readonly overlayTcpDns: OverlayTcpDns | undefined;
  readonly mirrors: MirrorListeners | undefined;
  readonly overlayVips: OverlayVipListeners | undefined;
  readonly #log: Logger;
  #closed = false;

  private constructor(parts: {
    records: MeshDnsRecords;
    dns: EmbeddedDns;
    overlayDns: DatagramDnsServer | undefined;
    overlayTcpDns: OverlayTcpDns | undefined;
    mirrors: MirrorListeners | undefined;
    overlayVips: OverlayVipListeners | undefined;
    log: Logger;
  }) {
    this.records = parts.records;
    this.dns = parts.dns;
    this.overlayDns = parts.overlayDns;
    this.overlayTcpDns = parts.overlayTcpDns;
    this.mirrors = parts.mirrors;
    this.overlayVips = parts.overlayVips;
    this.#log = parts.log;
  }

  /**
   * Starts DNS (host side, then overlay side), the overlay VIPs and the mirrors. Rejects with
   * DnsSocketError when no host-side DNS address binds; the overlay side's port 53 being
   * taken is logged, not fatal.
   */
  static async start(o: NameServiceOptions): Promise<NameService> {
    const log = (o.logger ?? silentLogger).child({ component: 'names' });
    const records = new MeshDnsRecords(o.table);
    const listen: ListenAddress[] = [
      ...((o.tryEmbeddedAddress ?? true) ? [{ address: EMBEDDED_DNS_ADDRESS, port: 53 }] : []),
      o.dns,
      ...(o.dnsAnyPortLastResort && o.dns.port !== 0 ? [{ address: o.dns.address, port: 0 }] : []),
    ];
    let dns: EmbeddedDns;
    try {
      dns = await startEmbeddedDns({
        records,
        clock: o.clock,
        rng: o.rng ?? new CryptoRng(),
        listen,
        view: 'host',
        ...(o.upstreamResolvers && { upstreams: o.upstreamResolvers }),
        ...(o.resolvConfPath !== undefined && { resolvConfPath: o.resolvConfPath }),
        logger: log,
      });
    } catch (error) {
      records.close();
      throw error;
    }
    let overlayDns: DatagramDnsServer | undefined;
    let overlayTcpDns: OverlayTcpDns | undefined;
    if (o.overlay) {
      try {
        overlayDns = serveDnsOverDatagrams(o.overlay.udp, dns.resolver, { port: 53, view: 'overlay' });
        overlayTcpDns = listenTcpDns(o.overlay.tcpSockets, o.overlay.nodeAddress, dns, o.clock);
        log.info({ address: formatIpv4Address(o.overlay.nodeAddress), port: 53 }, 'embedded DNS listening on the overlay');
      } catch (error) {
        log.warn({ err: error }, 'Cannot serve DNS on the overlay');
      }
    }
    const limit = o.maxListeners !== undefined ? { maxListeners: o.maxListeners } : {};
    const overlayVips = o.overlay ? new OverlayVipListeners({ table: o.table, router: o.router, sockets: o.overlay.tcpSockets, addresses: o.overlay.iface, logger: log, ...limit }) : undefined;
    const mirrors = o.mirrors
      ? new MirrorListeners({
          table: o.table,
          router: o.router,
          clock: o.clock,
          connectLocal: o.connectLocal ?? localTcpConnector(),
          ...(o.overlay && { connectRemote: overlayTcpConnector(o.overlay.tcpSockets) }),
          skipServices: new Set([LB_SERVICE]),
          logger: log,
          ...limit,
        })
      : undefined;
    await mirrors?.settled();
    return new NameService({ records, dns, overlayDns, overlayTcpDns, mirrors, overlayVips, log });
  }

  /** Where host processes ask (127.0.0.11:53, or the fallback). */
  get hostDns(): ListenAddress {
    return { address: this.dns.address, port: this.dns.port };
  }

  /** The services as the control plane (or `catalogRoutes`) routes them now; replaces the previous set. */
  setServices(routes: readonly ServiceRoute[]): void {
    this.records.setServices(routes);
    const vips = vipServices(routes);
    this.overlayVips?.setServices(vips);
    this.mirrors?.setServices(vips);
  }

  /** Every DNS, mirror and overlay-VIP counter in Prometheus text. */
  metrics(labels: Readonly<Record<string, string>> = {}): string {
    return (
      renderCounters(this.dns.counters(), labels) +
      (this.overlayDns ? renderCounters(this.overlayDns.counters.snapshot(), labels) : '') +
      (this.overlayTcpDns ? renderCounters(this.overlayTcpDns.counters.snapshot(), { ...labels, path: 'overlay' }) : '') +
      (this.mirrors ? renderCounters(this.mirrors.counters.snapshot(), labels) + renderCounters(this.mirrors.taskRelayCounters.snapshot(), { ...labels, path: 'mirror' }) : '') +
      (this.overlayVips ? renderCounters(this.overlayVips.counters.snapshot(), labels) : '')
    );
  }

  /** Stops listening everywhere; connections in flight through mirrors are closed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.mirrors?.close();
    this.overlayVips?.close();
    this.overlayDns?.close();
    this.overlayTcpDns?.close();
    await this.dns.close();
    this.records.close();
    this.#log.info('Names stopped');
  }
}

/** DNS over the overlay's userspace TCP on the node's address, port 53. */
export interface OverlayTcpDns {
  readonly counters: Counters<TcpServerCounter>;
  close(): void;
}

/** Connections at once on the overlay's DNS over TCP; more are closed at accept (RFC 7766 §6.2.2). */
const OVERLAY_DNS_TCP_MAX_CONNECTIONS = 64;

/** Throws what `sockets.listen` throws (port 53 already listened on at that address). */
function listenTcpDns(sockets: OverlayTcpSockets, address: Ipv4Address, dns: EmbeddedDns, clock: Clock): OverlayTcpDns {
  const counters = tcpServerCounters();
  const open = new Set<Duplex>();
  const listener = sockets.listen(
    53,
    (socket) => {
      if (open.size >= OVERLAY_DNS_TCP_MAX_CONNECTIONS) {
        counters.inc('dns_tcp_connections_rejected');
        socket.destroy();
        return;
      }
      counters.inc('dns_tcp_connections');
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      const peer = socket as Duplex & { remoteAddress?: string; remotePort?: number };
      serveDnsStream(socket, { address: peer.remoteAddress ?? '', port: peer.remotePort ?? 0, view: 'overlay' }, { handler: dns.resolver, clock, counters, idleTimeoutMs: 10_000, maxInFlight: 32 });
    },
    { address },
  );
  return {
    counters,
    close: () => {
      listener.close();
      for (const s of open) s.destroy();
    },
  };
}

/** The routes in endpoint mode `vip` with a usable VIP, as the mesh's listeners need them. */
export function vipServices(routes: readonly ServiceRoute[]): VipService[] {
  const out: VipService[] = [];
  for (const r of routes) {
    if (r.EndpointMode !== 'vip' || r.VirtualIP === undefined) continue;
    const vip = parseIpv4Address(r.VirtualIP.split('/')[0] ?? '');
    if (!vip.ok) continue;
    out.push({ name: r.Name, vip: vip.value, tcpPorts: [...new Set(r.Ports.filter((p) => p.Protocol === 'tcp').map((p) => p.TargetPort))] });
  }
  return out;
}

/**
 * The routes of a catalog-mode agent (no manager): every catalog service in endpoint mode
 * `vip`, its VIP the top of the catalog subnet downward in service order (.254, .253 … of a
 * /24), its ports the published ones. Deterministic, so every agent reading the same file
 * gives each service the same VIP.
 *
 * The catalog's tasks take the upper half upward (.128, .129 …): a VIP skips any task
 * address, and when the upper half cannot hold every task and every VIP this throws
 * CatalogError (use a larger `network.subnet`). The lower half is the agents' own addresses
 * (network base + the advertise address's last octet), which a VIP can still meet when an
 * agent's last octet is above the half — the same documented collision as for tasks.
 */
export function catalogRoutes(catalog: Catalog): ServiceRoute[] {
  const { subnet, prefixLen } = catalog.network;
  const size = 2 ** (32 - prefixLen);
  const lowest = subnet + size / 2;
  const taken = new Set<number>(catalog.tasks.map((t) => t.overlayAddress));
  let next = subnet + size - 2; // below the broadcast address
  const routes: ServiceRoute[] = [];
  for (const service of catalog.services) {
    while (next >= lowest && taken.has(next)) next--;
    if (next < lowest) {
      throw new CatalogError(
        `network.subnet: ${formatIpv4Address(subnet)}/${prefixLen} has no room for a VIP for service ${service.name}: its upper half holds ${size / 2 - 1} tasks and VIPs, the catalog has ${catalog.tasks.length} tasks and ${catalog.services.length} services; use a larger network.subnet`,
      );
    }
    const vip = next--;
    routes.push({
      ID: service.name,
      Name: service.name,
      EndpointMode: 'vip',
      VirtualIP: formatIpv4Address(vip),
      Ports: service.ports.map((p) => ({ Protocol: p.protocol, TargetPort: p.target, PublishedPort: p.published, PublishMode: 'ingress' as const })),
    });
  }
  return routes;
}
