// State machine apply benchmark: a program that prints figures (never a test).
//
//   npx tsx bench/apply.ts [--batches N] [--reps N] [--keys N] [--warmup N] [--dedup] [--leader]
//
// Opens a StateMachine over a LevelBackend in a temporary directory and applies put commands the way a member's
// Ready loop does: each encoded by storage/command.ts as node/member.ts proposes it, handed over in batches of 100,
// each batch awaited before the next (the batch's backend write runs behind, as in the member). The measured puts
// overwrite (each reads its previous row for its event's prev_kv). --warmup batches (default 1,000) are applied
// first, unmeasured: enough to fill the revision-at-time index (100,000 records, after which every write also drops
// the oldest) and the row cache, which is where a member that has taken writes for a while is.
//
// Half the puts have the shape node/api gives a client's Put (lease 0, prev_kv/ignore_* false, a requester from
// the auth check); the other half are lease-less puts with no optional fields. --dedup adds a request id
// (clientId, seq) to every command, as fulcrumctl's retries do, so the exactly-once table is written too. Payloads
// arrive as a follower receives them (views into one decoded message), or with --leader as the leader's own.
//
// Reports CPU microseconds per applied put (process.cpuUsage: the main thread and LevelDB's thread pool), the main
// thread's share of it (Linux only, from /proc, in 10 ms ticks) and wall microseconds, per repetition, then the
// medians. The main thread's figure is the steadier one on a busy machine: LevelDB's background compactions land
// in the process total whenever they happen to run.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelBackend } from '../storage/backend.js';
import { encodeCommand, type Command } from '../storage/command.js';
import { StateMachine, type AppliedCommand } from '../storage/state-machine.js';
import { median } from './lib/summary.js';
import { threadCpuMs } from './lib/systems.js';

const PUTS_PER_BATCH = 100;
const VALUE_BYTES = 256;
/** Warm-up batches encoded at a time (all at once would hold a million commands). */
const WARMUP_CHUNK_BATCHES = 100;
/** An HLC wall time in 2023, advanced a millisecond per command so the dedup table's log time moves. */
const HLC_START = 1_700_000_000_000n << 16n;

interface Args {
  batches: number;
  reps: number;
  keys: number;
  warmup: number;
  dedup: boolean;
  leader: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { batches: 200, reps: 7, keys: 1_000, warmup: 1_000, dedup: false, leader: false };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]?.replace(/^--/, '');
    if (name === 'dedup' || name === 'leader') {
      args[name] = true;
      continue;
    }
    const value = Number(argv[++i]);
    const least = name === 'warmup' ? 0 : 1;
    if (name === undefined || !['batches', 'reps', 'keys', 'warmup'].includes(name) || !Number.isSafeInteger(value) || value < least) {
      throw new Error(`usage: bench/apply.ts [--batches N] [--reps N] [--keys N] [--warmup N] [--dedup] [--leader]; bad ${argv[i - 1]}`);
    }
    (args as unknown as Record<string, number>)[name] = value;
  }
  return args;
}

/** Proposes puts as node/member.ts does: one encoded command per entry, with increasing log index and HLC. */
class Proposer {
  private index = 0;
  private hlc = HLC_START;
  private seq = 0;
  private seed = 12345;
  private readonly value = new Uint8Array(VALUE_BYTES).fill(0x61);

  constructor(private readonly args: Args) {}

  /**
   * The next batch; `keyOf(n)` picks the key of the batch's n-th put. A follower gets its entries in one Raft
   * message, which gRPC decodes into one Buffer: each payload is a Buffer view into it, as node/transport hands it
   * over. The leader applies its own proposals: a plain Uint8Array each.
   */
  batch(keyOf: (n: number) => number): AppliedCommand[] {
    const out: AppliedCommand[] = [];
    for (let n = 0; n < PUTS_PER_BATCH; n++) out.push(this.command(keyOf(n)));
    if (this.args.leader) return out;
    const message = Buffer.concat(out.map((c) => c.payload));
    let at = 0;
    return out.map((c) => {
      const payload = message.subarray(at, at + c.payload.byteLength);
      at += payload.byteLength;
      return { ...c, payload };
    });
  }

