import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDockerfile, stageConfig } from '../deploy/dockerfile.js';
import { missingServerNodeFlags, SERVER_NODE_FLAGS } from './node-flags.js';
import { memberNodeArgs } from './testing/process-cluster.js';

// Each way a server process starts carries the server's Node flags: a member started without them runs with a
// different garbage-collection behaviour than the one measured and documented.
const root = new URL('../', import.meta.url);
const words = (s: string): string[] => s.split(/\s+/).filter((w) => w !== '');

describe('the server Node flags', () => {
  it('are set, each a Node flag', () => {
    expect(SERVER_NODE_FLAGS.length).toBeGreaterThan(0);
    for (const f of SERVER_NODE_FLAGS) expect(f).toMatch(/^--[a-z-]+(=\S+)?$/);
  });

  it('`npm start` runs node with them', () => {
    const start = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }).scripts['start']!;
    const args = words(start);
    expect(args[0]).toBe('node');
    for (const f of SERVER_NODE_FLAGS) expect(args).toContain(f);
  });

  it("the container image's runtime stage has them in NODE_OPTIONS", () => {
    const stages = parseDockerfile(readFileSync(new URL('Dockerfile', root), 'utf8')).stages;
    const runtime = stages.at(-1)!;
    expect(runtime.name).toBe('runtime');
    const options = words(stageConfig(runtime).env['NODE_OPTIONS'] ?? '');
    for (const f of SERVER_NODE_FLAGS) expect(options).toContain(f);
  });

  it('members started by the process cluster (tests, chaos, benchmark) get them before the entry point', () => {
    for (const entry of ['source', 'build'] as const) {
      let args: string[];
      try {
        args = memberNodeArgs(entry);
      } catch (e) {
        if (entry === 'build') continue; // no dist/ in this checkout: the source entry still checks the order
        throw e;
      }
      expect(args.slice(0, SERVER_NODE_FLAGS.length)).toEqual(SERVER_NODE_FLAGS);
    }
  });
});

describe('missingServerNodeFlags', () => {
  const [flag] = SERVER_NODE_FLAGS as [string];
  const name = flag.split('=')[0]!;

  it('names each flag given neither on the command line nor in NODE_OPTIONS', () => {
    expect(missingServerNodeFlags([], undefined)).toEqual([...SERVER_NODE_FLAGS]);
    expect(missingServerNodeFlags(['--import', 'tsx'], '--enable-source-maps')).toEqual([...SERVER_NODE_FLAGS]);
  });

  it('takes a flag from either place, with any value, written with dashes or underscores', () => {
    expect(missingServerNodeFlags([flag], undefined)).toEqual([]);
    expect(missingServerNodeFlags([], ` --enable-source-maps  ${flag} `)).toEqual([]);
    expect(missingServerNodeFlags([`${name}=32`], '')).toEqual([]);
    expect(missingServerNodeFlags([], `${name.replaceAll('-', '_').replace(/^__/, '--')}=4`)).toEqual([]);
  });
});
