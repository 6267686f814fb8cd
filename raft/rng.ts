// Deterministic randomness for the core and the simulator. The core never draws from Math.random.

export interface Random {
  /** A uniformly distributed integer in [0, n). */
  int(n: number): number;
}

/** splitmix32: tiny, fast, and good enough for timeouts and fault schedules. Same seed, same sequence. */
export class SeededRandom implements Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next32(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next32() / 0x1_0000_0000;
  }

  int(n: number): number {
    if (n <= 0) throw new RangeError(`random: bound must be positive, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A new generator whose sequence depends only on this one's next draw. */
  fork(): SeededRandom {
    return new SeededRandom(this.next32());
  }
}
