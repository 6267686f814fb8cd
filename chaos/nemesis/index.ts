// Nemeses: faults injected into a running cluster on a schedule. Each has a start (inject) and a stop (heal);
// the scheduler runs one at a time, chosen at random from those asked for, between quiet periods, and records
// both ends on the nemesis timeline. `healAll` undoes anything a nemesis could have left behind.
import { appendFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { ChaosClient, errorText, writeCertainlyFailed } from '../harness/client.js';
import { LIBFAKETIME, sleep, type ChaosCluster } from '../harness/cluster.js';
import type { Recorder } from '../harness/recorder.js';
import { FAILPOINT_NAMES } from '../../node/failpoints.js';

export interface NemesisContext {
  readonly cluster: ChaosCluster;
  readonly recorder: Recorder;
  readonly random: () => number;
  readonly log: (line: string) => void;
}

export interface Nemesis {
  readonly name: string;
  /** Inject the fault; returns what was done (recorded as the fault's detail), or undefined when it could not. */
  start(ctx: NemesisContext): Promise<string | undefined>;
  /** Heal it. */
  stop(ctx: NemesisContext): Promise<void>;
}

const pick = <T>(xs: readonly T[], random: () => number): T => xs[Math.floor(random() * xs.length)]!;
const names = (xs: readonly number[]): string => xs.map((i) => `m${i + 1}`).join(' ');

async function stopsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const stopped = await Promise.race([exited.then(() => true), timeout]);
  clearTimeout(timer);
  return stopped;
}

function all(ctx: NemesisContext): number[] {
  return ctx.cluster.members.map((m) => m.index);
}

async function leaderOr(ctx: NemesisContext): Promise<number> {
  return (await ctx.cluster.leader()) ?? pick(all(ctx), ctx.random);
}

