// Load program for any etcd v3 endpoint list (Fulcrum or etcd): a program that prints figures, never a test.
//
//   npx tsx bench/load.ts [--endpoints 127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379] [--duration 10]
//                         [--warmup 2] [--connections 10] [--in-flight 100] [--value-bytes 256] [--keys 1000]
//                         [--phases seq-put,put,get-linearizable,get-serializable] [--label fulcrum] [--json out.json]
//
// Writes go to the leader (found with Maintenance.Status), reads are spread over all endpoints. Prints a table
// (ops/s, p50/p99/max latency, errors by kind); --json writes the raw figures. Exits 1 if any request failed,
// so a run with errors cannot pass for a clean one. The phases are described in bench/lib/etcd-load.ts.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CLIENT_STACKS, type ClientStack } from './lib/clients.js';
import { LOAD_DEFAULTS, PHASE_NAMES, runEtcdLoad, type PhaseName } from './lib/etcd-load.js';
import { formatErrorKinds, formatTable } from './lib/report.js';

const number = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
};
const list = (v: string): string[] => v.split(',').map((s) => s.trim().replace(/^https?:\/\//, '')).filter((s) => s !== '');

const program = new Command('bench/load.ts')
  .description('etcd v3 load: sequential puts, concurrent puts, linearizable and serializable gets')
  .option('--endpoints <list>', 'comma-separated host:port client endpoints', list, ['127.0.0.1:2379', '127.0.0.1:12379', '127.0.0.1:22379'])
  .option('--duration <s>', 'measured seconds per phase', number, LOAD_DEFAULTS.durationMs / 1000)
  .option('--warmup <s>', 'warm-up seconds before each phase', number, LOAD_DEFAULTS.warmupMs / 1000)
  .option('--connections <n>', 'connections for the concurrent phases', number, LOAD_DEFAULTS.connections)
  .option('--in-flight <n>', 'requests in flight for the concurrent phases', number, LOAD_DEFAULTS.inFlight)
  .option('--value-bytes <n>', 'bytes per value', number, LOAD_DEFAULTS.valueBytes)
  .option('--keys <n>', 'distinct keys written and read', number, LOAD_DEFAULTS.keys)
  .option('--prefix <p>', 'key prefix', LOAD_DEFAULTS.prefix)
  .option('--phases <list>', `phases to run, in order (${PHASE_NAMES.join(',')})`, list, [...PHASE_NAMES])
  .option('--timeout-ms <ms>', 'deadline of each request', number, LOAD_DEFAULTS.requestTimeoutMs)
  .option('--label <name>', 'name of the system under test, for the JSON output', '')
  .addOption(new Option('--client <stack>', 'client stack of the calls: Fulcrum\'s HTTP/2 client (light) or grpc-js (as before the thirty-fifth session)').choices([...CLIENT_STACKS]).default(LOAD_DEFAULTS.client))
  .option('--json <file>', 'also write the raw figures as JSON to this file')
  .parse();

const opts = program.opts<{
  endpoints: string[];
  duration: number;
  warmup: number;
  connections: number;
  inFlight: number;
  valueBytes: number;
  keys: number;
  prefix: string;
  phases: string[];
  timeoutMs: number;
  label: string;
  client: ClientStack;
  json?: string;
}>();

try {
  const report = await runEtcdLoad(
    {
      endpoints: opts.endpoints,
      phases: opts.phases as PhaseName[],
      durationMs: opts.duration * 1000,
      warmupMs: opts.warmup * 1000,
      connections: opts.connections,
      inFlight: opts.inFlight,
      valueBytes: opts.valueBytes,
      keys: opts.keys,
      prefix: opts.prefix,
      requestTimeoutMs: opts.timeoutMs,
      label: opts.label,
      client: opts.client,
    },
    (line) => process.stderr.write(`${line}\n`),
  );
  const m = report.machine;
  process.stdout.write(
    `${report.label === '' ? '' : `${report.label}: `}${report.options.endpoints.join(',')}; ` +
      `${m.nproc} CPUs, ${m.memoryTotalMiB} MiB, node ${m.node}, load ${m.loadAverage.join(' ')}; ` +
      `${opts.duration} s per phase after ${opts.warmup} s warm-up\n`,
  );
  process.stdout.write(`${formatTable(report.phases)}\n`);
  if (report.prefill !== null && report.prefill.errors > 0) {
    process.stdout.write(`errors in prefill: ${report.prefill.errors}\n${formatErrorKinds(report.prefill.byKind).join('\n')}\n`);
  }
  if (report.leaderChanged) {
    const term = (l: typeof report.leader): string => l.statuses.map((s) => s.raftTerm).reduce((a, b) => (BigInt(b) > BigInt(a) ? b : a), '0');
    process.stdout.write(
      `warning: the leader changed during the run (${report.leader.endpoint}, term ${term(report.leader)} -> ${report.leaderAfter.endpoint}, term ${term(report.leaderAfter)})\n`,
    );
  }
  if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
  const errors = report.phases.reduce((n, p) => n + p.errorsTotal, report.prefill?.errors ?? 0);
  process.exitCode = errors > 0 ? 1 : 0;
} catch (err) {
  process.stderr.write(`bench/load.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
