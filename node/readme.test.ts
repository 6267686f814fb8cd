// The README's `ts` examples run as written, each as its own Node process: the client example against a real
// member (its endpoint 127.0.0.1:2379 becomes the test member's), the embedded one in a temporary data dir. The
// package names resolve to this checkout's entry points. A block that throws or hangs fails the test.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTsFile, tsBlocks } from '../client/testing/examples.js';
import { startTestMember, type TestMember } from '../client/testing/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** One example's run: a process start with tsx on a busy 2-core machine takes seconds. */
const EXAMPLE_TIMEOUT_MS = 60_000;

let server: TestMember;
let dir: string;
beforeAll(async () => {
  server = await startTestMember(11);
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-readme-'));
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('README.md', () => {
  const blocks = tsBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));

  it('has the client and the embedded examples', () => {
    expect(blocks.map((b) => (b.code.includes("from 'fulcrum/client'") ? 'client' : b.code.includes("from 'fulcrum'") ? 'embedded' : 'other'))).toEqual(['client', 'embedded']);
  });

  for (const b of blocks) {
    it(`the example at line ${b.line} runs`, async () => {
      const code = b.code
        .replaceAll("'127.0.0.1:2379'", `'${server.endpoint}'`)
        .replaceAll("from 'fulcrum/client'", `from '${join(ROOT, 'client', 'index.ts')}'`)
        .replaceAll("from 'fulcrum'", `from '${join(ROOT, 'index.ts')}'`)
        .replaceAll("'./my-app.fulcrum'", `'${join(dir, `data-${b.line}`)}'`);
      const file = join(dir, `example-${b.line}.mts`);
      writeFileSync(file, code);
      const r = await runTsFile(file, dir, EXAMPLE_TIMEOUT_MS);
      expect([r.code, r.output], r.output).toEqual([0, expect.any(String)]);
    }, EXAMPLE_TIMEOUT_MS);
  }
});