function shuffled(xs: number[], random: () => number): number[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Restart every member that is down, with whatever it has on disk. */
async function restartDead(ctx: NemesisContext): Promise<void> {
  for (const m of ctx.cluster.members) if (!m.running && !m.removed) m.start('new');
}

export const partition: Nemesis = {
  name: 'partition',
  async start(ctx) {
    const n = ctx.cluster.options.size;
    const kinds = n >= 3 ? ['isolate-leader', 'majority-minority', 'bridge', 'ring', 'one-way-leader'] : ['isolate-leader'];
    const kind = pick(kinds, ctx.random);
    const net = ctx.cluster.network;
    const leader = await leaderOr(ctx);
    const others = all(ctx).filter((i) => i !== leader);
    switch (kind) {
      case 'isolate-leader':
        net.partition([[leader], others]);
        return `isolate leader m${leader + 1}`;
      case 'majority-minority': {
        const order = shuffled(all(ctx), ctx.random);
        const minority = order.slice(0, Math.floor((n - 1) / 2));
        net.partition([minority, order.slice(minority.length)]);
        return `minority [${names(minority)}] | majority [${names(order.slice(minority.length))}]`;
      }
      case 'bridge': {
        // Two halves that cannot talk, and one member that talks to both: it can become leader of either side.
        const order = shuffled(all(ctx), ctx.random);
        const bridge = order[0]!;
        const half = Math.floor((n - 1) / 2);
        const a = order.slice(1, 1 + half);
        const b = order.slice(1 + half);
        for (const x of a) for (const y of b) net.cutBothWays(x, y);
        return `bridge m${bridge + 1} between [${names(a)}] and [${names(b)}]`;
      }
      case 'ring':
        net.ring();
        return 'ring (each member sees only its neighbours)';
      default:
        // The leader's messages still go out; nothing comes back to it: it cannot hear that it was deposed.
        for (const o of others) net.cutOneWay(o, leader);
        return `one-way: nobody reaches leader m${leader + 1}, it reaches everyone`;
    }
  },
  async stop(ctx) {
    ctx.cluster.network.heal();
  },
};

export const kill: Nemesis = {
  name: 'kill',
  async start(ctx) {
    const target = ctx.random() < 0.5 ? await leaderOr(ctx) : pick(all(ctx), ctx.random);
    await ctx.cluster.members[target]!.kill();
    return `kill -9 m${target + 1}`;
  },
  stop: restartDead,
};

export const pause: Nemesis = {
  name: 'pause',
  async start(ctx) {
    // In Fulcrum the leader holds every lease (it alone expires them): pausing it is pausing the lease holder.
    const target = ctx.random() < 0.7 ? await leaderOr(ctx) : pick(all(ctx), ctx.random);
    ctx.cluster.members[target]!.pause();
    return `SIGSTOP m${target + 1}`;
  },
  async stop(ctx) {
    for (const m of ctx.cluster.members) m.resume();
  },
};

export const clock: Nemesis = {
  name: 'clock',
  async start(ctx) {
    // Without libfaketime the clock file changes nothing: inject nothing rather than count a fault that was not.
    if (!existsSync(LIBFAKETIME)) return undefined;
    const target = pick(all(ctx), ctx.random);
    const m = ctx.cluster.members[target]!;
    const kind = pick(['skew', 'jump-back', 'jump-forward', 'restart-skewed'], ctx.random);
    const magnitude = 1 + Math.floor(ctx.random() * 300);
    const offset = kind === 'jump-back' ? -magnitude : kind === 'skew' ? (ctx.random() < 0.5 ? -1 : 1) * Math.ceil(magnitude / 10) : magnitude;
    m.setClock(offset);
    if (kind === 'restart-skewed') {
      await m.kill();
      m.start('new');
    }
    return `${kind} m${target + 1} wall clock ${offset >= 0 ? '+' : ''}${offset}s`;
  },
  async stop(ctx) {
    for (const m of ctx.cluster.members) if (m.clockOffsetS !== 0) m.setClock(0);
  },
};

export const transfer: Nemesis = {
  name: 'transfer',
  async start(ctx) {
    const leader = await ctx.cluster.leader();
    if (leader === undefined) return undefined;
    const to = pick(all(ctx).filter((i) => i !== leader && ctx.cluster.members[i]!.running), ctx.random);
    const target = ctx.cluster.members[to]!;
    if (target.id === undefined) return undefined;
    const c = new ChaosClient(ctx.cluster.directEndpoint(leader), 10_000);
    try {
      await c.moveLeader(BigInt(`0x${target.id}`).toString());
      return `move leader m${leader + 1} → m${to + 1}`;
    } catch (e) {
      return `move leader m${leader + 1} → m${to + 1} refused: ${errorText(e)}`;
    } finally {
      c.close();
    }
  },
  async stop() {},
};

/** How long a removed member gets to notice its removal and stop by itself before the nemesis kills it. */
const REMOVED_STOP_MS = 15_000;

/** Reads of the member list, through the other members, after a removal whose answer was lost. */
const REMOVAL_CHECK_ATTEMPTS = 10;
const REMOVAL_CHECK_PAUSE_MS = 500;

/**
 * Whether the member list, as another running member answers it, no longer has `id`: a removal whose call failed
 * in a way that leaves its outcome unknown may have happened (it did in a soak, and the removed leader's exit was
 * then counted as unexpected). Not removed unless some member says so within the attempts.
 */
async function removedAfterAll(ctx: NemesisContext, target: number, id: string): Promise<boolean> {
  const cl = ctx.cluster;
  const others = all(ctx).filter((i) => i !== target && cl.members[i]!.running);
  for (let attempt = 0; attempt < REMOVAL_CHECK_ATTEMPTS; attempt++) {
    for (const i of others) {
      const c = new ChaosClient(cl.directEndpoint(i), 2_000);
      try {
        // Still listed may only mean this member has not applied the removal yet: look again, up to the attempts.
        if (!(await c.memberList()).some((x) => BigInt(x.id) === BigInt(`0x${id}`))) return true;
      } catch {
        // not answering: ask the next one
      } finally {
        c.close();
      }
    }
    await sleep(REMOVAL_CHECK_PAUSE_MS);
  }
  return false;
}

/**
 * Remove a member (the leader, a third of the time with three members), let it stop by itself, wipe it, add it back
 * as a learner, and promote it once it has caught up.
 */
export const member: Nemesis = {
  name: 'member',
  async start(ctx) {
    const cl = ctx.cluster;
    if (cl.options.size < 3) return undefined;
    const leader = await cl.leader();
    if (leader === undefined) return undefined;
    const target = pick(all(ctx).filter((i) => cl.members[i]!.running), ctx.random);
    const m = cl.members[target]!;
    if (m.id === undefined) return undefined;
    const c = new ChaosClient(cl.directEndpoint(leader), 10_000);
    let unknownOutcome: string | undefined;
    try {
      m.expectExit();
      await c.memberRemove(BigInt(`0x${m.id}`).toString());
    } catch (e) {
      // A leader that removes itself may stop before it answers ("Connection dropped"): ask the others.
      if (writeCertainlyFailed(e) || !(await removedAfterAll(ctx, target, m.id))) {
        m.expectExit(false);
        return `remove m${target + 1} refused: ${errorText(e)}`;
      }
      unknownOutcome = errorText(e);
    } finally {
      c.close();
    }
    m.removed = true;
    const stopped = await stopsWithin(m.waitExit(), REMOVED_STOP_MS);
    await m.kill();
    rmSync(m.dataDir, { recursive: true, force: true });
    const who = `m${target + 1}${target === leader ? ' (the leader)' : ''}`;
    if (!stopped) ctx.log(`removed ${who} was still running ${REMOVED_STOP_MS} ms after its removal`);
    const answered = unknownOutcome === undefined ? '' : ` (the call failed with ${unknownOutcome}, but the member list no longer had it)`;
    return `removed ${who}${answered}, ${stopped ? 'which stopped by itself' : `still running after ${REMOVED_STOP_MS} ms, killed`} (data wiped)`;
  },
  async stop(ctx) {
    const cl = ctx.cluster;
    for (const m of cl.members) {
      if (!m.removed) continue;
      const deadline = Date.now() + 30_000;
      let added = false;
      while (!added && Date.now() < deadline) {
        const leader = await cl.leader();
        if (leader === undefined) {
          await sleep(300);
          continue;
        }
        const c = new ChaosClient(cl.directEndpoint(leader), 10_000);
        try {
          await c.memberAdd([cl.peerUrl(m.index)], true);
          added = true;
        } catch (e) {
          ctx.log(`member add m${m.index + 1}: ${errorText(e)}`);
          await sleep(500);
        } finally {
          c.close();
        }
      }
      if (!added) continue;
      m.removed = false;
      m.start('existing');
      ctx.recorder.fault('start', 'member', `m${m.index + 1} added back as a learner`);
      await promoteWhenCaughtUp(ctx, m.index);
    }
  },
};

async function promoteWhenCaughtUp(ctx: NemesisContext, index: number): Promise<void> {
  const cl = ctx.cluster;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await sleep(500);
    const leader = await cl.leader();
    const m = cl.members[index]!;
    if (leader === undefined || m.id === undefined) continue;
    const c = new ChaosClient(cl.directEndpoint(leader), 10_000);
    try {
      await c.memberPromote(BigInt(`0x${m.id}`).toString());
      ctx.recorder.fault('stop', 'member', `m${index + 1} promoted to voter`);
      return;
    } catch (e) {
      ctx.log(`promote m${index + 1}: ${errorText(e)} (retrying)`);
    } finally {
      c.close();
    }
  }
  ctx.log(`m${index + 1} was not promoted within 30 s`);
}

