// The Dockerfile's stages rebuilt in a temporary directory, without Docker: each stage gets its own root
// folder standing for the container's `/`, and its instructions are carried out in order. COPY copies exactly
// the named files (from the build context minus .dockerignore, or from an earlier stage's root); RUN runs the
// command with /bin/sh in the stage's working directory, its absolute paths moved under the stage's root.
//
// What stands in for the base image (node:20-bookworm-slim): the directories the test needs from it, and
// /usr/local/bin/node and npm pointing at this machine's Node 20 and npm (the test checks the major version
// matches the FROM line). npm uses this machine's cache and the registry, as a build host would.
//
// What cannot be reproduced is reported, not faked: `chown` (the tests run as one user; the Dockerfile's USER is
// checked on its own), and any RUN command outside a small known set fails the build with a message saying so.
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, posix, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import {
  BASE_IMAGE_PATH,
  commandForm,
  isIgnored,
  parseCopy,
  parseDockerfile,
  parseDockerignore,
  stageConfig,
  type IgnoreRule,
  type ImageConfig,
  type Instruction,
  type ParsedDockerfile,
  type Stage,
} from './dockerfile.js';

const run = promisify(execFile);

/** RUN commands the reproduction carries out (the first word of each `&&` part). */
const RUN_COMMANDS = new Set(['npm', 'ln', 'mkdir', 'chmod', 'chown']);
/** Ceiling on one RUN step: an npm install from the cache or a tsc build takes well under this. */
const RUN_TIMEOUT_MS = 240_000;

/** What a stage leaves behind: its files and its image configuration. */
export interface BuiltStage extends ImageConfig {
  readonly stage: Stage;
  /** The folder standing for the stage's `/`. */
  readonly root: string;
  /** Things the reproduction skipped, for the test log. */
  readonly notes: readonly string[];
}

export interface BuildOptions {
  readonly dockerfileText: string;
  /** The build context (the repository). */
  readonly context: string;
  /** An empty folder to build in. */
  readonly workDir: string;
  /** Instructions to leave out (negative controls). */
  readonly omit?: (stage: Stage, ins: Instruction) => boolean;
  /** Stages already built, reused by name instead of rebuilt (so controls can rebuild only the last stage). */
  readonly reuse?: ReadonlyMap<string, BuiltStage>;
  readonly log?: (line: string) => void;
}

/** Map an absolute image path to the folder that stands for it. */
export function inRoot(root: string, imagePath: string): string {
  if (!imagePath.startsWith('/')) throw new Error(`not an absolute image path: ${imagePath}`);
  return join(root, ...imagePath.split('/').filter((s) => s !== ''));
}

/** Build every stage in order; returns them by name (and by index as a string). */
export async function buildImage(o: BuildOptions): Promise<Map<string, BuiltStage>> {
  const file: ParsedDockerfile = parseDockerfile(o.dockerfileText);
  const ignorePath = join(o.context, '.dockerignore');
  const ignore = existsSync(ignorePath) ? parseDockerignore(readFileSync(ignorePath, 'utf8')) : [];
  const built = new Map<string, BuiltStage>();
  for (const stage of file.stages) {
    const reused = stage.name !== undefined ? o.reuse?.get(stage.name) : undefined;
    const b = reused ?? (await buildStage(stage, o, ignore, built));
    built.set(String(stage.index), b);
    if (stage.name !== undefined) built.set(stage.name, b);
  }
  return built;
}

async function buildStage(stage: Stage, o: BuildOptions, ignore: readonly IgnoreRule[], built: ReadonlyMap<string, BuiltStage>): Promise<BuiltStage> {
  const root = join(o.workDir, `stage-${stage.index}-${stage.name ?? 'unnamed'}`);
  rmSync(root, { recursive: true, force: true });
  makeBaseImage(root);
  const notes: string[] = [];
  const omitted = (ins: Instruction): boolean => o.omit?.(stage, ins) === true;
  // Files: WORKDIR, COPY and RUN in order, each RUN with the ENV and WORKDIR in force at its line.
  for (const [i, ins] of stage.instructions.entries()) {
    if (omitted(ins)) {
      notes.push(`omitted line ${ins.line}: ${ins.keyword} ${ins.args}`);
      continue;
    }
    o.log?.(`[${stage.name ?? stage.index}] ${ins.keyword} ${ins.args}`);
    const sofar = stageConfig({ ...stage, instructions: stage.instructions.slice(0, i) }, omitted);
    if (ins.keyword === 'WORKDIR') mkdirSync(inRoot(root, stageConfig({ ...stage, instructions: stage.instructions.slice(0, i + 1) }, omitted).workdir), { recursive: true });
    else if (ins.keyword === 'COPY') copyStep(ins, root, sofar.workdir, o.context, ignore, built);
    else if (ins.keyword === 'RUN') await runStep(ins, root, sofar.workdir, sofar.env, notes);
  }
  return { stage, root, ...stageConfig(stage, omitted), notes };
}

/** The parts of the base image the build and the member use. */
function makeBaseImage(root: string): void {
  for (const d of ['usr/local/bin', 'usr/local/sbin', 'var/lib', 'tmp', 'home/node']) mkdirSync(join(root, d), { recursive: true });
  symlinkSync(process.execPath, join(root, 'usr/local/bin/node'));
  symlinkSync(npmCli(), join(root, 'usr/local/bin/npm'));
}

