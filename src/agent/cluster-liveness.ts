/**
 * The bridge from the gossip (src/gossip, SWIM with Lifeguard) to the manager's node status:
 * pass `notifyEvent` as the Memberlist delegate's notifyEvent and this object to
 * `agent.cluster.attachLiveness()`. A member that joins or is alive again is up; one the
 * gossip declares dead, or that leaves, is down; one it suspects is `suspect`, delivered only
 * to listeners that ask for it (liveness.ts): under Lifeguard a suspect is still a member until
 * its suspicion times out and may refute it, so the manager trusts a suspicion only when the
 * node's dispatcher session is gone too (status.ts).
 * A node is matched by its gossip address's host (its underlay address, `Status.Addr`) and by
 * its member name (the agent's node name, the node's hostname in `docker node ls`).
 */
import { type LivenessEvent, LivenessListeners, type LivenessState, type LivenessSubscribeOptions, type NodeLiveness } from '../cluster/liveness.js';
import type { MemberEvent } from '../gossip/memberlist.js';

export class MembershipLiveness implements NodeLiveness {
  readonly #listeners = new LivenessListeners();

  subscribe(listener: (event: LivenessEvent) => void, options?: LivenessSubscribeOptions): () => void {
    return this.#listeners.subscribe(listener, options);
  }

  /** The Memberlist delegate's notifyEvent. */
  notifyEvent(event: MemberEvent): void {
    const state: LivenessState = event.type === 'dead' || event.type === 'leave' ? 'down' : event.type === 'suspect' ? 'suspect' : 'up';
    this.#listeners.emit({ addr: event.member.address.host, name: event.member.name, state });
  }
}
