// Every `ts` example of docs/recipes.md and docs/registry.md, run as its own program against a real member:
// `fulcrum/client` points at this checkout, 127.0.0.1:2379 at the test member, and the example ports 50051,
// 50052 and 8080 at free ports of these tests' range. An example passes when it exits 0 (they assert).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tsBlocks } from '../testing/examples.js';
import { freePorts, REPO_ROOT, spawnScript, startRecipeMember, type RecipeMember } from './testing/harness.js';

const DOCS = ['docs/recipes.md', 'docs/registry.md'];
/** The examples run from a temporary folder: bare imports point at this checkout's packages. */
const GRPC_JS = createRequire(import.meta.url).resolve('@grpc/grpc-js');
/** One example's run, startup included (a child process with tsx). */
const EXAMPLE_TIMEOUT_MS = 60_000;

let server: RecipeMember;
let dir: string;

beforeAll(async () => {
  server = await startRecipeMember(71);
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-doc-examples-'));
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const doc of DOCS) {
  const blocks = tsBlocks(readFileSync(join(REPO_ROOT, doc), 'utf8'));
  describe(doc, () => {
    it('has examples', () => expect(blocks.length).toBeGreaterThan(0));
    for (const b of blocks) {
      it(`the example at line ${b.line} runs`, async () => {
        const [grpcA, grpcB, http] = await freePorts(3, 81 + b.line);
        const code = b.code
          .replaceAll("'fulcrum/client'", `'${pathToFileURL(join(REPO_ROOT, 'client/index.ts')).href}'`)
          .replaceAll("'@grpc/grpc-js'", `'${pathToFileURL(GRPC_JS).href}'`)
          .replaceAll('127.0.0.1:2379', server.endpoint)
          .replaceAll('50051', String(grpcA))
          .replaceAll('50052', String(grpcB))
          .replaceAll('8080', String(http));
        const file = join(dir, `${doc.replace(/\W/g, '_')}_${b.line}.mts`);
        writeFileSync(file, code);
        const child = spawnScript([file]);
        const timer = setTimeout(() => child.signal('SIGKILL'), EXAMPLE_TIMEOUT_MS);
        const code_ = await child.waitExit();
        clearTimeout(timer);
        expect(code_, `${doc}:${b.line} exited ${String(code_)}:\n${child.lines.join('\n')}`).toBe(0);
      }, EXAMPLE_TIMEOUT_MS + 5_000);
    }
  });
}
