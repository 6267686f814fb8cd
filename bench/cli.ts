// `npm run bench`: Fulcrum and etcd side by side, on this machine, under one etcd v3 load generator. A program
// that prints figures, never a test (docs/performance.md says how to read them).
//
//   npm run bench [-- --suite full|quick|micro] [--workloads put,get,cas,watch,leases,failover,size]
//                 [--duration s] [--warmup s] [--server-warmup s] [--rounds n] [--target fulcrum|etcd|both] [--keys n]
//                 [--watchers n] [--watch-rate n] [--leases n] [--no-docs] [--out-dir dir] [--base-port p]
//
// Writes bench/results/<date>-<commit>.json (every run and the medians), a latency/throughput chart
// bench/results/<date>-<commit>.svg, and (unless --no-docs) the generated table in docs/performance.md.
// `--suite micro` runs the single-component benchmarks instead (Raft core, WAL and MVCC against raw LevelDB, and the
// state machine's apply of puts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CLIENT_STACKS, type ClientStack } from './lib/clients.js';
import { buildFulcrum } from './lib/build.js';
import { latencyThroughputSvg, putPoints } from './lib/chart.js';
import { updateDocs } from './lib/docs.js';
import { runSuite, type BenchReport, type SuiteOptions } from './lib/suite.js';
import { formatSummaryText, formatTargetsText, targetChecks } from './lib/summary.js';
import type { SystemName } from './lib/systems.js';
import { WORKLOAD_NAMES, type WorkloadName } from './lib/workloads.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The heading of docs/performance.md under which the generated section goes the first time. */
const DOCS_ANCHOR = '## Side by side with etcd: `npm run bench`';

/** Presets; any option given on the command line wins over its suite's value. */
const SUITES = {
  full: { durationMs: 10_000, warmupMs: 2_000, serverWarmupMs: 30_000, rounds: 3, sizeKeys: 1_000_000, watchers: 1_000, watchRate: 100, leases: 10_000 },
  quick: { durationMs: 3_000, warmupMs: 1_000, serverWarmupMs: 10_000, rounds: 2, sizeKeys: 100_000, watchers: 1_000, watchRate: 50, leases: 10_000 },
} as const;

