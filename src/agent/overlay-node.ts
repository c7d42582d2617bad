/**
 * One host's presence on one overlay network: the VTEP on a real UDP socket and an interface
 * holding the host's overlay address. This is the composition the agent runs (and, before the
 * gossip and the endpoint table exist, configures from static peers).
 *
 * A peer given as overlay address @ underlay endpoint becomes three things, as Swarm programs
 * them from NetworkDB: a static neighbour (address → 02:42 MAC), a forwarding entry (MAC →
 * VTEP), and a member of the VNI's flood list (for ARP from hosts we do not know yet).
 */
import type { Clock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { type Ipv4Address, type MacAddress, macForIpv4, parseIpv4Address, parseMacAddress } from '../wire/address.js';
import type { UdpEndpoint } from '../overlay/datagram.js';
import { ForwardingTable } from '../overlay/forwarding-table.js';
import { openUdpSocket } from '../overlay/node-udp.js';
import { VXLAN_OVERHEAD, Vtep } from '../overlay/vtep.js';
import { type EchoReply, OverlayInterface } from '../netstack/interface.js';

export interface OverlayPeer {
  readonly overlay: Ipv4Address;
  readonly underlay: UdpEndpoint;
}

export interface OverlayNodeConfig {
  /** Where the VTEP binds (0.0.0.0:4789 by default in the agent). */
  readonly underlay: UdpEndpoint;
  readonly vni: number;
  readonly address: Ipv4Address;
  readonly prefixLen: number;
  /** The underlay MTU; the overlay MTU is 50 less (ARCHITECTURE.md). */
  readonly underlayMtu?: number;
  readonly peers?: readonly OverlayPeer[];
  /** Extra forwarding entries and flood members, for peers that are not shoal (a kernel VXLAN device). */
  readonly fdb?: readonly { readonly mac: MacAddress; readonly underlay: UdpEndpoint }[];
  readonly flood?: readonly UdpEndpoint[];
  readonly recvBufferSize?: number;
}

export class OverlayNode {
  readonly vtep: Vtep;
  readonly iface: OverlayInterface;
  readonly #clock: Clock;

  private constructor(vtep: Vtep, iface: OverlayInterface, clock: Clock) {
    this.vtep = vtep;
    this.iface = iface;
    this.#clock = clock;
  }

  /** Binds the VTEP and brings the interface up. Throws VtepSocketError when the port cannot be bound. */
  static async start(config: OverlayNodeConfig, deps: { clock: Clock; logger?: Logger }): Promise<OverlayNode> {
    const logger = deps.logger ?? silentLogger;
    const socket = await openUdpSocket({
      address: config.underlay.address,
      port: config.underlay.port,
      recvBufferSize: config.recvBufferSize ?? 4 * 1024 * 1024,
      onSendError: (error) => logger.warn({ err: error }, 'vtep send failed'),
    });
    const vtep = new Vtep({ socket, fdb: new ForwardingTable(), logger });
    const iface = vtep.attachWith(config.vni, (link) =>
      new OverlayInterface({ address: config.address, prefixLen: config.prefixLen, link, clock: deps.clock, mtu: (config.underlayMtu ?? 1500) - VXLAN_OVERHEAD, logger }),
    );
    for (const peer of config.peers ?? []) {
      iface.addStaticNeighbor(peer.overlay);
      vtep.fdb.set(config.vni, macForIpv4(peer.overlay), peer.underlay);
      vtep.fdb.addFlood(config.vni, peer.underlay);
    }
    for (const entry of config.fdb ?? []) vtep.fdb.set(config.vni, entry.mac, entry.underlay);
    for (const remote of config.flood ?? []) vtep.fdb.addFlood(config.vni, remote);
    logger.info({ vtep: vtep.local(), vni: config.vni, mtu: iface.mtu }, 'overlay interface up');
    return new OverlayNode(vtep, iface, deps.clock);
  }

  /**
   * Pings `dst` `count` times, `intervalMs` apart, as ping(8) does; a lost echo is reported as
   * an error entry, not thrown.
   */
  async ping(dst: Ipv4Address, options: { count: number; intervalMs?: number; timeoutMs?: number; dataLen?: number }): Promise<(EchoReply | { seqNo: number; error: string })[]> {
    const pending: Promise<EchoReply | { seqNo: number; error: string }>[] = [];
    for (let seqNo = 1; seqNo <= options.count; seqNo++) {
      if (seqNo > 1) await new Promise<void>((resolve) => this.#clock.setTimer(options.intervalMs ?? 1000, resolve));
      pending.push(
        this.iface
          .ping(dst, { seqNo, timeoutMs: options.timeoutMs ?? 1000, dataLen: options.dataLen ?? 56 })
          .catch((error: unknown) => ({ seqNo, error: error instanceof Error ? error.message : String(error) })),
      );
    }
    return Promise.all(pending);
  }

  async close(): Promise<void> {
    this.iface.close();
    await this.vtep.close();
  }
}

/** Parses "100.64.0.3/24". Throws InvalidArgumentError. */
export function parseCidr(text: string): { address: Ipv4Address; prefixLen: number } {
  const [addr, len] = text.split('/');
  const address = parseIpv4Address(addr ?? '');
  const prefixLen = Number(len);
  if (!address.ok || len === undefined || !Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) {
    throw new InvalidArgumentError(`Not an address with prefix length (a.b.c.d/n): ${JSON.stringify(text)}`);
  }
  return { address: address.value, prefixLen };
}

/** Parses "198.18.0.1" or "198.18.0.1:4789". Throws InvalidArgumentError. */
export function parseUdpEndpoint(text: string, defaultPort: number): UdpEndpoint {
  const [address, port] = text.split(':');
  const parsed = parseIpv4Address(address ?? '');
  const portNumber = port === undefined ? defaultPort : Number(port);
  if (!parsed.ok || !Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
    throw new InvalidArgumentError(`Not an address[:port]: ${JSON.stringify(text)}`);
  }
  return { address: address!, port: portNumber };
}

/** Parses a peer "100.64.0.3@198.18.0.2[:4789]". Throws InvalidArgumentError. */
export function parsePeer(text: string, defaultPort: number): OverlayPeer {
  const [overlay, underlay] = text.split('@');
  const address = parseIpv4Address(overlay ?? '');
  if (!address.ok || underlay === undefined) throw new InvalidArgumentError(`Not a peer (overlay@underlay[:port]): ${JSON.stringify(text)}`);
  return { overlay: address.value, underlay: parseUdpEndpoint(underlay, defaultPort) };
}

/** Parses a forwarding entry "02:42:64:40:00:02@198.18.0.1[:4789]". Throws InvalidArgumentError. */
export function parseFdbEntry(text: string, defaultPort: number): { mac: MacAddress; underlay: UdpEndpoint } {
  const at = text.lastIndexOf('@');
  const mac = parseMacAddress(text.slice(0, Math.max(0, at)));
  if (at < 0 || !mac.ok) throw new InvalidArgumentError(`Not a forwarding entry (mac@underlay[:port]): ${JSON.stringify(text)}`);
  return { mac: mac.value, underlay: parseUdpEndpoint(text.slice(at + 1), defaultPort) };
}
