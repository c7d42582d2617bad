/**
 * The bridge from the gossip (src/gossip, SWIM with Lifeguard) to the manager's node status:
 * pass `notifyEvent` as the Memberlist delegate's notifyEvent and this object to
 * `agent.cluster.attachLiveness()`. A member that joins or is alive again is up; one the
 * gossip declares dead, or that leaves, is down. `suspect` changes nothing: under Lifeguard a
 * suspect is still a member until its suspicion times out, and it may refute it.
 * A node is matched by its gossip address's host (its underlay address, `Status.Addr`) and by
 * its member name (the agent's node name, the node's hostname in `docker node ls`).
 */
import type { LivenessEvent, NodeLiveness } from '../cluster/liveness.js';
import type { MemberEvent } from '../gossip/memberlist.js';

export class MembershipLiveness implements NodeLiveness {
  readonly #listeners = new Set<(event: LivenessEvent) => void>();

  subscribe(listener: (event: LivenessEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The Memberlist delegate's notifyEvent. */
  notifyEvent(event: MemberEvent): void {
    const state = event.type === 'dead' || event.type === 'leave' ? 'down' : event.type === 'suspect' ? undefined : 'up';
    if (!state) return;
    const change: LivenessEvent = { addr: event.member.address.host, name: event.member.name, state };
    for (const listener of [...this.#listeners]) listener(change);
  }
}
