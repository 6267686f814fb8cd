// Test-only hooks into the write-ahead log, set by node/failpoints.ts when FULCRUM_FAILPOINTS asks for them and
// never otherwise. They exist so the chaos suite can show that its checkers catch what they claim to catch.
export const walTestHooks: {
  /**
   * Writes go to LevelDB without fsync and nothing is ever counted durable (the fence does not advance): the
   * member acknowledges entries a power loss can take away. The chaos suite emulates that power loss by putting
   * back an earlier crash image of the member's data directory (negative control).
   */
  skipFsync: boolean;
  /** Called at named points of snapshot saving ("before-snapshot-commit", "after-snapshot-commit"). */
  fault: ((point: string) => void) | undefined;
} = { skipFsync: false, fault: undefined };
