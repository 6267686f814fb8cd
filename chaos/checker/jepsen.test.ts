// The published verdicts on Jepsen's etcd histories (../shared/testdata/linearizability/jepsen-etcd/): real
// histories with timeouts (info), failed swaps and reads of an empty register. The expected answers are read
// from the data's verdicts.json, never written here.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkHistory, parseHistory } from './index.js';
import { JEPSEN_ETCD_DIR } from './testing.js';

const DIR = JEPSEN_ETCD_DIR ?? '';
const verdicts = DIR === '' ? {} : (JSON.parse(readFileSync(`${DIR}verdicts.json`, 'utf8')) as { linearizable: Record<string, boolean> }).linearizable;
const files = DIR === ''
  ? []
  : readdirSync(DIR)
      .filter((name) => name.endsWith('.log'))
      .sort();

describe.skipIf(DIR === '')('Jepsen etcd histories', () => {
  it('finds the published set of files', () => {
    expect(Object.keys(verdicts)).toHaveLength(102);
    for (const name of Object.keys(verdicts)) expect(files).toContain(name);
  });

  it('gives the published verdict on every history that has one', () => {
    const started = performance.now();
    const wrong: string[] = [];
    let slowest = { name: '', ms: 0 };
    for (const name of Object.keys(verdicts).sort()) {
      const parsed = parseHistory(readFileSync(DIR + name, 'utf8'));
      expect(parsed.format).toBe('jepsen-log');
      const result = checkHistory(parsed.events, { model: 'register' });
      const expected = verdicts[name] ? 'linearizable' : 'not-linearizable';
      if (result.verdict !== expected) wrong.push(`${name}: ${result.verdict}, published ${expected}`);
      if (result.elapsedMs > slowest.ms) slowest = { name, ms: result.elapsedMs };
    }
    console.log(
      `jepsen-etcd: ${Object.keys(verdicts).length} histories in ${(performance.now() - started).toFixed(0)} ms ` +
        `(slowest ${slowest.name}, ${slowest.ms.toFixed(1)} ms)`,
    );
    expect(wrong).toEqual([]);
    expect(Object.values(verdicts).filter((v) => v)).toHaveLength(23);
  });

  it('a file without a published verdict still parses and is decided', () => {
    for (const name of files.filter((f) => verdicts[f] === undefined)) {
      const result = checkHistory(parseHistory(readFileSync(DIR + name, 'utf8')).events, { model: 'register' });
      expect(result.verdict).not.toBe('unknown');
    }
  });

  it('locates the violation in etcd_000.log where a read saw an overwritten value', () => {
    const result = checkHistory(parseHistory(readFileSync(`${DIR}etcd_000.log`, 'utf8')).events, { model: 'register' });
    const v = result.violation!;
    expect(v.blocking.f).toBe('read');
    // The blocking read's value differs from the state the longest linearizable prefix leaves.
    expect(JSON.stringify(v.blocking.output)).not.toBe(v.state);
    expect(v.prefix.length).toBeGreaterThan(0);
  });
});
