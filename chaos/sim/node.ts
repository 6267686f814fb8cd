// One simulated member: the real RawNode over a simulated disk, plus the volatile state the node layer keeps
// (its state machine, its applied membership, what it last said about its role). A crash drops every
// volatile field; a restart rebuilds them from the disk alone.
import { ProposalDroppedError } from '../../raft/errors.js';
import type { RaftConfigInput } from '../../raft/config.js';
import type { MemoryStorage } from '../../raft/storage.js';
import { Role, type ConfChange, type ConfState, type Message, type NodeId, type Ready } from '../../raft/types.js';
import { RawNode } from '../../raft/rawnode.js';
import { SimDisk } from './disk.js';
import { RegisterMachine } from './statemachine.js';

/** The part of RawNode the simulator drives; negative controls are RawNode subclasses, so they fit too. */
export interface SimCore {
  tick(): void;
  propose(data: Uint8Array): void;
  proposeConfChange(cc: ConfChange): void;
  applyConfChange(cc: ConfChange): ConfState;
  step(m: Message): void;
  readIndex(context: Uint8Array): void;
  transferLeadership(to: NodeId): void;
  reportUnreachable(id: NodeId): void;
  reportSnapshot(id: NodeId, ok: boolean): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
}

export type CoreFactory = (config: RaftConfigInput, storage: MemoryStorage) => SimCore;

export const realCore: CoreFactory = (config, storage) => new RawNode(config, storage);

const EMPTY_CONF: ConfState = Object.freeze({ voters: [], learners: [] });

export class SimNode {
  readonly disk = new SimDisk();
  /** undefined while crashed. */
  core: SimCore | undefined = undefined;
  /** Incremented on every restart; events scheduled for an earlier life are stale. */
  life = 0;
  machine = new RegisterMachine(0, 0);
  confState: ConfState = EMPTY_CONF;
  role: Role = Role.Follower;
  lead: NodeId = 0;
  term = 0;
  commit = 0;
  /** A Ready handed to a slow disk, not yet durable: nothing of it has been sent or applied. */
  inFlight: Ready | undefined = undefined;
  /** Milliseconds between this member's ticks (members' clocks drift apart a little). */
  tickIntervalMs: number;

  constructor(
    readonly id: NodeId,
    tickIntervalMs: number,
  ) {
    this.tickIntervalMs = tickIntervalMs;
  }

  get alive(): boolean {
    return this.core !== undefined;
  }

  isLearner(): boolean {
    return this.confState.learners.includes(this.id);
  }

  isVoter(): boolean {
    return this.confState.voters.includes(this.id);
  }

  /** Lose everything volatile; the disk falls back to what was synced. */
  crash(): void {
    this.core = undefined;
    this.inFlight = undefined;
    this.disk.crash();
    this.role = Role.Follower;
    this.lead = 0;
  }

  /** Come back from the disk: state machine and membership from the snapshot, the rest replayed by the core. */
  restart(makeCore: CoreFactory, config: RaftConfigInput): void {
    const storage = this.disk.storage;
    const snap = storage.snapshot();
    this.machine = snap.data.byteLength === 0 ? new RegisterMachine(0, 0) : RegisterMachine.restore(snap.data);
    this.confState = snap.metadata.confState;
    const hs = storage.initialState().hardState;
    this.term = hs.term;
    this.commit = hs.commit;
    this.role = Role.Follower;
    this.lead = 0;
    this.life++;
    this.core = makeCore({ ...config, id: this.id, applied: snap.metadata.index }, storage);
  }

  /** Propose, treating "dropped" as the ordinary answer it is (no leader, transfer in progress...). */
  tryPropose(data: Uint8Array): boolean {
    return this.tryCore((c) => c.propose(data));
  }

  tryCore(fn: (c: SimCore) => void): boolean {
    if (this.core === undefined) return false;
    try {
      fn(this.core);
      return true;
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
  }
}
