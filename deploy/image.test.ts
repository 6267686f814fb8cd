// The Dockerfile kept honest without Docker: its stages are rebuilt in a temporary directory from its own COPY
// and RUN lines (deploy/image.ts), production dependencies only, and a member is started from the runtime stage
// with the image's ENTRYPOINT, CMD and ENV. A file the runtime stage does not copy, or a dependency the server
// needs that is only a dev dependency, makes the member fail to start; the negative controls below show the
// check noticing each of those.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdTestClient } from '../node/testing/etcd-client.js';
import { parseDockerfile } from './dockerfile.js';
import { buildImage, copyStage, imagePath, inRoot, rerun, resolveCommand, type BuiltStage } from './image.js';
import { freePorts } from './ports.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DOCKERFILE = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
/** The image's ports, as EXPOSEd: clients, peers, metrics and health. */
const IMAGE_PORTS = { client: 2379, peer: 2380, metrics: 2381 } as const;
/** A member from the compiled server starts in a second or two; this bounds it on a slow, shared machine. */
const START_TIMEOUT_MS = 45_000;

const work = mkdtempSync(join(tmpdir(), 'fulcrum-image-'));
let stages: Map<string, BuiltStage>;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  stages = await buildImage({ dockerfileText: DOCKERFILE, context: REPO, workDir: join(work, 'image') });
}, 360_000);

afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function runtime(s: Map<string, BuiltStage> = stages): BuiltStage {
  return s.get(String(parseDockerfile(DOCKERFILE).stages.length - 1))!;
}

/** Container ports to this test's loopback ports; the wildcard address to loopback. */
function mapUrls(value: string, ports: Record<number, number>): string {
  return value.replace(/http:\/\/(0\.0\.0\.0|127\.0\.0\.1|localhost):(\d+)/g, (_, _host: string, port: string) => {
    const mapped = ports[Number(port)];
    if (mapped === undefined) throw new Error(`no port mapping for ${port} in ${value}`);
    return `http://127.0.0.1:${mapped}`;
  });
}

/** The environment `docker run` gives the container, with image paths and ports moved to this machine. */
function containerEnv(stage: BuiltStage, ports: Record<number, number>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(stage.env)) {
    if (k === 'PATH') env[k] = imagePath(stage.root, v);
    else if (stage.volumes.some((vol) => v === vol || v.startsWith(`${vol}/`))) env[k] = inRoot(stage.root, v);
    else env[k] = mapUrls(v, ports);
  }
  // Docker sets these from the container and the USER's passwd entry.
  env.HOSTNAME = 'fulcrum-image-test';
  env.HOME = inRoot(stage.root, '/home/node');
  return env;
}

interface MemberCheck {
  readonly ok: boolean;
  readonly failure?: string;
  readonly output: string;
}

/**
 * `docker run` of the runtime stage, then what an operator would check: /health answers 200, the image's
 * HEALTHCHECK command exits 0, a put and a linearizable get work, fulcrumctl and the backup commands work inside
 * the image, SIGTERM stops it with exit code 0, and then the HEALTHCHECK fails.
 */
