import { describe, expect, it } from 'vitest';
import { formatScavenges, isScavengeLine, summarizeScavenges } from './gc-nvp.js';

// Shortened lines in the shape V8's --trace-gc-nvp prints (Node 20): a prefix, then name=value pairs.
const scavenge = (pause: number, copy: number, sweep: number, survived: number, promoted: number): string =>
  `[4673:0x9bb24f0]    22995 ms: pause=${pause} mutator=159.1 gc=s reduce_memory=0 heap.external_weak_global_handles=0.15 scavenge=1.18 ` +
  `scavenge.parallel=${copy} scavenge.sweep_array_buffers=${sweep} background.scavenge.parallel=0.26 allocated=7086456 ` +
  `promoted=${promoted} new_space_survived=${survived} promotion_ratio=1.2% promotion_rate=89.4%`;
const markCompact = '[4675:0x22d1e4f0]     1709 ms: pause=12.2 mutator=24.0 gc=mc reduce_memory=0 promoted=999999';

describe('summarizeScavenges', () => {
  it('averages the scavenges and leaves other collections and other output out', () => {
    const s = summarizeScavenges([scavenge(1.4, 0.3, 0.6, 96_000, 80_000), markCompact, '{"level":30,"msg":"gc=s is not this"}', scavenge(2.0, 0.9, 0.2, 104_000, 120_000)]);
    expect(s).toBeDefined();
    expect(s!.count).toBe(2);
    expect(s!.pauseMs).toBeCloseTo(1.7, 10);
    expect(s!.copyMs).toBeCloseTo(0.6, 10);
    expect(s!.helperCopyMs).toBeCloseTo(0.26, 10);
    expect(s!.sweepArrayBuffersMs).toBeCloseTo(0.4, 10);
    expect(s!.weakHandlesMs).toBeCloseTo(0.15, 10);
    expect(s!.survivedBytes).toBe(100_000);
    expect(s!.promotedBytes).toBe(100_000);
    expect(s!.allocatedBytes).toBe(7_086_456);
  });

  it('has nothing to say without scavenges', () => {
    expect(summarizeScavenges([markCompact, 'hello'])).toBeUndefined();
    expect(formatScavenges('p2', undefined)).toBe('  p2  no scavenges recorded');
  });

  it('tells a scavenge line by its gc=s pair only', () => {
    expect(isScavengeLine(scavenge(1, 1, 1, 1, 1))).toBe(true);
    expect(isScavengeLine(markCompact)).toBe(false);
    expect(isScavengeLine('gc=scavenge')).toBe(false);
  });

  it('prints one line per member with the means', () => {
    const line = formatScavenges('p1', summarizeScavenges([scavenge(1.55, 0.73, 0.39, 148_000, 170_000)]));
    expect(line).toContain('p1  1 scavenges');
    expect(line).toContain('pause 1.55 ms (copying 0.73 on the main thread, 0.26 on helpers; array buffers 0.39; weak handles 0.15)');
    expect(line).toContain('survived 145 KiB, promoted 166 KiB, allocated before it 6.8 MiB');
  });
});
