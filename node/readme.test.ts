// The README's `ts` examples run as written, each as its own Node process: the client example against a real
// member (its endpoint 127.0.0.1:2379 becomes the test member's), the embedded one in a temporary data dir. The
// package names resolve to this checkout's entry points. A block that throws or hangs fails the test.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMember, type TestMember } from '../client/testing/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
/** One example's run: a process start with tsx on a busy 2-core machine takes seconds. */
const EXAMPLE_TIMEOUT_MS = 60_000;

function examples(): Array<{ line: number; code: string }> {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
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
  server = await startTestMember(11);
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-readme-'));
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('README.md', () => {
  const blocks = examples();

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
      const r = await run(file, dir);
      expect([r.code, r.output], r.output).toEqual([0, expect.any(String)]);
    }, EXAMPLE_TIMEOUT_MS);
  }
});
