// Reads V8's --trace-gc-nvp lines (one per collection, `name=value` pairs) and sums up the scavenges: where a
// member's young-generation pauses go (copying the survivors, sweeping array buffers, weak handles) and how much
// survives and is promoted each time. bench:profile --gc-phases runs the members with the flag and prints this.

/** Means per scavenge over the lines given; undefined when there were none. */
export interface ScavengeSummary {
  readonly count: number;
  readonly pauseMs: number;
  /** The main thread's share of copying the survivors (scavenge.parallel). */
  readonly copyMs: number;
  /** Helper threads' copying (background.scavenge.parallel), in parallel with the main thread's. */
  readonly helperCopyMs: number;
  readonly sweepArrayBuffersMs: number;
  readonly weakHandlesMs: number;
  readonly survivedBytes: number;
  readonly promotedBytes: number;
  /** Bytes allocated since the collection before. */
  readonly allocatedBytes: number;
}

/** Lines this module reads: a scavenge's. Other collections' lines (gc=mc, gc=ms) and other output are ignored. */
export function isScavengeLine(line: string): boolean {
  return / gc=s /.test(line);
}

export function summarizeScavenges(lines: readonly string[]): ScavengeSummary | undefined {
  const records = lines.filter(isScavengeLine).map(fields);
  if (records.length === 0) return undefined;
  const mean = (name: string): number => records.reduce((s, r) => s + (r.get(name) ?? 0), 0) / records.length;
  return {
    count: records.length,
    pauseMs: mean('pause'),
    copyMs: mean('scavenge.parallel'),
    helperCopyMs: mean('background.scavenge.parallel'),
    sweepArrayBuffersMs: mean('scavenge.sweep_array_buffers'),
    weakHandlesMs: mean('heap.external_weak_global_handles'),
    survivedBytes: mean('new_space_survived'),
    promotedBytes: mean('promoted'),
    allocatedBytes: mean('allocated'),
  };
}

/** The numeric `name=value` pairs of one line (a trailing % is dropped; words that are not numbers are left out). */
function fields(line: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of line.matchAll(/(\S+)=(-?[\d.]+)%?(?=\s|$)/g)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** One line for a member: `p1  105 scavenges, per scavenge: pause 1.55 ms (...)`. */
export function formatScavenges(member: string, s: ScavengeSummary | undefined): string {
  if (s === undefined) return `  ${member}  no scavenges recorded`;
  const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
  return (
    `  ${member}  ${s.count} scavenges, per scavenge: pause ${s.pauseMs.toFixed(2)} ms (copying ${s.copyMs.toFixed(2)} on the main thread, ` +
    `${s.helperCopyMs.toFixed(2)} on helpers; array buffers ${s.sweepArrayBuffersMs.toFixed(2)}; weak handles ${s.weakHandlesMs.toFixed(2)}), ` +
    `survived ${kib(s.survivedBytes)}, promoted ${kib(s.promotedBytes)}, allocated before it ${(s.allocatedBytes / 1048576).toFixed(1)} MiB`
  );
}
