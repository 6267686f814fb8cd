// A reader for the part of EDN that Jepsen histories use: nil, booleans, numbers, strings, characters, keywords,
// symbols, vectors, lists, maps, sets, tagged values (`#jepsen.history.Op{...}` reads as the map) and `#_`
// discards. Keywords read as `Keyword` objects so that `:read` and the string "read" stay distinct; `toPlain`
// turns a read value into plain JSON-like data for the checker.
import { HistoryError } from './operations.js';

export class Keyword {
  constructor(readonly name: string) {}
  toString(): string {
    return `:${this.name}`;
  }
}

export class EdnMap {
  constructor(readonly entries: readonly (readonly [EdnValue, EdnValue])[]) {}
  /** The value under keyword `name`, or undefined. */
  get(name: string): EdnValue | undefined {
    for (const [k, v] of this.entries) if (k instanceof Keyword && k.name === name) return v;
    return undefined;
  }
}

export type EdnValue = null | boolean | number | string | Keyword | EdnMap | EdnValue[];

/** How deeply collections may nest: a history value is shallow, and this keeps recursion bounded. */
const NESTING_MAX = 64;
const DELIMITERS = new Set(['(', ')', '[', ']', '{', '}', '"', ';']);
const NAMED_CHARACTERS: Record<string, string> = { newline: '\n', space: ' ', tab: '\t', return: '\r' };

/** Reads every top-level value in `text`. `where` names the source in error messages (e.g. "line 3"). */
export function readEdnAll(text: string, where: string): EdnValue[] {
  const reader = new Reader(text, where);
  const values: EdnValue[] = [];
  for (;;) {
    reader.skipSpace();
    if (reader.atEnd()) return values;
    const value = reader.readValue(0);
    if (value !== DISCARDED) values.push(value);
  }
}

/** Reads exactly one value. */
export function readEdn(text: string, where: string): EdnValue {
  const values = readEdnAll(text, where);
  if (values.length !== 1) throw new HistoryError(`${where}: expected one EDN value, found ${values.length}`);
  return values[0]!;
}

const DISCARDED = Symbol('discarded');

class Reader {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly where: string,
  ) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos]!;
      if (c === ';') {
        while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
      } else if (c === ',' || /\s/.test(c)) {
        this.pos++;
      } else {
        return;
      }
    }
  }

  readValue(depth: number): EdnValue | typeof DISCARDED {
    if (depth > NESTING_MAX) this.fail(`values nest deeper than ${NESTING_MAX}`);
    this.skipSpace();
    if (this.atEnd()) this.fail('unexpected end of input');
    const c = this.text[this.pos]!;
    switch (c) {
      case '[':
      case '(':
        this.pos++;
        return this.readSequence(c === '[' ? ']' : ')', depth);
      case '{':
        this.pos++;
        return this.readMap(depth);
      case '"':
        return this.readString();
      case '\\':
        return this.readCharacter();
      case '#':
        return this.readDispatch(depth);
      case ')':
      case ']':
      case '}':
        return this.fail(`unexpected "${c}"`);
      default:
        return this.readAtom();
    }
  }

  private readSequence(close: string, depth: number): EdnValue[] {
    const items: EdnValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.atEnd()) this.fail(`missing "${close}"`);
      if (this.text[this.pos] === close) {
        this.pos++;
        return items;
      }
      const item = this.readValue(depth + 1);
      if (item !== DISCARDED) items.push(item);
    }
  }

  private readMap(depth: number): EdnMap {
    const items = this.readSequence('}', depth);
    if (items.length % 2 !== 0) this.fail('a map needs an even number of forms');
    const entries: [EdnValue, EdnValue][] = [];
    for (let i = 0; i < items.length; i += 2) entries.push([items[i]!, items[i + 1]!]);
    return new EdnMap(entries);
  }

  private readDispatch(depth: number): EdnValue | typeof DISCARDED {
    const next = this.text[this.pos + 1];
    if (next === '{') {
      this.pos += 2;
      return this.readSequence('}', depth); // a set reads as the list of its members
    }
    if (next === '_') {
      this.pos += 2;
      this.readValue(depth + 1);
      return DISCARDED;
    }
    this.pos++;
    this.readSymbolText(); // the tag: `#inst "..."`, `#jepsen.history.Op{...}` read as the tagged value
    const value = this.readValue(depth + 1);
    if (value === DISCARDED) this.fail('a tag needs a value');
    return value;
  }

  private readString(): string {
    let out = '';
    this.pos++;
    while (!this.atEnd()) {
      const c = this.text[this.pos++]!;
      if (c === '"') return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.pos++];
      const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' };
      if (e === 'u') {
        out += String.fromCharCode(parseInt(this.text.slice(this.pos, this.pos + 4), 16));
        this.pos += 4;
      } else if (e !== undefined && escapes[e] !== undefined) {
        out += escapes[e];
      } else {
        this.fail(`unknown string escape "\\${e ?? ''}"`);
      }
    }
    return this.fail('unterminated string');
  }

  private readCharacter(): string {
    this.pos++;
    const start = this.pos;
    this.pos++; // the first character is taken even when it is a delimiter: `\(`
    while (!this.atEnd() && !this.isDelimiter(this.text[this.pos]!)) this.pos++;
    const name = this.text.slice(start, this.pos);
    if (name.length === 1) return name;
    const named = NAMED_CHARACTERS[name];
    if (named !== undefined) return named;
    if (/^u[0-9a-fA-F]{4}$/.test(name)) return String.fromCharCode(parseInt(name.slice(1), 16));
    return this.fail(`unknown character \\${name}`);
  }

  private readAtom(): EdnValue {
    const token = this.readSymbolText();
    if (token === 'nil') return null;
    if (token === 'true') return true;
    if (token === 'false') return false;
    if (token.startsWith(':')) {
      if (token.length === 1) this.fail('empty keyword');
      return new Keyword(token.slice(1));
    }
    if (/^[-+]?\d/.test(token)) return this.readNumber(token);
    return token; // a symbol: kept as its text
  }

  private readNumber(token: string): number {
    const digits = token.replace(/[NM]$/, '');
    const value = Number(digits);
    if (!Number.isFinite(value)) this.fail(`not a number: ${token}`);
    return value;
  }

  private readSymbolText(): string {
    const start = this.pos;
    while (!this.atEnd() && !this.isDelimiter(this.text[this.pos]!)) this.pos++;
    if (this.pos === start) this.fail(`unexpected "${this.text[this.pos] ?? 'end of input'}"`);
    return this.text.slice(start, this.pos);
  }

  private isDelimiter(c: string): boolean {
    return DELIMITERS.has(c) || c === ',' || /\s/.test(c);
  }

  private fail(message: string): never {
    throw new HistoryError(`${this.where}: EDN: ${message} (at column ${this.pos + 1})`);
  }
}

/**
 * Turns an EDN value into plain data: keywords become `:name` strings, maps become objects keyed by the
 * keyword's name (or the key's printed form).
 */
export function toPlain(value: EdnValue): unknown {
  if (value instanceof Keyword) return value.toString();
  if (value instanceof EdnMap) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value.entries) out[k instanceof Keyword ? k.name : String(toPlain(k))] = toPlain(v);
    return out;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  return value;
}
