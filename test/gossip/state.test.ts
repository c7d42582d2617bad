/**
 * SWIM's state rules (ML state.go:889-1309, spec §11), without a network: what is gossiped and
 * what members see for each piece of news.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { SeededRng } from '../../src/lib/rng.js';
import { Awareness } from '../../src/gossip/awareness.js';
import { type MemberEvent, MembershipState } from '../../src/gossip/state.js';
import type { Alive, Message, PushNodeState } from '../../src/wire/memberlist/messages.js';

const VSN = Uint8Array.of(1, 5, 2, 2, 5, 5);

function alive(node: string, incarnation: number, extra: Partial<Alive> = {}): Alive {
  const i = Number(node.replace(/\D/g, '') || 0);
  return { incarnation, node, addr: Uint8Array.of(198, 18, 0, i), port: 7946, meta: new Uint8Array(0), vsn: VSN, ...extra };
}

function setup(options: { maxNodes?: number } = {}) {
  const clock = new ManualClock();
  const awareness = new Awareness(8);
  const sent: Message[] = [];
  const events: string[] = [];
  const conflicts: string[] = [];
  let full = 0;
  const state = new MembershipState({
    config: {
      name: 'me',
      suspicionMult: 4,
      suspicionMaxTimeoutMult: 6,
      probeIntervalMs: 1000,
      gossipToTheDeadTimeMs: 30_000,
      deadNodeReclaimTimeMs: 0,
      maxNodes: options.maxNodes ?? 100,
    },
    clock,
    rng: new SeededRng(1),
    logger: silentLogger,
    awareness,
    hooks: {
      broadcast: (_node, m) => sent.push(m),
      emit: (e: MemberEvent) => events.push(`${e.type} ${e.member.name}@${e.member.incarnation}`),
      conflict: (a, b) => conflicts.push(`${a.name} ${a.address.host} vs ${b.address.host}`),
      tableFull: () => full++,
    },
  });
  state.aliveNode(alive('me', 1), true);
  sent.length = 0;
  events.length = 0;
  return { clock, awareness, state, sent, events, conflicts, full: () => full };
}

const kinds = (sent: Message[]): string[] =>
  sent.map((m) => ('body' in m && 'node' in m.body ? `${m.type} ${m.body.node}@${'incarnation' in m.body ? m.body.incarnation : ''}` : m.type));

describe('alive', () => {
  it('a new member joins; old news is ignored; new metadata is an update', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n1', 2, { meta: Uint8Array.of(1) }));
    t.state.aliveNode(alive('n1', 3, { meta: Uint8Array.of(1) }));
    expect(t.events).toEqual(['join n1@1', 'update n1@2']);
    expect(kinds(t.sent)).toEqual(['alive n1@1', 'alive n1@2', 'alive n1@3']);
  });

  it('ignores impossible protocol versions and unusable addresses', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1, { vsn: Uint8Array.of(0, 5, 2, 2, 5, 5) }));
    t.state.aliveNode(alive('n2', 1, { vsn: Uint8Array.of(5, 1, 2, 2, 5, 5) }));
    t.state.aliveNode(alive('n3', 1, { addr: Uint8Array.of(1, 2) }));
    expect(t.events).toEqual([]);
    expect(t.state.numNodes).toBe(1);
  });

  it('another address for a live name is a conflict; for a left one it is a move', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n1', 2, { addr: Uint8Array.of(198, 18, 0, 99) }));
    expect(t.conflicts).toEqual(['n1 198.18.0.1 vs 198.18.0.99']);
    expect(t.state.get('n1')?.host).toBe('198.18.0.1');
    t.state.deadNode({ incarnation: 2, node: 'n1', from: 'n1' });
    t.state.aliveNode(alive('n1', 3, { addr: Uint8Array.of(198, 18, 0, 99) }));
    expect(t.state.get('n1')?.host).toBe('198.18.0.99');
    expect(t.events).toEqual(['join n1@1', 'leave n1@2', 'join n1@3']);
  });

  it('a full table refuses new members and says so', () => {
    const t = setup({ maxNodes: 2 });
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n2', 1));
    expect(t.state.numNodes).toBe(2);
    expect(t.full()).toBe(1);
  });
});

describe('suspect and dead', () => {
  it('suspicion runs its timer and ends in death; confirmations are re-gossiped once each', () => {
    const t = setup();
    for (const n of ['n1', 'n2', 'n3', 'n4']) t.state.aliveNode(alive(n, 1));
    t.sent.length = 0;
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' });
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' }); // the accuser cannot confirm
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'n3' }); // a confirmation
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'n3' }); // already counted
    expect(kinds(t.sent)).toEqual(['suspect n1@1', 'suspect n1@1']);
    expect(t.state.suspicion('n1')?.confirmations).toBe(1);
    // 5 nodes: k = 2, min 4 s, max 24 s; one confirmation: 24 − ln2/ln3 × 20 s = 11.381 s.
    t.clock.advance(11_380);
    expect(t.state.get('n1')?.state).toBe('suspect');
    t.clock.advance(1);
    expect(t.state.get('n1')?.state).toBe('dead');
    expect(t.events.slice(-2)).toEqual(['suspect n1@1', 'dead n1@1']);
    expect(kinds(t.sent).at(-1)).toBe('dead n1@1');
  });

  it('with 3 nodes nobody can confirm: death comes at the min, 4 s (spec §12.2, as serf showed)', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n2', 1));
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'me' });
    t.clock.advance(3999);
    expect(t.state.get('n1')?.state).toBe('suspect');
    t.clock.advance(1);
    expect(t.state.get('n1')?.state).toBe('dead');
  });

  it('an alive with a higher incarnation clears suspicion for good', () => {
    const t = setup();
    for (const n of ['n1', 'n2', 'n3']) t.state.aliveNode(alive(n, 1));
    t.state.suspectNode({ incarnation: 1, node: 'n1', from: 'n2' });
    t.state.aliveNode(alive('n1', 2));
    t.clock.advance(100_000);
    expect(t.state.get('n1')?.state).toBe('alive');
    expect(t.events.slice(-2)).toEqual(['suspect n1@1', 'alive n1@2']);
    expect(t.clock.pendingTimers).toBe(0);
  });

  it('ignores news about unknown nodes and older incarnations', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 5));
    t.sent.length = 0;
    t.state.suspectNode({ incarnation: 1, node: 'zz', from: 'n1' });
    t.state.suspectNode({ incarnation: 4, node: 'n1', from: 'me' });
    t.state.deadNode({ incarnation: 4, node: 'n1', from: 'me' });
    t.state.deadNode({ incarnation: 9, node: 'zz', from: 'me' });
    expect(t.sent).toEqual([]);
    expect(t.state.get('n1')?.state).toBe('alive');
  });

  it('dead from the node itself is a leave; from anyone else a failure; both only once', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n2', 1));
    t.state.deadNode({ incarnation: 1, node: 'n1', from: 'n1' });
    t.state.deadNode({ incarnation: 1, node: 'n2', from: 'n1' });
    t.state.deadNode({ incarnation: 1, node: 'n2', from: 'n1' });
    expect(t.events.slice(2)).toEqual(['leave n1@1', 'dead n2@1']);
    expect(t.state.get('n1')?.state).toBe('left');
  });
});

describe('refutation (ML state.go:889-913)', () => {
  it('a suspect or dead claim about us is answered with a higher incarnation and costs health', () => {
    const t = setup();
    t.state.suspectNode({ incarnation: 1, node: 'me', from: 'n1' });
    t.state.deadNode({ incarnation: 7, node: 'me', from: 'n1' });
    expect(kinds(t.sent)).toEqual(['alive me@2', 'alive me@8']);
    expect(t.state.self?.state).toBe('alive');
    expect(t.state.self?.incarnation).toBe(8);
    expect(t.awareness.score).toBe(2);
    expect(t.events).toEqual([]);
  });

  it('an alive about us with other metadata at our incarnation is refuted; the same facts are not', () => {
    const t = setup();
    t.state.aliveNode(alive('me', 1));
    expect(t.sent).toEqual([]);
    t.state.aliveNode(alive('me', 1, { meta: Uint8Array.of(9) }));
    t.state.aliveNode(alive('me', 4));
    expect(kinds(t.sent)).toEqual(['alive me@2', 'alive me@5']);
  });

  it('while leaving, our own dead is accepted and our alive no longer taken', () => {
    const t = setup();
    t.state.setLeaving();
    t.state.deadNode({ incarnation: 1, node: 'me', from: 'me' });
    t.state.aliveNode(alive('me', 9));
    expect(kinds(t.sent)).toEqual(['dead me@1']);
    expect(t.state.self?.state).toBe('left');
  });
});

describe('push/pull merge (ML state.go:1283-1309)', () => {
  const row = (name: string, state: number, incarnation = 1): PushNodeState => {
    const a = alive(name, incarnation);
    return { name, addr: a.addr, port: a.port, meta: a.meta, incarnation, state, vsn: VSN };
  };

  it('alive rows join, left rows leave, dead and suspect rows only raise our own suspicion', () => {
    const t = setup();
    t.state.aliveNode(alive('n2', 1));
    t.state.aliveNode(alive('n3', 1));
    t.state.aliveNode(alive('n4', 1));
    t.events.length = 0;
    t.state.mergeState([row('n1', 0), row('n2', 1), row('n3', 2), row('n4', 3), row('n5', 7)]);
    expect(t.events).toEqual(['join n1@1', 'suspect n2@1', 'suspect n3@1', 'leave n4@1']);
    expect(t.state.get('n3')?.state).toBe('suspect');
  });

  it('verifyProtocol names the incompatible node and accepts a compatible cluster', () => {
    const t = setup();
    expect(t.state.verifyProtocol([row('n1', 0)])).toBeUndefined();
    const odd = { ...row('n1', 0), vsn: Uint8Array.of(1, 5, 2, 0, 0, 0) };
    expect(t.state.verifyProtocol([odd])).toBe("Node 'n1' delegate protocol version (0) is incompatible: [2, 0]");
    const noVsn = { ...row('n2', 2), vsn: new Uint8Array(0) };
    expect(t.state.verifyProtocol([noVsn])).toBe("Node 'n2' protocol version (0) is incompatible: [1, 5]");
  });
});

describe('reaping and the buddy system', () => {
  it('dead and left rows older than GossipToTheDeadTime are reaped; ourselves never', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 1));
    t.state.aliveNode(alive('n2', 1));
    t.state.aliveNode(alive('n3', 1));
    t.state.deadNode({ incarnation: 1, node: 'n1', from: 'me' });
    t.state.deadNode({ incarnation: 1, node: 'n2', from: 'n2' });
    t.clock.advance(20_000);
    t.state.deadNode({ incarnation: 1, node: 'n3', from: 'me' });
    t.clock.advance(10_001);
    expect(t.state.resetNodes().sort()).toEqual(['n1', 'n2']);
    expect(t.state.nodes.map((n) => n.name).sort()).toEqual(['me', 'n3']);
  });

  it('a suspect target gets the accusation with its ping; an alive one does not', () => {
    const t = setup();
    t.state.aliveNode(alive('n1', 3));
    t.state.aliveNode(alive('n2', 1));
    expect(t.state.buddySuspect(t.state.get('n1')!)).toBeUndefined();
    t.state.suspectNode({ incarnation: 3, node: 'n1', from: 'n2' });
    expect(t.state.buddySuspect(t.state.get('n1')!)).toEqual({ incarnation: 3, node: 'n1', from: 'me' });
  });
});
