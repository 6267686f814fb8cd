// The chaos client's paged read against a real member: every key under the prefix, once, in order, as of the
// first page's revision, however the pages cut the range.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../node/api/harness.testutil.js';
import { ChaosClient } from './client.js';

let h: Harness;
let client: ChaosClient;
beforeAll(async () => {
  h = await startHarness();
  client = new ChaosClient(h.endpoint, 5_000);
  await client.put('ser', 'before the prefix');
  for (let i = 0; i < 25; i++) await client.put(`set/${String(i).padStart(3, '0')}`, String(i));
  await client.put('seu', 'after the prefix');
});
afterAll(async () => {
  client.close();
  await h.close();
});

describe('ChaosClient.rangeAll', () => {
  it.each([1, 4, 25, 1_000])('reads all 25 keys under the prefix in pages of %i, in key order, at one revision', async (pageKeys) => {
    const { kvs, header } = await client.rangeAll('set/', pageKeys);
    expect(kvs.map((kv) => kv.value)).toEqual(Array.from({ length: 25 }, (_, i) => String(i)));
    expect(header.revision).toBe((await client.get('seu')).header.revision);
  });

  it('pages after the first read at the first page\'s revision: a key deleted meanwhile is still seen, one added is not', async () => {
    let changed = false;
    const { kvs } = await client.rangeAll('set/', 5, async () => {
      if (changed) return;
      changed = true;
      await client.delete('set/020');
      await client.put('set/0125', 'added between pages');
    });
    expect(changed).toBe(true);
    expect(kvs.map((kv) => kv.key)).toContain('set/020');
    expect(kvs.map((kv) => kv.key)).not.toContain('set/0125');
    expect(kvs).toHaveLength(25);
    // And the change is real: a fresh read sees it.
    const after = await client.rangeAll('set/');
    expect(after.kvs.map((kv) => kv.key)).not.toContain('set/020');
    expect(after.kvs.map((kv) => kv.key)).toContain('set/0125');
  });
});
