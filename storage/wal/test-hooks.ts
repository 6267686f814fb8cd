// Test-only hooks into the write-ahead log, set by node/failpoints.ts when FULCRUM_FAILPOINTS asks for them and
// never otherwise. They exist so the chaos suite can show that its checkers catch what they claim to catch.
export const walTestHooks: {
  /**
   * Above 0: writes are acknowledged at once and reach LevelDB only this many ms later, unsynced. A kill -9 in
   * that window loses acknowledged entries, as a disk that ignores fsync does on power loss (negative control).
   */
  unsyncedWriteDelayMs: number;
  /** Called at named points of snapshot saving ("before-snapshot-commit", "after-snapshot-commit"). */
  fault: ((point: string) => void) | undefined;
} = { unsyncedWriteDelayMs: 0, fault: undefined };
