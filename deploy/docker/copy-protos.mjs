// The second half of `npm run build`: the server loads its .proto files at run time from beside the compiled
// proto/index.js (PROTO_ROOT in proto/index.ts), so they are copied into dist/proto with their folders. tsc
// emits only what it compiles; without this step the built server starts and fails on its first gRPC load.
import { cpSync, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const from = join(root, 'proto');
const to = join(root, 'dist', 'proto');
if (!existsSync(join(to, 'index.js'))) {
  process.stderr.write(`copy-protos: ${to}/index.js is missing; run tsc -p tsconfig.build.json first\n`);
  process.exit(1);
}
cpSync(from, to, { recursive: true, filter: (path) => statSync(path).isDirectory() || path.endsWith('.proto') });
