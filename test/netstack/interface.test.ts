import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { MemoryDatagramNetwork } from '../../src/overlay/memory-datagram.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { macForIpv4, writeIpv4 } from '../../src/wire/address.js';
import { ETHERNET_HEADER_LEN, EtherType, emitEthernet } from '../../src/wire/ethernet.js';
import { IPV4_HEADER_LEN, IpProtocol, emitIpv4 } from '../../src/wire/ipv4.js';
import { ICMP_HEADER_LEN, emitIcmp } from '../../src/wire/icmp.js';
import { internetChecksum } from '../../src/wire/checksum.js';

const VNI = 4096;
const IP = (last: number): number => (0x644000 << 8) | last; // 100.64.0.<last>

function node(net: MemoryDatagramNetwork, clock: ManualClock, last: number) {
  const underlay = { address: `198.18.2.${last}`, port: 4789 };
  const vtep = new Vtep({ socket: net.open(underlay), fdb: new ForwardingTable() });
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: IP(last), prefixLen: 24, link, clock }));
  return { vtep, iface, underlay };
}

/** Two nodes whose VTEPs flood to each other, so ARP works as on a two-host overlay. */
function pair() {
  const clock = new ManualClock();
  const net = new MemoryDatagramNetwork(clock, { delayMs: 1 });
  const a = node(net, clock, 2);
  const b = node(net, clock, 3);
  a.vtep.fdb.addFlood(VNI, b.underlay);
  b.vtep.fdb.addFlood(VNI, a.underlay);
  return { clock, net, a, b };
}

describe('OverlayInterface', () => {
  it('resolves the peer by ARP, then pings it and gets the reply with its RTT', async () => {
    const { clock, a, b } = pair();
    const reply = a.iface.ping(IP(3), { seqNo: 1 });
    clock.advance(10);
    await expect(reply).resolves.toEqual({ from: IP(3), seqNo: 1, ttl: 64, bytes: 56, rttMs: 4 });
    expect(a.iface.counters.get('arp_tx_requests')).toBe(1);
    expect(b.iface.counters.get('arp_tx_replies')).toBe(1);
    expect(b.iface.counters.get('icmp_tx_echo_replies')).toBe(1);
    // b learnt a's MAC from the request aimed at it (RFC 826), so its reply needed no ARP of its own.
    expect(b.iface.counters.get('arp_tx_requests')).toBe(0);
    expect(a.iface.neighbors.lookup(IP(3), clock.now())).toBe(macForIpv4(IP(3)));
  });

  it('sends later pings without ARP while the neighbour entry lives, and ARPs again after it expires', async () => {
    const { clock, a } = pair();
    const first = a.iface.ping(IP(3), { seqNo: 1 });
    clock.advance(10);
    await first;
    const second = a.iface.ping(IP(3), { seqNo: 2 });
    clock.advance(10);
    await expect(second).resolves.toMatchObject({ seqNo: 2, rttMs: 2 });
    expect(a.iface.counters.get('arp_tx_requests')).toBe(1);
    clock.advance(60_000);
    const third = a.iface.ping(IP(3), { seqNo: 3 });
    clock.advance(10);
    await third;
    expect(a.iface.counters.get('arp_tx_requests')).toBe(2);
  });

  it('gives up after three unanswered ARP requests with HostUnreachableError', async () => {
    const { clock, a } = pair();
    const reply = a.iface.ping(IP(9), { seqNo: 1, timeoutMs: 10_000 });
    const settled = reply.catch((e: unknown) => e);
    clock.advance(3_000);
    const error = await settled;
    expect(error).toMatchObject({ code: 'ERR_HOST_UNREACHABLE' });
    expect(a.iface.counters.get('arp_tx_requests')).toBe(3);
    expect(clock.pendingTimers).toBe(0);
  });

  it('times out a ping nobody answers, and counts a late reply as unmatched', async () => {
    const { clock, a, b } = pair();
    a.iface.addStaticNeighbor(IP(3));
    b.vtep.detach(VNI); // b's host is up but the network is gone: silence
    const reply = a.iface.ping(IP(3), { seqNo: 7, timeoutMs: 500 }).catch((e: unknown) => e);
    clock.advance(600);
    expect(await reply).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(b.vtep.counters.get('vtep_rx_dropped_unknown_vni')).toBe(1);
  });

  it('uses static neighbours without ARP', async () => {
    const { clock, a } = pair();
    a.iface.addStaticNeighbor(IP(3));
    const reply = a.iface.ping(IP(3), { seqNo: 1 });
    clock.advance(10);
    await reply;
    expect(a.iface.counters.get('arp_tx_requests')).toBe(0);
  });

  it('holds at most maxPendingPerNeighbor packets while resolving and counts the overflow', () => {
    const { clock, a } = pair();
    for (let i = 0; i < 20; i++) void a.iface.ping(IP(9), { seqNo: i, timeoutMs: 100_000 }).catch(() => {});
    expect(a.iface.counters.get('iface_tx_dropped_unresolved')).toBe(4);
    clock.advance(5_000);
    expect(a.iface.counters.get('iface_tx_dropped_unresolved')).toBe(20);
  });

  it('answers only frames for its MAC and IPv4 packets for its address, counting the rest', () => {
    const { clock, a, b } = pair();
    a.iface.addStaticNeighbor(IP(3));
    const send = (mutate: (buf: Uint8Array, ip: number) => void) => {
      const { buf, offset } = a.iface.allocPacket(ICMP_HEADER_LEN + 4);
      emitIcmp({ kind: 'echo-request', ident: 1, seqNo: 1 }, buf, offset, 4);
      const ipOffset = offset - IPV4_HEADER_LEN;
      emitIpv4({ src: IP(2), dst: IP(3), protocol: IpProtocol.Icmp, ttl: 64, payloadLen: ICMP_HEADER_LEN + 4, ident: 9, dontFragment: false, tos: 0 }, buf, ipOffset);
      emitEthernet({ dst: macForIpv4(IP(3)), src: a.iface.mac, etherType: EtherType.Ipv4 }, buf, ipOffset - ETHERNET_HEADER_LEN);
      mutate(buf, ipOffset);
      b.iface.receiveFrame(buf.subarray(ipOffset - ETHERNET_HEADER_LEN));
    };
    send(() => {}); // a valid request: answered
    send((buf, ip) => {
      buf[ip + 6] = 0x20; // More Fragments: the first fragment of a larger datagram
      buf[ip + 10] = 0;
      buf[ip + 11] = 0;
      fixIpChecksum(buf, ip);
    });
    send((buf, ip) => {
      writeIpv4(buf, ip + 16, IP(4)); // someone else's address
      fixIpChecksum(buf, ip);
    });
    send((buf, ip) => flip(buf, ip + 12, 0xff)); // corrupt source: bad checksum
    send((buf, ip) => flip(buf, ip - ETHERNET_HEADER_LEN + 5, 1)); // another MAC
    send((buf, ip) => flip(buf, ip + IPV4_HEADER_LEN + 3, 1)); // bad ICMP checksum
    clock.advance(10);
    expect(b.iface.counters.snapshot()).toMatchObject({
      icmp_rx_echo_requests: 1,
      icmp_tx_echo_replies: 1,
      iface_rx_dropped_fragmented: 1,
      iface_rx_dropped_not_for_us: 2,
      iface_rx_dropped_bad_checksum: 2,
    });
  });

  it('replies to ARP requests only for its own address', () => {
    const { clock, a, b } = pair();
    // Ask b for 100.64.0.3 and for 100.64.0.4 through a's ARP: only the first gets an answer.
    void a.iface.ping(IP(3), { seqNo: 1 }).catch(() => {});
    void a.iface.ping(IP(4), { seqNo: 1, timeoutMs: 100 }).catch(() => {});
    clock.advance(5);
    expect(b.iface.counters.get('arp_rx_requests')).toBe(2);
    expect(b.iface.counters.get('arp_tx_replies')).toBe(1);
  });
});

