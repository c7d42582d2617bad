/**
 * The node table and SWIM's state rules (ML state.go:889-1309, spec §11): who is alive,
 * suspect, dead or left, at which incarnation; how alive/suspect/dead messages and push/pull
 * rows change that; refutation of claims about ourselves; the buddy system; reaping.
 *
 * This file does no I/O. What it decides to gossip goes out through `broadcast(node, message)`
 * (the caller encodes and queues it, named after the node so newer news replaces older, ML
 * broadcast.go:3-13), and what members see goes out through `emit(event)`.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Rng } from '../lib/rng.js';
import type { Alive, Dead, Message, PushNodeState, Suspect } from '../wire/memberlist/messages.js';
import { NodeState, VSN_LEN } from '../wire/memberlist/messages.js';
import type { Awareness } from './awareness.js';
import { suspicionBounds } from './formulas.js';
import { ipToString } from './ip.js';
import { Suspicion } from './suspicion.js';
import type { GossipAddress } from './transport.js';

/** SWIM's four states (ML state.go:16-23). */
export type MemberStateName = 'alive' | 'suspect' | 'dead' | 'left';

/** A member as the rest of shoal sees it: a snapshot, never mutated after it is handed out. */
export interface Member {
  readonly name: string;
  /** Where it is reached, UDP and TCP (textual IP; IPv4-mapped IPv6 shown as IPv4). */
  readonly address: GossipAddress;
  /** The IP bytes exactly as the member advertised them (4 or 16). */
  readonly addr: Uint8Array;
  /** Delegate metadata (serf: tags, spec §14.1). */
  readonly meta: Uint8Array;
  readonly incarnation: number;
  readonly state: MemberStateName;
  /** Clock time of the last change of `state`. */
  readonly stateChangeAt: number;
  /** [PMin, PMax, PCur, DMin, DMax, DCur]; zeros when the member never said. */
  readonly vsn: readonly number[];
}

/**
 * What members see happen (memberlist's EventDelegate, ML event_delegate.go, plus two it does
 * not report): `join` — new, or back from dead/left; `update` — new metadata; `alive` — a
 * suspect member refuted (shoal's addition); `suspect` — shoal's addition; `dead` — failed;
 * `leave` — left gracefully. memberlist reports both of the last two as NotifyLeave.
 */
export type MemberEventType = 'join' | 'update' | 'alive' | 'suspect' | 'dead' | 'leave';

export interface MemberEvent {
  readonly type: MemberEventType;
  readonly member: Member;
}

/** One row of the table; mutated in place by the rules below. */
export interface NodeRecord {
  readonly name: string;
  addr: Uint8Array;
  host: string;
  port: number;
  meta: Uint8Array;
  incarnation: number;
  state: MemberStateName;
  stateChange: number;
  /** Always 6 entries. */
  vsn: number[];
}

export interface StateConfig {
  readonly name: string;
  readonly suspicionMult: number;
  readonly suspicionMaxTimeoutMult: number;
  readonly probeIntervalMs: number;
  readonly gossipToTheDeadTimeMs: number;
  /** 0: a dead node's name can never move to a new address (memberlist's default). */
  readonly deadNodeReclaimTimeMs: number;
  /** Rows kept at most; alive news about further unknown nodes is dropped. */
  readonly maxNodes: number;
}

export interface StateHooks {
  /** Queue `message` for gossip, named after `node`; `finished` runs when it is done sending. */
  broadcast(node: string, message: Message, finished?: () => void): void;
  emit(event: MemberEvent): void;
  /** A known member's name showed up at another address (serf runs its conflict query then). */
  conflict?(existing: Member, other: Member): void;
  /** A row was refused because the table is full. */
  tableFull?(name: string): void;
  /** We refuted a claim about ourselves. */
  refuted?(accusedIncarnation: number): void;
}

export interface StateOptions {
  readonly config: StateConfig;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly awareness: Awareness;
  readonly hooks: StateHooks;
}

const NO_VSN = [0, 0, 0, 0, 0, 0];

