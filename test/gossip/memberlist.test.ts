/**
 * What a member and its peers observe of one Memberlist: joining, leaving, refuting, metadata,
 * application messages and state, encryption, the probe paths, and seed parsing.
 */
import { describe, expect, it } from 'vitest';
import { GossipJoinError, InvalidArgumentError } from '../../src/lib/errors.js';
import { LAN_CONFIG, Memberlist, parseSeed } from '../../src/gossip/memberlist.js';
import { encodeMessage } from '../../src/wire/memberlist/codec.js';
import { Keyring } from '../../src/wire/memberlist/crypto.js';
import { Sim, type SimOptions } from './sim.js';

const KEY_A = Keyring.fromBase64('T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=');
const KEY_B = Keyring.fromBase64('HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8=');

async function cluster(n: number, seed = 1, options: Omit<SimOptions, 'seed'> = {}): Promise<Sim> {
  const sim = new Sim({ seed, ...options });
  await sim.startCluster(n);
  const t = await sim.run(30_000, () => sim.converged());
  expect(t, 'cluster converged').toBeDefined();
  return sim;
}

describe('join', () => {
  it('three nodes joining one seed all see all alive, and no timer outlives shutdown', async () => {
    const sim = await cluster(3);
    for (const n of sim.nodes) expect(n.ml.members().map((m) => m.name).sort()).toEqual(['n0', 'n1', 'n2']);
    expect(sim.nodes[1]!.ml.member('n0')?.address).toEqual(Sim.address(0));
    sim.shutdown();
    sim.clock.advance(1000);
    expect(sim.clock.pendingTimers).toBe(0);
  });

  it('rejects with GossipJoinError when no seed answers, and counts the seeds that did', async () => {
    const sim = new Sim({ seed: 2 });
    sim.add(0);
    const a = sim.add(1);
    const nobody = a.ml.join([Sim.address(9)]);
    const mixed = a.ml.join([Sim.address(9), Sim.address(0)]);
    const settled = Promise.allSettled([nobody, mixed]);
    await sim.run(20_000, () => false, 500);
    const [r1, r2] = await settled;
    expect(r1.status === 'rejected' && r1.reason).toBeInstanceOf(GossipJoinError);
    expect(r2).toEqual({ status: 'fulfilled', value: 1 });
    sim.shutdown();
  });

  it('a node that sees incompatible protocol versions refuses the merge', async () => {
    const sim = new Sim({ seed: 3 });
    sim.add(0);
    const odd = sim.add(1, { config: { vsn: [1, 5, 2, 0, 0, 0] } }); // delegate [0,0,0], as serf refuses (spec §9)
    const join = odd.ml.join([Sim.address(0)]);
    const settled = Promise.allSettled([join]);
    await sim.run(5_000, () => false);
    const [r] = await settled;
    expect(r!.status).toBe('rejected');
    expect(sim.nodes[0]!.ml.counters.get('gossip_pushpull_incompatible')).toBe(1);
    expect(sim.nodes[0]!.ml.member('n1')).toBeUndefined();
    sim.shutdown();
  });
});