const number = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`not a positive number: ${v}`);
  return n;
};
const integer = (v: string): number => {
  const n = number(v);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`not an integer: ${v}`);
  return n;
};
const workloadList = (v: string): WorkloadName[] => {
  const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) if (!(WORKLOAD_NAMES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown workload ${n} (known: ${WORKLOAD_NAMES.join(', ')})`);
  return names as WorkloadName[];
};

const program = new Command('npm run bench --')
  .description('Fulcrum vs etcd 3.4, 3 members each on loopback, one etcd v3 load generator, alternating rounds')
  .addOption(new Option('--suite <suite>', 'preset: full (10 s runs, 3 rounds, 1M keys), quick (3 s, 2 rounds, 100k keys), micro').choices(['full', 'quick', 'micro']).default('full'))
  .option('--workloads <list>', `workloads to run, in order (${WORKLOAD_NAMES.join(',')})`, workloadList)
  .option('--duration <s>', 'measured seconds of each timed run', number)
  .option('--warmup <s>', 'warm-up seconds before each timed run', (v) => (v === '0' ? 0 : number(v)))
  .option('--server-warmup <s>', 'unmeasured puts and gets each cluster gets once before the first workload', (v) => (v === '0' ? 0 : number(v)))
  .option('--rounds <n>', 'rounds per workload (each round runs every target once)', integer)
  .addOption(new Option('--target <which>', 'systems to measure').choices(['fulcrum', 'etcd', 'both']).default('both'))
  .option('--keys <n>', 'keys loaded by the size workload (--suite micro: keys of the MVCC reopen)', integer)
  .option('--watchers <n>', 'watchers of the fan-out workload', integer)
  .option('--watch-rate <n>', 'puts per second of the fan-out writer', number)
  .option('--leases <n>', 'leases kept alive', integer)
  .option('--value-bytes <n>', 'bytes per value', integer, 256)
  .addOption(new Option('--client <stack>', 'client stack of the put, get and CAS workloads: Fulcrum\'s HTTP/2 client (light, so the generator is not what is measured) or grpc-js (as before the thirty-fifth session)').choices([...CLIENT_STACKS]).default('engine'))
  .option('--heartbeat <ms>', 'heartbeat interval of both systems', integer, 100)
  .option('--election <ms>', 'election timeout of both systems', integer, 1_000)
  .option('--snapshot-count <n>', 'entries between snapshots, both systems', integer, 10_000)
  .option('--base-port <p>', 'first of 12 loopback ports (Fulcrum: 6, etcd: the next 6)', integer, 12_400)
  .option('--etcd <binary>', 'the etcd binary', 'etcd')
  .option('--out-dir <dir>', 'where the JSON and SVG go', join(REPO, 'bench', 'results'))
  .option('--docs <file>', 'the page whose generated section is updated', join(REPO, 'docs', 'performance.md'))
  .option('--no-docs', 'do not update docs/performance.md')
  .option('--from-source', 'run Fulcrum\'s members from the TypeScript sources through tsx (as npm start) instead of the compiled build the container image runs')
  .parse();

interface CliOptions {
  suite: 'full' | 'quick' | 'micro';
  workloads?: WorkloadName[];
  duration?: number;
  warmup?: number;
  serverWarmup?: number;
  rounds?: number;
  target: 'fulcrum' | 'etcd' | 'both';
  keys?: number;
  watchers?: number;
  watchRate?: number;
  leases?: number;
  valueBytes: number;
  client: ClientStack;
  heartbeat: number;
  election: number;
  snapshotCount: number;
  basePort: number;
  etcd: string;
  outDir: string;
  docs: string | false;
  fromSource?: boolean;
}
const opts = program.opts<CliOptions>();
const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** The micro-benchmarks of earlier issues, one after another, output passed through. */
function runMicro(): number {
  const tsx = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
  const runs: [string, string[]][] = [
    ['bench/raft-core.ts', []],
    ['bench/wal.ts', []],
    ['bench/mvcc.ts', opts.keys === undefined ? [] : ['--keys', String(opts.keys)]],
    ['bench/apply.ts', []],
  ];
  let status = 0;
  for (const [file, args] of runs) {
    log(`\n== ${file} ${args.join(' ')}`);
    const r = spawnSync(process.execPath, ['--import', tsx, join(REPO, file), ...args], { stdio: 'inherit', cwd: REPO });
    if (r.status !== 0) status = 1;
  }
  return status;
}

async function runSideBySide(): Promise<number> {
  const preset = SUITES[opts.suite === 'micro' ? 'quick' : opts.suite];
  const targets: SystemName[] = opts.target === 'both' ? ['fulcrum', 'etcd'] : [opts.target];
  const o: SuiteOptions = {
    suite: opts.suite === 'micro' ? 'custom' : opts.suite,
    workloads: opts.workloads ?? [...WORKLOAD_NAMES],
    rounds: opts.rounds ?? preset.rounds,
    targets,
    settings: { heartbeatMs: opts.heartbeat, electionMs: opts.election, snapshotCount: opts.snapshotCount },
    basePort: opts.basePort,
    etcdBinary: opts.etcd,
    fulcrumEntry: opts.fromSource === true ? 'source' : 'build',
    durationMs: (opts.duration ?? preset.durationMs / 1000) * 1000,
    warmupMs: (opts.warmup ?? preset.warmupMs / 1000) * 1000,
    serverWarmupMs: (opts.serverWarmup ?? preset.serverWarmupMs / 1000) * 1000,
    valueBytes: opts.valueBytes,
    watchers: opts.watchers ?? preset.watchers,
    watchRate: opts.watchRate ?? preset.watchRate,
    leases: opts.leases ?? preset.leases,
    sizeKeys: opts.keys ?? preset.sizeKeys,
    requestTimeoutMs: 5_000,
    client: opts.client,
  };
  if (o.targets.includes('fulcrum') && o.fulcrumEntry === 'build') buildFulcrum(log);
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, '');
  const report: BenchReport = await runSuite(o, REPO, command, log);
  mkdirSync(opts.outDir, { recursive: true });
  // <date>-<commit>; a second run of the same commit on the same day gets the start time too, so no run's
  // results overwrite another's.
  let base = `${report.startedAt.slice(0, 10)}-${report.commit}`;
  if (existsSync(join(opts.outDir, `${base}.json`))) base += `-${report.startedAt.slice(11, 19).replace(/:/g, '')}`;
  const jsonFile = join(opts.outDir, `${base}.json`);
  const svgFile = join(opts.outDir, `${base}.svg`);
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  const series: Partial<Record<SystemName, ReturnType<typeof putPoints>>> = {};
  for (const s of report.options.targets) series[s] = putPoints(report.rows, s);
  // A run without the put workload has nothing to draw: no empty chart.
  const hasChart = Object.values(series).some((points) => points.length > 0);
  if (hasChart) writeFileSync(svgFile, latencyThroughputSvg(series, `put latency against throughput, 256-byte values (${base})`));
  process.stdout.write(`\n${formatSummaryText(report.summary)}\n\n`);
  if (report.options.targets.length === 2) process.stdout.write(`issue 7's targets:\n${formatTargetsText(targetChecks(report.summary))}\n\n`);
  if (report.etcdSkipped !== null) process.stdout.write(`${report.etcdSkipped}\n`);
  for (const f of report.failures) process.stdout.write(`FAILED: ${f.system} ${f.workload} round ${f.round}: ${f.error}\n`);
  process.stdout.write(`results: ${relative(process.cwd(), jsonFile)}\nchart:   ${hasChart ? relative(process.cwd(), svgFile) : 'none (no put workload in this run)'}\n`);
  if (opts.docs !== false) {
    updateDocs(opts.docs, report, relative(REPO, jsonFile), hasChart ? relative(REPO, svgFile) : null, DOCS_ANCHOR);
    process.stdout.write(`docs:    ${relative(process.cwd(), opts.docs)} (generated section updated)\n`);
  }
  const lost = report.rows.reduce((n, r) => n + (r.metrics.lostWrites ?? 0), 0);
  if (lost > 0) process.stdout.write(`ACKNOWLEDGED WRITES LOST: ${lost}\n`);
  return report.failures.length > 0 || lost > 0 ? 1 : 0;
}

try {
  process.exitCode = opts.suite === 'micro' ? runMicro() : await runSideBySide();
} catch (err) {
  log(`bench/cli.ts: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 2;
}
