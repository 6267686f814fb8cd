// Test-only failpoints, driven by the environment, so the chaos suite can crash a real member exactly between
// two steps of its write path, or make its disk lie about fsync (a negative control). Unset, nothing happens.
//
//   FULCRUM_FAILPOINTS="after-persist=crash@20,before-apply=crash%0.01,no-fsync"
//     <point>=crash        kill -9 this process the first time the point is reached
//     <point>=crash@N      ... the N-th time
//     <point>=crash%P      ... each time with probability P (0 < P <= 1)
//     no-fsync             WAL writes skip fsync and never count as durable: only a power loss can tell (the
//                          chaos suite emulates one by restoring an earlier crash image of the data directory)
//     no-lease-expiry      the leader never revokes an expired lease: keys on a lease let go stay for good
//   FULCRUM_FAILPOINTS_FILE=<path>   the same syntax, re-read while the member runs (points armed at run time)
//
// Points: the Ready loop's (before-persist, after-persist, before-apply, after-apply, before-restore,
// after-restore: a follower installing a snapshot) and the snapshot store's (before-snapshot-commit,
// after-snapshot-commit: a member saving a snapshot).
import { readFileSync, unwatchFile, watchFile, writeSync } from 'node:fs';
import { leaseTestHooks } from './lease/test-hooks.js';
import { walTestHooks } from '../storage/wal/test-hooks.js';

export const FAILPOINT_NAMES = [
  'before-persist',
  'after-persist',
  'before-apply',
  'after-apply',
  'before-restore',
  'after-restore',
  'before-snapshot-commit',
  'after-snapshot-commit',
] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

export interface CrashAction {
  /** Crash on this hit (1-based); 0 when probability decides. */
  readonly onHit: number;
  readonly probability: number;
}

export interface FailpointSpec {
  readonly crash: ReadonlyMap<FailpointName, CrashAction>;
  readonly noFsync: boolean;
  readonly noLeaseExpiry: boolean;
}

/** Failpoints that are a flag, not a crash at a point. */
const FLAG_FAILPOINTS = ['no-fsync', 'no-lease-expiry'] as const;

/** How often the failpoint file is polled for changes. */
const FILE_POLL_MS = 100;

export function parseFailpoints(text: string): FailpointSpec {
  const crash = new Map<FailpointName, CrashAction>();
  const flags = new Set<string>();
  for (const raw of text.split(/[,\n]/)) {
    const item = raw.trim();
    if (item === '') continue;
    const [name, action = ''] = item.split('=', 2) as [string, string?];
    if ((FLAG_FAILPOINTS as readonly string[]).includes(name)) {
      if (action !== '') throw new Error(`failpoint ${name} takes no action (got "${action}")`);
      flags.add(name);
      continue;
    }
    if (!(FAILPOINT_NAMES as readonly string[]).includes(name)) throw new Error(`unknown failpoint "${name}" (known: ${[...FAILPOINT_NAMES, ...FLAG_FAILPOINTS].join(', ')})`);
    const m = /^crash(?:@(\d+)|%([0-9.]+))?$/.exec(action);
    if (m === null) throw new Error(`failpoint ${name}=${action}: want crash, crash@N or crash%P`);
    const onHit = m[1] !== undefined ? Number(m[1]) : m[2] !== undefined ? 0 : 1;
    const probability = m[2] !== undefined ? Number(m[2]) : 1;
    if (onHit < 0 || !(probability > 0 && probability <= 1)) throw new Error(`failpoint ${name}=${action}: N must be >= 1 and 0 < P <= 1`);
    crash.set(name as FailpointName, { onHit, probability });
  }
  return { crash, noFsync: flags.has('no-fsync'), noLeaseExpiry: flags.has('no-lease-expiry') };
}

export class Failpoints {
  private spec: FailpointSpec;
  private readonly hits = new Map<string, number>();

  constructor(
    staticSpec: string,
    private readonly file: string | undefined,
    private readonly crashNow: (point: string) => void = crashProcess,
  ) {
    this.spec = parseFailpoints(staticSpec);
    walTestHooks.skipFsync = this.spec.noFsync;
    leaseTestHooks.skipExpiry = this.spec.noLeaseExpiry;
    if (file !== undefined) {
      this.reload(staticSpec);
      watchFile(file, { interval: FILE_POLL_MS, persistent: false }, () => this.reload(staticSpec));
    }
    walTestHooks.fault = (p) => this.hit(p);
  }

  static fromEnv(env: NodeJS.ProcessEnv): Failpoints | undefined {
    const spec = env.FULCRUM_FAILPOINTS ?? '';
    const file = env.FULCRUM_FAILPOINTS_FILE || undefined;
    if (spec === '' && file === undefined) return undefined;
    return new Failpoints(spec, file);
  }

  /** The file's points are added to the static ones; a bad file is reported and ignored (the member runs on). */
  private reload(staticSpec: string): void {
    let text = '';
    try {
      text = readFileSync(this.file!, 'utf8');
    } catch {
      // absent: only the static points
    }
    try {
      this.spec = parseFailpoints(`${staticSpec},${text}`);
      this.hits.clear();
    } catch (e) {
      writeSync(2, `fulcrum: failpoints file ${this.file}: ${(e as Error).message}\n`);
    }
  }

  hit(point: string): void {
    const action = this.spec.crash.get(point as FailpointName);
    if (action === undefined) return;
    const n = (this.hits.get(point) ?? 0) + 1;
    this.hits.set(point, n);
    if (action.onHit > 0 ? n === action.onHit : Math.random() < action.probability) this.crashNow(point);
  }

  close(): void {
    if (this.file !== undefined) unwatchFile(this.file);
    walTestHooks.fault = undefined;
    walTestHooks.skipFsync = false;
    leaseTestHooks.skipExpiry = false;
  }
}

/** What a member writes to stderr, as one line, just before it crashes itself at a failpoint. */
export function failpointCrashLine(point: string): string {
  return `fulcrum: failpoint ${point}: crashing (SIGKILL)`;
}

/** Whether a line of a member's stderr says it is crashing itself at a failpoint (an expected exit). */
export function isFailpointCrashLine(line: string): boolean {
  return /^fulcrum: failpoint [a-z-]+: crashing \(SIGKILL\)$/.test(line);
}

/** kill -9 ourselves: no cleanup, no sync, exactly what the chaos suite's kill does, but at a known step. */
function crashProcess(point: string): void {
  writeSync(2, `${failpointCrashLine(point)}\n`);
  process.kill(process.pid, 'SIGKILL');
}
