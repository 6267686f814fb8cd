// Exactly-once identities for writes. The server applies a write tagged `<client-id>:<seq>` once, answers a retry
// with the same seq from its table, and REFUSES a seq lower than the last one it applied for that client id
// (STALE_SEQUENCE: the answer it would need is gone, and applying it could undo a later write). So one identity
// can carry one write at a time: two concurrent writes 5 and 6 could arrive as 6 then 5, and 5 would be refused.
//
// A lane is one such identity, `<base>.<lane>`. A write takes a free lane, numbers itself with the lane's next
// seq, keeps that number for all its retries, and gives the lane back when it is done. A write abandoned with
// OutcomeUnknownError also frees its lane: if its lost attempt reaches the server after the lane's next write
// applied, the server refuses it as stale, so it can never apply late over a newer write.
import { randomBytes } from 'node:crypto';
import { AbortedError, UnavailableError } from './errors.js';

export interface WriteIdentity {
  readonly clientId: string;
  readonly seq: number;
  /** The metadata value: `<client-id>:<seq>`. */
  readonly header: string;
}

interface Lane {
  readonly clientId: string;
  seq: number;
}

export class WriteLanes {
  private readonly free: Lane[] = [];
  private created = 0;
  private readonly waiting: Array<(lane: Lane) => void> = [];
  readonly baseId: string;

  constructor(
    clientName: string,
    private readonly lanesMax: number,
    private readonly waitingMax: number,
  ) {
    // 16 random bytes: two clients must never share an identity, or one's writes would be taken for the other's.
    this.baseId = `${clientName}-${randomBytes(16).toString('hex')}`;
  }

  /** A lane with its next sequence number; call `release` when the write is finished, however it ended. */
  async acquire(signal?: AbortSignal): Promise<{ identity: WriteIdentity; release: () => void }> {
    const lane = this.free.pop() ?? this.createLane() ?? (await this.waitForLane(signal));
    lane.seq += 1;
    const identity = { clientId: lane.clientId, seq: lane.seq, header: `${lane.clientId}:${lane.seq}` };
    let released = false;
    return {
      identity,
      release: () => {
        if (released) return;
        released = true;
        this.giveBack(lane);
      },
    };
  }

  get inFlight(): number {
    return this.created - this.free.length;
  }

  private createLane(): Lane | undefined {
    if (this.created >= this.lanesMax) return undefined;
    return { clientId: `${this.baseId}.${this.created++}`, seq: 0 };
  }

  private waitForLane(signal?: AbortSignal): Promise<Lane> {
    if (this.waiting.length >= this.waitingMax) {
      return Promise.reject(new UnavailableError(`fulcrum client: ${this.waitingMax} writes already wait for one of ${this.lanesMax} in flight (writesQueuedMax)`, {}, 'TOO_MANY_REQUESTS'));
    }
    return new Promise((resolve, reject) => {
      const onLane = (lane: Lane): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(lane);
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(onLane);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new AbortedError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(onLane);
    });
  }

  private giveBack(lane: Lane): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(lane);
    else this.free.push(lane);
  }
}