function npmCli(): string {
  // npm's own entry script sits beside node in a Node installation, or in a system prefix (Debian's /usr/lib).
  for (const c of [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'), '/usr/lib/node_modules/npm/bin/npm-cli.js', '/usr/local/lib/node_modules/npm/bin/npm-cli.js']) {
    if (existsSync(c)) return c;
  }
  throw new Error('npm-cli.js not found next to this Node');
}

function copyStep(ins: Instruction, root: string, workdir: string, context: string, ignore: readonly IgnoreRule[], built: ReadonlyMap<string, BuiltStage>): void {
  const step = parseCopy(ins.args);
  const fromStage = step.from !== undefined ? built.get(step.from) : undefined;
  if (step.from !== undefined && fromStage === undefined) throw new Error(`Dockerfile line ${ins.line}: no stage ${step.from} before this COPY`);
  const destImage = posix.resolve(workdir, step.dest);
  const destIsDir = step.dest.endsWith('/') || step.dest === '.' || step.sources.length > 1;
  for (const src of step.sources) {
    const from = fromStage !== undefined ? inRoot(fromStage.root, posix.resolve(fromStage.workdir, src)) : join(context, src);
    if (fromStage === undefined && isIgnored(ignore, relative(context, from).split(sep).join('/'))) {
      throw new Error(`Dockerfile line ${ins.line}: ${src} is excluded by .dockerignore`);
    }
    if (!existsSync(from)) throw new Error(`Dockerfile line ${ins.line}: COPY source ${src} does not exist${fromStage ? ` in stage ${step.from}` : ' in the build context'}`);
    const isDir = statSync(from).isDirectory();
    // A directory's contents go into the destination; a file goes into it (dest/ or several sources) or becomes it.
    const to = isDir ? inRoot(root, destImage) : destIsDir ? join(inRoot(root, destImage), basename(from)) : inRoot(root, destImage);
    mkdirSync(isDir ? to : dirname(to), { recursive: true });
    if (fromStage !== undefined) {
      // Between stages: hard links, not copies (the same bytes, and node_modules is large). Nothing later writes
      // into a copied file; a control that changes a stage's files copies the stage first (copyStage).
      execFileSync('cp', ['-al', isDir ? `${from}/.` : from, to]);
    } else {
      cpSync(from, to, { recursive: true, verbatimSymlinks: true, filter: (p) => !isIgnored(ignore, relative(context, p).split(sep).join('/')) });
    }
  }
}

async function runStep(ins: Instruction, root: string, workdir: string, env: Readonly<Record<string, string>>, notes: string[]): Promise<void> {
  const argv = commandForm(ins.args);
  if (argv[0] !== '/bin/sh') throw new Error(`Dockerfile line ${ins.line}: exec-form RUN is not reproduced`);
  const script = argv[2]!;
  // `a && b && c` runs as separate steps so each can be checked and mapped; a line with `||` runs as one.
  const parts = script.includes('||') ? [script] : script.split('&&').map((p) => p.trim());
  for (const part of parts) {
    const command = part.split(/\s+/)[0]!;
    if (!RUN_COMMANDS.has(command)) throw new Error(`Dockerfile line ${ins.line}: RUN ${command} is not a step the deploy tests know how to reproduce (${[...RUN_COMMANDS].join(', ')})`);
    if (command === 'chown') {
      notes.push(`line ${ins.line}: skipped "${part}" (one user here; USER is checked separately)`);
      continue;
    }
    // Absolute paths in the command are image paths: move them under the stage's root.
    const mapped = part.replace(/(^|\s)(\/[^\s;|&]*)/g, (_, pre: string, p: string) => `${pre}${inRoot(root, p)}`);
    await run('/bin/sh', ['-c', mapped], {
      cwd: inRoot(root, workdir),
      env: runEnv(root, env),
      timeout: RUN_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((e: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`Dockerfile line ${ins.line}: RUN ${part} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    });
  }
}

/** A RUN step's environment: the stage's ENV with PATH looked up under the root, plus what npm needs here. */
function runEnv(root: string, env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  return {
    ...env,
    PATH: imagePath(root, env.PATH ?? BASE_IMAGE_PATH),
    HOME: process.env.HOME ?? '/root',
    // This machine's npm cache first; the registry for anything it lacks. The versions come from the lock file.
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  };
}

/** An image PATH with each entry under the root, then the host's /usr/bin:/bin for sh, env and coreutils. */
export function imagePath(root: string, path: string): string {
  return [...path.split(':').map((p) => inRoot(root, p)), '/usr/bin', '/bin'].join(':');
}

/** Find a command on an image PATH (the way exec does for ENTRYPOINT ["fulcrum"]). */
export function resolveCommand(root: string, command: string, path: string): string | undefined {
  if (command.startsWith('/')) return existsSync(inRoot(root, command)) ? inRoot(root, command) : undefined;
  for (const dir of path.split(':')) {
    const candidate = join(inRoot(root, dir), command);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Carry out one RUN line again in a built stage (a negative control re-runs a step after changing a file). */
export async function rerun(stage: BuiltStage, ins: Instruction): Promise<void> {
  if (ins.keyword !== 'RUN') throw new Error(`only RUN lines are re-run, not ${ins.keyword}`);
  await runStep(ins, stage.root, stage.workdir, stage.env, []);
}

/** A copy of a built stage in another folder, to change and build later stages from. */
export function copyStage(stage: BuiltStage, root: string): BuiltStage {
  cpSync(stage.root, root, { recursive: true, verbatimSymlinks: true });
  return { ...stage, root };
}
