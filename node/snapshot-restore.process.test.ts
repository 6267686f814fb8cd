// Backup and restore end to end: a snapshot streamed from a live member (what `etcdctl snapshot save` receives),
// `fulcrum snapshot status` on the file, and `fulcrum snapshot restore` into three data dirs that then start as a
// NEW 3-member cluster of real processes: same keys, same history (HashKV at the snapshot's revision agrees with
// the original member), revisions continue, the old membership is gone.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotResponse } from '../proto/index.js';
import { b, rpc, startHarness } from './api/harness.testutil.js';
import { runSnapshotCommand } from './snapshot-cli.js';
import { restoreSnapshotFile, snapshotStatus, SnapshotFileError } from './snapshot-file.js';
import { EtcdTestClient } from './testing/etcd-client.js';
import { eventually } from './testing/eventually.js';
import { ProcessCluster } from './testing/process-cluster.js';

// Test ports stay below Linux's ephemeral range (32768+); this file's block is 22400-22999.
const BASE_PORT = 22_400 + (process.pid % 90) * 6;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-restore-'));
const file = join(dir, 'backup.db');
let cluster: ProcessCluster | undefined;
const clients: EtcdTestClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function saveSnapshot(stream: grpc.ClientReadableStream<SnapshotResponse>): Promise<Buffer> {
  const blobs: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: SnapshotResponse) => blobs.push(m.blob));
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  return Buffer.concat(blobs);
}

function hashKv(c: EtcdTestClient, revision: number): Promise<{ hash: number; revision: string }> {
  return new Promise((resolve, reject) =>
    c.maintenance.HashKV({ revision }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (e, r) =>
      e !== null || r === undefined ? reject(e ?? new Error('no answer')) : resolve({ hash: r.hash, revision: r.header?.revision ?? '0' }),
    ),
  );
}

describe('snapshot save, status and restore into a new cluster', () => {
  let snapRevision = 0;
  let originalHash = 0;

  it('status describes the file a live member streams, with the hash HashKV gives', async () => {
    const h = await startHarness();
    try {
      for (let i = 0; i < 20; i++) await rpc(h.kv, 'Put', { key: b(`k/${i % 7}`), value: b(`v${i}`) });
      await rpc(h.kv, 'DeleteRange', { key: b('k/6') });
      await rpc(h.kv, 'Compact', { revision: 5 });
      writeFileSync(file, await saveSnapshot(h.maintenance.Snapshot({}) as unknown as grpc.ClientReadableStream<SnapshotResponse>));
      const hk = await rpc(h.maintenance, 'HashKV', { revision: 0 });
      snapRevision = Number(hk.header!.revision);
      originalHash = hk.hash;
    } finally {
      await h.close();
    }
    const s = await snapshotStatus(file);
    expect(s).toMatchObject({ revision: snapRevision, compactRevision: 5, totalKeys: 6, hash: originalHash });
    const out: string[] = [];
    expect(await runSnapshotCommand(['status', file, '-w', 'json'], (x) => out.push(x), () => undefined)).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ revision: snapRevision, totalKeys: 6 });
  });

  it('refuses a damaged file and a data dir in use, with one clear line and exit 1', async () => {
    const bytes = readFileSync(file);
    bytes[100] = bytes[100]! ^ 0xff;
    const bad = join(dir, 'damaged.db');
    writeFileSync(bad, bytes);
    await expect(snapshotStatus(bad)).rejects.toThrow(/checksum mismatch/);
    const used = join(dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'something'), 'x');
    await expect(restoreSnapshotFile(file, used)).rejects.toBeInstanceOf(SnapshotFileError);
    const err: string[] = [];
    expect(await runSnapshotCommand(['restore', file, '--data-dir', used], () => undefined, (x) => err.push(x))).toBe(1);
    expect(err.join('')).toMatch(/exists and is not empty/);
    expect(await runSnapshotCommand(['status', join(dir, 'missing.db')], () => undefined, (x) => err.push(x))).toBe(1);
    expect(err.join('')).toMatch(/ENOENT/);
  });

  it('three data dirs restored from the file form a new cluster with the same keys and history', async () => {
    const members = [0, 1, 2].map((i) => ({ name: `r${i + 1}`, clientPort: BASE_PORT + 2 * i, peerPort: BASE_PORT + 2 * i + 1, dataDir: join(dir, `r${i + 1}`) }));
    for (const m of members) expect((await restoreSnapshotFile(file, m.dataDir)).revision).toBe(snapRevision);
    cluster = new ProcessCluster({ members, heartbeatMs: 50, electionMs: 500 });
    cluster.start();
    for (const m of cluster.members) clients.push(new EtcdTestClient(m.clientEndpoint, 3_000));
    await eventually('a leader', async () => ((await clients[0]!.status()).leader !== '0' ? true : undefined));
    // Each call is retried while the new cluster settles (a busy machine may see an extra election).
    for (const c of clients) {
      expect(await eventually('a local read', () => c.get('k/3', true))).toBeDefined();
      expect((await eventually('HashKV', () => hashKv(c, snapRevision))).hash).toBe(originalHash);
    }
    expect(await eventually('a linearizable read', async () => ((await clients[1]!.get('k/6')) === undefined ? 'absent' : 'present'))).toBe('absent');
    expect(await eventually('a count', () => clients[1]!.count('k/'))).toBe(6);
    const next = await eventually('the first write', () => clients[2]!.put('after-restore', 'yes'));
    expect(next).toBe(snapRevision + 1);
    const names = (await eventually('the member list', () => clients[0]!.memberList())).map((m) => m.name).sort();
    expect(names).toEqual(['r1', 'r2', 'r3']);
  });
});
