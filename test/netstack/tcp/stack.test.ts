/** The stack's demultiplexing: listeners, segments to nothing, checksums, backlog, ports (RFC 9293 §3.10.7.1–2). */
import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../../src/lib/rng.js';
import { TcpStack } from '../../../src/netstack/tcp/stack.js';
import { TcpFlags, emitTcp, parseTcp, tcpHeaderLen, type TcpRepr } from '../../../src/wire/tcp.js';
import { A_ADDR, B_ADDR, PERFECT_LINK, SimNet, randomBytes } from './sim-net.js';

const { SYN, ACK, RST, FIN } = TcpFlags;
const US = 0x64400001;
const PEER = 0x64400002;

function setup(options: { backlog?: number; ephemeralPorts?: readonly [number, number] } = {}): { stack: TcpStack; out: TcpRepr[]; send: (repr: Partial<TcpRepr>, corrupt?: boolean) => void } {
  const out: TcpRepr[] = [];
  const stack = new TcpStack({
    rng: new SeededRng(1),
    localAddress: US,
    ...(options.ephemeralPorts !== undefined ? { ephemeralPorts: options.ephemeralPorts } : {}),
    transmit: (src, dst, len, write) => {
      const buf = new Uint8Array(len + 34);
      write(buf, 34);
      const r = parseTcp(buf.subarray(34), src, dst);
      if (!r.ok) throw new Error(`Stack emitted a bad segment: ${r.error}`);
      out.push(r.value.repr);
    },
  });
  const send = (partial: Partial<TcpRepr>, corrupt = false): void => {
    const repr: TcpRepr = { srcPort: 40000, dstPort: 80, seq: 100, ack: 0, flags: SYN, window: 1000, urgent: 0, ...partial };
    const buf = new Uint8Array(tcpHeaderLen(repr));
    emitTcp(repr, buf, 0, 0, PEER, US);
    if (corrupt) buf[4] = buf[4]! ^ 0xff;
    stack.receive(PEER, US, buf, 0);
  };
  return { stack, out, send };
}

describe('TcpStack', () => {
  it('answers a SYN to a listener with a SYN-ACK and hands over the connection once established', () => {
    const { stack, out, send } = setup();
    const accepted: number[] = [];
    stack.listen(80, (conn) => accepted.push(conn.tuple.remotePort));
    send({});
    expect(out.map((r) => r.flags)).toEqual([SYN | ACK]);
    expect(out[0]!.ack).toBe(101);
    send({ flags: ACK, seq: 101, ack: (out[0]!.seq + 1) >>> 0 });
    expect(accepted).toEqual([40000]);
    expect(stack.connectionCount).toBe(1);
  });

  it('resets a SYN to a closed port with RST-ACK acknowledging it', () => {
    const { stack, out, send } = setup();
    send({ flags: SYN, seq: 100 });
    expect(out).toMatchObject([{ flags: RST | ACK, seq: 0, ack: 101, srcPort: 80, dstPort: 40000 }]);
    expect(stack.counters.get('tcp_rx_no_socket')).toBe(1);
  });

  it('resets an ACK to nothing with SEQ = SEG.ACK', () => {
    const { out, send } = setup();
    send({ flags: ACK | FIN, seq: 100, ack: 777 });
    expect(out).toMatchObject([{ flags: RST, seq: 777 }]);
  });

  it('resets an ACK to a listener, ignores a RST anywhere', () => {
    const { stack, out, send } = setup();
    stack.listen(80, () => undefined);
    send({ flags: ACK, ack: 5 });
    send({ flags: RST, seq: 9 });
    send({ flags: RST, dstPort: 81 });
    expect(out.map((r) => r.flags)).toEqual([RST]);
  });

  it('drops and counts a segment with a bad checksum, without answering', () => {
    const { stack, out, send } = setup();
    stack.listen(80, () => undefined);
    send({}, true);
    expect(out).toEqual([]);
    expect(stack.counters.get('tcp_rx_dropped_checksum')).toBe(1);
  });

  it('drops SYNs beyond the backlog (the peer will retry) and counts them', () => {
    const { stack, out, send } = setup();
    stack.listen(80, () => undefined, { backlog: 1 });
    send({ srcPort: 40000 });
    send({ srcPort: 40001 });
    expect(out.length).toBe(1);
    expect(stack.counters.get('tcp_listen_drops')).toBe(1);
  });

  it('refuses a second listener on the same port', () => {
    const { stack } = setup();
    stack.listen(80, () => undefined);
    expect(() => stack.listen(80, () => undefined)).toThrow(/already listened/);
  });

  it('picks distinct ephemeral ports and refuses when they run out', () => {
    const { stack } = setup({ ephemeralPorts: [50000, 50002] });
    const ports = [0, 1, 2].map(() => stack.connect({ remoteAddress: PEER, remotePort: 80 }, 0).tuple.localPort);
    expect(new Set(ports).size).toBe(3);
    expect(ports.every((p) => p >= 50000 && p <= 50002)).toBe(true);
    expect(() => stack.connect({ remoteAddress: PEER, remotePort: 80 }, 0)).toThrow(/ephemeral port/);
  });

  it('gives different connections unpredictable, different ISNs (RFC 6528)', () => {
    const { stack, out, send } = setup();
    stack.listen(80, () => undefined);
    send({ srcPort: 40000 });
    send({ srcPort: 40001 });
    expect(out[0]!.seq).not.toBe(out[1]!.seq);
  });
});

describe('TcpDriver with batchedReceive (a link that delivers runs of segments)', () => {
  it('answers a run once at its end: one ACK per run of in-order data, not one per two segments', () => {
    const run = (batchMs: number | undefined): { dataSegments: number; acks: number; received: number } => {
      const net = new SimNet(1, PERFECT_LINK, {}, {}, batchMs === undefined ? {} : { batchMs });
      net.capture = true;
      const size = 1 << 20;
      let received = 0;
      net.b.stack.listen(80, (conn) => {
        conn.events = { onData: () => (received += conn.read().length) };
      });
      const conn = net.a.stack.connect({ remoteAddress: B_ADDR, remotePort: 80 }, net.clock.now());
      const data = randomBytes(1, size);
      let off = 0;
      const pump = (): void => {
        while (off < size) {
          const n = conn.send(data.subarray(off, off + 65536));
          if (n === 0) return;
          off += n;
        }
      };
      conn.events = { onConnect: pump, onDrain: pump };
      expect(net.run(() => received === size)).toBe(true);
      const fromA = net.captured.filter((c) => c.src === A_ADDR);
      const fromB = net.captured.filter((c) => c.src === B_ADDR);
      const payloadOf = (c: { bytes: Uint8Array }): number => c.bytes.length - ((c.bytes[12]! >> 4) * 4);
      return { dataSegments: fromA.filter((c) => payloadOf(c) > 0).length, acks: fromB.length, received };
    };
    const perSegment = run(undefined);
    const batched = run(1);
    expect(batched.received).toBe(perSegment.received);
    // RFC 5681's every-second-segment rule without runs; far fewer with them.
    expect(perSegment.acks).toBeGreaterThanOrEqual(Math.floor(perSegment.dataSegments / 2) - 1);
    expect(batched.acks * 8).toBeLessThan(batched.dataSegments);
  });
});
