/**
 * SWIM membership with the Lifeguard extensions, speaking HashiCorp memberlist v0.2.2's wire
 * protocol (shared/specs/memberlist-wire.md), so a stock `serf agent` accepts a shoal node as
 * one of its own.
 *
 * ## Making a node
 *
 * ```ts
 * import { RealClock } from '../lib/clock.js';
 * import { CryptoRng } from '../lib/rng.js';
 * import { Keyring } from '../wire/memberlist/crypto.js';
 * import { NodeTransport } from './node-transport.js';      // node:dgram + node:net, one port
 * import { Memberlist } from './memberlist.js';
 *
 * const clock = new RealClock();
 * const transport = await NodeTransport.bind({ host: '127.0.0.1', port: 7950, clock }); // see node-transport.ts
 * const ml = Memberlist.create({
 *   name: 'ts1',
 *   transport,
 *   clock,
 *   rng: new CryptoRng(),
 *   keyring: Keyring.fromBase64(serfKey),                   // optional: serf's -encrypt key
 *   delegate: { notifyEvent: (e) => console.log(e.type, e.member.name) },
 * });
 * await ml.join(['127.0.0.1:7946']);                         // host:port, name/host:port or [v6]:port
 * ml.members();                                              // alive and suspect members
 * await ml.leave(5_000);                                     // graceful: peers show us as left
 * ml.shutdown();
 * ```
 *
 * `Memberlist.create` = `new Memberlist(options)` + `start()`. Config defaults are memberlist's
 * LAN profile (`LAN_CONFIG`, ML config.go:273-308); pass `config: { ... }` to override.
 * In simulations the transport is a `MemoryNetwork.bind(...)`, the clock a ManualClock and the
 * rng a SeededRng; nothing here reads real time or Math.random.
 *
 * ## What runs
 * - probe tick (ProbeInterval): round-robin over a shuffled member list, ping → after
 *   ProbeTimeout indirect pings through IndirectChecks peers (+ nacks) and a TCP ping → at the
 *   awareness-scaled deadline, suspect (ML state.go:214-497);
 * - gossip tick (GossipInterval): queued broadcasts to GossipNodes random members (ML state.go:566-616);
 * - push/pull tick (PushPullInterval, scaled with cluster size) and on join: full state over TCP
 *   (ML state.go:168-189, 622-641; net.go:875-978);
 * - every reply packet piggybacks queued broadcasts (ML net.go:720-743);
 * - reconnect tick (ReconnectInterval, 30 s): a push/pull with one random failed member, so a
 *   healed partition merges again (serf's loop; memberlist alone never would).
 *
 * To show as *left* (not failed) in serf, send serf's leave intent before `leave()`: a user
 * message `[0][msgpack {LTime, Node, Prune}]` by `queueBroadcast` or `sendBestEffort`, a few
 * hundred ms ahead (spec §14.5).
 *
 * Received bytes that do not decode are dropped and counted by reason (`counters`); nothing a
 * peer sends can throw out of a handler.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { ClosedError, GossipJoinError, GossipProtocolError, InvalidArgumentError, TimeoutError } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { Rng } from '../lib/rng.js';
import { COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD_PER_PART, MAX_COMPOUND_PARTS, decodePacket, encodeMessage, encodePacket } from '../wire/memberlist/codec.js';
import { ENCRYPTION_OVERHEAD_V1, type Keyring } from '../wire/memberlist/crypto.js';
import {
  type Alive,
  type IndirectPingReq,
  type Message,
  type Ping,
  type PushNodeState,
  MessageType,
  VSN_LEN,
} from '../wire/memberlist/messages.js';
import { type StreamMessage, encodeStream } from '../wire/memberlist/stream.js';
import { Awareness } from './awareness.js';
import { LAN_CONFIG, type MemberlistConfig } from './config.js';
import { GOSSIP_COUNTERS, wireDropCounter } from './metrics.js';
import { type Seed, formatAddress, parseSeed } from './seed.js';
import { type StreamSessionHandlers, runStreamSession } from './stream-session.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { failedProbeAwarenessDelta, pushPullScale } from './formulas.js';
import { ipToBytes, ipToString } from './ip.js';
import { type Member, type MemberEvent, type NodeRecord, MembershipState, STATE_VALUES, isDeadOrLeft, memberOf } from './state.js';
import type { GossipAddress, Packet, Stream, Transport } from './transport.js';

export type { Member, MemberEvent, MemberEventType, MemberStateName } from './state.js';
export { LAN_CONFIG, type MemberlistConfig } from './config.js';
export { GOSSIP_COUNTERS } from './metrics.js';
export { parseSeed, type Seed } from './seed.js';

/** Hooks into the embedding application (memberlist's Delegate, EventDelegate, ConflictDelegate, PingDelegate). */
export interface Delegate {
  /** Metadata for our alive messages, at most `limit` (512) bytes (serf: tags). */
  nodeMeta?(limit: number): Uint8Array;
  /** A user message arrived (UDP gossip/best effort, or TCP reliable). */
  notifyMsg?(payload: Uint8Array): void;
  /** Our application state for a push/pull (serf: `[2] ++ msgpack`). */
  localState?(join: boolean): Uint8Array;
  /** A peer's application state from a push/pull; only called when it sent some (ML net.go:1173). */
  mergeRemoteState?(state: Uint8Array, join: boolean): void;
  /** A member joined, changed metadata, recovered, was suspected, failed or left. */
  notifyEvent?(event: MemberEvent): void;
  /** A known name showed up at another address (ML state.go:1020-1033). */
  notifyConflict?(existing: Member, other: Member): void;
  /** A direct probe was answered: round-trip time and the ack payload (serf: coordinates). */
  notifyPingComplete?(member: Member, rttMs: number, payload: Uint8Array): void;
}

