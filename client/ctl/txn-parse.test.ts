// The text form of transactions and the pure helpers of fulcrumctl: no network.
import { describe, expect, it } from 'vitest';
import { parseDuration, resolveGlobals, UsageError } from './context.js';
import { cellText, hexId, humanBytes, kvJson, renderTable } from './format.js';
import { parseCompare, parseOp, parseTxnText, splitWords } from './txn-parse.js';
import { KeyValue } from '../index.js';

describe('txn text', () => {
  it('splits words with JSON-escaped double quotes', () => {
    expect(splitWords('put k "a value\\twith \\"quotes\\"" --prev-kv')).toEqual(['put', 'k', 'a value\twith "quotes"', '--prev-kv']);
    expect(() => splitWords('put k "open')).toThrow(UsageError);
  });

  it('parses every compare target, short names and operators', () => {
    expect(parseCompare('value("k") = "v w"')).toEqual({ target: 'value', key: 'k', op: '=', operand: Buffer.from('v w') });
    expect(parseCompare('ver("k") != "3"')).toMatchObject({ target: 'version', op: '!=', operand: 3 });
    expect(parseCompare('c("k") = "0"')).toMatchObject({ target: 'createRevision', operand: 0 });
    expect(parseCompare('m("a b") < "12"')).toMatchObject({ target: 'modRevision', key: 'a b', op: '<', operand: 12 });
    expect(parseCompare('lease("k") > "1f"')).toMatchObject({ target: 'lease', op: '>', operand: 0x1fn });
    expect(() => parseCompare('value(k) = "v"')).toThrow(/bad compare/);
    expect(() => parseCompare('version("k") = "x"')).toThrow(/non-negative integer/);
    expect(() => parseCompare('value("k") = "v" "w"')).toThrow(/one word/);
  });

  it('parses put, get and del with their flags', () => {
    expect(parseOp('put k v --lease=ff --prev-kv')).toMatchObject({ type: 'put', key: 'k', value: 'v', lease: 0xffn, prevKv: true });
    expect(parseOp('get a/ --prefix --limit=2 --keys-only')).toMatchObject({ type: 'get', key: { prefix: 'a/' }, limit: 2, keysOnly: true });
    expect(parseOp('get a c --rev=7')).toMatchObject({ type: 'get', key: { start: 'a', end: 'c' }, revision: 7 });
    expect(parseOp('del k --prev-kv')).toMatchObject({ type: 'delete', key: 'k', prevKv: true });
    expect(() => parseOp('put k')).toThrow(/a key and a value/);
    expect(() => parseOp('get k --sort')).toThrow(/unknown flag --sort/);
    expect(() => parseOp('del a b --prefix')).toThrow(/do not go together/);
  });

  it('reads the three sections separated by empty lines (an empty compare section is allowed)', () => {
    const t = parseTxnText('\nput a 1\nput b 2\n\nget a\n\n');
    expect([t.compare.length, t.success.length, t.failure.length]).toEqual([0, 2, 1]);
    const full = parseTxnText('mod("a") > "0"\r\n\r\ndel a\r\n');
    expect([full.compare.length, full.success.length, full.failure.length]).toEqual([1, 1, 0]);
  });
});

describe('flags and formatting', () => {
  it('parses durations and resolves endpoints in order: flag, FULCRUMCTL_ENDPOINTS, ETCDCTL_ENDPOINTS', () => {
    expect([parseDuration('x', '500ms'), parseDuration('x', '5s'), parseDuration('x', '2m'), parseDuration('x', '1.5')]).toEqual([500, 5_000, 120_000, 1_500]);
    expect(() => parseDuration('--dial-timeout', '0s')).toThrow(/positive/);
    const base = { dialTimeout: '2s', commandTimeout: '5s', writeOut: 'table' };
    expect(resolveGlobals(base, {}).endpoints).toEqual(['127.0.0.1:2379']);
    expect(resolveGlobals(base, { ETCDCTL_ENDPOINTS: 'e:1' }).endpoints).toEqual(['e:1']);
    expect(resolveGlobals(base, { ETCDCTL_ENDPOINTS: 'e:1', FULCRUMCTL_ENDPOINTS: 'f:1, f:2' }).endpoints).toEqual(['f:1', 'f:2']);
    expect(resolveGlobals({ ...base, endpoints: 'a:1' }, { FULCRUMCTL_ENDPOINTS: 'f:1' }).endpoints).toEqual(['a:1']);
    expect(() => resolveGlobals({ ...base, cert: '/x.pem' }, {})).toThrow(/--cert and --key go together/);
    expect(() => resolveGlobals({ ...base, endpoints: 'a:1,nohost' }, {})).toThrow(/^--endpoints: bad endpoint "nohost": want host:port/);
    expect(() => resolveGlobals({ ...base, cacert: '/no/such/ca.pem' }, {})).toThrow(/--cacert: cannot read \/no\/such\/ca\.pem: ENOENT/);
  });

  it('renders tables, ids, sizes, and bytes that are not text', () => {
    expect(renderTable(['A', 'LONGER'], [['xyz', '1']])).toBe('+-----+--------+\n| A   | LONGER |\n+-----+--------+\n| xyz | 1      |\n+-----+--------+\n');
    expect(hexId((0xfedcba9876543210n).toString())).toBe('fedcba9876543210'); // beyond 2^53: no precision lost
    expect([humanBytes(999), humanBytes(6176), humanBytes(25_000_000)]).toEqual(['999 B', '6.2 kB', '25 MB']);
    expect(cellText(Buffer.from([0xff, 0x00]))).toBe('0xff00');
    expect(cellText(Buffer.from('a\nb'))).toBe('"a\\nb"');
    const kv = new KeyValue(Buffer.from([0xc3]), Buffer.from('v'), 1, 2, 1, 255n, 0n, 0n);
    expect(kvJson(kv)).toEqual({ keyBase64: 'ww==', value: 'v', createRevision: 1, modRevision: 2, version: 1, lease: 'ff', modTime: null });
  });
});