async function checkMember(stage: BuiltStage): Promise<MemberCheck> {
  const [client, peer, metrics] = await freePorts(0, 3);
  const ports = { [IMAGE_PORTS.client]: client!, [IMAGE_PORTS.peer]: peer!, [IMAGE_PORTS.metrics]: metrics! };
  const env = containerEnv(stage, ports);
  const argv = [...stage.entrypoint, ...stage.cmd];
  const output: string[] = [];
  const fail = (failure: string): MemberCheck => ({ ok: false, failure, output: output.join('') });
  const exe = resolveCommand(stage.root, argv[0]!, stage.env.PATH!);
  if (exe === undefined) return fail(`entrypoint ${argv[0]} not found in the image`);
  const child = spawn(exe, argv.slice(1), { cwd: inRoot(stage.root, stage.workdir), env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  const kv = new EtcdTestClient(`127.0.0.1:${client}`, 5_000);
  try {
    const until = Date.now() + START_TIMEOUT_MS;
    let healthy = false;
    while (!healthy && exitCode === undefined && Date.now() < until) {
      healthy = await fetch(`http://127.0.0.1:${metrics}/health`, { signal: AbortSignal.timeout(3_000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (!healthy) await new Promise((r) => setTimeout(r, 200));
    }
    if (!healthy) return fail(exitCode !== undefined ? `the member exited with ${exitCode}` : `no 200 from /health within ${START_TIMEOUT_MS} ms`);

    const hc = await execInContainer(stage, env, stage.healthcheck!.command);
    if (hc.code !== 0) return fail(`HEALTHCHECK exited ${hc.code}: ${hc.output}`);

    await kv.put('image/check', 'from-the-runtime-stage');
    if ((await kv.get('image/check')) !== 'from-the-runtime-stage') return fail('the value read back differs');

    // The operator's tools inside the image: fulcrumctl, and a backup taken, checked and restored with the image's
    // own commands (`docker exec <c> fulcrumctl snapshot save ...`, `fulcrum snapshot status|restore`).
    const endpoint = ['--endpoints', `127.0.0.1:${client}`];
    const tools: Array<[string[], RegExp]> = [
      [['fulcrumctl', ...endpoint, 'endpoint', 'health'], /127\.0\.0\.1/],
      [['fulcrumctl', ...endpoint, 'snapshot', 'save', '/var/lib/fulcrum/backup.db'], /backup\.db/],
      [['fulcrum', 'snapshot', 'status', '/var/lib/fulcrum/backup.db'], /total keys\s+1\b/],
      [['fulcrum', 'snapshot', 'restore', '/var/lib/fulcrum/backup.db', '--data-dir', '/var/lib/fulcrum/restored'], /restored revision \d+ \(1 keys/],
    ];
    for (const [argv, expected] of tools) {
      const r = await execInContainer(stage, env, argv);
      if (r.code !== 0 || !expected.test(r.output)) return fail(`${argv.join(' ')} exited ${r.code}: ${r.output}`);
    }

    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) return fail(`SIGTERM gave exit code ${code}`);
    // The health check's negative control: with the member gone it must report unhealthy.
    const gone = await execInContainer(stage, env, stage.healthcheck!.command);
    if (gone.code === 0) return fail(`HEALTHCHECK passed with the member stopped: ${gone.output}`);
    return { ok: true, output: output.join('') };
  } catch (e) {
    return fail(String(e));
  } finally {
    kv.close();
    child.kill('SIGKILL');
    running.delete(child);
  }
}

/** A command run inside the container (`docker exec`, or Docker running the HEALTHCHECK): same environment, image paths. */
function execInContainer(stage: BuiltStage, env: Record<string, string>, argv: readonly string[]): Promise<{ code: number | null; output: string }> {
  const [command, ...args] = argv;
  const exe = resolveCommand(stage.root, command!, stage.env.PATH!);
  if (exe === undefined) return Promise.resolve({ code: 127, output: `${command} not found` });
  const mapped = args.map((a) => (a.startsWith('/') ? inRoot(stage.root, a) : a));
  return new Promise((resolve) => {
    const child = spawn(exe, mapped, { cwd: inRoot(stage.root, stage.workdir), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output: output.trim() }));
  });
}

/** Package names the app's own files import (bare specifiers, not Node built-ins); node_modules is not read. */
function importedPackages(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  // Static imports and re-exports at the start of a line (tsc prints one per statement), and dynamic import().
  const patterns = [/^\s*(?:import|export)\s+(?:[^'";]*?\s*from\s*)?['"]([^'"]+)['"]/gm, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory() && e.name !== 'node_modules') walk(p);
      else if (e.isFile() && (e.name.endsWith('.js') || e.name.endsWith('.mjs'))) {
        const text = readFileSync(p, 'utf8');
        for (const re of patterns) {
          for (const m of text.matchAll(re)) {
            const spec = m[1]!;
            if (spec.startsWith('.') || spec.startsWith('/') || isBuiltin(spec)) continue;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!found.has(name)) found.set(name, p);
          }
        }
      }
    }
  };
  walk(dir);
  return found;
}

function missingPackages(stage: BuiltStage, appDir: string): string[] {
  const app = inRoot(stage.root, appDir);
  const imported = importedPackages(app);
  // Guard against a scan that finds nothing (a broken pattern would make this check pass vacuously).
  if (!imported.has('@grpc/grpc-js') || !imported.has('pino')) throw new Error(`the import scan missed known imports: ${[...imported.keys()].join(', ')}`);
  return [...imported].filter(([name]) => !existsSync(join(app, 'node_modules', name, 'package.json'))).map(([name, file]) => `${name} (imported by ${file})`);
}

describe('the Dockerfile', () => {
  it('has a build stage and a slim Node 20 runtime stage that runs as a non-root user with a data volume, the ports, and a health check on /health', () => {
    const parsed = parseDockerfile(DOCKERFILE);
    expect(parsed.stages.length).toBeGreaterThanOrEqual(2);
    const last = runtime();
    expect(last.stage.base).toMatch(/^node:20-.*slim$/);
    // The Node running this test stands in for the image's: same major version.
    expect(process.versions.node.split('.')[0]).toBe('20');
    expect(last.user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(last.user);
    expect(last.volumes).toContain('/var/lib/fulcrum');
    expect(last.env.FULCRUM_DATA_DIR).toMatch(/^\/var\/lib\/fulcrum\//);
    expect(last.exposed).toEqual(expect.arrayContaining(['2379', '2380']));
    expect(last.healthcheck?.command.join(' ')).toContain('healthcheck.mjs');
    expect(readFileSync(inRoot(last.root, last.healthcheck!.command.find((a) => a.endsWith('.mjs'))!), 'utf8')).toContain("'/health'");
    // The build stage installs with npm ci and compiles with the TypeScript build.
    const build = parsed.stages[0]!.instructions.map((i) => `${i.keyword} ${i.args}`).join('\n');
    expect(build).toMatch(/RUN npm ci\b/);
    expect(build).toMatch(/RUN npm run build\b/);
    // The runtime stage ships compiled JavaScript (the server and fulcrumctl, each bundled into one file) and no
    // TypeScript compiler.
    expect(existsSync(inRoot(last.root, '/app/dist/fulcrum.mjs'))).toBe(true);
    expect(existsSync(inRoot(last.root, '/app/dist/fulcrumctl.mjs'))).toBe(true);
    expect(existsSync(inRoot(last.root, '/app/node_modules/typescript'))).toBe(false);
  });

  it('copies production dependencies only into the runtime stage, and every package the compiled server imports is among them', () => {
    const last = runtime();
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => path.startsWith('node_modules/') && !path.slice('node_modules/'.length).includes('node_modules/') && p.dev === true)
      .map(([path]) => path);
    expect(devOnly.length).toBeGreaterThan(10);
    const present = devOnly.filter((path) => existsSync(join(inRoot(last.root, '/app'), path)));
    expect(present).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(inRoot(last.root, `/app/node_modules/${name}/package.json`)), name).toBe(true);
    expect(missingPackages(last, '/app')).toEqual([]);
  });

  it('negative control: the import check names a package the runtime stage lacks', () => {
    const last = runtime();
    const planted = inRoot(last.root, '/app/dist/planted-control.js');
    writeFileSync(planted, "import { describe } from 'vitest';\nexport const x = describe;\n");
    try {
      expect(missingPackages(last, '/app')).toEqual([expect.stringMatching(/^vitest \(imported by .*planted-control\.js\)$/)]);
    } finally {
      rmSync(planted);
    }
  });

  it('starts a member from the runtime stage: /health, the HEALTHCHECK, a put and a linearizable get, fulcrumctl and a backup, a clean SIGTERM', async () => {
    const result = await checkMember(runtime());
    expect(result.failure, result.output.slice(-3_000)).toBeUndefined();
    expect(result.ok).toBe(true);
  }, 120_000);

  it('negative controls: without any one of the runtime stage COPY lines, the member does not come up', async () => {
    const copies = runtime().stage.instructions.filter((i) => i.keyword === 'COPY');
    expect(copies.length).toBeGreaterThanOrEqual(3);
    for (const copy of copies) {
      const control = await buildImage({
        dockerfileText: DOCKERFILE,
        context: REPO,
        workDir: join(work, `without-line-${copy.line}`),
        reuse: new Map([...stages].filter(([, s]) => s !== runtime())),
        omit: (_, ins) => ins.line === copy.line,
      });
      const result = await checkMember(runtime(control));
      expect(result.ok, `without "COPY ${copy.args}" the member still passed`).toBe(false);
      rmSync(join(work, `without-line-${copy.line}`), { recursive: true, force: true });
    }
  }, 180_000);

  it('negative control: a dependency the server needs, declared dev-only, is pruned by the Dockerfile and the member does not start', async () => {
    // The build stage again, with package.json saying `classic-level` is a dev dependency, and the Dockerfile's own
    // prune step run on it: the runtime stage built from that lacks it, as it would after a real mistake of the
    // kind. (classic-level, the one package the bundled server loads from node_modules: the rest is inside it.)
    const build = stages.get(runtime().stage.instructions.map((i) => /--from=(\S+)/.exec(i.args)?.[1]).find((s) => s !== undefined)!)!;
    const prune = build.stage.instructions.find((i) => i.keyword === 'RUN' && /\bnpm prune\b/.test(i.args));
    expect(prune, 'the build stage prunes dev dependencies').toBeDefined();
    const changed = copyStage(build, join(work, 'level-dev', 'build'));
    const pkgPath = inRoot(changed.root, `${changed.workdir}/package.json`);
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    pkg.devDependencies['classic-level'] = pkg.dependencies['classic-level']!;
    delete pkg.dependencies['classic-level'];
    writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
    await rerun(changed, prune!);
    const control = await buildImage({ dockerfileText: DOCKERFILE, context: REPO, workDir: join(work, 'level-dev'), reuse: new Map([[build.stage.name!, changed]]) });
    expect(existsSync(inRoot(runtime(control).root, '/app/node_modules/classic-level'))).toBe(false);
    expect(missingPackages(runtime(control), '/app')).toContainEqual(expect.stringMatching(/^classic-level \(imported by /));
    const result = await checkMember(runtime(control));
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/Cannot find package 'classic-level'/);
  }, 120_000);
});