export function memberOf(n: NodeRecord): Member {
  return {
    name: n.name,
    address: { host: n.host, port: n.port },
    addr: n.addr,
    meta: n.meta,
    incarnation: n.incarnation,
    state: n.state,
    stateChangeAt: n.stateChange,
    vsn: [...n.vsn],
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function vsnEqual(a: Uint8Array, b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isDeadOrLeft(n: NodeRecord): boolean {
  return n.state === 'dead' || n.state === 'left';
}

const STATE_NAMES: Readonly<Record<number, MemberStateName>> = {
  [NodeState.alive]: 'alive',
  [NodeState.suspect]: 'suspect',
  [NodeState.dead]: 'dead',
  [NodeState.left]: 'left',
};

export const STATE_VALUES: Readonly<Record<MemberStateName, number>> = NodeState;

export class MembershipState {
  readonly #config: StateConfig;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #log: Logger;
  readonly #awareness: Awareness;
  readonly #hooks: StateHooks;
  readonly #map = new Map<string, NodeRecord>();
  /** The probe order (ML state.go:214-256): new nodes go in at a random place, reset shuffles. */
  #nodes: NodeRecord[] = [];
  readonly #timers = new Map<string, Suspicion>();
  #incarnation = 0;
  #leaving = false;

  constructor(options: StateOptions) {
    this.#config = options.config;
    this.#clock = options.clock;
    this.#rng = options.rng;
    this.#log = options.logger;
    this.#awareness = options.awareness;
    this.#hooks = options.hooks;
  }

  /** The probe list (read-only view). */
  get nodes(): readonly NodeRecord[] {
    return this.#nodes;
  }

  /** memberlist's `estNumNodes`: every row, self and unreaped dead included. */
  get numNodes(): number {
    return this.#nodes.length;
  }

  get(name: string): NodeRecord | undefined {
    return this.#map.get(name);
  }

  get self(): NodeRecord | undefined {
    return this.#map.get(this.#config.name);
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** Marks this node as leaving: our own dead is then not refuted nor our alive re-accepted. */
  setLeaving(): void {
    this.#leaving = true;
  }

  /** The next incarnation for our own alive messages (ML state.go:784-786). */
  nextIncarnation(): number {
    this.#incarnation = (this.#incarnation + 1) >>> 0;
    return this.#incarnation;
  }

  /** The suspicion timer running for `name`, if any (for tests and metrics). */
  suspicion(name: string): Suspicion | undefined {
    return this.#timers.get(name);
  }

  /**
   * Alive news (ML state.go:917-1130). `bootstrap` is our own alive at start or on a metadata
   * update: it is applied, not refuted. `finished` runs when its broadcast is done.
   */
  aliveNode(a: Alive, bootstrap = false, finished?: () => void): void {
    const self = this.#config.name;
    // A Leave() may race with an alive of ours still queued: never rejoin (ML state.go:921-927).
    if (this.#leaving && a.node === self) return;
    if (a.vsn.length >= 3) {
      const [pMin, pMax] = [a.vsn[0]!, a.vsn[1]!];
      if (pMin === 0 || pMax === 0 || pMin > pMax) {
        this.#log.warn({ node: a.node, vsn: [...a.vsn] }, 'Ignoring an alive message with bad protocol versions');
        return;
      }
    }
    const host = ipToString(a.addr);
    if (host === undefined) {
      this.#log.warn({ node: a.node, addrLen: a.addr.length }, 'Ignoring an alive message with a bad address');
      return;
    }

    let state = this.#map.get(a.node);
    let updatesNode = false;
    if (!state) {
      if (this.#nodes.length >= this.#config.maxNodes) {
        this.#hooks.tableFull?.(a.node);
        return;
      }
      // A new node enters as dead, so that becoming alive below is a join (ML state.go:978-1010).
      state = {
        name: a.node,
        addr: a.addr,
        host,
        port: a.port,
        meta: a.meta,
        incarnation: 0,
        state: 'dead',
        stateChange: this.#clock.now(),
        vsn: a.vsn.length >= VSN_LEN ? [...a.vsn.subarray(0, VSN_LEN)] : [...NO_VSN],
      };
      this.#map.set(a.node, state);
      // Insert at a random offset (swap with the end) to keep the failure-detection bound low
      // on average: if every node appended, new nodes would all be probed last (ML state.go:996-1003).
      const n = this.#nodes.length;
      const offset = n === 0 ? 0 : this.#rng.int(n);
      this.#nodes.push(state);
      [this.#nodes[offset], this.#nodes[n]] = [this.#nodes[n]!, this.#nodes[offset]!];
    } else if (state.host !== host || state.port !== a.port) {
      const canReclaim = this.#config.deadNodeReclaimTimeMs > 0 && this.#clock.now() - state.stateChange > this.#config.deadNodeReclaimTimeMs;
      if (state.state === 'left' || (state.state === 'dead' && canReclaim)) {
        this.#log.info({ node: a.node, from: `${state.host}:${state.port}`, to: `${host}:${a.port}` }, 'Updating address of a left or failed node');
        updatesNode = true;
      } else {
        this.#log.error({ node: a.node, mine: `${state.host}:${state.port}`, theirs: `${host}:${a.port}`, state: state.state }, 'Conflicting address');
        this.#hooks.conflict?.(memberOf(state), {
          name: a.node,
          address: { host, port: a.port },
          addr: a.addr,
          meta: a.meta,
          incarnation: a.incarnation,
          state: 'alive',
          stateChangeAt: this.#clock.now(),
          vsn: [...a.vsn],
        });
        return;
      }
    }

    const isLocal = state.name === self;
    // Old news about others is ignored; about ourselves only strictly older news (ML state.go:1041-1049).
    if (a.incarnation <= state.incarnation && !isLocal && !updatesNode) return;
    if (a.incarnation < state.incarnation && isLocal) return;

    this.#cancelSuspicion(a.node);
    const oldState = state.state;
    const oldMeta = state.meta;

    if (!bootstrap && isLocal) {
      // Someone says we are alive with other facts (a restart with the same incarnation but a new
      // config, ML state.go:1061-1072): the same facts are harmless, anything else is refuted.
      if (a.incarnation === state.incarnation && bytesEqual(a.meta, state.meta) && vsnEqual(a.vsn, state.vsn)) return;
      this.#log.warn({ node: a.node, incarnation: a.incarnation }, 'Refuting an alive message about ourselves');
      this.refute(state, a.incarnation);
      return;
    }

    this.#hooks.broadcast(a.node, { type: 'alive', body: a }, finished);
    if (a.vsn.length >= VSN_LEN) state.vsn = [...a.vsn.subarray(0, VSN_LEN)];
    state.incarnation = a.incarnation;
    state.meta = a.meta;
    state.addr = a.addr;
    state.host = host;
    state.port = a.port;
    if (state.state !== 'alive') this.#setState(state, 'alive');

    if (oldState === 'dead' || oldState === 'left') {
      this.#log.info({ node: a.node, address: `${host}:${a.port}` }, 'Member joined');
      this.#hooks.emit({ type: 'join', member: memberOf(state) });
    } else if (!bytesEqual(oldMeta, state.meta)) {
      this.#hooks.emit({ type: 'update', member: memberOf(state) });
    } else if (oldState === 'suspect') {
      this.#log.info({ node: a.node, incarnation: a.incarnation }, 'Suspect member is alive');
      this.#hooks.emit({ type: 'alive', member: memberOf(state) });
    }
  }

  /** Suspect news (ML state.go:1134-1218). */
  suspectNode(s: Suspect): void {
    const state = this.#map.get(s.node);
    if (!state) return;
    if (s.incarnation < state.incarnation) return;

    // A running timer turns further accusations into Lifeguard confirmations; new ones are
    // re-gossiped so that confirmations keep flowing (ML state.go:1150-1159).
    const timer = this.#timers.get(s.node);
    if (timer) {
      if (timer.confirm(s.from)) this.#hooks.broadcast(s.node, { type: 'suspect', body: s });
      return;
    }
    if (state.state !== 'alive') return;

    if (state.name === this.#config.name) {
      this.#log.warn({ from: s.from }, 'Refuting a suspect message');
      this.refute(state, s.incarnation);
      return;
    }
    this.#hooks.broadcast(s.node, { type: 'suspect', body: s });

    state.incarnation = s.incarnation;
    this.#setState(state, 'suspect');
    const changeTime = state.stateChange;
    const bounds = suspicionBounds(this.#config.suspicionMult, this.#config.suspicionMaxTimeoutMult, this.numNodes, this.#config.probeIntervalMs);
    this.#log.info({ node: s.node, from: s.from, incarnation: s.incarnation }, 'Member suspected');
    this.#hooks.emit({ type: 'suspect', member: memberOf(state) });
    this.#timers.set(
      s.node,
      new Suspicion(this.#clock, s.from, bounds, (confirmations) => {
        const now = this.#map.get(s.node);
        if (!now || now.state !== 'suspect' || now.stateChange !== changeTime) return;
        this.#log.info({ node: s.node, confirmations, wanted: bounds.k }, 'Marking member as failed, suspect timeout reached');
        this.deadNode({ incarnation: now.incarnation, node: now.name, from: this.#config.name });
      }),
    );
  }

  /** Dead news (ML state.go:1222-1279). `from === node` is a graceful leave. */
  deadNode(d: Dead, finished?: () => void): void {
    const state = this.#map.get(d.node);
    if (!state) return;
    if (d.incarnation < state.incarnation) return;
    this.#cancelSuspicion(d.node);
    if (isDeadOrLeft(state)) return;

    if (state.name === this.#config.name) {
      if (!this.#leaving) {
        this.#log.warn({ from: d.from }, 'Refuting a dead message');
        this.refute(state, d.incarnation);
        return;
      }
      // Leaving: our own dead goes out and the caller waits for it (ML state.go:1250-1256).
      this.#hooks.broadcast(d.node, { type: 'dead', body: d }, finished);
    } else {
      this.#hooks.broadcast(d.node, { type: 'dead', body: d }, finished);
    }

    state.incarnation = d.incarnation;
    const next: MemberStateName = d.node === d.from ? 'left' : 'dead';
    this.#setState(state, next);
    this.#log.info({ node: d.node, from: d.from, state: next }, next === 'left' ? 'Member left' : 'Member failed');
    this.#hooks.emit({ type: next === 'left' ? 'leave' : 'dead', member: memberOf(state) });
  }

  /**
   * Refutes a claim about ourselves (ML state.go:889-913): an incarnation above the accused one,
   * gossiped as alive, and a point of awareness (being accused hints that we are the slow one).
   */
  refute(me: NodeRecord, accusedInc: number): void {
    let inc = this.nextIncarnation();
    if (accusedInc >= inc) {
      this.#incarnation = (accusedInc + 1) >>> 0;
      inc = this.#incarnation;
    }
    me.incarnation = inc;
    this.#awareness.applyDelta(1);
    this.#hooks.refuted?.(accusedInc);
    this.#hooks.broadcast(me.name, {
      type: 'alive',
      body: { incarnation: inc, node: me.name, addr: me.addr, port: me.port, meta: me.meta, vsn: Uint8Array.from(me.vsn) },
    });
  }

  /**
   * Merges push/pull rows (ML state.go:1283-1309): alive as alive news; left as a graceful dead;
   * dead or suspect only as *our* suspicion, so a peer's stale verdict never kills directly.
   */
  mergeState(remote: readonly PushNodeState[]): void {
    for (const r of remote) {
      switch (STATE_NAMES[r.state]) {
        case 'alive':
          this.aliveNode({ incarnation: r.incarnation, node: r.name, addr: r.addr, port: r.port, meta: r.meta, vsn: r.vsn });
          break;
        case 'left':
          this.deadNode({ incarnation: r.incarnation, node: r.name, from: r.name });
          break;
        case 'dead':
        case 'suspect':
          this.suspectNode({ incarnation: r.incarnation, node: r.name, from: this.#config.name });
          break;
        case undefined:
          break;
      }
    }
  }

  /**
   * memberlist's verifyProtocol (ML state.go:671-776, spec §9): every node, remote and local,
   * must speak versions that every alive node understands. Returns the reason when not.
   */
  verifyProtocol(remote: readonly PushNodeState[]): string | undefined {
    let maxPMin = 0;
    let minPMax = 255;
    let maxDMin = 0;
    let minDMax = 255;
    const widen = (v: ArrayLike<number>): void => {
      maxPMin = Math.max(maxPMin, v[0]!);
      minPMax = Math.min(minPMax, v[1]!);
      maxDMin = Math.max(maxDMin, v[3]!);
      minDMax = Math.min(minDMax, v[4]!);
    };
    for (const r of remote) if (r.state === NodeState.alive && r.vsn.length >= VSN_LEN) widen(r.vsn);
    for (const n of this.#nodes) if (n.state === 'alive') widen(n.vsn);
    const check = (name: string, pCur: number, dCur: number): string | undefined => {
      if (pCur < maxPMin || pCur > minPMax) return `Node '${name}' protocol version (${pCur}) is incompatible: [${maxPMin}, ${minPMax}]`;
      if (dCur < maxDMin || dCur > minDMax) return `Node '${name}' delegate protocol version (${dCur}) is incompatible: [${maxDMin}, ${minDMax}]`;
      return undefined;
    };
    for (const r of remote) {
      const full = r.vsn.length >= VSN_LEN;
      const e = check(r.name, full ? r.vsn[2]! : 0, full ? r.vsn[5]! : 0);
      if (e) return e;
    }
    for (const n of this.#nodes) {
      const e = check(n.name, n.vsn[2]!, n.vsn[5]!);
      if (e) return e;
    }
    return undefined;
  }

  /** The suspect message the buddy system piggybacks on a ping to a suspect node, so it can refute at once (Lifeguard §IV-C; ML state.go:331-355). */
  buddySuspect(target: NodeRecord): Suspect | undefined {
    if (target.state !== 'suspect') return undefined;
    return { incarnation: target.incarnation, node: target.name, from: this.#config.name };
  }

  /**
   * Called when the probe index wraps (ML state.go:541-562): drops dead and left nodes older
   * than GossipToTheDeadTime (left too, as memberlist does since "Purge left nodes along with
   * dead ones", hashicorp/memberlist#254; 0.2.2 kept left rows forever) and reshuffles the rest.
   * Returns the names reaped.
   */
  resetNodes(): string[] {
    const now = this.#clock.now();
    const reaped: string[] = [];
    this.#nodes = this.#nodes.filter((n) => {
      if (isDeadOrLeft(n) && n.name !== this.#config.name && now - n.stateChange > this.#config.gossipToTheDeadTimeMs) {
        this.#map.delete(n.name);
        reaped.push(n.name);
        return false;
      }
      return true;
    });
    this.shuffle();
    return reaped;
  }

  /** Fisher–Yates with the injected Rng. */
  shuffle(): void {
    const a = this.#nodes;
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.#rng.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }

  /**
   * Up to `k` distinct random nodes that `exclude` lets through, trying at most 3n picks
   * (ML util.go:128-155): exhaustive enough for small clusters, cheap for large ones.
   */
  kRandomNodes(k: number, exclude: (n: NodeRecord) => boolean): NodeRecord[] {
    const n = this.#nodes.length;
    const out: NodeRecord[] = [];
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const node = this.#nodes[this.#rng.int(n)]!;
      if (exclude(node) || out.includes(node)) continue;
      out.push(node);
    }
    return out;
  }

  /** Every row as a member snapshot. */
  allMembers(): Member[] {
    return this.#nodes.map(memberOf);
  }

  /** Stops every suspicion timer. */
  close(): void {
    for (const t of this.#timers.values()) t.cancel();
    this.#timers.clear();
  }

  #cancelSuspicion(name: string): void {
    const t = this.#timers.get(name);
    if (t) {
      t.cancel();
      this.#timers.delete(name);
    }
  }

  #setState(n: NodeRecord, next: MemberStateName): void {
    n.state = next;
    n.stateChange = this.#clock.now();
  }
}
