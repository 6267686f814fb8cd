// A small promise-based etcd v3 client over Fulcrum's own proto definitions, for multi-process tests, the chaos
// suite and the benchmark (the real client library lives in client/). Every call has a deadline.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi, type ClusterMethods, type KVMethods, type MaintenanceMethods, type TypedClient } from '../../proto/index.js';

type Cb<R> = (err: grpc.ServiceError | null, res?: R) => void;

function call<R>(fn: (cb: Cb<R>) => void): Promise<R> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as R))));
}

export class EtcdTestClient {
  readonly kv: TypedClient<KVMethods>;
  readonly maintenance: TypedClient<MaintenanceMethods>;
  readonly cluster: TypedClient<ClusterMethods>;

  constructor(
    readonly endpoint: string,
    private readonly deadlineMs = 3_000,
  ) {
    const api = loadEtcdApi();
    const creds = grpc.credentials.createInsecure();
    this.kv = new api.etcdserverpb.KV(endpoint, creds);
    this.maintenance = new api.etcdserverpb.Maintenance(endpoint, creds);
    this.cluster = new api.etcdserverpb.Cluster(endpoint, creds);
  }

  private opts(): grpc.CallOptions {
    return { deadline: Date.now() + this.deadlineMs };
  }

  async put(key: string, value: string): Promise<number> {
    const r = await call<{ header: { revision: string } | null }>((cb) =>
      this.kv.Put({ key: Buffer.from(key), value: Buffer.from(value) }, new grpc.Metadata(), this.opts(), cb as never),
    );
    return Number(r.header!.revision);
  }

  /** Put every key (with the same value) in one transaction; the revision it made. */
  async putAll(keys: readonly string[], value: string): Promise<number> {
    const v = Buffer.from(value);
    const success = keys.map((key) => ({ request_put: { key: Buffer.from(key), value: v } }));
    const r = await call<{ header: { revision: string } | null }>((cb) => this.kv.Txn({ success }, new grpc.Metadata(), this.opts(), cb as never));
    return Number(r.header!.revision);
  }

  async get(key: string, serializable = false): Promise<string | undefined> {
    const r = await call<{ kvs: Array<{ value: Buffer }> }>((cb) => this.kv.Range({ key: Buffer.from(key), serializable }, new grpc.Metadata(), this.opts(), cb as never));
    return r.kvs[0]?.value.toString();
  }

  async count(prefix: string, serializable = false): Promise<number> {
    const end = Buffer.from(prefix);
    end[end.length - 1]! += 1;
    const r = await call<{ count: string }>((cb) =>
      this.kv.Range({ key: Buffer.from(prefix), range_end: end, count_only: true, serializable }, new grpc.Metadata(), this.opts(), cb as never),
    );
    return Number(r.count);
  }

  status(): Promise<{ leader: string; raftTerm: string; raftAppliedIndex: string; isLearner: boolean; memberId: string }> {
    return call<{ leader: string; raftTerm: string; raftAppliedIndex: string; isLearner: boolean; header: { member_id: string } }>((cb) =>
      this.maintenance.Status({}, new grpc.Metadata(), this.opts(), cb as never),
    ).then((s) => ({ leader: s.leader, raftTerm: s.raftTerm, raftAppliedIndex: s.raftAppliedIndex, isLearner: s.isLearner, memberId: s.header.member_id }));
  }

  memberList(): Promise<Array<{ ID: string; name: string; peerURLs: string[]; isLearner: boolean }>> {
    return call<{ members: Array<{ ID: string; name: string; peerURLs: string[]; isLearner: boolean }> }>((cb) =>
      this.cluster.MemberList({ linearizable: true }, new grpc.Metadata(), this.opts(), cb as never),
    ).then((r) => r.members);
  }

  memberAdd(peerUrls: string[], isLearner: boolean): Promise<string> {
    return call<{ member: { ID: string } }>((cb) => this.cluster.MemberAdd({ peerURLs: peerUrls, isLearner }, new grpc.Metadata(), this.opts(), cb as never)).then(
      (r) => r.member.ID,
    );
  }

  async memberRemove(id: string): Promise<void> {
    await call((cb) => this.cluster.MemberRemove({ ID: id as never }, new grpc.Metadata(), this.opts(), cb as never));
  }

  async memberPromote(id: string): Promise<void> {
    await call((cb) => this.cluster.MemberPromote({ ID: id as never }, new grpc.Metadata(), this.opts(), cb as never));
  }

  async moveLeader(targetId: string): Promise<void> {
    await call((cb) => this.maintenance.MoveLeader({ targetID: targetId as never }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, cb as never));
  }

  close(): void {
    this.kv.close();
    this.maintenance.close();
    this.cluster.close();
  }
}
