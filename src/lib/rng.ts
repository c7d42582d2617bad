/**
 * Seeded randomness, injected (CONVENTIONS.md §5). xoshiro128** seeded through splitmix32:
 * fast, 2^128 period, and the same seed gives the same sequence on every machine, so a failing
 * simulation seed replays exactly.
 */
export interface Rng {
  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number;
  /** A float in [0, 1). */
  float(): number;
  /** An integer in [0, n). Throws RangeError when n is not a positive integer. */
  int(n: number): number;
  /** Fills `out` with random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** float() and int() from u32(), shared by both generators. */
abstract class Uint32Rng implements Rng {
  abstract u32(): number;
  abstract fill(out: Uint8Array): Uint8Array;

  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int needs a positive integer, got ${n}`);
    return Math.floor(this.float() * n);
  }
}

export class SeededRng extends Uint32Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  readonly seed: number;

  constructor(seed: number) {
    super();
    this.seed = seed >>> 0;
    const sm = splitmix32(this.seed);
    this.#s0 = sm();
    this.#s1 = sm();
    this.#s2 = sm();
    this.#s3 = sm();
  }

  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#s1 << 9) >>> 0;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    this.#s0 >>>= 0;
    this.#s1 >>>= 0;
    this.#s2 >>>= 0;
    return result;
  }

  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < out.length; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** An independent generator derived from this one (for one node of a simulation, say). */
  fork(): SeededRng {
    return new SeededRng(this.u32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Randomness from the OS for production: crypto.getRandomValues behind the same interface. */
export class CryptoRng extends Uint32Rng {
  // One getRandomValues call costs microseconds; draw 256 numbers at a time.
  readonly #pool = new Uint32Array(256);
  #next = this.#pool.length;

  u32(): number {
    if (this.#next === this.#pool.length) {
      crypto.getRandomValues(this.#pool);
      this.#next = 0;
    }
    return this.#pool[this.#next++]!;
  }

  fill(out: Uint8Array): Uint8Array {
    return crypto.getRandomValues(out);
  }
}
