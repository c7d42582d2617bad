/** The node:dgram adapter on loopback: datagrams arrive, and every run of them ends with onBatchEnd. */
import { describe, expect, it } from 'vitest';
import { openUdpSocket } from '../../src/overlay/node-udp.js';

describe('openUdpSocket', () => {
  it('delivers datagrams sent to an IPv4 literal and ends every run of them with onBatchEnd', async () => {
    const rx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    const tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    try {
      const events: string[] = [];
      rx.onMessage((bytes, from) => events.push(`${Buffer.from(bytes).toString()} from ${from.port === tx.local().port ? 'tx' : 'elsewhere'}`));
      rx.onBatchEnd?.(() => events.push('end'));
      for (const text of ['a', 'b', 'c']) tx.send(Buffer.from(text), rx.local());
      // Loopback UDP may drop under load; wait (bounded) for what arrives.
      for (let i = 0; i < 200 && events.filter((e) => e !== 'end').length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setImmediate(r));
      const messages = events.filter((e) => e !== 'end');
      expect(messages).toEqual(['a from tx', 'b from tx', 'c from tx']);
      // Every run is closed by one 'end', never an 'end' without a datagram before it.
      expect(events[events.length - 1]).toBe('end');
      expect(events[0]).not.toBe('end');
      expect(events.join(' ')).not.toMatch(/end end/);
    } finally {
      await rx.close();
      await tx.close();
    }
  });
});
