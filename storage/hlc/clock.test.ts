import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelBackend, MemoryBackend } from '../backend.js';
import { HLC_RESERVATION_KEY, HybridClock, LEGACY_HLC_RESERVATION_KEY } from './clock.js';
import { u64 } from './section.js';
import { HlcError } from './errors.js';
import { HLC_LOGICAL_MAX, hlcLogical, hlcOf, hlcWallMs, type Hlc } from './hlc.js';

/** A physical clock driven by hand: set it forwards or backwards at will. */
function manualClock(startMs: number): { nowMs: () => number; set(ms: number): void } {
  let t = startMs;
  return { nowMs: () => t, set: (ms) => void (t = ms) };
}

/** Open a clock and make its first reservation durable, as the node does before proposing. */
async function openReserved(backend: MemoryBackend, physical: { nowMs: () => number }, windowMs = 10_000): Promise<HybridClock> {
  const clock = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: windowMs });
  await persistReservation(clock, backend);
  return clock;
}

async function persistReservation(clock: HybridClock, backend: MemoryBackend): Promise<number | undefined> {
  const batch = backend.batch();
  const bound = clock.reserve(batch);
  await batch.write({ sync: true });
  if (bound !== undefined) clock.reservationPersisted(bound);
  return bound;
}

describe('HybridClock', () => {
  it('follows the physical clock when it moves forward', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical);
    expect(clock.now()).toBe(hlcOf(1_000_000, 0));
    physical.set(1_000_005);
    expect(clock.now()).toBe(hlcOf(1_000_005, 0));
  });

  it('resumes above a reservation kept under the legacy key, and its next reservation deletes that key', async () => {
    const backend = new MemoryBackend();
    const seed = backend.batch();
    seed.put(LEGACY_HLC_RESERVATION_KEY, u64(2_000_000));
    await seed.write({ sync: true });
    const physical = manualClock(1_000_000); // set back below the reservation while the member was down
    const clock = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: 10_000 });
    expect(clock.reservedThroughMs()).toBe(2_000_000);
    const bound = await persistReservation(clock, backend);
    expect(bound).toBeGreaterThan(2_000_000);
    expect(hlcWallMs(clock.now())).toBeGreaterThan(2_000_000);
    expect(await backend.get(LEGACY_HLC_RESERVATION_KEY)).toBeUndefined();
    expect(await backend.get(HLC_RESERVATION_KEY)).toEqual(u64(bound!));
    const reopened = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: 10_000 });
    expect(reopened.reservedThroughMs()).toBe(bound);
  });

  it('counts logically within one millisecond', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical);
    expect([clock.now(), clock.now(), clock.now()]).toEqual([hlcOf(1_000_000, 0), hlcOf(1_000_000, 1), hlcOf(1_000_000, 2)]);
  });

  it('never goes backwards when the physical clock jumps back', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical);
    const before = clock.now();
    physical.set(900_000);
    const after = clock.now();
    expect(after > before).toBe(true);
    expect(hlcWallMs(after)).toBe(1_000_000);
    expect(hlcLogical(after)).toBe(1);
  });

  it('borrows the next millisecond when the logical counter is full', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical);
    clock.observe(hlcOf(1_000_000, HLC_LOGICAL_MAX));
    expect(clock.now()).toBe(hlcOf(1_000_001, 0));
  });

  it('observe() moves the clock past a remote value', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical);
    clock.observe(hlcOf(1_000_003, 7));
    expect(clock.now()).toBe(hlcOf(1_000_003, 8));
    clock.observe(hlcOf(10, 0)); // an old remote value changes nothing
    expect(clock.now()).toBe(hlcOf(1_000_003, 9));
  });

  it('observe() refuses a remote value too far ahead of the physical clock', async () => {
    const physical = manualClock(1_000_000);
    const clock = await HybridClock.open(new MemoryBackend(), { physicalNowMs: physical.nowMs, maxRemoteLeadMs: 500 });
    expect(() => clock.observe(hlcOf(1_000_501, 0))).toThrow(expect.objectContaining({ code: 'CLOCK_OFFSET_TOO_LARGE' }));
    clock.observe(hlcOf(1_000_500, 0));
    expect(clock.current()).toBe(hlcOf(1_000_500, 0));
  });

  it('a fresh clock refuses to issue until a reservation is durable', async () => {
    const physical = manualClock(1_000_000);
    const backend = new MemoryBackend();
    const clock = await HybridClock.open(backend, { physicalNowMs: physical.nowMs });
    expect(() => clock.now()).toThrow(HlcError);
    const bound = await persistReservation(clock, backend);
    expect(bound).toBe(1_010_000);
    expect(clock.now()).toBe(hlcOf(1_000_000, 0));
  });

  it('renews the reservation only when the head is within half a window of it', async () => {
    const physical = manualClock(1_000_000);
    const backend = new MemoryBackend();
    const clock = await openReserved(backend, physical, 1000);
    expect(clock.reservedThroughMs()).toBe(1_001_000);
    physical.set(1_000_500);
    expect(await persistReservation(clock, backend)).toBeUndefined();
    physical.set(1_000_501);
    expect(await persistReservation(clock, backend)).toBe(1_001_501);
  });

  it('clamps to the durable bound after a forward jump, then refuses when the logical values run out', async () => {
    const physical = manualClock(1_000_000);
    const clock = await openReserved(new MemoryBackend(), physical, 1000);
    physical.set(5_000_000); // a forward jump far past the reservation, not yet renewed
    expect(clock.now()).toBe(hlcOf(1_001_000, 0));
    expect(clock.now()).toBe(hlcOf(1_001_000, 1));
    clock.observe(hlcOf(1_001_000, HLC_LOGICAL_MAX));
    expect(() => clock.now()).toThrow(expect.objectContaining({ code: 'RESERVATION_EXHAUSTED' }));
  });

  it('a pending reservation is not used before it is durable', async () => {
    const physical = manualClock(1_000_000);
    const backend = new MemoryBackend();
    const clock = await openReserved(backend, physical, 1000);
    expect(clock.needsReservation()).toBe(false); // 1,000,000 is within half a window of the bound 1,001,000
    physical.set(1_002_000);
    expect(clock.needsReservation()).toBe(true);
    const batch = backend.batch();
    const bound = clock.reserve(batch);
    expect(bound).toBe(1_003_000);
    expect(clock.needsReservation()).toBe(false); // pending counts: one reservation in flight at a time
    expect(hlcWallMs(clock.now())).toBe(1_001_000); // still clamped: the batch was not written
    await batch.write({ sync: true });
    clock.reservationPersisted(bound!);
    expect(clock.now()).toBe(hlcOf(1_002_000, 0));
  });

  it('after a restart never issues a value at or below one issued before, even with the clock set back', async () => {
    const physical = manualClock(1_000_000);
    const backend = new MemoryBackend();
    const first = await openReserved(backend, physical, 1000);
    let issued: Hlc = 0n;
    for (let i = 0; i < 5; i++) issued = first.now();
    physical.set(1_000_999);
    issued = first.now();
    physical.set(10); // the machine's clock was reset while it was down
    const second = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: 1000 });
    await persistReservation(second, backend);
    const next = second.now();
    expect(next > issued).toBe(true);
    expect(next).toBe(hlcOf(1_001_001, 0));
  });

  it('the reservation survives a restart on LevelDB', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-hlc-'));
    try {
      const physical = manualClock(2_000_000);
      let backend = await LevelBackend.open(dir);
      const clock = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: 500 });
      const batch = backend.batch();
      const bound = clock.reserve(batch)!;
      await batch.write({ sync: true });
      clock.reservationPersisted(bound);
      const issued = clock.now();
      await backend.close();
      physical.set(0);
      backend = await LevelBackend.open(dir);
      const reopened = await HybridClock.open(backend, { physicalNowMs: physical.nowMs, reservationWindowMs: 500 });
      expect(reopened.current()).toBe(hlcOf(2_000_500, HLC_LOGICAL_MAX));
      expect(reopened.current() > issued).toBe(true);
      await backend.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('property: values are strictly increasing under any physical clock, restarts included', async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), ms: fc.integer({ min: 0, max: 3_000 }) }),
      fc.record({ kind: fc.constant('now' as const) }),
      fc.record({ kind: fc.constant('observe' as const), ms: fc.integer({ min: 0, max: 3_000 }), logical: fc.integer({ min: 0, max: HLC_LOGICAL_MAX }) }),
      fc.record({ kind: fc.constant('reserve' as const) }),
      fc.record({ kind: fc.constant('restart' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const physical = manualClock(1_000);
        const backend = new MemoryBackend();
        let clock = await openReserved(backend, physical, 100);
        let highest: Hlc = 0n;
        for (const s of steps) {
          if (s.kind === 'set') physical.set(1_000 + s.ms);
          else if (s.kind === 'observe') clock.observe(hlcOf(1_000 + s.ms, s.logical));
          else if (s.kind === 'reserve') await persistReservation(clock, backend);
          else if (s.kind === 'restart') clock = await openReserved(backend, physical, 100);
          else {
            let v: Hlc;
            try {
              v = clock.now();
            } catch (e) {
              expect((e as HlcError).code).toBe('RESERVATION_EXHAUSTED');
              continue;
            }
            expect(v > highest).toBe(true);
            expect(hlcWallMs(v)).toBeLessThanOrEqual(clock.reservedThroughMs());
            highest = v;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
