// The readers the deploy tests rely on, checked against what Docker, Compose and Kubernetes document, so a
// reader bug cannot make a broken file look fine. Pure and fast: no processes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../node/config.js';
import { composeContainers, expandK8s, interpolate, readCompose } from './containers.js';
import { finalImageConfig, isIgnored, parseCopy, parseDockerfile, parseDockerignore, parseEnv, splitInstructions } from './dockerfile.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string): string => readFileSync(join(REPO, p), 'utf8');

describe('Dockerfile reading', () => {
  it('joins continuation lines, skips comments, and refuses instructions it cannot reproduce', () => {
    const ins = splitInstructions('FROM a AS b\n# note\nENV A=1 \\\n    # inside\n    B="two words"\nRUN x && \\\n  y\n');
    expect(ins.map((i) => [i.keyword, i.args])).toEqual([
      ['FROM', 'a AS b'],
      ['ENV', 'A=1 B="two words"'],
      ['RUN', 'x && y'],
    ]);
    expect(() => splitInstructions('FROM a\nADD https://example.com/x /x\n')).toThrow(/ADD is not an instruction/);
  });

  it('reads ENV in both forms, COPY with --from, and ARG defaults in FROM', () => {
    expect(parseEnv('A=1 B="two words" C=')).toEqual([['A', '1'], ['B', 'two words'], ['C', '']]);
    expect(parseEnv('NAME some value')).toEqual([['NAME', 'some value']]);
    expect(parseCopy('--from=build /app/dist ./dist')).toEqual({ from: 'build', sources: ['/app/dist'], dest: './dist' });
    expect(() => parseCopy('src/*.ts ./')).toThrow(/wildcards/);
    const file = parseDockerfile('ARG BASE=node:20-slim\nFROM ${BASE} AS one\nFROM one\n');
    expect(file.stages.map((s) => [s.name, s.base])).toEqual([['one', 'node:20-slim'], [undefined, 'one']]);
  });

  it("gives the image's configuration: ENV in order, ENTRYPOINT resetting CMD", () => {
    const c = finalImageConfig('FROM x\nENV A=1\nENV B=${A}2\nCMD ["old"]\nENTRYPOINT ["run"]\nWORKDIR /app\nWORKDIR sub\n');
    expect(c.env).toMatchObject({ A: '1', B: '12' });
    expect(c.entrypoint).toEqual(['run']);
    expect(c.cmd).toEqual([]);
    expect(c.workdir).toBe('/app/sub');
  });

  it('matches .dockerignore as Docker does: root-relative, ** for any depth, ! to re-include, last match wins', () => {
    const rules = parseDockerignore('node_modules\n**/*.fulcrum\ndocs/*.md\n!docs/keep.md\n');
    expect(isIgnored(rules, 'node_modules')).toBe(true);
    expect(isIgnored(rules, 'node_modules/x/index.js')).toBe(true);
    expect(isIgnored(rules, 'node/node_modules')).toBe(false);
    expect(isIgnored(rules, 'm1.fulcrum/wal/000001.log')).toBe(true);
    expect(isIgnored(rules, 'deep/down/m1.fulcrum')).toBe(true);
    expect(isIgnored(rules, 'docs/a.md')).toBe(true);
    expect(isIgnored(rules, 'docs/keep.md')).toBe(false);
    expect(isIgnored(rules, 'node/cli.ts')).toBe(false);
    // The repository's own file keeps out what a build must never send, and none of what the Dockerfile copies.
    const own = parseDockerignore(read('.dockerignore'));
    for (const p of ['node_modules', 'dist', '.git', 'cluster.fulcrum/m1/kv/CURRENT']) expect(isIgnored(own, p), p).toBe(true);
    for (const p of ['node/cli.ts', 'proto/etcd/api/etcdserverpb/rpc.proto', 'package-lock.json', 'deploy/docker/fulcrum.mjs']) expect(isIgnored(own, p), p).toBe(false);
  });
});

describe('Compose and Kubernetes reading', () => {
  it("interpolates as Compose does: ${VAR:-default} when unset or empty, ${VAR-default} only when unset, $$ for $", () => {
    expect(interpolate('${T:-dflt}/${U-other}/$$HOME/$V', {})).toBe('dflt/other/$HOME/');
    expect(interpolate('${T:-dflt}/${U-other}', { T: '', U: '' })).toBe('dflt/');
    expect(interpolate('${T:-dflt}', { T: 'mine' })).toBe('mine');
  });

  it("lets FULCRUM_CLUSTER_TOKEN in the shell change compose.yaml's token, and every member gets the same one", () => {
    const image = finalImageConfig(read('Dockerfile'));
    const tokens = (shell: Record<string, string>): string[] =>
      composeContainers(readCompose(read('deploy/compose.yaml'), shell), image).map((c) => c.env.FULCRUM_INITIAL_CLUSTER_TOKEN!);
    expect(tokens({})).toEqual(['fulcrum-compose', 'fulcrum-compose', 'fulcrum-compose']);
    expect(tokens({ FULCRUM_CLUSTER_TOKEN: 'prod-eu-1' })).toEqual(['prod-eu-1', 'prod-eu-1', 'prod-eu-1']);
    // And the server reads the merged environment as a valid configuration naming that member.
    const [first] = composeContainers(readCompose(read('deploy/compose.yaml')), image);
    const cl = parseCommandLine([], { ...first!.env, FULCRUM_DATA_DIR: '/tmp/unused', FULCRUM_LISTEN_CLIENT_URLS: 'http://127.0.0.1:2379', FULCRUM_LISTEN_PEER_URLS: 'http://127.0.0.1:2380', FULCRUM_LISTEN_METRICS_URLS: 'http://127.0.0.1:2381' });
    expect(cl.kind === 'serve' && cl.config.name).toBe('fulcrum-1');
  });

  it('expands $(VAR) as Kubernetes does: defined names only, $$(VAR) stays literal', () => {
    const vars = new Map([['POD_NAME', 'fulcrum-2']]);
    expect(expandK8s('http://$(POD_NAME).fulcrum-peer:2380', vars)).toBe('http://fulcrum-2.fulcrum-peer:2380');
    expect(expandK8s('$(UNDEFINED) $$(POD_NAME)', vars)).toBe('$(UNDEFINED) $(POD_NAME)');
  });
});
