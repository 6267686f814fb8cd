// Every `ts` block of docs/client.md runs, as written, as its own Node process against a real member: the doc's
// endpoint 127.0.0.1:2379 becomes the test member's, and `fulcrum/client` the path of client/index.ts (the
// package's own export of that name is checked separately). A block that throws or hangs fails the test.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTsFile, tsBlocks } from './testing/examples.js';
import { startTestMember, type TestMember } from './testing/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOC = join(ROOT, 'docs', 'client.md');
const CLIENT_ENTRY = join(ROOT, 'client', 'index.ts');
/** One example's run, generously: a process start with tsx on a busy 2-core machine takes seconds. */
const EXAMPLE_TIMEOUT_MS = 60_000;

let server: TestMember;
let dir: string;
beforeAll(async () => {
  server = await startTestMember(6);
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-client-docs-'));
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('docs/client.md', () => {
  const blocks = tsBlocks(readFileSync(DOC, 'utf8'));

  it('has examples, each importing the package entry point', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    for (const b of blocks) expect(b.code, `block at line ${b.line}`).toContain("from 'fulcrum/client'");
  });

  it("the package exports 'fulcrum/client'", async () => {
    const file = join(ROOT, 'client', 'testing', 'export-check.ts');
    const r = await runTsFile(file, ROOT, EXAMPLE_TIMEOUT_MS);
    expect(r.output.trim()).toBe('function');
  }, EXAMPLE_TIMEOUT_MS);

  for (const b of blocks) {
    it(`the example at line ${b.line} runs`, async () => {
      const code = b.code.replaceAll("'127.0.0.1:2379'", `'${server.endpoint}'`).replaceAll("from 'fulcrum/client'", `from '${CLIENT_ENTRY}'`);
      const file = join(dir, `example-${b.line}.mts`);
      writeFileSync(file, code);
      const r = await runTsFile(file, dir, EXAMPLE_TIMEOUT_MS);
      expect([r.code, r.output], r.output).toEqual([0, expect.any(String)]);
    }, EXAMPLE_TIMEOUT_MS);
  }
});
