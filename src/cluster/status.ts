/**
 * Node status on the manager, from two kinds of evidence: heartbeats (swarmkit's dispatcher:
 * a node that sends none for HeartbeatPeriod × 3 is down, "heartbeat failure") and the
 * membership layer's up/down events (liveness.ts). A node is ready while its heartbeat is
 * fresh and the membership does not say it is down; a membership "down" makes it down at once
 * and voids the current heartbeat, since the gossip detects failure faster than three missed
 * periods; the next heartbeat makes it ready again. Gossip alone never makes a node ready: an
 * agent that left the swarm still gossips (the mesh needs it), but it sends no heartbeat.
 *
 * After the manager starts, every other node is `unknown` until it is heard from or its
 * grace period passes, as swarmkit does after a leadership change.
 *
 * Fast failure detection (issue 8: every replica running again within 5 s of a kill): a node
 * is also down, at once, while the gossip suspects it AND its dispatcher session is gone (no
 * assignment poll outstanding and none within the grace, dispatcher.ts). Alone, neither is
 * trusted: Lifeguard lets a suspect refute, so SWIM declares a member dead only after a
 * suspicion timeout of at least ~4 s on a 3-node LAN; and a long poll may drop for a moment.
 * Two independent detectors agreeing (SWIM suspects ~1.5 s after a crash; the agent's
 * connection closes with its process) are. Suspicion counts only for a node that has had a
 * session with this manager, since without one there is no second detector to agree. An
 * alive/up event from the gossip, a new session or a heartbeat clears the suspicion. swarmkit has no such
 * rule: its dispatcher waits out three heartbeat periods (15 s by default).
 */
import type { Clock, Timer } from '../lib/clock.js';
import type { LivenessState } from './liveness.js';
import type { NodeState } from './types.js';

export const UNREACHABLE_MESSAGE = 'node is unreachable: gossip suspects it and its dispatcher session is gone';

/** swarmkit dispatcher defaultGracePeriodMultiplier. */
export const GRACE_PERIOD_MULTIPLIER = 3;

interface Entry {
  heartbeatFresh: boolean;
  livenessUp: boolean | undefined;
  heard: boolean;
  timer: Timer | undefined;
  message: string;
  /** The gossip suspects the node (cleared by an up event or a new session). */
  suspected: boolean;
  /** A dispatcher session is open now. */
  session: boolean;
  /** The node has had a session with this tracker: its end means something. */
  hadSession: boolean;
}

export interface NodeStatus {
  readonly state: NodeState;
  readonly message: string;
}

export class NodeStatusTracker {
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  readonly #onChange: (nodeId: string, status: NodeStatus) => void;
  #periodMs: number;

  constructor(options: { clock: Clock; heartbeatPeriodMs: number; onChange?: (nodeId: string, status: NodeStatus) => void }) {
    this.#clock = options.clock;
    this.#periodMs = options.heartbeatPeriodMs;
    this.#onChange = options.onChange ?? (() => undefined);
  }

  get heartbeatPeriodMs(): number {
    return this.#periodMs;
  }

  set heartbeatPeriodMs(ms: number) {
    this.#periodMs = ms;
  }

  /** Starts tracking a node that has not been heard from yet: unknown, then down after the grace period. */
  track(nodeId: string): void {
    if (this.#entries.has(nodeId)) return;
    const entry: Entry = { heartbeatFresh: false, livenessUp: undefined, heard: false, timer: undefined, message: '', suspected: false, session: false, hadSession: false };
    this.#entries.set(nodeId, entry);
    entry.timer = this.#clock.setTimer(this.#graceMs(), () => this.#expire(nodeId));
  }

  forget(nodeId: string): void {
    this.#entries.get(nodeId)?.timer?.cancel();
    this.#entries.delete(nodeId);
  }

  heartbeat(nodeId: string): void {
    this.track(nodeId);
    const entry = this.#entries.get(nodeId)!;
    const before = this.status(nodeId);
    entry.heard = true;
    entry.heartbeatFresh = true;
    // The node reached this manager: whatever the gossip suspects, it is not gone.
    entry.suspected = false;
    entry.timer?.cancel();
    entry.timer = this.#clock.setTimer(this.#graceMs(), () => this.#expire(nodeId));
    this.#changed(nodeId, before);
  }

  liveness(nodeId: string, up: boolean): void {
    this.track(nodeId);
    const entry = this.#entries.get(nodeId)!;
    const before = this.status(nodeId);
    entry.heard = true;
    entry.livenessUp = up;
    if (up) entry.suspected = false;
    if (!up) {
      entry.heartbeatFresh = false;
      entry.timer?.cancel();
      entry.timer = undefined;
      entry.message = 'node is down according to the cluster membership';
    }
    this.#changed(nodeId, before);
  }

  /** The gossip suspects the node: down at once if its dispatcher session is gone too. */
  suspect(nodeId: string): void {
    this.track(nodeId);
    const entry = this.#entries.get(nodeId)!;
    const before = this.status(nodeId);
    entry.suspected = true;
    this.#changed(nodeId, before);
  }

  /** One membership event: `up` and `down` as liveness(), `suspect` as suspect(). */
  membership(nodeId: string, state: LivenessState): void {
    if (state === 'suspect') this.suspect(nodeId);
    else this.liveness(nodeId, state === 'up');
  }

  /** The node's dispatcher session opened or ended (the Dispatcher's onSession). A new session clears a suspicion. */
  session(nodeId: string, open: boolean): void {
    this.track(nodeId);
    const entry = this.#entries.get(nodeId)!;
    const before = this.status(nodeId);
    entry.session = open;
    if (open) {
      entry.hadSession = true;
      entry.suspected = false;
    }
    this.#changed(nodeId, before);
  }

  status(nodeId: string): NodeStatus {
    const entry = this.#entries.get(nodeId);
    if (!entry) return { state: 'unknown', message: '' };
    if (entry.suspected && entry.hadSession && !entry.session) return { state: 'down', message: UNREACHABLE_MESSAGE };
    if (entry.heartbeatFresh && entry.livenessUp !== false) return { state: 'ready', message: '' };
    if (!entry.heard && entry.timer) return { state: 'unknown', message: "Node moved to 'unknown' state due to leadership change" };
    return { state: 'down', message: entry.message };
  }

  close(): void {
    for (const entry of this.#entries.values()) entry.timer?.cancel();
    this.#entries.clear();
  }

  #graceMs(): number {
    return this.#periodMs * GRACE_PERIOD_MULTIPLIER;
  }

  #expire(nodeId: string): void {
    const entry = this.#entries.get(nodeId);
    if (!entry) return;
    const before = this.status(nodeId);
    entry.timer = undefined;
    entry.heartbeatFresh = false;
    entry.heard = true;
    entry.message = 'heartbeat failure';
    this.#changed(nodeId, before);
  }

  #changed(nodeId: string, before: NodeStatus): void {
    const after = this.status(nodeId);
    if (after.state !== before.state) this.#onChange(nodeId, after);
  }
}
