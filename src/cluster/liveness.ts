/**
 * How node status reaches the manager from outside the control plane: a membership layer
 * (the SWIM gossip, src/gossip) reports each node up or down by its address and name, and the
 * manager combines that with its own heartbeats (status.ts). The agent connects the gossip to
 * this interface; until it does, heartbeats alone decide.
 */
export type LivenessState = 'up' | 'down';

export interface LivenessEvent {
  /** The node's underlay address, without port (what `Status.Addr` shows). */
  readonly addr: string;
  /** The node's name in the membership, if known (matched against the hostname). */
  readonly name?: string;
  readonly state: LivenessState;
}

export interface NodeLiveness {
  /** Calls `listener` on every change; returns a function that stops the calls. */
  subscribe(listener: (event: LivenessEvent) => void): () => void;
}

/** A liveness source driven by hand: for tests, and a no-op stand-in until the gossip lands. */
export class ManualLiveness implements NodeLiveness {
  readonly #listeners = new Set<(event: LivenessEvent) => void>();

  subscribe(listener: (event: LivenessEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: LivenessEvent): void {
    for (const l of [...this.#listeners]) l(event);
  }
}