/** Crash a member at a named step of its write path (Fulcrum's test-only failpoints), then restart it. */
export const crashpoint: Nemesis = {
  name: 'crashpoint',
  async start(ctx) {
    if (ctx.cluster.options.target !== 'fulcrum') return undefined;
    const target = pick(all(ctx), ctx.random);
    const point = pick(FAILPOINT_NAMES, ctx.random);
    // Snapshot points are rare events; every one of their hits is a chance. Write-path points are hit on
    // every Ready, so crash after a few to land in the middle of the load rather than at the first step.
    const hit = point.includes('snapshot') || point.includes('restore') ? 1 : 1 + Math.floor(ctx.random() * 50);
    ctx.cluster.members[target]!.setFailpoints(`${point}=crash@${hit}`);
    return `arm m${target + 1} ${point}=crash@${hit}`;
  },
  async stop(ctx) {
    for (const m of ctx.cluster.members) m.setFailpoints('');
    // The file is polled every 100 ms: let the member see it disarmed before it restarts.
    await sleep(300);
    await restartDead(ctx);
  },
};

/**
 * kill -9 a member and leave a torn write at the end of its newest LevelDB log file while it is down: the first
 * bytes of a record that never finished (a header claiming more payload than follows, then random bytes), as a
 * crash in the middle of a write leaves. Nothing acknowledged lives there: the member must start and lose nothing.
 * (Cutting bytes off the end instead removes synced, acknowledged records: the WAL's fence then refuses to start
 * the member, by design, so that fault belongs to an operator's restore procedure, not to this suite's nemeses.)
 */
