// Running documentation: the ```ts blocks of a markdown file, each run as its own Node process through tsx (as a
// reader would run it). Shared by the README, client, recipe and registry doc tests. Test code only.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** tsx's loader: examples are TypeScript, run the way the members run. */
export const TSX_LOADER = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;

/** The ```ts blocks of a markdown text, with the line each block's code starts on. */
export function tsBlocks(markdown: string): Array<{ line: number; code: string }> {
  const blocks: Array<{ line: number; code: string }> = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ts') continue;
    const start = i + 1;
    const end = lines.indexOf('```', start);
    if (end < 0) throw new Error(`unclosed \`\`\`ts block at line ${i + 1}`);
    blocks.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

/** Run a TypeScript file; resolves with its exit code (null when killed at the timeout) and its output. */
export function runTsFile(file: string, cwd: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX_LOADER, file], { cwd, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), output: `${stdout}${stderr}` });
    });
  });
}
