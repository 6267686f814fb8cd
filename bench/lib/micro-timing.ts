// What the small single-component timing programs (bench/hpack.ts, bench/h2-frames.ts) share: the one option they
// take and the loop that times a function after letting the JIT compile it.

/** `--iterations N` when given, else the program's default. */
export function parseIterations(argv: readonly string[], program: string, defaultIterations: number): number {
  if (argv.length === 0) return defaultIterations;
  const n = Number(argv[1]);
  if (argv[0] !== '--iterations' || !Number.isSafeInteger(n) || n <= 0) throw new Error(`usage: ${program} [--iterations N]`);
  return n;
}

/** Nanoseconds per call of `fn` over `iterations` calls, after `warmup` untimed calls. */
export function nsPerCall(iterations: number, warmup: number, fn: () => unknown): number {
  for (let i = 0; i < warmup; i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}
