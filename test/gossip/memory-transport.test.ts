import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';
import { MemoryNetwork } from '../../src/gossip/memory-transport.js';
import type { Packet, Stream } from '../../src/gossip/transport.js';

const A = { host: '198.18.0.1', port: 7946 };
const B = { host: '198.18.0.2', port: 7946 };
const C = { host: '198.18.0.3', port: 7946 };

function setup(options: { lossRate?: number } = {}) {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock, rng: new SeededRng(7), ...options });
  return { clock, net };
}

function collect(t: { setHandlers(h: { onPacket(p: Packet): void; onStream(s: Stream): void }): void }, onStream: (s: Stream) => void = () => {}) {
  const packets: Packet[] = [];
  t.setHandlers({ onPacket: (p) => packets.push(p), onStream });
  return packets;
}

function recorder(s: Stream) {
  const log: string[] = [];
  s.setHandlers({
    onData: (c) => log.push(`data:${Buffer.from(c).toString()}`),
    onEnd: () => log.push('end'),
    onClose: (e) => log.push(e ? `close:${e.message}` : 'close'),
  });
  return log;
}

describe('MemoryNetwork packets', () => {
  it('delivers after the one-way delay with source and receive time', () => {
    const { clock, net } = setup();
    const a = net.bind(A);
    const b = net.bind(B);
    collect(a);
    const got = collect(b);
    a.sendPacket(B, Uint8Array.of(1, 2, 3));
    expect(got).toHaveLength(0);
    clock.advance(5);
    expect(got).toHaveLength(1);
    expect(got[0]!.from).toEqual(A);
    expect([...got[0]!.buf]).toEqual([1, 2, 3]);
    expect(got[0]!.receivedAt).toBeGreaterThanOrEqual(1);
    expect(got[0]!.receivedAt).toBeLessThanOrEqual(5);
  });

  it('loses about lossRate of the datagrams', () => {
    const { clock, net } = setup({ lossRate: 0.2 });
    const a = net.bind(A);
    const got = collect(net.bind(B));
    for (let i = 0; i < 5000; i++) a.sendPacket(B, Uint8Array.of(i & 0xff));
    clock.advance(10);
    expect(got.length).toBeGreaterThan(3800);
    expect(got.length).toBeLessThan(4200);
    expect(net.stats.packetsLost + got.length).toBe(5000);
  });

  it('partitions drop packets across groups until healed; closed transports receive nothing', () => {
    const { clock, net } = setup();
    const a = net.bind(A);
    const gotB = collect(net.bind(B));
    const c = net.bind(C);
    const gotC = collect(c);
    net.partition([A], [B]); // C is in the implicit rest group
    a.sendPacket(B, Uint8Array.of(1));
    a.sendPacket(C, Uint8Array.of(1));
    clock.advance(10);
    expect(gotB).toHaveLength(0);
    expect(gotC).toHaveLength(0);
    net.heal();
    a.sendPacket(B, Uint8Array.of(2));
    c.close();
    a.sendPacket(C, Uint8Array.of(2));
    clock.advance(10);
    expect(gotB).toHaveLength(1);
    expect(gotC).toHaveLength(0);
  });
});

describe('MemoryNetwork streams', () => {
  it('carries bytes in order both ways, then end and close', () => {
    const { clock, net } = setup();
    const a = net.bind(A);
    let serverLog: string[] = [];
    collect(net.bind(B), (s) => {
      serverLog = recorder(s);
      s.write(Buffer.from('pong'));
      s.end();
    });
    collect(a);
    const s = a.openStream(B);
    const clientLog = recorder(s);
    for (const w of ['a', 'b', 'c', 'd']) s.write(Buffer.from(w));
    s.end();
    clock.advance(100);
    expect(serverLog).toEqual(['data:a', 'data:b', 'data:c', 'data:d', 'end']);
    expect(clientLog).toEqual(['data:pong', 'end']);
    s.destroy();
    clock.advance(100);
    expect(clientLog.at(-1)).toBe('close');
    expect(serverLog.at(-1)).toBe('close');
  });

  it('refuses a connect to an address nobody binds', () => {
    const { clock, net } = setup();
    const s = net.bind(A).openStream(B);
    const log = recorder(s);
    clock.advance(20);
    expect(log).toEqual(['close:Connection refused: 198.18.0.2:7946']);
  });

  it('a connect across a partition never completes; the peer dying resets an open stream', () => {
    const { clock, net } = setup();
    const a = net.bind(A);
    const b = net.bind(B);
    let accepted = 0;
    collect(b, (s) => {
      accepted++;
      recorder(s);
    });
    net.partition([A], [B]);
    const log = recorder(a.openStream(B));
    clock.advance(10_000);
    expect(log).toEqual([]);
    expect(accepted).toBe(0);
    net.heal();
    const s2 = a.openStream(B);
    const log2 = recorder(s2);
    clock.advance(20);
    expect(accepted).toBe(1);
    b.close();
    clock.advance(20);
    expect(log2).toEqual(['close:Connection reset by peer']);
  });
});
