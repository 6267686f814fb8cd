// The last step of `npm run build`: the server as one file, dist/fulcrum.mjs (with dist/fulcrum.mjs.map), which
// the container image and the benchmark run, and fulcrumctl as dist/fulcrumctl.mjs, which the image's fulcrumctl
// runs. Node loads an ES module per file: the server's few hundred files (its own and those of grpc-js,
// protobufjs, pino, prom-client, commander) took about 170 ms of every start before the member could open its
// data, a fifth of a restarted member's time to serve. esbuild compiles the TypeScript sources as tsx and vitest
// do, so the bundle runs the code the tests ran.
//
// Left out of the bundle: classic-level (a native addon, loaded from node_modules with its prebuilds). The .proto
// files stay files, in dist/proto/ beside the bundle (copy-protos.mjs; PROTO_ROOT in proto/index.ts finds them).
// protobufjs looks up optional modules with require(), which an ES module lacks: the banner makes one.
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Each bundle and its entry point: the server, and fulcrumctl (whose every run pays the same start-up). */
const BUNDLES = [
  ['fulcrum.mjs', join('node', 'cli.ts')],
  ['fulcrumctl.mjs', join('client', 'ctl', 'cli.ts')],
];
for (const [name, entry] of BUNDLES) await bundle(join(root, entry), join(root, 'dist', name));

async function bundle(entry, outfile) {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['classic-level'],
    sourcemap: 'linked',
    banner: { js: "import { createRequire as __fulcrumCreateRequire } from 'node:module'; const require = __fulcrumCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  process.stdout.write(`bundle: ${outfile} (${Math.round(statSync(outfile).size / 1024)} KiB)\n`);
}
