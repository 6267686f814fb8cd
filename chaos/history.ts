// The shape of a recorded history, shared by the real-process chaos harness (which writes histories) and the
// linearizability checker (which reads them, alongside Jepsen's formats). One event per line in a `.jsonl` file.
//
// An operation is an `invoke` followed by exactly one completion from the same process: `ok` (it took effect,
// with the value observed), `fail` (it certainly did not take effect) or `info` (unknown: it may take effect at
// any time after its invocation, or never). A process has at most one operation outstanding; after an `info`
// the process never completes that operation, so a harness moves the client on to a fresh process id.

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

export interface HistoryEvent {
  /** Logical client id; one outstanding operation per process. */
  readonly process: number;
  readonly type: EventType;
  /** The operation: `read`, `write`, `cas` for the register model; `get`, `put`, `append`, `cas` for kv. */
  readonly f: string;
  /** The key, for multi-key models (the checker partitions by key: P-compositionality). */
  readonly key?: string;
  /** Invoke: the argument (for `cas`, `[expected, new]`). Ok: the observed result (for reads). */
  readonly value?: unknown;
  /** Monotonic nanoseconds since the start of the run (real-time bounds of the operation). */
  readonly time: number;
  /** Position in the history, assigned when recorded or parsed. */
  readonly index?: number;
  /** Free-form detail (error text, member that answered). Never read by checkers. */
  readonly error?: string;
}

/** A nemesis action, recorded on its own timeline so reports can shade the faults. */
export interface NemesisEvent {
  readonly time: number;
  readonly phase: 'start' | 'stop';
  readonly fault: string;
  readonly detail?: string;
}