describe('leave', () => {
  it('a graceful leave shows as left everywhere, never as failed', async () => {
    const sim = await cluster(8, 4);
    const leaver = sim.nodes[3]!;
    const left = leaver.ml.leave(10_000);
    const outcome = Promise.allSettled([left]);
    const others = sim.nodes.filter((n) => n !== leaver);
    expect(await sim.run(10_000, () => others.every((n) => n.ml.member(leaver.name)?.state === 'left'))).toBeDefined();
    await sim.run(2_000, () => false);
    expect((await outcome)[0]!.status).toBe('fulfilled');
    leaver.ml.shutdown();
    await sim.run(60_000, () => false, 1000);
    for (const n of others) {
      expect(n.events.filter((e) => e.member.name === leaver.name && e.type !== 'join').map((e) => e.type)).toEqual(['leave']);
      // Left rows are reaped after GossipToTheDeadTime, like dead ones.
      expect(n.ml.member(leaver.name)).toBeUndefined();
    }
    sim.shutdown();
  });

  it('pushPullAll hands our state to every live member over TCP, even with UDP cut (how a leaving agent delivers its tombstones)', async () => {
    const sim = new Sim({ seed: 6 });
    const states: string[] = [];
    const nodes = [0, 1, 2, 3].map((i) =>
      Memberlist.create({
        name: `p${i}`,
        transport: sim.net.bind(Sim.address(i)),
        clock: sim.clock,
        rng: sim.rng.fork(),
        delegate: { localState: () => Buffer.from(`state-of-p${i}`), mergeRemoteState: (st) => states.push(`p${i}<-${Buffer.from(st).toString()}`) },
      }),
    );
    await Promise.all([...nodes.slice(1).map((n) => n.join([Sim.address(0)])), sim.run(2000, () => false)]);
    expect(await sim.run(30_000, () => nodes.every((n) => n.members().length === 4))).toBeDefined();
    states.length = 0;
    for (let i = 1; i < 4; i++) sim.net.cut(Sim.address(0), Sim.address(i), { udpOnly: true });
    const answered = nodes[0]!.pushPullAll(5_000);
    await sim.run(5_000, () => false, 100);
    expect(await answered).toBe(3);
    // (A periodic push/pull may add a copy; each member must have had ours.)
    expect(new Set(states.filter((st) => st.endsWith('<-state-of-p0')))).toEqual(new Set(['p1<-state-of-p0', 'p2<-state-of-p0', 'p3<-state-of-p0']));
    for (const n of nodes) n.shutdown();
  });

  it('a leave with nobody else alive resolves at once', async () => {
    const sim = new Sim({ seed: 5 });
    const solo = sim.add(0);
    await solo.ml.leave(1000);
    expect(solo.ml.localMember.state).toBe('left');
    sim.shutdown();
  });
});

describe('refutation', () => {
  it('a member accused of being suspect or dead refutes with a higher incarnation', async () => {
    const sim = await cluster(5, 6);
    const target = sim.nodes[2]!;
    const inc = target.ml.localMember.incarnation;
    const accuse = (type: 'suspect' | 'dead', incarnation: number): void =>
      sim.net.injectPacket(Sim.address(0), target.address, encodeMessage({ type, body: { incarnation, node: target.name, from: 'n0' } }));
    accuse('suspect', inc);
    await sim.run(1000, () => target.ml.localMember.incarnation !== inc, 1);
    expect(target.ml.localMember.incarnation).toBe(inc + 1);
    // Lifeguard: being accused costs a point of health (successful probes earn it back).
    expect(target.ml.healthScore).toBe(1);
    accuse('dead', inc + 5);
    await sim.run(1000, () => false, 10);
    expect(target.ml.localMember.incarnation).toBe(inc + 6);
    expect(target.ml.counters.get('gossip_refutations')).toBe(2);
    // The others learn the new incarnation and never see it as anything but alive.
    expect(await sim.run(10_000, () => sim.nodes.every((n) => n.ml.member(target.name)?.incarnation === inc + 6))).toBeDefined();
    for (const n of sim.nodes) expect(n.events.filter((e) => e.member.name === target.name && e.type !== 'join')).toEqual([]);
    sim.shutdown();
  });

  it('a node restarted with a lower incarnation refutes the death others remember', async () => {
    const sim = await cluster(5, 7);
    const old = sim.nodes[4]!;
    // Bump its incarnation well past what a fresh start will use, then kill it.
    sim.net.injectPacket(Sim.address(0), old.address, encodeMessage({ type: 'suspect', body: { incarnation: 7, node: old.name, from: 'n0' } }));
    await sim.run(3000, () => false);
    const before = old.ml.localMember.incarnation;
    expect(before).toBe(8);
    old.ml.shutdown();
    const others = sim.nodes.filter((n) => n !== old);
    expect(await sim.run(60_000, () => others.every((n) => n.ml.member(old.name)?.state === 'dead'))).toBeDefined();
    // Same name, same address, incarnation 1: the push/pull tells it it is dead at 8.
    const reborn = sim.add(4);
    await Promise.all([reborn.ml.join([Sim.address(0)]), sim.run(2000, () => false)]);
    expect(await sim.run(20_000, () => others.every((n) => n.ml.member(old.name)?.state === 'alive'))).toBeDefined();
    expect(reborn.ml.localMember.incarnation).toBeGreaterThan(before);
    sim.shutdown();
  });
});