  random(keys: number): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2 ** 31;
    return this.seed % keys;
  }

  private command(key: number): AppliedCommand {
    this.index++;
    this.hlc += 1n << 16n;
    const k = new Uint8Array(Buffer.from(`/registry/services/${key.toString().padStart(10, '0')}`));
    const op: Command['op'] =
      this.index % 2 === 0
        ? { put: { key: k, value: this.value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } }
        : { put: { key: k, value: this.value } };
    const identity = this.args.dedup ? { clientId: `bench-${key % 16}`, seq: ++this.seq } : {};
    const auth = this.index % 2 === 0 ? { auth: { user: '', revision: 1 } } : {};
    return { index: this.index, term: 1, payload: encodeCommand({ hlc: this.hlc, op, ...identity, ...auth }) };
  }
}

interface Sample {
  cpuUs: number;
  mainUs: number;
  wallUs: number;
}

/** The main thread's user + system CPU in microseconds (NaN where /proc is not there). */
function mainThreadCpuUs(): number {
  return (threadCpuMs(process.pid, process.pid) ?? Number.NaN) * 1000;
}

async function applyBatches(sm: StateMachine, batches: readonly AppliedCommand[][]): Promise<Sample> {
  const puts = batches.length * PUTS_PER_BATCH;
  const cpu = process.cpuUsage();
  const main = mainThreadCpuUs();
  const start = performance.now();
  for (const b of batches) {
    const results = await sm.apply(b);
    if (results.some((r) => r.error !== undefined)) throw new Error(`bench: a put failed: ${results.find((r) => r.error)?.error?.message}`);
  }
  await sm.settled();
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / puts, mainUs: (mainThreadCpuUs() - main) / puts, wallUs: ((performance.now() - start) * 1000) / puts };
}

const figures = (s: Sample): string => `${s.cpuUs.toFixed(1)} us CPU per put (main thread ${s.mainUs.toFixed(1)}), ${s.wallUs.toFixed(1)} us wall`;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`apply bench: ${PUTS_PER_BATCH} puts per batch, ${VALUE_BYTES}-byte values over ${args.keys} keys, ${args.batches} batches x ${args.reps} reps after ${args.warmup} batches of warm-up${args.dedup ? ', with request ids' : ''}, ${args.leader ? 'leader' : 'follower'} payloads, node ${process.version}`);
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-bench-apply-'));
  const backend = await LevelBackend.open(dir);
  try {
    const sm = await StateMachine.open(backend);
    const proposer = new Proposer(args);
    const fill: AppliedCommand[][] = [];
    for (let first = 0; first < args.keys; first += PUTS_PER_BATCH) fill.push(proposer.batch((n) => (first + n) % args.keys));
    await applyBatches(sm, fill);
    for (let done = 0; done < args.warmup; done += WARMUP_CHUNK_BATCHES) {
      const n = Math.min(WARMUP_CHUNK_BATCHES, args.warmup - done);
      await applyBatches(sm, Array.from({ length: n }, () => proposer.batch(() => proposer.random(args.keys))));
    }
    const samples: Sample[] = [];
    for (let rep = 0; rep < args.reps; rep++) {
      // Commands are encoded before the clock starts: encoding is the proposer's work, not the apply's.
      const batches = Array.from({ length: args.batches }, () => proposer.batch(() => proposer.random(args.keys)));
      const s = await applyBatches(sm, batches);
      samples.push(s);
      console.log(`rep ${rep + 1}: ${figures(s)}`);
    }
    const mid = (xs: number[]): number => median(xs) ?? Number.NaN;
    console.log(`median: ${figures({ cpuUs: mid(samples.map((s) => s.cpuUs)), mainUs: mid(samples.map((s) => s.mainUs)), wallUs: mid(samples.map((s) => s.wallUs)) })}`);
  } finally {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
