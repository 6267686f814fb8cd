// Entry point of `fulcrum-check` (bin/fulcrum-check.js and `npm run check` load this file). The command itself
// lives in command.ts, where tests can run it in-process.
import { EXIT_INTERNAL_ERROR, main } from './command.js';

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`fulcrum-check: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = EXIT_INTERNAL_ERROR;
}
