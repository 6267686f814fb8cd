// The simulated network: every message gets a delivery time drawn from the seeded generator, so messages are
// delayed, and reordered whenever a later message draws a shorter delay. On top of that a message may be
// dropped or duplicated, and links may be cut one direction at a time to build partitions. A link is checked
// both when a message is sent and when it arrives, so cutting a link also loses what was in flight on it.
import type { SeededRandom } from '../../raft/rng.js';
import type { NodeId } from '../../raft/types.js';

/** Member ids index a square matrix of links; the simulator never runs more members than this. */
export const MAX_MEMBERS = 16;

export interface LinkFaults {
  /** Probability that a message is lost. */
  readonly dropRate: number;
  /** Probability that a message is delivered twice (the copy gets its own delay). */
  readonly duplicateRate: number;
  /** Probability that a message takes the slow path (long delay), which reorders it behind later traffic. */
  readonly slowRate: number;
  /** Normal one-way delay range, in simulated milliseconds. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Upper bound of the slow path's delay. */
  readonly slowDelayMaxMs: number;
}

export const CALM_LINKS: LinkFaults = Object.freeze({
  dropRate: 0,
  duplicateRate: 0,
  slowRate: 0,
  minDelayMs: 1,
  maxDelayMs: 5,
  slowDelayMaxMs: 5,
});

export type PartitionShape = 'symmetric' | 'one-way' | 'bridge' | 'isolate';

export class SimNetwork {
  private readonly cut = new Uint8Array(MAX_MEMBERS * MAX_MEMBERS);
  private cutCount = 0;
  faults: LinkFaults = CALM_LINKS;
  /** A human-readable description of the current partition, for verbose traces and failure context. */
  describe = 'healed';

  constructor(private readonly rng: SeededRandom) {}

  canReach(from: NodeId, to: NodeId): boolean {
    return this.cutCount === 0 || this.cut[from * MAX_MEMBERS + to] === 0;
  }

  get partitioned(): boolean {
    return this.cutCount > 0;
  }

  /**
   * Delivery times for one message sent at `nowMs`: none when it is lost, two when duplicated. The draws
   * happen in a fixed order whatever the outcome, so one message's fate never shifts the next one's.
   */
  route(from: NodeId, to: NodeId, nowMs: number): number[] {
    const f = this.faults;
    const lost = this.rng.chance(f.dropRate);
    const twice = this.rng.chance(f.duplicateRate);
    const first = nowMs + this.delay(f);
    const second = nowMs + this.delay(f);
    if (lost || !this.canReach(from, to)) return [];
    return twice ? [first, second] : [first];
  }

  private delay(f: LinkFaults): number {
    const slow = this.rng.chance(f.slowRate);
    const hi = slow ? f.slowDelayMaxMs : f.maxDelayMs;
    return f.minDelayMs + this.rng.int(hi - f.minDelayMs + 1);
  }

  /** Cut every link from a member of `a` to a member of `b` (one direction). */
  cutLinks(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        if (x === y) continue;
        const k = x * MAX_MEMBERS + y;
        if (this.cut[k] === 0) this.cutCount++;
        this.cut[k] = 1;
      }
    }
  }

  heal(): void {
    this.cut.fill(0);
    this.cutCount = 0;
    this.describe = 'healed';
  }

  /**
   * Build a partition of `members` (healing any earlier one first):
   *  - symmetric: two random halves that cannot talk;
   *  - one-way:   one half's messages to the other are lost, the reverse direction works;
   *  - bridge:    one member sees both halves, the halves cannot see each other (etcd's "bridge" nemesis);
   *  - isolate:   `focus` (usually the leader) alone on one side.
   */
  partition(shape: PartitionShape, members: readonly NodeId[], focus: NodeId): void {
    this.heal();
    if (members.length < 2) return;
    if (shape === 'isolate') {
      const rest = members.filter((m) => m !== focus);
      this.cutLinks([focus], rest);
      this.cutLinks(rest, [focus]);
      this.describe = `isolate ${focus} from ${rest.join(',')}`;
      return;
    }
    const shuffled = this.shuffle(members);
    if (shape === 'bridge' && members.length >= 3) {
      const bridge = shuffled[0]!;
      const rest = shuffled.slice(1);
      const cutAt = 1 + this.rng.int(rest.length - 1);
      const a = rest.slice(0, cutAt);
      const b = rest.slice(cutAt);
      this.cutLinks(a, b);
      this.cutLinks(b, a);
      this.describe = `bridge ${bridge} between ${a.join(',')} | ${b.join(',')}`;
      return;
    }
    const cutAt = 1 + this.rng.int(shuffled.length - 1);
    const a = shuffled.slice(0, cutAt);
    const b = shuffled.slice(cutAt);
    this.cutLinks(a, b);
    if (shape === 'one-way') {
      this.describe = `one-way ${a.join(',')} -/-> ${b.join(',')}`;
    } else {
      this.cutLinks(b, a);
      this.describe = `split ${a.join(',')} | ${b.join(',')}`;
    }
  }

  private shuffle(members: readonly NodeId[]): NodeId[] {
    const out = [...members];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = out[i]!;
      out[i] = out[j]!;
      out[j] = t;
    }
    return out;
  }
}
