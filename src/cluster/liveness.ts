/**
 * How node status reaches the manager from outside the control plane: a membership layer
 * (the SWIM gossip, src/gossip) reports each node up, suspect or down by its address and name,
 * and the manager combines that with its own heartbeats and dispatcher sessions (status.ts).
 * The agent connects the gossip to this interface; until it does, heartbeats alone decide.
 */
/**
 * `suspect`: SWIM suspects the node (a probe and its indirect probes went unanswered) but has
 * not declared it dead; under Lifeguard it may still refute. Alone it changes nothing; with the
 * node's dispatcher session gone too it is trusted (status.ts).
 */
export type LivenessState = 'up' | 'suspect' | 'down';

export interface LivenessEvent {
  /** The node's underlay address, without port (what `Status.Addr` shows). */
  readonly addr: string;
  /** The node's name in the membership, if known (matched against the hostname). */
  readonly name?: string;
  readonly state: LivenessState;
}

export interface LivenessSubscribeOptions {
  /**
   * Also deliver `suspect` events. Off by default, so that a listener written when there were
   * only `up` and `down` never reads a suspicion as a death.
   */
  readonly suspect?: boolean;
}

export interface NodeLiveness {
  /** Calls `listener` on every change; returns a function that stops the calls. */
  subscribe(listener: (event: LivenessEvent) => void, options?: LivenessSubscribeOptions): () => void;
}

/** Listeners with their options: the part every NodeLiveness source shares. */
export class LivenessListeners {
  readonly #listeners = new Map<(event: LivenessEvent) => void, boolean>();

  subscribe(listener: (event: LivenessEvent) => void, options?: LivenessSubscribeOptions): () => void {
    const entry = (event: LivenessEvent): void => listener(event);
    this.#listeners.set(entry, options?.suspect === true);
    return () => this.#listeners.delete(entry);
  }

  emit(event: LivenessEvent): void {
    for (const [listener, wantsSuspect] of [...this.#listeners]) if (event.state !== 'suspect' || wantsSuspect) listener(event);
  }
}

/** A liveness source driven by hand: for tests, and a no-op stand-in until the gossip lands. */
export class ManualLiveness implements NodeLiveness {
  readonly #listeners = new LivenessListeners();

  subscribe(listener: (event: LivenessEvent) => void, options?: LivenessSubscribeOptions): () => void {
    return this.#listeners.subscribe(listener, options);
  }

  emit(event: LivenessEvent): void {
    this.#listeners.emit(event);
  }
}