export const torn: Nemesis = {
  name: 'torn',
  async start(ctx) {
    if (ctx.cluster.options.target !== 'fulcrum') return undefined;
    const target = pick(all(ctx), ctx.random);
    const m = ctx.cluster.members[target]!;
    await m.kill();
    const dir = join(m.dataDir, 'wal', 'log');
    const logs = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.log')).sort();
    const newest = logs[logs.length - 1];
    if (newest === undefined) return `kill -9 m${target + 1} (no WAL log file to tear)`;
    const size = (await stat(join(dir, newest))).size;
    const torn = tornRecord(ctx.random);
    await appendFile(join(dir, newest), torn);
    return `kill -9 m${target + 1}, torn write of ${torn.length} bytes at the end of wal/log/${newest} (was ${size} bytes)`;
  },
  stop: restartDead,
};

/** LevelDB log record header (crc32 4, length 2, type 1) announcing more bytes than follow. */
function tornRecord(random: () => number): Buffer {
  const payload = 1 + Math.floor(random() * 40);
  const b = Buffer.alloc(7 + payload);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(random() * 256);
  b.writeUInt16LE(payload + 100 + Math.floor(random() * 1000), 4);
  b[6] = 1; // a FULL record type: only its tail is missing
  return b;
}

/** Slow, lossy peer links: delay with jitter, throttle, and a fraction of new connections reset. */
export const slow: Nemesis = {
  name: 'slow',
  async start(ctx) {
    const delayMs = 20 + Math.floor(ctx.random() * 150);
    const jitterMs = Math.floor(delayMs / 2);
    const dir = { cut: false, delayMs, jitterMs, bytesPerSecond: 256 * 1024 };
    const drop = Math.round(ctx.random() * 30) / 100;
    ctx.cluster.network.shapePeers({ forward: dir, backward: dir, dropConnections: drop });
    return `peer links ${delayMs}±${jitterMs} ms, 256 KiB/s, ${drop * 100}% of new connections reset`;
  },
  async stop(ctx) {
    ctx.cluster.network.heal();
  },
};

/** Nemeses that act on links only (their heal resets every link): one schedule of their own under --overlap. */
export const NETWORK_NEMESES: ReadonlySet<string> = new Set(['partition', 'slow']);

export const NEMESES: Readonly<Record<string, Nemesis>> = { partition, kill, pause, clock, transfer, member, crashpoint, torn, slow };

export function parseNemeses(text: string): Nemesis[] {
  if (text === '' || text === 'none') return [];
  const list = text === 'all' ? Object.keys(NEMESES) : text.split(',').map((s) => s.trim());
  return list.map((n) => {
    const x = NEMESES[n];
    if (x === undefined) throw new Error(`unknown nemesis "${n}" (known: ${Object.keys(NEMESES).join(', ')}, all, none)`);
    return x;
  });
}

/** Undo everything: heal links, resume, reset clocks and failpoints, restart the dead, add back the removed. */
export async function healAll(ctx: NemesisContext): Promise<void> {
  ctx.cluster.network.heal();
  for (const m of ctx.cluster.members) {
    m.resume();
    if (m.clockOffsetS !== 0) m.setClock(0);
    if (ctx.cluster.options.target === 'fulcrum') m.setFailpoints('');
  }
  await member.stop(ctx);
  await sleep(300);
  await restartDead(ctx);
}

export interface ScheduleOptions {
  readonly nemeses: readonly Nemesis[];
  /** Quiet time between faults, and how long each fault lasts (ms, each drawn uniformly from [min, max]). */
  readonly quietMs: readonly [number, number];
  readonly faultMs: readonly [number, number];
}

/** Runs faults until `until` (a Date.now() deadline); returns how many were injected, by name. */
export async function runSchedule(ctx: NemesisContext, o: ScheduleOptions, until: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const between = (r: readonly [number, number]): number => r[0] + ctx.random() * (r[1] - r[0]);
  if (o.nemeses.length === 0) return counts;
  while (Date.now() + o.quietMs[0] < until) {
    await sleep(Math.min(between(o.quietMs), Math.max(0, until - Date.now())));
    if (Date.now() >= until) break;
    const n = pick(o.nemeses, ctx.random);
    let detail: string | undefined;
    try {
      detail = await n.start(ctx);
    } catch (e) {
      detail = `failed to inject: ${errorText(e)}`;
    }
    if (detail === undefined) continue;
    ctx.recorder.fault('start', n.name, detail);
    ctx.log(`nemesis ${n.name}: ${detail}`);
    counts.set(n.name, (counts.get(n.name) ?? 0) + 1);
    await sleep(Math.min(between(o.faultMs), Math.max(0, until - Date.now())));
    try {
      await n.stop(ctx);
    } catch (e) {
      ctx.log(`nemesis ${n.name}: heal failed: ${errorText(e)}`);
    }
    ctx.recorder.fault('stop', n.name);
  }
  return counts;
}
