// The `fulcrum` command: etcd's flags, FULCRUM_* (and ETCD_*) environment variables, one member per process.
// `fulcrum snapshot status|restore` is the offline backup tool (node/snapshot-cli.ts); `fulcrum registrar` is the
// registry's sidecar (client/registry/registrar.ts).
// SIGTERM/SIGINT: stop taking requests, finish what is in flight, sync, exit 0. A second signal exits at once.
import { ConfigError, parseCommandLine } from './config.js';
import { missingServerNodeFlags } from './node-flags.js';
import { startServer } from './server.js';
import { runSnapshotCommand } from './snapshot-cli.js';
import { runRegistrarCommand } from '../client/registry/index.js';

async function main(): Promise<number> {
  if (process.argv[2] === 'snapshot') {
    return runSnapshotCommand(process.argv.slice(3), (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  }
  if (process.argv[2] === 'registrar') {
    return runRegistrarCommand(process.argv.slice(3), (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  }
  let cl;
  try {
    cl = parseCommandLine(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`fulcrum: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (cl.kind === 'print') {
    process.stdout.write(cl.text.endsWith('\n') ? cl.text : `${cl.text}\n`);
    return 0;
  }
  let server;
  try {
    server = await startServer(cl.config);
  } catch (e) {
    // Certificate files are checked at start (node/tls.ts): a bad one is a configuration error like a bad flag.
    if (e instanceof ConfigError) {
      process.stderr.write(`fulcrum: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const missing = missingServerNodeFlags(process.execArgv, process.env['NODE_OPTIONS']);
  if (missing.length > 0) server.logger.info({ missing }, `fulcrum: node runs without ${missing.join(' ')}, which npm start and the container image pass; set NODE_OPTIONS to add them (docs/operations.md)`);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      server.logger.warn({ signal: sig }, 'fulcrum: second signal, exiting at once');
      process.exit(1);
    }
    server.logger.info({ signal: sig }, 'fulcrum: stopping');
    void server.close();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await server.stopped;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fulcrum: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
