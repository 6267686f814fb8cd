// How fulcrumctl shows things: bordered tables for people (the default), `simple` lines for shell pipelines, and
// JSON with stable camelCase field names for programs. Pure functions only: commands build rows and objects, the
// caller writes them.
//
// Conventions (docs/fulcrumctl.md, "Output"):
//   - member and lease ids are hex, as etcdctl shows them (member ids are random 64-bit values, so hex is shorter
//     and matches `etcdctl member list`; lease ids are hex in etcdctl's `lease grant` and `--lease` too);
//   - keys and values are UTF-8 text; in JSON a key or value that is not valid UTF-8 is given as `keyBase64` /
//     `valueBase64` instead of `key` / `value`, so no byte is ever lost;
//   - times (a key version's hybrid-clock stamp) are ISO 8601 in UTC.
import type { Header, KeyValue } from '../index.js';

export type OutputFormat = 'table' | 'json' | 'simple';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'simple'];

/** A table with borders, columns as wide as their widest cell (etcdctl's layout, so it reads familiar). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]): string => `|${widths.map((w, i) => ` ${(cells[i] ?? '').padEnd(w)} `).join('|')}|`;
  return [rule, line(headers), rule, ...rows.map(line), rule].join('\n') + '\n';
}

/** One JSON document on one line: easy to pipe into `jq`, and what `watch -w json` streams (NDJSON). */
export function renderJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
}

/** A 64-bit id (decimal string from the wire, or bigint) as lower-case hex without leading zeros. */
export function hexId(id: string | bigint): string {
  return BigInt(id).toString(16);
}

/** Bytes as text when they are valid UTF-8; otherwise undefined (the caller picks an escape). */
export function utf8OrUndefined(b: Buffer): string | undefined {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : undefined;
}

/** Bytes for a table cell: text, with control characters and invalid UTF-8 escaped so the table stays intact. */
export function cellText(b: Buffer): string {
  const s = utf8OrUndefined(b);
  if (s === undefined) return `0x${b.toString('hex')}`;
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(s) ? JSON.stringify(s) : s;
}

/** `{ key }` or `{ keyBase64 }`: the field-name rule above, for any bytes field. */
export function bytesField(name: string, b: Buffer): Record<string, string> {
  const s = utf8OrUndefined(b);
  return s === undefined ? { [`${name}Base64`]: b.toString('base64') } : { [name]: s };
}

export function isoTime(d: Date | undefined): string {
  return d === undefined ? '' : d.toISOString();
}

/** A key version for JSON output. Fields: key, value, createRevision, modRevision, version, lease, modTime. */
export function kvJson(kv: KeyValue, o: { keysOnly?: boolean } = {}): Record<string, unknown> {
  return {
    ...bytesField('key', kv.key),
    ...(o.keysOnly ? {} : bytesField('value', kv.value)),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease === 0n ? '0' : hexId(kv.lease),
    modTime: kv.modTime?.toISOString() ?? null,
  };
}

/** The response header for JSON output: the store's revision and which member answered (hex). */
export function headerJson(h: Header): Record<string, unknown> {
  return { revision: h.revision, memberId: hexId(h.memberId), raftTerm: h.raftTerm };
}

/** A key version for a table row: KEY VALUE MOD-REV VERSION LEASE MODIFIED. */
export const KV_TABLE_HEADERS = ['KEY', 'VALUE', 'MOD REVISION', 'VERSION', 'LEASE', 'MODIFIED (HLC)'];

export function kvRow(kv: KeyValue): string[] {
  return [cellText(kv.key), cellText(kv.value), String(kv.modRevision), String(kv.version), kv.lease === 0n ? '' : hexId(kv.lease), isoTime(kv.modTime)];
}

/** `simple`: the key on one line, the value on the next (etcdctl's default get output, raw bytes). */
export function kvSimple(kv: KeyValue, o: { keysOnly?: boolean } = {}): Buffer {
  return o.keysOnly ? Buffer.concat([kv.key, NL]) : Buffer.concat([kv.key, NL, kv.value, NL]);
}

export const NL = Buffer.from('\n');

/** Bytes as a human-readable size (etcdctl's endpoint status shows "20 kB"). */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
