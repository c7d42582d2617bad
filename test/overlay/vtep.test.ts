import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { MemoryDatagramNetwork } from '../../src/overlay/memory-datagram.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { MAC_BROADCAST, macForIpv4, writeMac } from '../../src/wire/address.js';
import { ETHERNET_HEADER_LEN, EtherType, emitEthernet } from '../../src/wire/ethernet.js';
import { VXLAN_HEADER_LEN, emitVxlan } from '../../src/wire/vxlan.js';
import type { DatagramSocket } from '../../src/overlay/datagram.js';
import { hex, toHex } from '../helpers/hex.js';

const A = { address: '198.18.1.1', port: 4789 };
const B = { address: '198.18.1.2', port: 4789 };
const C = { address: '198.18.1.3', port: 4789 };
const VNI = 4096;
const MAC_A = macForIpv4(0x64400001);
const MAC_B = macForIpv4(0x64400002);

function setup() {
  const clock = new ManualClock();
  const net = new MemoryDatagramNetwork(clock);
  const make = (at: typeof A) => {
    const received: Uint8Array[] = [];
    const vtep = new Vtep({ socket: net.open(at), fdb: new ForwardingTable() });
    const link = vtep.attach(VNI, { receiveFrame: (f) => received.push(f.slice()) });
    return { vtep, link, received };
  };
  return { clock, net, a: make(A), b: make(B), c: make(C) };
}

function frame(dst: number, src: number, payload: string): { buf: Uint8Array; offset: number; length: number } {
  const body = hex(payload);
  const buf = new Uint8Array(VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN + body.length);
  buf.set(body, VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN);
  emitEthernet({ dst, src, etherType: EtherType.Ipv4 }, buf, VXLAN_HEADER_LEN);
  return { buf, offset: VXLAN_HEADER_LEN, length: buf.length - VXLAN_HEADER_LEN };
}

describe('Vtep', () => {
  it('carries a frame to the VTEP the forwarding table names, with the VNI', () => {
    const { clock, a, b, c } = setup();
    a.vtep.fdb.set(VNI, MAC_B, B);
    const f = frame(MAC_B, MAC_A, 'c0ffee');
    const sent = toHex(f.buf.subarray(f.offset));
    a.link.transmitFrame(f.buf, f.offset, f.length);
    clock.advance(0);
    expect(b.received.map(toHex)).toEqual([sent]);
    expect(c.received).toEqual([]);
    expect(a.vtep.counters.get('vtep_tx_datagrams')).toBe(1);
    expect(b.vtep.counters.get('vtep_rx_frames')).toBe(1);
  });

  it('floods broadcast frames to every VTEP of the VNI and drops unknown unicast without a flood list', () => {
    const { clock, a, b, c } = setup();
    const f = frame(MAC_BROADCAST, MAC_A, '01');
    a.link.transmitFrame(f.buf, f.offset, f.length);
    expect(a.vtep.counters.get('vtep_tx_dropped_no_route')).toBe(1);
    a.vtep.fdb.addFlood(VNI, B);
    a.vtep.fdb.addFlood(VNI, C);
    a.vtep.fdb.addFlood(VNI, C);
    const g = frame(MAC_BROADCAST, MAC_A, '02');
    a.link.transmitFrame(g.buf, g.offset, g.length);
    clock.advance(0);
    expect(b.received.length).toBe(1);
    expect(c.received.length).toBe(1);
  });

  it('counts and drops malformed datagrams and frames for unknown VNIs, and keeps working', () => {
    const { clock, net, b } = setup();
    const rogue = net.open({ address: '198.18.1.9', port: 4789 });
    rogue.send(hex('0800'), B); // truncated VXLAN header
    rogue.send(hex('00000000 00100000' + '00'.repeat(14)), B); // I flag clear
    rogue.send(hex('08000000 00200000' + '00'.repeat(14)), B); // VNI 8192: not attached
    rogue.send(hex('08000000 00100000 0000'), B); // runt inner frame
    const ok = new Uint8Array(VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN);
    ok.set(hex('08000000 00100000'));
    writeMac(ok, VXLAN_HEADER_LEN, MAC_B);
    rogue.send(ok, B);
    clock.advance(0);
    expect(b.vtep.counters.snapshot()).toMatchObject({
      vtep_rx_datagrams: 5,
      vtep_rx_dropped_truncated: 1,
      vtep_rx_dropped_bad_flags: 1,
      vtep_rx_dropped_unknown_vni: 1,
      vtep_rx_dropped_runt_frame: 1,
      vtep_rx_frames: 1,
    });
    expect(b.received.length).toBe(1);
  });

  it('passes the end of each run of datagrams on to its receivers, when the socket marks runs', () => {
    const events: string[] = [];
    let deliver: (bytes: Uint8Array) => void = () => {};
    let endBatch: () => void = () => {};
    const socket: DatagramSocket = {
      local: () => B,
      send: () => {},
      onMessage: (h) => (deliver = (bytes) => h(bytes, A)),
      onBatchEnd: (h) => (endBatch = h),
      close: () => Promise.resolve(),
    };
    const vtep = new Vtep({ socket, fdb: new ForwardingTable() });
    vtep.attachWith(VNI, () => ({ receiveFrame: () => events.push('frame'), receiveBatchEnd: () => events.push('end') }));
    const f = frame(MAC_B, MAC_A, 'c0ffee');
    emitVxlan({ vni: VNI }, f.buf, 0);
    deliver(f.buf);
    deliver(f.buf);
    endBatch();
    deliver(f.buf);
    endBatch();
    expect(events).toEqual(['frame', 'frame', 'end', 'frame', 'end']);
    expect(vtep.counters.get('vtep_rx_batches')).toBe(2);
  });

  it('tells its links whether runs are marked: the in-memory network delivers one datagram at a time', () => {
    const { a } = setup();
    expect(a.link.batchedReceive).toBe(false);
    const socket: DatagramSocket = { local: () => C, send: () => {}, onMessage: () => {}, onBatchEnd: () => {}, close: () => Promise.resolve() };
    expect(new Vtep({ socket, fdb: new ForwardingTable() }).attach(VNI, { receiveFrame: () => {} }).batchedReceive).toBe(true);
  });

  it('refuses a second receiver for the same VNI and out-of-range VNIs', () => {
    const { a } = setup();
    expect(() => a.vtep.attach(VNI, { receiveFrame: () => {} })).toThrow(/already attached/);
    expect(() => a.vtep.attach(1 << 24, { receiveFrame: () => {} })).toThrow(/out of range/);
  });
});
