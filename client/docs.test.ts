// Every `ts` block of docs/client.md runs, as written, as its own Node process against a real member: the doc's
// endpoint 127.0.0.1:2379 becomes the test member's, and `fulcrum/client` the path of client/index.ts (the
// package's own export of that name is checked separately). A block that throws or hangs fails the test.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMember, type TestMember } from './testing/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOC = join(ROOT, 'docs', 'client.md');
const CLIENT_ENTRY = join(ROOT, 'client', 'index.ts');
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
/** One example's run, generously: a process start with tsx on a busy 2-core machine takes seconds. */
const EXAMPLE_TIMEOUT_MS = 60_000;

function examples(): Array<{ line: number; code: string }> {
  const text = readFileSync(DOC, 'utf8');
  const out: Array<{ line: number; code: string }> = [];
  const re = /^```ts\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push({ line: text.slice(0, m.index).split('\n').length, code: m[1]! });
  return out;
}

function run(file: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, file], { cwd, timeout: EXAMPLE_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), output: `${stdout}${stderr}` });
    });
  });
}

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
  const blocks = examples();

  it('has examples, each importing the package entry point', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    for (const b of blocks) expect(b.code, `block at line ${b.line}`).toContain("from 'fulcrum/client'");
  });

  it("the package exports 'fulcrum/client'", async () => {
    const file = join(ROOT, 'client', 'testing', 'export-check.ts');
    const r = await run(file, ROOT);
    expect(r.output.trim()).toBe('function');
  }, EXAMPLE_TIMEOUT_MS);

  for (const b of blocks) {
    it(`the example at line ${b.line} runs`, async () => {
      const code = b.code.replaceAll("'127.0.0.1:2379'", `'${server.endpoint}'`).replaceAll("from 'fulcrum/client'", `from '${CLIENT_ENTRY}'`);
      const file = join(dir, `example-${b.line}.mts`);
      writeFileSync(file, code);
      const r = await run(file, dir);
      expect([r.code, r.output], r.output).toEqual([0, expect.any(String)]);
    }, EXAMPLE_TIMEOUT_MS);
  }
});
