/**
 * Lifeguard's local health awareness (Lifeguard §IV-A; ML awareness.go): a score in
 * [0, AwarenessMaxMultiplier − 1] that rises when this node shows signs of being the slow or
 * disconnected one (failed probes without nacks, having to refute) and falls with every
 * successful probe. A high score stretches the probe deadline, so an overloaded node accuses
 * others less readily.
 */
import { clampAwareness, scaleTimeout } from './formulas.js';

export class Awareness {
  readonly #max: number;
  #score = 0;

  constructor(awarenessMaxMultiplier: number) {
    this.#max = awarenessMaxMultiplier;
  }

  get score(): number {
    return this.#score;
  }

  /** Adds `delta`, clamped to the range. Returns true when the score changed. */
  applyDelta(delta: number): boolean {
    const before = this.#score;
    this.#score = clampAwareness(before + delta, this.#max);
    return this.#score !== before;
  }

  /** `timeoutMs × (score + 1)` (ML awareness.go:64-69). */
  scaleTimeout(timeoutMs: number): number {
    return scaleTimeout(timeoutMs, this.#score);
  }
}
