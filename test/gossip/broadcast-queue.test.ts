import { describe, expect, it } from 'vitest';
import { BroadcastQueue, type Broadcast } from '../../src/gossip/broadcast-queue.js';

function msg(tag: number, len: number): Uint8Array {
  return new Uint8Array(len).fill(tag);
}

function tags(out: Uint8Array[]): number[] {
  return out.map((m) => m[0]!);
}

describe('BroadcastQueue (ML queue.go TransmitLimitedQueue)', () => {
  it('sends fresher messages first, the largest first within a tier, then the newest', () => {
    const q = new BroadcastQueue({ retransmitMult: 1, numNodes: () => 10 }); // limit 2
    q.queue({ message: msg(1, 10) });
    q.queue({ message: msg(2, 30) });
    q.queue({ message: msg(3, 10) });
    expect(tags(q.getBroadcasts(2, 1000))).toEqual([2, 3, 1]);
    q.queue({ message: msg(4, 5) });
    // 4 has never been sent: it leads; the others follow in their second (last) transmission.
    expect(tags(q.getBroadcasts(2, 1000))).toEqual([4, 2, 3, 1]);
    expect(q.length).toBe(1);
    expect(tags(q.getBroadcasts(2, 1000))).toEqual([4]);
    expect(q.length).toBe(0);
    expect(q.getBroadcasts(2, 1000)).toEqual([]);
  });

  it('retires a message after retransmitMult × ceil(log10(N+1)) sends and says so', () => {
    let n = 99;
    let finished = 0;
    const q = new BroadcastQueue({ retransmitMult: 3, numNodes: () => n }); // limit 6
    q.queue({ message: msg(1, 4), finished: () => finished++ });
    let sends = 0;
    for (let i = 0; i < 20 && q.length > 0; i++) sends += q.getBroadcasts(0, 100).length;
    expect(sends).toBe(6);
    expect(finished).toBe(1);
    n = 9; // limit 3
    q.queue({ message: msg(2, 4) });
    sends = 0;
    for (let i = 0; i < 20 && q.length > 0; i++) sends += q.getBroadcasts(0, 100).length;
    expect(sends).toBe(3);
  });

  it('fills up to the byte budget counting the per-message overhead, skipping what does not fit', () => {
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => 10 });
    q.queue({ message: msg(1, 50) });
    q.queue({ message: msg(2, 40) });
    q.queue({ message: msg(3, 8) });
    // budget 60 with 2 per message: 50+2 = 52 leaves 8, minus 2 → 6: neither 40 nor 8 fit
    expect(tags(q.getBroadcasts(2, 60))).toEqual([1]);
    // next call: 2 and 3 are still untransmitted, 1 is in tier 1
    expect(tags(q.getBroadcasts(2, 60))).toEqual([2, 3]);
    expect(q.getBroadcasts(2, 2)).toEqual([]);
  });

  it('takes at most maxMessages', () => {
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => 10 });
    for (let i = 1; i <= 5; i++) q.queue({ message: msg(i, 1) });
    expect(tags(q.getBroadcasts(2, 1400, 2))).toEqual([5, 4]);
    expect(tags(q.getBroadcasts(2, 1400, 2))).toEqual([3, 2]);
  });

  it('a named broadcast invalidates the queued one of the same name', () => {
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => 10 });
    const done: string[] = [];
    const b = (tag: number, name: string): Broadcast => ({ message: msg(tag, 4), name, finished: () => done.push(`${name}${tag}`) });
    q.queue(b(1, 'x'));
    q.queue(b(2, 'y'));
    q.queue(b(3, 'x'));
    expect(done).toEqual(['x1']);
    expect(q.length).toBe(2);
    expect(tags(q.getBroadcasts(0, 100)).sort()).toEqual([2, 3]);
    q.queue({ message: msg(9, 4) });
    q.queue({ message: msg(9, 4) });
    expect(q.length).toBe(4); // unnamed messages never invalidate each other
  });

  it('is bounded: past maxQueued the stalest messages are pruned and counted', () => {
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => 10, maxQueued: 3 });
    let finished = 0;
    for (let i = 1; i <= 5; i++) q.queue({ message: msg(i, 4), finished: () => finished++ });
    expect(q.length).toBe(3);
    expect(q.pruned).toBe(2);
    expect(finished).toBe(2);
    expect(tags(q.getBroadcasts(0, 100))).toEqual([5, 4, 3]);
  });

  it('reset() finishes everything', () => {
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => 10 });
    let finished = 0;
    q.queue({ message: msg(1, 4), finished: () => finished++, name: 'a' });
    q.queue({ message: msg(2, 4), finished: () => finished++ });
    q.reset();
    expect(finished).toBe(2);
    expect(q.length).toBe(0);
    q.queue({ message: msg(3, 4), name: 'a' });
    expect(q.length).toBe(1);
  });
});