function fixIpChecksum(buf: Uint8Array, ip: number): void {
  buf[ip + 10] = 0;
  buf[ip + 11] = 0;
  const c = internetChecksum(buf.subarray(ip, ip + IPV4_HEADER_LEN));
  buf[ip + 10] = c >>> 8;
  buf[ip + 11] = c & 0xff;
}

function flip(buf: Uint8Array, at: number, mask: number): void {
  buf[at] = buf[at]! ^ mask;
}

describe('OverlayInterface with task addresses', () => {
  it('answers ARP and pings for every address it holds, each with its own 02:42 MAC', async () => {
    const { clock, a, b } = pair();
    b.iface.addAddress(IP(30)); // a task on b
    const reply = a.iface.ping(IP(30), { seqNo: 1 });
    clock.advance(10);
    await expect(reply).resolves.toMatchObject({ from: IP(30), seqNo: 1 });
    expect(a.iface.neighbors.lookup(IP(30), clock.now())).toBe(macForIpv4(IP(30)));
    b.iface.removeAddress(IP(30));
    a.iface.neighbors.delete(IP(30));
    const gone = a.iface.ping(IP(30), { seqNo: 2, timeoutMs: 10_000 }).catch((e: unknown) => e);
    clock.advance(5_000);
    expect(await gone).toMatchObject({ code: 'ERR_HOST_UNREACHABLE' });
  });

  it('refuses addresses outside its subnet', () => {
    const { a } = pair();
    expect(() => a.iface.addAddress(0x64400105)).toThrow(/outside/);
  });

  it('drops and counts a packet from an address it no longer holds (a stopped task\'s connection sending its last segment crashed the agent)', () => {
    const { clock, a } = pair();
    a.iface.addAddress(IP(31));
    a.iface.removeAddress(IP(31));
    const { buf, offset } = a.iface.allocPacket(8);
    buf.fill(0, offset, offset + 8);
    a.iface.sendIpv4(IP(3), IpProtocol.Udp, buf, offset, 8, IP(31));
    clock.advance(10);
    expect(a.iface.counters.get('iface_tx_dropped_no_source')).toBe(1);
    expect(a.iface.counters.get('iface_tx_frames')).toBe(0);
  });
});