export interface MemberlistOptions {
  /** Unique node name. */
  readonly name: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger?: Logger;
  readonly delegate?: Delegate;
  /** Encrypt and authenticate everything with AES-GCM (serf's `-encrypt`, spec §10). */
  readonly keyring?: Keyring;
  /** The address peers are told to use; the transport's local address by default. */
  readonly advertise?: GossipAddress;
  readonly config?: Partial<MemberlistConfig>;
}

interface AckHandler {
  readonly onAck: (payload: Uint8Array, receivedAt: number) => void;
  readonly onNack?: () => void;
  readonly timer: Timer;
}

/** A UDP user message is this type byte and the application's bytes (ML net.go:42-60). */
const USER_MSG_TYPE = MessageType.user;
const META_MAX_SIZE = 512;
const EMPTY = new Uint8Array(0);

export class Memberlist {
  readonly name: string;
  readonly config: MemberlistConfig;
  readonly counters: Counters<string>;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #log: Logger;
  readonly #delegate: Delegate;
  readonly #keyring: Keyring | undefined;
  readonly #advertise: GossipAddress;
  readonly #advertiseBytes: Uint8Array;
  readonly #awareness: Awareness;
  readonly #state: MembershipState;
  /** memberlist's own alive/suspect/dead broadcasts, named after their node. */
  readonly #broadcasts: BroadcastQueue;
  /** The application's broadcasts, stored framed as `[8][payload]`. */
  readonly #userBroadcasts: BroadcastQueue;
  readonly #ackHandlers = new Map<number, AckHandler>();
  /** Failed (not left) members to retry, kept past reaping; insertion order = failure order. */
  readonly #failed = new Map<string, { readonly address: GossipAddress; readonly at: number }>();
  readonly #timers = new Set<Timer>();
  readonly #streams = new Set<Stream>();
  #seqNo = 0;
  #probeIndex = 0;
  #probing = false;
  #probePending = false;
  #pushPullsServing = 0;
  #started = false;
  #shutdown = false;

