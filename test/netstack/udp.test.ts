import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { EPHEMERAL_PORT_MIN, UdpLayer, type UdpPeer } from '../../src/netstack/udp.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { MemoryDatagramNetwork } from '../../src/overlay/memory-datagram.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { ETHERNET_HEADER_LEN, EtherType, emitEthernet } from '../../src/wire/ethernet.js';
import { IPV4_HEADER_LEN, IpProtocol, emitIpv4 } from '../../src/wire/ipv4.js';

const VNI = 4096;
const IP = (last: number): number => (0x644000 << 8) | last;

function host(net: MemoryDatagramNetwork, clock: ManualClock, last: number) {
  const underlay = { address: `198.18.3.${last}`, port: 4789 };
  const vtep = new Vtep({ socket: net.open(underlay), fdb: new ForwardingTable() });
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: IP(last), prefixLen: 24, link, clock }));
  return { vtep, iface, udp: new UdpLayer(iface), underlay };
}

function pair() {
  const clock = new ManualClock();
  const net = new MemoryDatagramNetwork(clock, { delayMs: 1 });
  const a = host(net, clock, 2);
  const b = host(net, clock, 3);
  a.vtep.fdb.addFlood(VNI, b.underlay);
  b.vtep.fdb.addFlood(VNI, a.underlay);
  return { clock, a, b };
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('UDP on the userspace stack', () => {
  it('carries datagrams both ways between bound sockets, with the sender’s address and port', () => {
    const { clock, a, b } = pair();
    const atB: [string, UdpPeer][] = [];
    const atA: [string, UdpPeer][] = [];
    const server = b.udp.bind(53, (data, from) => {
      atB.push([decode(data), from]);
      server.send(text(`re:${decode(data)}`), from);
    });
    const client = a.udp.bind(0, (data, from) => atA.push([decode(data), from]));
    expect(client.port).toBe(EPHEMERAL_PORT_MIN);
    client.send(text('hello'), { address: IP(3), port: 53 });
    client.send(text(''), { address: IP(3), port: 53 });
    clock.advance(20);
    expect(atB).toEqual([['hello', { address: IP(2), port: client.port }], ['', { address: IP(2), port: client.port }]]);
    expect(atA.map(([d]) => d)).toEqual(['re:hello', 're:']);
    expect(atA[0]![1]).toEqual({ address: IP(3), port: 53 });
  });

  it('tells a socket which of the interface’s addresses a datagram was sent to, and answers from that address', () => {
    const { clock, a, b } = pair();
    b.iface.addAddress(IP(131));
    b.iface.addAddress(IP(132));
    const atB: [string, number][] = [];
    const server = b.udp.bind(9000, (data, from, local) => {
      atB.push([decode(data), local]);
      server.send(text(`re:${decode(data)}`), from, local);
    });
    const atA: [string, UdpPeer][] = [];
    const client = a.udp.bind(0, (data, from) => atA.push([decode(data), from]));
    client.send(text('to-131'), { address: IP(131), port: 9000 });
    client.send(text('to-132'), { address: IP(132), port: 9000 });
    client.send(text('to-3'), { address: IP(3), port: 9000 });
    clock.advance(20);
    expect(atB).toEqual([['to-131', IP(131)], ['to-132', IP(132)], ['to-3', IP(3)]]);
    // The answers' checksums cover the address they came from: all three arrive intact.
    expect(atA).toEqual([
      ['re:to-131', { address: IP(131), port: 9000 }],
      ['re:to-132', { address: IP(132), port: 9000 }],
      ['re:to-3', { address: IP(3), port: 9000 }],
    ]);
    expect(a.udp.counters.get('udp_rx_dropped_malformed')).toBe(0);
  });

  it('answers a datagram to an unbound port with ICMP port unreachable, and counts it', () => {
    const { clock, a, b } = pair();
    const client = a.udp.bind(0, () => {});
    client.send(text('anyone?'), { address: IP(3), port: 9999 });
    clock.advance(20);
    expect(b.udp.counters.get('udp_rx_dropped_no_socket')).toBe(1);
    expect(b.iface.counters.get('icmp_tx_errors')).toBe(1);
    expect(a.iface.counters.get('icmp_rx_errors')).toBe(1);
  });

  it('rate-limits ICMP errors so junk cannot make it an amplifier', () => {
    const { clock, a, b } = pair();
    a.iface.addStaticNeighbor(IP(3)); // no ARP queue in the way: all 150 reach b at once
    b.iface.addStaticNeighbor(IP(2));
    const client = a.udp.bind(0, () => {});
    for (let i = 0; i < 150; i++) client.send(text('x'), { address: IP(3), port: 9999 });
    clock.advance(20);
    expect(b.iface.counters.get('icmp_tx_errors')).toBe(100);
    expect(b.iface.counters.get('icmp_tx_errors_rate_limited')).toBe(50);
  });

  it('refuses a port in use, stops delivering after close, and drops datagrams beyond the MTU', () => {
    const { clock, a, b } = pair();
    const got: string[] = [];
    const server = b.udp.bind(7, (d) => got.push(decode(d)));
    expect(() => b.udp.bind(7, () => {})).toThrow(/already bound/);
    const client = a.udp.bind(0, () => {});
    client.send(new Uint8Array(1450 - 20 - 8 + 1), { address: IP(3), port: 7 });
    expect(a.udp.counters.get('udp_tx_dropped_too_big')).toBe(1);
    client.send(new Uint8Array(1450 - 20 - 8), { address: IP(3), port: 7 });
    clock.advance(20);
    expect(got.length).toBe(1);
    server.close();
    client.send(text('late'), { address: IP(3), port: 7 });
    clock.advance(20);
    expect(got.length).toBe(1);
    expect(b.udp.bind(7, () => {}).port).toBe(7);
  });

  it('drops a datagram whose checksum does not match, counted', () => {
    const { clock, b } = pair();
    const got: string[] = [];
    b.udp.bind(7, (d) => got.push(decode(d)));
    const { buf, offset } = b.iface.allocPacket(8 + 2);
    // A hand-made datagram with a wrong (non-zero) checksum, delivered straight to b's UDP layer.
    buf.set([0x30, 0x39, 0x00, 0x07, 0x00, 0x0a, 0x12, 0x34, 0x68, 0x69], offset);
    b.iface.receiveFrame(frameFor(b.iface, buf.subarray(offset, offset + 10)));
    clock.advance(5);
    expect(got).toEqual([]);
    expect(b.udp.counters.get('udp_rx_dropped_malformed')).toBe(1);
  });
});

/** An Ethernet frame carrying `udp` from 100.64.0.2 to the interface. */
function frameFor(iface: OverlayInterface, udp: Uint8Array): Uint8Array {
  const frame = new Uint8Array(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + udp.length);
  frame.set(udp, ETHERNET_HEADER_LEN + IPV4_HEADER_LEN);
  emitIpv4({ src: IP(2), dst: iface.address, protocol: IpProtocol.Udp, ttl: 64, payloadLen: udp.length, ident: 1, dontFragment: true, tos: 0 }, frame, ETHERNET_HEADER_LEN);
  emitEthernet({ dst: iface.mac, src: 0x024264400002, etherType: EtherType.Ipv4 }, frame, 0);
  return frame;
}
