// A joining member's discovery (join.ts) against real grpc-js servers answering the peer service's Handshake the
// way members of this build and of older builds do: it must come out with the id MemberAdd gave it, wait for a
// member that has not applied the MemberAdd yet, fall back to the URL-derived id only when older builds answered,
// and refuse to start when the cluster has no member with its peer URLs.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { HandshakeRequest } from '../proto/index.js';
import { discoverCluster, DISCOVERY_ROUNDS_MAX, JoinError } from './join.js';
import { peerTransportService, statusError } from './transport/grpc-util.js';

const CLUSTER = 0xc1;
const SELF = { id: 0x5e1f, name: 'joiner', peerUrls: ['http://127.0.0.1:1'] };
const NO_PAUSE = (): number => 0;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A peer server whose Handshake answers with `answer(request, nth call)`; its URL. */
async function peer(answer: (req: HandshakeRequest, n: number) => object): Promise<string> {
  let calls = 0;
  const server = new grpc.Server();
  server.addService(peerTransportService(), {
    Handshake: (call: grpc.ServerUnaryCall<HandshakeRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, answer(call.request, calls++)),
    Send: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.destroy(),
    SendSnapshot: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(statusError(grpc.status.UNIMPLEMENTED, 'not here')),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return `http://127.0.0.1:${port}`;
}

const member = { cluster_id: String(CLUSTER), member_id: '7', name: 'm', peer_urls: [], version: '', protocol_version: 2 };

describe('discoverCluster', () => {
  it('learns the cluster id and the id MemberAdd gave it, found by its peer URLs', async () => {
    let asked: HandshakeRequest | undefined;
    const url = await peer((req) => ((asked = req), { member, assigned_member_id: '4242', assigns_member_ids: true }));
    expect(await discoverCluster([url], SELF, undefined, NO_PAUSE)).toEqual({ clusterId: CLUSTER, memberId: 4242 });
    expect(asked?.from?.cluster_id).toBe('0'); // discovery, not a member's handshake
    expect(asked?.from?.peer_urls).toEqual(SELF.peerUrls);
  });

  it('asks again while the members that answer have not applied the MemberAdd yet', async () => {
    const lagging = await peer(() => ({ member, assigned_member_id: '0', assigns_member_ids: true }));
    const catchingUp = await peer((_r, n) => ({ member, assigned_member_id: n < 2 ? '0' : '99', assigns_member_ids: true }));
    expect(await discoverCluster([lagging, catchingUp], SELF, undefined, NO_PAUSE)).toEqual({ clusterId: CLUSTER, memberId: 99 });
  });

  it('takes the id its peer URLs give when only older builds answer (their MemberAdd derived it so)', async () => {
    let calls = 0;
    const older = await peer(() => (calls++, { member }));
    expect(await discoverCluster([older], SELF, undefined, NO_PAUSE)).toEqual({ clusterId: CLUSTER, memberId: SELF.id });
    expect(calls).toBe(1); // everyone answered: no need to ask again
  });

  it('while a listed member does not answer (it may be of this build), asks again before falling back to that id', async () => {
    let calls = 0;
    const older = await peer(() => (calls++, { member }));
    const silent = await peer(() => ({ member }));
    const silentPort = Number(new URL(silent).port);
    await cleanups.splice(-1)[0]!(); // that server is gone: its port refuses
    const url = `http://127.0.0.1:${silentPort}`;
    expect(await discoverCluster([older, url], SELF, undefined, NO_PAUSE)).toEqual({ clusterId: CLUSTER, memberId: SELF.id });
    expect(calls).toBe(DISCOVERY_ROUNDS_MAX);
  });

  it('refuses to start when the cluster has no member with its peer URLs', async () => {
    let calls = 0;
    const url = await peer(() => (calls++, { member, assigned_member_id: '0', assigns_member_ids: true }));
    const err = await discoverCluster([url], SELF, undefined, NO_PAUSE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JoinError);
    expect((err as Error).message).toContain('the cluster has no member with this member\'s peer URLs (http://127.0.0.1:1)');
    expect(calls).toBe(DISCOVERY_ROUNDS_MAX);
  });
});
