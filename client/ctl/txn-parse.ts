// The text form of a transaction, for `fulcrumctl txn` (stdin) and its flag form (--if/--then/--else). The
// grammar follows etcdctl's interactive txn so that scripts written for it carry over:
//
//   compares, one per line, ended by an empty line:
//     value("key") = "v"        mod("key") > "12"     create("key") = "0"     version("key") != "3"
//     lease("key") = "694d7a4a5e2c6f0a"  (hex, as every lease id in fulcrumctl)
//     (short names too: val, ver, c, m)
//   then the success ops, an empty line, the failure ops, one per line:
//     put key value [--lease=<hex>] [--prev-kv]
//     get key [range_end] [--prefix] [--limit=N] [--keys-only] [--count-only] [--rev=N]
//     del key [range_end] [--prefix] [--prev-kv]
//
// Words are separated by spaces; a word may be double-quoted ("a value with spaces", "tab\there") with JSON's
// escapes. Pure: parsing never touches the network, so every mistake is a UsageError with the offending line.
import { Compare, Op, type CompareOp, type CompareSpec, type KeyRange, type OpSpec, type TxnSpec } from '../index.js';
import { UsageError } from './context.js';

const COMPARE_TARGETS: Readonly<Record<string, 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease'>> = {
  value: 'value',
  val: 'value',
  version: 'version',
  ver: 'version',
  create: 'createRevision',
  c: 'createRevision',
  mod: 'modRevision',
  m: 'modRevision',
  lease: 'lease',
};

/** Split a line into words, honouring double quotes with JSON escapes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ' || line[i] === '\t') {
      i++;
      continue;
    }
    if (line[i] === '"') {
      const end = closingQuote(line, i);
      words.push(unquote(line.slice(i, end + 1), line));
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
    words.push(line.slice(i, j));
    i = j;
  }
  return words;
}

function closingQuote(line: string, open: number): number {
  for (let j = open + 1; j < line.length; j++) {
    if (line[j] === '\\') j++;
    else if (line[j] === '"') return j;
  }
  throw new UsageError(`unterminated quote in ${quoteLine(line)}`);
}

function unquote(quoted: string, line: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    throw new UsageError(`bad escape in ${quoted} (in ${quoteLine(line)})`);
  }
}

/** `mod("key") > "12"`: a compare of one key (a range is not supported in the text form, as in etcdctl). */
export function parseCompare(line: string): CompareSpec {
  const m = /^\s*([a-z]+)\(\s*("(?:[^"\\]|\\.)*")\s*\)\s*(=|!=|<|>)\s*(.+?)\s*$/.exec(line);
  const target = m === null ? undefined : COMPARE_TARGETS[m[1]!];
  if (m === null || target === undefined) {
    throw new UsageError(`bad compare ${quoteLine(line)}: want <value|version|create|mod|lease>("key") <=|!=|<|>> "operand"`);
  }
  const key = unquote(m[2]!, line);
  const op = m[3] as CompareOp;
  const words = splitWords(m[4]!);
  if (words.length !== 1) throw new UsageError(`bad compare ${quoteLine(line)}: the operand must be one word or one quoted string`);
  const operand = words[0]!;
  if (target === 'value') return Compare.value(key, op, operand);
  if (target === 'lease') return Compare.lease(key, op, parseHexId('lease', operand));
  const n = parseNonNegative(`${m[1]} operand`, operand);
  return target === 'version' ? Compare.version(key, op, n) : target === 'createRevision' ? Compare.createRevision(key, op, n) : Compare.modRevision(key, op, n);
}

/** `put k v`, `get k [end] [--prefix]`, `del k [end] [--prefix]`. */
export function parseOp(line: string): OpSpec {
  const words = splitWords(line);
  const [verb, ...rest] = words;
  const flags = new Map<string, string>();
  const args: string[] = [];
  for (const w of rest) {
    const f = /^--([a-z-]+)(?:=(.*))?$/.exec(w);
    if (f) flags.set(f[1]!, f[2] ?? '');
    else args.push(w);
  }
  const allow = (names: string[]): void => {
    for (const f of flags.keys()) if (!names.includes(f)) throw new UsageError(`${verb}: unknown flag --${f} in ${quoteLine(line)}`);
  };
  switch (verb) {
    case 'put':
      allow(['lease', 'prev-kv']);
      if (args.length !== 2) throw new UsageError(`put takes a key and a value, got ${quoteLine(line)}`);
      return Op.put(args[0]!, args[1]!, { ...(flags.has('lease') ? { lease: parseHexId('lease', flags.get('lease')!) } : {}), prevKv: flags.has('prev-kv') });
    case 'get': {
      allow(['prefix', 'limit', 'keys-only', 'count-only', 'rev']);
      const o = {
        ...(flags.has('limit') ? { limit: parseNonNegative('--limit', flags.get('limit')!) } : {}),
        ...(flags.has('rev') ? { revision: parseNonNegative('--rev', flags.get('rev')!) } : {}),
        keysOnly: flags.has('keys-only'),
        countOnly: flags.has('count-only'),
      };
      return Op.get(keyRange('get', args, flags.has('prefix'), line), o);
    }
    case 'del':
    case 'delete':
      allow(['prefix', 'prev-kv']);
      return Op.delete(keyRange('del', args, flags.has('prefix'), line), { prevKv: flags.has('prev-kv') });
    default:
      throw new UsageError(`bad operation ${quoteLine(line)}: want put, get or del`);
  }
}

/** A key, a [key, end) range, or a prefix, from a command's positional words (shared with get and del). */
export function keyRange(verb: string, args: readonly string[], prefix: boolean, line?: string): string | KeyRange {
  const where = line === undefined ? '' : ` in ${quoteLine(line)}`;
  if (args.length < 1 || args.length > 2) throw new UsageError(`${verb} takes a key and an optional range end${where}`);
  if (prefix && args.length === 2) throw new UsageError(`${verb}: --prefix and a range end do not go together${where}`);
  if (prefix) return { prefix: args[0]! };
  return args.length === 2 ? { start: args[0]!, end: args[1]! } : args[0]!;
}

/** The three sections of etcdctl's txn text, separated by empty lines. */
export function parseTxnText(text: string): TxnSpec {
  const lines = text.replace(/\r/g, '').split('\n');
  const sections: string[][] = [[], [], []];
  let s = 0;
  for (const line of lines) {
    if (line.trim() === '') {
      s++;
      if (s > 2) break;
      continue;
    }
    sections[s]!.push(line);
  }
  return { compare: sections[0]!.map(parseCompare), success: sections[1]!.map(parseOp), failure: sections[2]!.map(parseOp) };
}

export function parseHexId(what: string, text: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(text)) throw new UsageError(`${what} id must be hex (as fulcrumctl prints it), got ${JSON.stringify(text)}`);
  return BigInt(`0x${text}`);
}

export function parseNonNegative(what: string, text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** A line of the text form inside a message: single quotes, since the line itself is full of double quotes. */
function quoteLine(line: string): string {
  return `'${line}'`;
}