  constructor(options: MemberlistOptions) {
    if (options.name === '') throw new InvalidArgumentError('A gossip node needs a name');
    this.name = options.name;
    this.config = { ...LAN_CONFIG, ...options.config };
    if (this.config.vsn.length !== VSN_LEN) throw new InvalidArgumentError(`vsn must have ${VSN_LEN} entries`);
    this.#transport = options.transport;
    this.#clock = options.clock;
    this.#rng = options.rng;
    this.#log = (options.logger ?? silentLogger).child({ node: options.name });
    this.#delegate = options.delegate ?? {};
    this.#keyring = options.keyring;
    this.#advertise = options.advertise ?? options.transport.localAddress;
    const bytes = ipToBytes(this.#advertise.host);
    if (!bytes || this.#advertise.host === '0.0.0.0' || this.#advertise.host === '::') {
      throw new InvalidArgumentError(`Cannot advertise ${JSON.stringify(this.#advertise.host)}: give a specific IP address`);
    }
    this.#advertiseBytes = bytes;
    this.counters = new Counters(GOSSIP_COUNTERS);
    this.#awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.#broadcasts = new BroadcastQueue({
      retransmitMult: this.config.retransmitMult,
      numNodes: () => this.#state.numNodes,
      maxQueued: this.config.maxQueuedBroadcasts,
    });
    this.#userBroadcasts = new BroadcastQueue({
      retransmitMult: this.config.retransmitMult,
      numNodes: () => this.#state.numNodes,
      maxQueued: this.config.maxQueuedBroadcasts,
    });
    this.#state = new MembershipState({
      config: { name: this.name, ...this.config },
      clock: this.#clock,
      rng: this.#rng,
      logger: this.#log,
      awareness: this.#awareness,
      hooks: {
        broadcast: (node, message, finished) =>
          this.#broadcasts.queue({ message: encodeMessage(message), name: node, ...(finished && { finished }) }),
        emit: (event) => {
          this.#trackFailed(event);
          this.#delegate.notifyEvent?.(event);
        },
        refuted: () => this.counters.inc('gossip_refutations'),
        conflict: (existing, other) => {
          this.counters.inc('gossip_address_conflicts');
          this.#delegate.notifyConflict?.(existing, other);
        },
        tableFull: () => this.counters.inc('gossip_rx_dropped_table_full'),
      },
    });
  }

  /** Constructs and starts a node (memberlist's Create). Throws as the constructor. */
  static create(options: MemberlistOptions): Memberlist {
    const m = new Memberlist(options);
    m.start();
    return m;
  }

  /** Announces ourselves alive in our own table, listens, and starts the probe, gossip and push/pull ticks. */
  start(): void {
    if (this.#shutdown) throw new ClosedError('Memberlist is shut down');
    if (this.#started) return;
    this.#started = true;
    this.#transport.setHandlers({
      onPacket: (p) => this.#onPacket(p),
      onStream: (s) => this.#onStream(s),
    });
    this.#state.aliveNode(this.#selfAlive(this.#state.nextIncarnation()), true);
    this.#schedule();
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /** Our own member record. */
  get localMember(): Member {
    const self = this.#state.self;
    if (!self) throw new ClosedError('Memberlist is not started');
    return memberOf(self);
  }

  /** Members that are alive or suspect (memberlist's Members), ourselves included. */
  members(): Member[] {
    return this.#state.nodes.filter((n) => !isDeadOrLeft(n)).map(memberOf);
  }

  /** Every row, dead and left ones not yet reaped included. */
  allMembers(): Member[] {
    return this.#state.allMembers();
  }

  /** One member by name, in any state, or undefined. */
  member(name: string): Member | undefined {
    const n = this.#state.get(name);
    return n && memberOf(n);
  }

  /** memberlist's estimate of the cluster size: every row, self and unreaped dead included. */
  get estimatedNodes(): number {
    return this.#state.numNodes;
  }

  /** Lifeguard's local health score, 0 = healthy (ML memberlist.go:683-688). */
  get healthScore(): number {
    return this.#awareness.score;
  }

  /** Broadcasts waiting in memberlist's own queue and in the user queue. */
  get queuedBroadcasts(): { readonly memberlist: number; readonly user: number } {
    return { memberlist: this.#broadcasts.length, user: this.#userBroadcasts.length };
  }

  get isShutdown(): boolean {
    return this.#shutdown;
  }

  /**
   * Joins a cluster: a push/pull (Join=true) with every seed (ML memberlist.go:249-278).
   * Resolves with the number of seeds that answered; rejects with GossipJoinError when none
   * did, or InvalidArgumentError for a seed that is not an IP address (no DNS below the agent).
   */
  join(seeds: readonly Seed[]): Promise<number> {
    if (this.#shutdown) return Promise.reject(new ClosedError('Memberlist is shut down'));
    let targets: GossipAddress[];
    try {
      targets = seeds.map((s) => (typeof s === 'string' ? parseSeed(s, this.#advertise.port) : s));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new InvalidArgumentError(String(e)));
    }
    if (targets.length === 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      let pending = targets.length;
      let succeeded = 0;
      const errors: string[] = [];
      for (const t of targets) {
        this.#pushPullNode(t, true, (error) => {
          if (error) {
            errors.push(`${formatAddress(t)}: ${error.message}`);
            this.#log.debug({ seed: formatAddress(t), err: error.message }, 'Failed to join');
          } else {
            succeeded++;
          }
          if (--pending > 0) return;
          if (succeeded > 0) resolve(succeeded);
          else reject(new GossipJoinError(`Failed to join any seed: ${errors.join('; ')}`));
        });
      }
    });
  }

  /**
   * Leaves gracefully (ML memberlist.go:627-672): gossips `dead{self, from: self}` so peers mark
   * us *left*, and resolves once that broadcast has been sent its full count, or at once when
   * nobody else is alive. Rejects with TimeoutError after `timeoutMs` (0 = no timeout). Probing
   * and gossip go on until `shutdown()`.
   */
  leave(timeoutMs: number): Promise<void> {
    if (this.#shutdown) return Promise.reject(new ClosedError('Memberlist is shut down'));
    const self = this.#state.self;
    if (!self || this.#state.leaving) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let done = false;
      let timer: Timer | undefined;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        if (timer) this.#cancel(timer);
        if (error) reject(error);
        else resolve();
      };
      this.#state.setLeaving();
      this.#state.deadNode({ incarnation: self.incarnation, node: self.name, from: self.name }, () => finish());
      if (!this.#anyAlive()) {
        finish();
        return;
      }
      if (timeoutMs > 0) timer = this.#after(timeoutMs, () => finish(new TimeoutError('Timed out waiting for the leave broadcast')));
    });
  }

  /**
   * A push/pull with every live member at once, over TCP: our whole state (the application's
   * `localState` included) reaches each of them reliably, not only as UDP gossip that a busy
   * receiver may drop. The agent calls it on a graceful stop, after withdrawing its endpoint
   * rows, so that every survivor holds the tombstones before we leave. Resolves, within about
   * `timeoutMs`, with how many members answered; never rejects.
   */
  pushPullAll(timeoutMs: number): Promise<number> {
    const peers = this.#shutdown ? [] : this.#state.nodes.filter((n) => n.name !== this.name && !isDeadOrLeft(n));
    return Promise.all(peers.map((n) => this.pushPullWith({ host: n.host, port: n.port }, timeoutMs))).then((answers) => answers.filter(Boolean).length);
  }

  /**
   * One push/pull with the member at `address` over TCP: ours to it, its whole state to us.
   * The agent calls it when a member joins or comes back alive, because news from a member
   * it had declared dead is ignored until then (the endpoint table's rule), so the rows that
   * member sent while rejoining are fetched again. Resolves true when it answered within about
   * `timeoutMs`; never rejects.
   */
  pushPullWith(address: GossipAddress, timeoutMs = this.config.tcpTimeoutMs): Promise<boolean> {
    if (this.#shutdown) return Promise.resolve(false);
    return new Promise((resolve) => {
      let settled = false;
      // Armed before the push/pull starts, so a synchronous failure finds it set.
      const timer = this.#after(timeoutMs, () => finish(false));
      const finish = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        this.#cancel(timer);
        resolve(ok);
      };
      this.#pushPullNode(address, false, (error) => finish(!error));
    });
  }

  /**
   * Stops everything: timers, handlers, open streams, and the transport. Idempotent. Does not
   * tell anyone (call leave() first for that).
   */
  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    for (const h of this.#ackHandlers.values()) h.timer.cancel();
    this.#ackHandlers.clear();
    this.#state.close();
    for (const s of [...this.#streams]) s.destroy();
    this.#streams.clear();
    this.#transport.close();
    this.#log.info('Memberlist shut down');
  }

  /**
   * Re-reads our metadata from the delegate and gossips it with a new incarnation
   * (ML memberlist.go:396-440). Members see an `update` event.
   */
  updateNode(): void {
    if (!this.#started || this.#shutdown) return;
    this.#state.aliveNode(this.#selfAlive(this.#state.nextIncarnation()), true);
  }

  /**
   * Queues an application message for gossip, piggybacked on our packets until it has been
   * sent RetransmitMult × log10(N+1) times. A `name` makes it replace a queued one of the same
   * name. `finished` runs when it leaves the queue.
   */
  queueBroadcast(payload: Uint8Array, name?: string, finished?: () => void): void {
    const message = new Uint8Array(payload.length + 1);
    message[0] = USER_MSG_TYPE;
    message.set(payload, 1);
    this.#userBroadcasts.queue({ message, ...(name !== undefined && { name }), ...(finished && { finished }) });
  }

  /** Sends an application message to one member by UDP, best effort (ML memberlist.go:470-484). */
  sendBestEffort(to: Member | GossipAddress, payload: Uint8Array): void {
    const message = new Uint8Array(payload.length + 1);
    message[0] = USER_MSG_TYPE;
    message.set(payload, 1);
    const member = 'name' in to ? to : undefined;
    this.#rawSend(member ? member.address : (to as GossipAddress), [message], (member?.vsn[1] ?? 0) >= 5);
  }

  /**
   * Sends an application message to one member over TCP (ML memberlist.go:486-492). Resolves
   * when it has been written and the stream closed cleanly.
   */
  sendReliable(to: Member | GossipAddress, payload: Uint8Array): Promise<void> {
    const address = 'name' in to ? to.address : to;
    return new Promise((resolve, reject) => {
      const s = this.#openStream(address, this.config.tcpTimeoutMs, {
        expectReply: false,
        onMessage: () => 'close',
        onDone: (error) => (error ? reject(error) : resolve()),
      });
      if (!s) {
        reject(new ClosedError('Memberlist is shut down'));
        return;
      }
      s.stream.write(this.#encodeStream({ type: 'user', payload }));
      s.stream.end();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling (ML state.go:100-190)

  #schedule(): void {
    const c = this.config;
    // Each tick starts after a random stagger so that nodes started together do not synchronise.
    if (c.probeIntervalMs > 0) this.#every(c.probeIntervalMs, () => this.#probeTick());
    if (c.gossipIntervalMs > 0 && c.gossipNodes > 0) this.#every(c.gossipIntervalMs, () => this.#gossip());
    if (c.pushPullIntervalMs > 0) {
      const tick = (): void => {
        this.#pushPull();
        this.#after(pushPullScale(c.pushPullIntervalMs, this.#state.numNodes), tick);
      };
      this.#after(this.#rng.float() * c.pushPullIntervalMs, tick);
    }
    if (c.reconnectIntervalMs > 0) this.#every(c.reconnectIntervalMs, () => this.#reconnect());
  }

  #every(intervalMs: number, fn: () => void): void {
    const tick = (): void => {
      this.#after(intervalMs, tick);
      fn();
    };
    this.#after(this.#rng.float() * intervalMs, tick);
  }

  /** A tracked one-shot timer: shutdown() cancels whatever is still pending. */
  #after(delayMs: number, fn: () => void): Timer {
    const t = this.#clock.setTimer(delayMs, () => {
      this.#timers.delete(t);
      if (!this.#shutdown) fn();
    });
    this.#timers.add(t);
    return t;
  }

  #cancel(t: Timer): void {
    t.cancel();
    this.#timers.delete(t);
  }

  // -------------------------------------------------------------------------------------------
  // Probing (ML state.go:214-497)

  /** A tick that lands while a probe is still running is remembered, as Go's ticker buffers one. */
  #probeTick(): void {
    if (this.#probing) {
      this.#probePending = true;
      return;
    }
    this.#probe();
  }

  /** Picks the next node round-robin, skipping ourselves and dead/left nodes (ML state.go:214-256). */
  #probe(): void {
    let checked = 0;
    for (;;) {
      const nodes = this.#state.nodes;
      if (checked >= nodes.length) return;
      if (this.#probeIndex >= nodes.length) {
        const reaped = this.#state.resetNodes();
        if (reaped.length > 0) this.#log.debug({ reaped }, 'Reaped dead members');
        this.#probeIndex = 0;
        checked++;
        continue;
      }
      const node = nodes[this.#probeIndex++]!;
      if (node.name === this.name || isDeadOrLeft(node)) {
        checked++;
        continue;
      }
      this.#probeNode(node);
      return;
    }
  }

  #probeNode(node: NodeRecord): void {
    this.#probing = true;
    this.counters.inc('gossip_probes');
    // Lifeguard: a less healthy node gives its probes longer (ML state.go:283-289).
    const probeInterval = this.#awareness.scaleTimeout(this.config.probeIntervalMs);
    const seqNo = this.#nextSeqNo();
    const target: GossipAddress = { host: node.host, port: node.port };
    const name = node.name;
    const incarnation = node.incarnation;
    const pMax = node.vsn[1]!;
    const ping: Ping = { seqNo, node: name, ...this.#source() };
    const sent = this.#clock.now();
    let done = false;
    let nacks = 0;
    let expectedNacks = 0;
    let tcpContacted = false;
    let tcp: Stream | undefined;
    let indirectTimer: Timer | undefined;
    let indirect = false;

    const finish = (awarenessDelta: number): void => {
      if (done) return;
      done = true;
      this.#awareness.applyDelta(awarenessDelta);
      if (indirectTimer) this.#cancel(indirectTimer);
      const h = this.#ackHandlers.get(seqNo);
      if (h) {
        h.timer.cancel();
        this.#ackHandlers.delete(seqNo);
      }
      tcp?.destroy();
      this.#probing = false;
      if (this.#probePending && !this.#shutdown) {
        this.#probePending = false;
        this.#probe();
      }
    };

    const onDeadline = (): void => {
      if (done) return;
      if (tcpContacted) {
        this.#log.warn({ node: name }, 'Was able to connect over TCP but other probes failed, network may be misconfigured');
        finish(-1);
        return;
      }
      this.counters.inc('gossip_probes_failed');
      this.#log.info({ node: name, nacks, expectedNacks }, 'Suspect has failed, no acks received');
      // Suspect first, then the awareness delta and the next probe, in Go's order (ML state.go:479-497).
      this.#state.suspectNode({ incarnation, node: name, from: this.name });
      finish(failedProbeAwarenessDelta(expectedNacks, nacks));
    };

    this.#ackHandlers.set(seqNo, {
      onAck: (payload, receivedAt) => {
        // Only a direct answer measures the round trip (a relayed ack carries no payload, ML state.go:368-377).
        const n = this.#state.get(name);
        if (n && !indirect) this.#delegate.notifyPingComplete?.(memberOf(n), receivedAt - sent, payload);
        finish(-1);
      },
      onNack: () => nacks++,
      timer: this.#clock.setTimer(probeInterval, () => {
        this.#ackHandlers.delete(seqNo);
        onDeadline();
      }),
    });

    // The buddy system (Lifeguard §IV-C): a suspect node hears the accusation with the ping, so
    // it can refute at once instead of waiting for gossip to reach it (ML state.go:331-355).
    const buddy = this.#state.buddySuspect(node);
    if (buddy) {
      this.#rawSend(target, [encodeMessage({ type: 'ping', body: ping }), encodeMessage({ type: 'suspect', body: buddy })], pMax >= 5);
    } else {
      this.#sendMsg(target, { type: 'ping', body: ping });
    }

    indirectTimer = this.#after(this.config.probeTimeoutMs, () => {
      indirectTimer = undefined;
      if (done) return;
      indirect = true;
      this.#log.debug({ node: name }, 'Failed ping (timeout reached)');
      // Indirect probes through k random alive peers, each asked for a nack if it speaks v4+.
      const relays = this.#state.kRandomNodes(this.config.indirectChecks, (n) => n.name === this.name || n.name === name || n.state !== 'alive');
      const targetBytes = ipToBytes(target.host) ?? EMPTY;
      for (const relay of relays) {
        const nack = relay.vsn[1]! >= 4;
        if (nack) expectedNacks++;
        const ind: IndirectPingReq = { seqNo, target: targetBytes, port: target.port, node: name, nack, ...this.#source() };
        this.#sendMsg({ host: relay.host, port: relay.port }, { type: 'indirectPing', body: ind });
      }
      // And a TCP ping: it gets through where only UDP is broken (ML state.go:438-454).
      if (!this.config.disableTcpPings && pMax >= 3) {
        const remaining = sent + probeInterval - this.#clock.now();
        const s = this.#openStream(target, remaining, {
          onMessage: (m) => {
            if (m.type === 'ackResp' && m.body.seqNo === seqNo) tcpContacted = true;
            else this.counters.inc('gossip_rx_dropped_unexpected_type');
            return 'close';
          },
          onDone: () => {},
        });
        if (s) {
          tcp = s.stream;
          tcp.write(this.#encodeStream({ type: 'ping', body: ping }));
        }
      }
    });
  }

  #nextSeqNo(): number {
    this.#seqNo = (this.#seqNo + 1) >>> 0;
    return this.#seqNo;
  }

  #source(): { sourceAddr: Uint8Array; sourcePort: number; sourceNode: string } {
    return { sourceAddr: this.#advertiseBytes, sourcePort: this.#advertise.port, sourceNode: this.name };
  }

  // -------------------------------------------------------------------------------------------
  // Gossip and push/pull ticks

  /** Sends queued broadcasts to GossipNodes random live, suspect or recently dead nodes (ML state.go:566-616). */
  #gossip(): void {
    const now = this.#clock.now();
    const ttd = this.config.gossipToTheDeadTimeMs;
    const nodes = this.#state.kRandomNodes(this.config.gossipNodes, (n) => {
      if (n.name === this.name) return true;
      if (n.state === 'alive' || n.state === 'suspect') return false;
      if (n.state === 'dead') return now - n.stateChange > ttd;
      return true;
    });
    const bytesAvail = this.config.udpBufferSize - COMPOUND_HEADER_OVERHEAD - this.#encryptOverhead();
    for (const node of nodes) {
      const msgs = this.#getBroadcasts(COMPOUND_OVERHEAD_PER_PART, bytesAvail, MAX_COMPOUND_PARTS);
      if (msgs.length === 0) return;
      this.#rawSend({ host: node.host, port: node.port }, msgs, node.vsn[1]! >= 5);
    }
  }

  /** Full state sync with one random alive node (ML state.go:622-641). */
  #pushPull(): void {
    const [node] = this.#state.kRandomNodes(1, (n) => n.name === this.name || n.state !== 'alive');
    if (!node) return;
    this.#pushPullNode({ host: node.host, port: node.port }, false, (error) => {
      if (error) this.#log.warn({ node: node.name, err: error.message }, 'Push/pull failed');
    });
  }

  #trackFailed(e: MemberEvent): void {
    if (e.member.name === this.name) return;
    if (e.type === 'dead') {
      this.#failed.delete(e.member.name);
      this.#failed.set(e.member.name, { address: e.member.address, at: this.#clock.now() });
      if (this.#failed.size > this.config.maxNodes) this.#failed.delete(this.#failed.keys().next().value!);
    } else if (e.type === 'join' || e.type === 'alive' || e.type === 'leave') {
      this.#failed.delete(e.member.name);
    }
  }

  /** A push/pull with one random failed member, forgetting those failed too long ago. */
  #reconnect(): void {
    const now = this.#clock.now();
    for (const [name, f] of this.#failed) if (now - f.at > this.config.reconnectTimeoutMs) this.#failed.delete(name);
    if (this.#failed.size === 0) return;
    const names = [...this.#failed.keys()];
    const name = names[this.#rng.int(names.length)]!;
    const f = this.#failed.get(name)!;
    this.#log.debug({ node: name }, 'Attempting reconnect');
    this.#pushPullNode(f.address, false, (error) => {
      if (error) this.#log.debug({ node: name, err: error.message }, 'Reconnect failed');
    });
  }

  /** Initiates a push/pull: send our state, read theirs, merge (ML net.go:875-917). */
  #pushPullNode(to: GossipAddress, join: boolean, done: (error?: Error) => void): void {
    let merged = false;
    const s = this.#openStream(to, this.config.tcpTimeoutMs, {
      onMessage: (m) => {
        if (m.type === 'err') {
          done(new GossipProtocolError(`Remote error: ${m.body.error}`));
        } else if (m.type !== 'pushPull') {
          this.counters.inc('gossip_rx_dropped_unexpected_type');
          done(new GossipProtocolError(`Expected a push/pull reply, got ${m.type}`));
        } else {
          const e = this.#mergeRemoteState(m.body.join, m.body.nodes, m.body.userState);
          merged = e === undefined;
          done(e);
        }
        return 'close';
      },
      onDone: (error) => {
        if (!merged && error) done(error);
      },
    });
    if (!s) {
      done(new ClosedError('Memberlist is shut down'));
      return;
    }
    s.stream.write(this.#encodeStream({ type: 'pushPull', body: this.#localState(join) }));
  }

  #localState(join: boolean): { join: boolean; nodes: PushNodeState[]; userState: Uint8Array } {
    const nodes = this.#state.nodes.map(
      (n): PushNodeState => ({
        name: n.name,
        addr: n.addr,
        port: n.port,
        meta: n.meta,
        incarnation: n.incarnation,
        state: STATE_VALUES[n.state],
        vsn: Uint8Array.from(n.vsn),
      }),
    );
    return { join, nodes, userState: this.#delegate.localState?.(join) ?? EMPTY };
  }

  /** verifyProtocol, then the membership merge, then the application state (ML net.go:1141-1177). */
  #mergeRemoteState(join: boolean, remote: readonly PushNodeState[], userState: Uint8Array): GossipProtocolError | undefined {
    const incompatible = this.#state.verifyProtocol(remote);
    if (incompatible) {
      this.counters.inc('gossip_pushpull_incompatible');
      this.#log.warn({ reason: incompatible }, 'Refusing push/pull: incompatible protocol versions');
      return new GossipProtocolError(incompatible);
    }
    // Port 0 means "my bind port" (ML net.go:1131-1136).
    const rows = remote.map((r) => (r.port === 0 ? { ...r, port: this.#advertise.port } : r));
    const bad = rows.filter((r) => ipToString(r.addr) === undefined).length;
    if (bad > 0) this.counters.inc('gossip_rx_dropped_bad_address', bad);
    this.#state.mergeState(rows);
    if (userState.length > 0) this.#delegate.mergeRemoteState?.(userState, join);
    this.counters.inc('gossip_pushpull_completed');
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * One message by UDP with queued broadcasts piggybacked (ML net.go:720-743). No CRC: Go's
   * sendMsg path adds one only when nodes are named by bare IP (spec §4).
   */
  #sendMsg(to: GossipAddress, msg: Message): void {
    const encoded = encodeMessage(msg);
    const bytesAvail = this.config.udpBufferSize - encoded.length - COMPOUND_HEADER_OVERHEAD - this.#encryptOverhead();
    const extra = this.#getBroadcasts(COMPOUND_OVERHEAD_PER_PART, bytesAvail, MAX_COMPOUND_PARTS - 1);
    this.#rawSend(to, [encoded, ...extra], false);
  }

  /** memberlist's broadcasts first, then the application's in the space left (ML broadcast.go:77-105). */
  #getBroadcasts(overhead: number, limit: number, maxMessages: number): Uint8Array[] {
    const out = this.#broadcasts.getBroadcasts(overhead, limit, maxMessages);
    let used = 0;
    for (const m of out) used += m.length + overhead;
    const avail = limit - used;
    if (avail > overhead + 1 && out.length < maxMessages) out.push(...this.#userBroadcasts.getBroadcasts(overhead, avail, maxMessages - out.length));
    return out;
  }

  /** compress (if smaller) → CRC (recipient PMax ≥ 5) → encrypt, then send (ML net.go:747-807). */
  #rawSend(to: GossipAddress, parts: readonly Uint8Array[], crc: boolean): void {
    if (this.#shutdown || parts.length === 0) return;
    const keyring = this.#outgoingKeyring();
    const buf = encodePacket(parts, {
      crc,
      compress: this.config.enableCompression,
      ...(keyring && { keyring, fillRandom: (out: Uint8Array) => void this.#rng.fill(out) }),
    });
    this.counters.inc('gossip_tx_packets');
    this.#transport.sendPacket(to, buf);
  }

  #encodeStream(msg: StreamMessage): Uint8Array {
    const keyring = this.#outgoingKeyring();
    return encodeStream(msg, {
      compress: this.config.enableCompression,
      ...(keyring && { keyring, fillRandom: (out: Uint8Array) => void this.#rng.fill(out) }),
    });
  }

  #outgoingKeyring(): Keyring | undefined {
    return this.#keyring && this.config.gossipVerifyOutgoing ? this.#keyring : undefined;
  }

  #encryptOverhead(): number {
    return this.#outgoingKeyring() ? ENCRYPTION_OVERHEAD_V1 : 0;
  }

  #anyAlive(): boolean {
    return this.#state.nodes.some((n) => n.name !== this.name && !isDeadOrLeft(n));
  }

  #selfAlive(incarnation: number): Alive {
    const meta = this.#delegate.nodeMeta?.(META_MAX_SIZE) ?? EMPTY;
    if (meta.length > META_MAX_SIZE) throw new InvalidArgumentError(`Node metadata is ${meta.length} bytes, the limit is ${META_MAX_SIZE}`);
    return {
      incarnation,
      node: this.name,
      addr: this.#advertiseBytes,
      port: this.#advertise.port,
      meta,
      vsn: Uint8Array.from(this.config.vsn),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Receiving packets (ML net.go:324-700)

  #onPacket(p: Packet): void {
    if (this.#shutdown) return;
    this.counters.inc('gossip_rx_packets');
    const res = decodePacket(p.buf, {
      ...(this.#keyring && { keyring: this.#keyring }),
      verifyIncoming: this.config.gossipVerifyIncoming,
      onDrop: (reason) => this.counters.inc(wireDropCounter(reason)),
    });
    if (!res.ok) {
      this.counters.inc(wireDropCounter(res.error));
      return;
    }
    for (const m of res.value) {
      this.counters.inc('gossip_rx_messages');
      this.#handle(m, p.from, p.receivedAt);
    }
  }

  #handle(m: Message, from: GossipAddress, receivedAt: number): void {
    switch (m.type) {
      case 'ping':
        return this.#handlePing(m.body, from);
      case 'indirectPing':
        return this.#handleIndirectPing(m.body, from);
      case 'ackResp': {
        const h = this.#ackHandlers.get(m.body.seqNo);
        if (!h) return;
        this.#ackHandlers.delete(m.body.seqNo);
        h.timer.cancel();
        h.onAck(m.body.payload, receivedAt);
        return;
      }
      case 'nackResp':
        this.#ackHandlers.get(m.body.seqNo)?.onNack?.();
        return;
      case 'alive': {
        if (ipToString(m.body.addr) === undefined) {
          this.counters.inc('gossip_rx_dropped_bad_address');
          return;
        }
        const body = m.body.port === 0 ? { ...m.body, port: this.#advertise.port } : m.body;
        return this.#state.aliveNode(body);
      }
      case 'suspect':
        return this.#state.suspectNode(m.body);
      case 'dead':
        return this.#state.deadNode(m.body);
      case 'user':
        if (m.payload.length > 0) this.#delegate.notifyMsg?.(m.payload);
        return;
      case 'pushPull':
      case 'err':
        this.counters.inc('gossip_rx_dropped_unexpected_type');
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  /** Answers to SourceAddr:SourcePort when given, else to the packet's source (ML net.go:484-514). */
  #handlePing(p: Ping, from: GossipAddress): void {
    if (p.node !== '' && p.node !== this.name) {
      this.counters.inc('gossip_rx_dropped_wrong_node');
      return;
    }
    const replyTo = replyAddress(p.sourceAddr, p.sourcePort, from);
    if (!replyTo) {
      this.counters.inc('gossip_rx_dropped_bad_address');
      return;
    }
    // A nil payload: serf ignores it on its own probes (spec §14.3).
    this.#sendMsg(replyTo, { type: 'ackResp', body: { seqNo: p.seqNo, payload: EMPTY } });
  }

  /** Relays a probe for a peer and reports back an ack, or a nack if asked (ML net.go:516-596). */
  #handleIndirectPing(ind: IndirectPingReq, from: GossipAddress): void {
    const targetHost = ipToString(ind.target);
    const replyTo = replyAddress(ind.sourceAddr, ind.sourcePort, from);
    if (targetHost === undefined || !replyTo) {
      this.counters.inc('gossip_rx_dropped_bad_address');
      return;
    }
    const port = ind.port === 0 ? this.#advertise.port : ind.port;
    const localSeq = this.#nextSeqNo();
    let nackTimer: Timer | undefined;
    this.#ackHandlers.set(localSeq, {
      onAck: () => {
        if (nackTimer) this.#cancel(nackTimer);
        this.#sendMsg(replyTo, { type: 'ackResp', body: { seqNo: ind.seqNo, payload: EMPTY } });
      },
      timer: this.#clock.setTimer(this.config.probeTimeoutMs, () => this.#ackHandlers.delete(localSeq)),
    });
    this.#sendMsg({ host: targetHost, port }, { type: 'ping', body: { seqNo: localSeq, node: ind.node, ...this.#source() } });
    if (ind.nack) {
      nackTimer = this.#after(this.config.probeTimeoutMs, () => {
        this.#sendMsg(replyTo, { type: 'nackResp', body: { seqNo: ind.seqNo } });
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Streams (ML net.go:210-305, 845-1258)

  /** Serves one incoming stream: push/pull, TCP ping or TCP user message. */
  #onStream(stream: Stream): void {
    if (this.#shutdown) {
      stream.destroy();
      return;
    }
    this.counters.inc('gossip_rx_streams');
    let servingPushPull = false;
    this.#runStream(stream, this.config.tcpTimeoutMs, {
      onMessage: (m) => {
        switch (m.type) {
          case 'pushPull': {
            if (this.#pushPullsServing >= this.config.maxConcurrentPushPulls) {
              this.counters.inc('gossip_stream_dropped_busy');
              this.#log.warn('Too many pending push/pull requests');
              return 'close';
            }
            this.#pushPullsServing++;
            servingPushPull = true;
            // Reply before merging, so the initiator gets our state even if we refuse theirs (ML net.go:255-280).
            stream.write(this.#encodeStream({ type: 'pushPull', body: this.#localState(m.body.join) }));
            stream.end();
            this.#mergeRemoteState(m.body.join, m.body.nodes, m.body.userState);
            return 'wait-close';
          }
          case 'ping':
            if (m.body.node !== '' && m.body.node !== this.name) {
              this.counters.inc('gossip_rx_dropped_wrong_node');
              return 'close';
            }
            stream.write(this.#encodeStream({ type: 'ackResp', body: { seqNo: m.body.seqNo, payload: EMPTY } }));
            stream.end();
            return 'wait-close';
          case 'user':
            if (m.payload.length > 0) this.#delegate.notifyMsg?.(m.payload);
            return 'close';
          case 'ackResp':
          case 'err':
            this.counters.inc('gossip_rx_dropped_unexpected_type');
            return 'close';
          default: {
            const never: never = m;
            return never;
          }
        }
      },
      onReadError: (error) => {
        stream.write(this.#encodeStream({ type: 'err', body: { error: `Failed to read stream: ${error}` } }));
        stream.end();
      },
      onDone: () => {
        if (servingPushPull) this.#pushPullsServing--;
      },
    });
  }

  /** Opens an outgoing stream with a deadline; undefined after shutdown. */
  #openStream(to: GossipAddress, deadlineMs: number, handlers: StreamSessionHandlers): { stream: Stream } | undefined {
    if (this.#shutdown) return undefined;
    this.counters.inc('gossip_tx_streams');
    const stream = this.#transport.openStream(to);
    this.#runStream(stream, deadlineMs, handlers);
    return { stream };
  }

  /** Runs one stream session (stream-session.ts), tracked so that shutdown() can end it. */
  #runStream(stream: Stream, deadlineMs: number, handlers: StreamSessionHandlers): void {
    this.#streams.add(stream);
    runStreamSession(
      stream,
      {
        reader: { ...(this.#keyring && { keyring: this.#keyring }), verifyIncoming: this.config.gossipVerifyIncoming },
        deadlineMs,
        after: (ms, fn) => this.#after(ms, fn),
        cancel: (t) => this.#cancel(t),
        count: (name) => this.counters.inc(name),
      },
      {
        ...handlers,
        onDone: (error) => {
          this.#streams.delete(stream);
          handlers.onDone(error);
        },
      },
    );
  }
}

function replyAddress(addr: Uint8Array | undefined, port: number | undefined, from: GossipAddress): GossipAddress | undefined {
  if (addr && addr.length > 0 && port !== undefined && port > 0) {
    const host = ipToString(addr);
    return host === undefined ? undefined : { host, port };
  }
  return from;
}

