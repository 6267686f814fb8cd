// `fulcrum snapshot status FILE [-w json]` and `fulcrum snapshot restore FILE --data-dir DIR`: the offline half of
// backup and restore (etcdutl's commands); `etcdctl snapshot save` against a running member is the online half.
import { Command, CommanderError } from 'commander';
import { restoreSnapshotFile, snapshotStatus, SnapshotFileError, type SnapshotSummary } from './snapshot-file.js';

function describe(s: SnapshotSummary, format: string): string {
  if (format === 'json') return JSON.stringify(s);
  const rows: Array<[string, string]> = [
    ['hash', s.hash.toString(16).padStart(8, '0')],
    ['revision', String(s.revision)],
    ['compact revision', String(s.compactRevision)],
    ['total keys', String(s.totalKeys)],
    ['leases', String(s.leases)],
    ['file size', `${s.fileBytes} bytes`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(17)} ${v}`).join('\n');
}

/** Runs the subcommand; resolves with the exit code. `argv` starts after `snapshot`. */
export async function runSnapshotCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const program = new Command('fulcrum snapshot').exitOverride().configureOutput({ writeOut: out, writeErr: err });
  let result: Promise<void> = Promise.resolve();
  program
    .command('status')
    .argument('<file>', 'a file written by `etcdctl snapshot save` against Fulcrum')
    .option('-w, --write-out <format>', 'table or json', 'table')
    .action((file: string, o: { writeOut: string }) => {
      result = snapshotStatus(file).then((s) => out(`${describe(s, o.writeOut)}\n`));
    });
  program
    .command('restore')
    .argument('<file>', 'a file written by `etcdctl snapshot save` against Fulcrum')
    .requiredOption('--data-dir <dir>', 'a new (absent or empty) data dir for one member of the new cluster')
    .action((file: string, o: { dataDir: string }) => {
      result = restoreSnapshotFile(file, o.dataDir).then((s) => {
        out(`restored revision ${s.revision} (${s.totalKeys} keys, ${s.leases} leases) into ${o.dataDir}\n`);
        out('start the member with --initial-cluster-state new and the new cluster\'s --initial-cluster\n');
      });
    });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    await result;
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof SnapshotFileError) {
      err(`fulcrum snapshot: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