describe('delegate', () => {
  it('metadata reaches everyone, and an update shows as an update event', async () => {
    const sim = new Sim({ seed: 8 });
    let meta = Uint8Array.of(0xff, 0x80);
    const make = (i: number) =>
      Memberlist.create({
        name: `m${i}`,
        transport: sim.net.bind(Sim.address(i)),
        clock: sim.clock,
        rng: sim.rng.fork(),
        delegate: i === 0 ? { nodeMeta: () => meta } : { notifyEvent: (e) => events.push(`${e.type}:${e.member.name}:${[...e.member.meta].join(',')}`) },
      });
    const events: string[] = [];
    const a = make(0);
    const b = make(1);
    await Promise.all([b.join([Sim.address(0)]), sim.run(1000, () => false)]);
    expect([...b.member('m0')!.meta]).toEqual([0xff, 0x80]);
    meta = Uint8Array.of(0xff, 0x81, 0xa1, 0x61, 0xa1, 0x62);
    a.updateNode();
    await sim.run(3000, () => false);
    expect(events).toContain('update:m0:255,129,161,97,161,98');
    a.shutdown();
    b.shutdown();
  });

  it('broadcasts, best-effort and reliable messages, and push/pull state reach the application', async () => {
    const sim = new Sim({ seed: 9 });
    const states: string[] = [];
    const mk = (i: number, got: string[]) =>
      Memberlist.create({
        name: `d${i}`,
        transport: sim.net.bind(Sim.address(i)),
        clock: sim.clock,
        rng: sim.rng.fork(),
        delegate: {
          notifyMsg: (m) => got.push(Buffer.from(m).toString()),
          localState: (join) => Buffer.from(`state-of-d${i}${join ? '-join' : ''}`),
          mergeRemoteState: (s, join) => states.push(`d${i}<-${Buffer.from(s).toString()}${join ? ' (join)' : ''}`),
        },
      });
    const got: string[][] = [[], [], [], []];
    const nodes = got.map((g, i) => mk(i, g));
    await Promise.all([...nodes.slice(1).map((n) => n.join([Sim.address(0)])), sim.run(2000, () => false)]);
    expect(states).toContain('d0<-state-of-d1-join (join)');
    expect(states).toContain('d1<-state-of-d0-join (join)');
    nodes[2]!.queueBroadcast(Buffer.from('hello all'));
    nodes[1]!.sendBestEffort(nodes[1]!.member('d3')!, Buffer.from('psst'));
    await Promise.all([nodes[3]!.sendReliable(Sim.address(0), Buffer.from('for sure')), sim.run(2000, () => false)]);
    await sim.run(3000, () => false);
    expect(got[0]).toEqual(expect.arrayContaining(['hello all', 'for sure']));
    expect(got[1]).toContain('hello all');
    expect(got[3]).toEqual(expect.arrayContaining(['hello all', 'psst']));
    expect(got[2]).toEqual([]); // never to ourselves
    expect(nodes[2]!.queuedBroadcasts.user).toBe(0); // sent its RetransmitMult × log10(N+1) times, then dropped
    for (const n of nodes) n.shutdown();
  });
});

