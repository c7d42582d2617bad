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
 */
import type { Clock, Timer } from '../lib/clock.js';
import type { NodeState } from './types.js';

/** swarmkit dispatcher defaultGracePeriodMultiplier. */
export const GRACE_PERIOD_MULTIPLIER = 3;

interface Entry {
  heartbeatFresh: boolean;
  livenessUp: boolean | undefined;
  heard: boolean;
  timer: Timer | undefined;
  message: string;
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
    const entry: Entry = { heartbeatFresh: false, livenessUp: undefined, heard: false, timer: undefined, message: '' };
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
    if (!up) {
      entry.heartbeatFresh = false;
      entry.timer?.cancel();
      entry.timer = undefined;
      entry.message = 'node is down according to the cluster membership';
    }
    this.#changed(nodeId, before);
  }

  status(nodeId: string): NodeStatus {
    const entry = this.#entries.get(nodeId);
    if (!entry) return { state: 'unknown', message: '' };
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
