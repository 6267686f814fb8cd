// Reading the Dockerfile and .dockerignore the way Docker does, for the tests that keep them honest without a
// Docker engine. Only the instructions Fulcrum's Dockerfile may use are understood; anything else throws, so a
// new kind of step cannot slip past the tests unreproduced.
//
//   FROM image [AS name] · ARG name[=default] (before the first FROM) · WORKDIR · COPY [--from=stage] src... dest
//   RUN · ENV k=v ... · USER · VOLUME · EXPOSE · HEALTHCHECK [--opt=v ...] CMD [...] · ENTRYPOINT · CMD

export interface Instruction {
  /** Upper-cased: COPY, RUN, ... */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  readonly args: string;
  /** 1-based line of the keyword, for messages. */
  readonly line: number;
}

export interface Stage {
  readonly index: number;
  readonly name: string | undefined;
  /** The base image, with ARG defaults substituted. */
  readonly base: string;
  readonly instructions: readonly Instruction[];
}

export interface ParsedDockerfile {
  readonly stages: readonly Stage[];
}

const KNOWN = new Set(['FROM', 'ARG', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'VOLUME', 'EXPOSE', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD']);

/** Split into instructions: comments dropped, `\` continuations joined (comment lines inside them skipped). */
export function splitInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let pending: { keyword: string; parts: string[]; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && pending === undefined)) continue;
    const continues = trimmed.endsWith('\\');
    const body = continues ? trimmed.slice(0, -1).trim() : trimmed;
    if (pending === undefined) {
      const m = /^(\S+)\s*(.*)$/.exec(body);
      if (m === null) continue;
      pending = { keyword: m[1]!.toUpperCase(), parts: [m[2]!], line: i + 1 };
    } else if (body !== '') {
      pending.parts.push(body);
    }
    if (!continues) {
      if (!KNOWN.has(pending.keyword)) throw new Error(`Dockerfile line ${pending.line}: ${pending.keyword} is not an instruction the deploy tests reproduce`);
      out.push({ keyword: pending.keyword, args: pending.parts.filter((p) => p !== '').join(' '), line: pending.line });
      pending = undefined;
    }
  }
  if (pending !== undefined) throw new Error(`Dockerfile line ${pending.line}: continuation at end of file`);
  return out;
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const args = new Map<string, string>();
  const stages: Array<{ index: number; name: string | undefined; base: string; instructions: Instruction[] }> = [];
  for (const ins of splitInstructions(text)) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(ins.args);
      if (m === null) throw new Error(`Dockerfile line ${ins.line}: ARG ${ins.args}`);
      args.set(m[1]!, unquote(m[2] ?? ''));
      continue;
    }
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (m === null) throw new Error(`Dockerfile line ${ins.line}: FROM ${ins.args}`);
      const base = m[1]!.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n: string) => args.get(n) ?? '');
      stages.push({ index: stages.length, name: m[2], base, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before FROM`);
    stage.instructions.push(ins);
  }
  return { stages };
}

function unquote(s: string): string {
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'")))) return s.slice(1, -1);
  return s;
}

/** ENTRYPOINT/CMD/RUN/HEALTHCHECK CMD: the exec form (a JSON array) as is; the shell form as `/bin/sh -c "..."`. */
export function commandForm(args: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) {
    const parsed: unknown = JSON.parse(t);
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`not a JSON array of strings: ${t}`);
    return parsed as string[];
  }
  return ['/bin/sh', '-c', t];
}

/** Leading `--name=value` options of COPY and HEALTHCHECK, and what follows them. */
export function splitOptions(args: string): { options: Map<string, string>; rest: string } {
  const options = new Map<string, string>();
  let rest = args.trim();
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s*/.exec(rest);
    if (m === null) break;
    options.set(m[1]!, m[2]!);
    rest = rest.slice(m[0].length);
  }
  return { options, rest };
}

export interface CopyStep {
  readonly from: string | undefined;
  readonly sources: readonly string[];
  readonly dest: string;
}

export function parseCopy(args: string): CopyStep {
  const { options, rest } = splitOptions(args);
  for (const k of options.keys()) if (k !== 'from' && k !== 'chown' && k !== 'chmod') throw new Error(`COPY --${k} is not reproduced`);
  const words = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  if (words.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
  if (words.some((w) => /[*?[]/.test(w))) throw new Error(`COPY with wildcards is not reproduced: ${args}`);
  return { from: options.get('from'), sources: words.slice(0, -1), dest: words.at(-1)! };
}

/** `ENV a=1 b="two words"` or the old `ENV a value with spaces`. */
export function parseEnv(args: string): Array<[string, string]> {
  const t = args.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(t)) {
    const m = /^(\S+)\s+(.*)$/.exec(t);
    if (m === null) throw new Error(`ENV ${args}`);
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)\s*/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null && m[0] !== '') out.push([m[1]!, unquote(m[2]!)]);
  if (re.lastIndex !== 0 && re.lastIndex < t.length) throw new Error(`ENV: cannot read ${t.slice(re.lastIndex)}`);
  return out;
}

export interface Healthcheck {
  readonly options: ReadonlyMap<string, string>;
  readonly command: readonly string[];
}

export function parseHealthcheck(args: string): Healthcheck | undefined {
  if (args.trim().toUpperCase() === 'NONE') return undefined;
  const { options, rest } = splitOptions(args);
  const m = /^CMD\s+(.*)$/i.exec(rest);
  if (m === null) throw new Error(`HEALTHCHECK ${args}`);
  return { options, command: commandForm(m[1]!) };
}

/** VOLUME and EXPOSE take a JSON array or words. */
export function words(args: string): string[] {
  const t = args.trim();
  return t.startsWith('[') ? (JSON.parse(t) as string[]) : t.split(/\s+/);
}

// ---------------------------------------------------------------------------------------------------------
// .dockerignore: patterns relative to the context root; `*` and `?` within one path segment, `**` any number
// of segments; a pattern that matches a directory excludes everything under it; `!` re-includes; the last
// matching line decides.

export interface IgnoreRule {
  readonly negate: boolean;
  readonly re: RegExp;
}

export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let p = raw.trim();
    if (p === '' || p.startsWith('#')) continue;
    const negate = p.startsWith('!');
    if (negate) p = p.slice(1).trim();
    p = p.replace(/^\/+/, '').replace(/\/+$/, '');
    rules.push({ negate, re: new RegExp(`^${globToRegex(p)}(?:/.*)?$`) });
  }
  return rules;
}

function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more whole segments; a trailing `**` matches anything.
      if (glob[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}

/** Is this path (relative to the context, `/`-separated) left out of the build context? */
export function isIgnored(rules: readonly IgnoreRule[], relPath: string): boolean {
  let ignored = false;
  for (const r of rules) if (r.re.test(relPath)) ignored = !r.negate;
  return ignored;
}

/** What a stage's instructions set for the image it makes (no files): what `docker run` starts from. */
export interface ImageConfig {
  readonly workdir: string;
  readonly env: Readonly<Record<string, string>>;
  readonly user: string | undefined;
  readonly volumes: readonly string[];
  readonly exposed: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly healthcheck: Healthcheck | undefined;
}

/** The node images' PATH, which every stage starts with. */
export const BASE_IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function stageConfig(stage: Stage, omit?: (ins: Instruction) => boolean): ImageConfig {
  const env: Record<string, string> = { PATH: BASE_IMAGE_PATH };
  const volumes: string[] = [];
  const exposed: string[] = [];
  let workdir = '/';
  let user: string | undefined;
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  let healthcheck: Healthcheck | undefined;
  for (const ins of stage.instructions) {
    if (omit?.(ins) === true) continue;
    switch (ins.keyword) {
      case 'WORKDIR':
        workdir = posixResolve(workdir, ins.args.trim());
        break;
      case 'ENV':
        for (const [k, v] of parseEnv(ins.args)) env[k] = v.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n: string) => env[n] ?? '');
        break;
      case 'USER':
        user = ins.args.trim();
        break;
      case 'VOLUME':
        volumes.push(...words(ins.args));
        break;
      case 'EXPOSE':
        exposed.push(...words(ins.args));
        break;
      case 'HEALTHCHECK':
        healthcheck = parseHealthcheck(ins.args);
        break;
      case 'ENTRYPOINT':
        entrypoint = commandForm(ins.args);
        cmd = []; // Docker resets CMD when ENTRYPOINT is set in the same stage.
        break;
      case 'CMD':
        cmd = commandForm(ins.args);
        break;
    }
  }
  return { workdir, env, user, volumes, exposed, entrypoint, cmd, healthcheck };
}

function posixResolve(from: string, to: string): string {
  const parts = (to.startsWith('/') ? to : `${from}/${to}`).split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}

/** The image the Dockerfile makes: its last stage's configuration. */
export function finalImageConfig(dockerfileText: string): ImageConfig {
  const stages = parseDockerfile(dockerfileText).stages;
  return stageConfig(stages.at(-1)!);
}