describe('probe paths', () => {
  it('a broken direct link is bridged by indirect probes: nobody is suspected', async () => {
    const sim = await cluster(6, 10);
    const [a, b] = [sim.nodes[1]!, sim.nodes[2]!];
    sim.net.cut(a.address, b.address);
    await sim.run(60_000, () => false, 1000);
    for (const n of sim.nodes) expect(n.events.filter((e) => e.type === 'suspect' || e.type === 'dead')).toEqual([]);
    expect(sim.converged()).toBe(true);
    sim.shutdown();
  });

  it('with UDP cut and nobody to relay, the TCP ping keeps the member alive', async () => {
    const sim = await cluster(2, 11);
    const [a, b] = sim.nodes as [(typeof sim.nodes)[0], (typeof sim.nodes)[0]];
    sim.net.cut(a.address, b.address, { udpOnly: true });
    await sim.run(30_000, () => false, 1000);
    expect(a.ml.member(b.name)?.state).toBe('alive');
    expect(b.ml.member(a.name)?.state).toBe('alive');
    expect(a.ml.counters.get('gossip_probes_failed')).toBe(0);
    sim.shutdown();
  });

  it('the same cut with TCP pings disabled ends in suspicion', async () => {
    const sim = await cluster(2, 12, { config: { disableTcpPings: true } });
    const [a, b] = sim.nodes as [(typeof sim.nodes)[0], (typeof sim.nodes)[0]];
    sim.net.cut(a.address, b.address, { udpOnly: true });
    await sim.run(5_000, () => false, 1000);
    expect(a.ml.counters.get('gossip_probes_failed')).toBeGreaterThan(0);
    expect(a.events.some((e) => e.type === 'suspect' && e.member.name === b.name)).toBe(true);
    sim.shutdown();
  });
});

describe('encryption', () => {
  it('a cluster sharing a key converges; a node with another key is refused and counted', async () => {
    const sim = await cluster(4, 13, { keyring: KEY_A });
    const stranger = sim.add(9, { keyring: KEY_B });
    const join = Promise.allSettled([stranger.ml.join([Sim.address(0)])]);
    await sim.run(15_000, () => false, 500);
    expect((await join)[0]!.status).toBe('rejected');
    expect(sim.nodes[0]!.ml.counters.get('gossip_rx_dropped_decrypt_failed')).toBeGreaterThan(0);
    expect(sim.nodes[0]!.ml.member(stranger.name)).toBeUndefined();
    sim.shutdown();
  });

  it('a node without the key is refused: its plaintext stream is counted as not encrypted', async () => {
    const sim = new Sim({ seed: 14 });
    const secure = sim.add(0, { keyring: KEY_A });
    const plain = sim.add(1);
    const join = Promise.allSettled([plain.ml.join([Sim.address(0)])]);
    await sim.run(15_000, () => false, 500);
    expect((await join)[0]!.status).toBe('rejected');
    expect(secure.ml.counters.get('gossip_rx_dropped_not_encrypted')).toBe(1);
    expect(secure.ml.members().map((m) => m.name)).toEqual(['n0']);
    sim.shutdown();
  });
});

describe('parseSeed', () => {
  it.each([
    ['127.0.0.1:7946', { host: '127.0.0.1', port: 7946 }],
    ['127.0.0.1', { host: '127.0.0.1', port: 7000 }],
    ['s1/127.0.0.1:7947', { host: '127.0.0.1', port: 7947 }],
    ['[::1]:7946', { host: '::1', port: 7946 }],
    ['[::1]', { host: '::1', port: 7000 }],
    ['::1', { host: '::1', port: 7000 }],
  ])('%s', (text, want) => {
    expect(parseSeed(text, 7000)).toEqual(want);
  });

  it.each(['/127.0.0.1', 'serf.example:7946', '127.0.0.1:x', '127.0.0.1:70000', '127.0.0.1:0'])('refuses %j', (text) => {
    expect(() => parseSeed(text, 7000)).toThrow(InvalidArgumentError);
  });
});

it('LAN defaults are memberlist\'s (spec §13)', () => {
  expect(LAN_CONFIG).toMatchObject({
    probeIntervalMs: 1000,
    probeTimeoutMs: 500,
    gossipIntervalMs: 200,
    gossipNodes: 3,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    retransmitMult: 4,
    pushPullIntervalMs: 30_000,
    indirectChecks: 3,
    awarenessMaxMultiplier: 8,
    gossipToTheDeadTimeMs: 30_000,
    tcpTimeoutMs: 10_000,
    udpBufferSize: 1400,
    vsn: [1, 5, 2, 2, 5, 5],
  });
});
