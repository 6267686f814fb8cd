// The contract itself: the files load, every service has exactly etcd's methods, and the field numbers that
// interoperability depends on are what etcd clients expect. The expected tables below are written out by hand
// from etcd v3.5's published API, deliberately independent of the .proto files they check.
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { CONVERSION_OPTIONS, loadEtcdApi, loadEtcdClientApi, loadPackageDefinition, loadProtoRoot, type PutRequest } from './index.js';

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

/** Field name -> number, read from proto-loader's descriptor (what grpc-js serializes with). */
function fieldNumbers(fullName: string): Record<string, number> {
  const def = loadPackageDefinition()[fullName];
  if (def === undefined || !('format' in def)) throw new Error(`no message ${fullName}`);
  const fields = (def.type as { field: FieldDescriptor[] }).field;
  return Object.fromEntries(fields.map((f) => [f.name, f.number]));
}

function enumValues(fullName: string): Record<string, number> {
  return loadProtoRoot().lookupEnum(fullName).values;
}

describe('loading', () => {
  it('loads every service as a client class that carries its definition', () => {
    const api = loadEtcdApi();
    const services = [
      api.etcdserverpb.KV,
      api.etcdserverpb.Watch,
      api.etcdserverpb.Lease,
      api.etcdserverpb.Cluster,
      api.etcdserverpb.Maintenance,
      api.etcdserverpb.Auth,
      api.v3electionpb.Election,
      api.v3lockpb.Lock,
      api.fulcrum.v1.Fulcrum,
      api.fulcrum.raftpb.RaftTransport,
    ];
    for (const s of services) {
      expect(typeof s).toBe('function');
      expect(Object.keys(s.service).length).toBeGreaterThan(0);
    }
    expect(loadEtcdApi()).toBe(api); // loaded once
  });

  it('the protobufjs root resolves every type', () => {
    const root = loadProtoRoot();
    expect(root.lookupType('mvccpb.KeyValue').fieldsArray.length).toBe(8);
    expect(root.lookupService('etcdserverpb.KV').methodsArray.length).toBe(5);
  });
});

// Method name, then '>' for a client-streaming request and/or '<' for a server-streaming response.
const ETCD_METHODS: Record<string, string[]> = {
  'etcdserverpb.KV': ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact'],
  'etcdserverpb.Watch': ['Watch><'],
  'etcdserverpb.Lease': ['LeaseGrant', 'LeaseRevoke', 'LeaseKeepAlive><', 'LeaseTimeToLive', 'LeaseLeases'],
  'etcdserverpb.Cluster': ['MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberList', 'MemberPromote'],
  'etcdserverpb.Maintenance': ['Alarm', 'Status', 'Defragment', 'Hash', 'HashKV', 'Snapshot<', 'MoveLeader', 'Downgrade'],
  'etcdserverpb.Auth': [
    'AuthEnable',
    'AuthDisable',
    'AuthStatus',
    'Authenticate',
    'UserAdd',
    'UserGet',
    'UserList',
    'UserDelete',
    'UserChangePassword',
    'UserGrantRole',
    'UserRevokeRole',
    'RoleAdd',
    'RoleGet',
    'RoleList',
    'RoleDelete',
    'RoleGrantPermission',
    'RoleRevokePermission',
  ],
  'v3electionpb.Election': ['Campaign', 'Proclaim', 'Leader', 'Observe<', 'Resign'],
  'v3lockpb.Lock': ['Lock', 'Unlock'],
  'fulcrum.v1.Fulcrum': ['RevisionAt', 'ServerInfo'],
  'fulcrum.raftpb.RaftTransport': ['Handshake', 'Send><', 'SendSnapshot>'],
};

// Request and response message of a few methods whose types are easy to get wrong.
const METHOD_TYPES: [string, string, string][] = [
  ['/etcdserverpb.KV/Compact', 'CompactionRequest', 'CompactionResponse'],
  ['/etcdserverpb.Watch/Watch', 'WatchRequest', 'WatchResponse'],
  ['/etcdserverpb.Auth/UserAdd', 'AuthUserAddRequest', 'AuthUserAddResponse'],
  ['/v3electionpb.Election/Observe', 'LeaderRequest', 'LeaderResponse'],
  ['/v3lockpb.Lock/Unlock', 'UnlockRequest', 'UnlockResponse'],
];

describe('services', () => {
  it.each(Object.entries(ETCD_METHODS))('%s has exactly the expected methods and streaming sides', (service, expected) => {
    const def = loadPackageDefinition()[service] as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;
    const actual = Object.values(def).map((m) => {
      const name = m.path.split('/').pop() ?? '';
      return name + (m.requestStream ? '>' : '') + (m.responseStream ? '<' : '');
    });
    expect(actual).toEqual(expected);
    // The gRPC path is what travels on the wire: /package.Service/Method.
    for (const m of Object.values(def)) expect(m.path.startsWith(`/${service}/`)).toBe(true);
  });

  it.each(METHOD_TYPES)('%s takes %s and returns %s', (path, req, res) => {
    const root = loadProtoRoot();
    const [, service, method] = /^\/(.+)\/(\w+)$/.exec(path) ?? [];
    const m = root.lookupService(service ?? '').methods[method ?? ''];
    expect(m?.resolvedRequestType?.name).toBe(req);
    expect(m?.resolvedResponseType?.name).toBe(res);
  });
});

const FIELD_NUMBERS: [string, Record<string, number>][] = [
  ['etcdserverpb.ResponseHeader', { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4, hlc: 1000 }],
  [
    'etcdserverpb.RangeRequest',
    {
      key: 1,
      range_end: 2,
      limit: 3,
      revision: 4,
      sort_order: 5,
      sort_target: 6,
      serializable: 7,
      keys_only: 8,
      count_only: 9,
      min_mod_revision: 10,
      max_mod_revision: 11,
      min_create_revision: 12,
      max_create_revision: 13,
    },
  ],
  ['etcdserverpb.RangeResponse', { header: 1, kvs: 2, more: 3, count: 4 }],
  ['mvccpb.KeyValue', { key: 1, create_revision: 2, mod_revision: 3, version: 4, value: 5, lease: 6, create_hlc: 1000, mod_hlc: 1001 }],
  ['mvccpb.Event', { type: 1, kv: 2, prev_kv: 3 }],
  ['etcdserverpb.PutRequest', { key: 1, value: 2, lease: 3, prev_kv: 4, ignore_value: 5, ignore_lease: 6 }],
  ['etcdserverpb.PutResponse', { header: 1, prev_kv: 2 }],
  ['etcdserverpb.DeleteRangeRequest', { key: 1, range_end: 2, prev_kv: 3 }],
  ['etcdserverpb.DeleteRangeResponse', { header: 1, deleted: 2, prev_kvs: 3 }],
  ['etcdserverpb.RequestOp', { request_range: 1, request_put: 2, request_delete_range: 3, request_txn: 4 }],
  ['etcdserverpb.ResponseOp', { response_range: 1, response_put: 2, response_delete_range: 3, response_txn: 4 }],
  [
    'etcdserverpb.Compare',
    { result: 1, target: 2, key: 3, version: 4, create_revision: 5, mod_revision: 6, value: 7, lease: 8, range_end: 64 },
  ],
  ['etcdserverpb.TxnRequest', { compare: 1, success: 2, failure: 3 }],
  ['etcdserverpb.TxnResponse', { header: 1, succeeded: 2, responses: 3 }],
  ['etcdserverpb.CompactionRequest', { revision: 1, physical: 2 }],
  ['etcdserverpb.WatchRequest', { create_request: 1, cancel_request: 2, progress_request: 3 }],
  [
    'etcdserverpb.WatchCreateRequest',
    { key: 1, range_end: 2, start_revision: 3, progress_notify: 4, filters: 5, prev_kv: 6, watch_id: 7, fragment: 8 },
  ],
  ['etcdserverpb.WatchCancelRequest', { watch_id: 1 }],
  [
    'etcdserverpb.WatchResponse',
    { header: 1, watch_id: 2, created: 3, canceled: 4, compact_revision: 5, cancel_reason: 6, fragment: 7, events: 11 },
  ],
  ['etcdserverpb.LeaseGrantRequest', { TTL: 1, ID: 2 }],
  ['etcdserverpb.LeaseGrantResponse', { header: 1, ID: 2, TTL: 3, error: 4 }],
  ['etcdserverpb.LeaseKeepAliveResponse', { header: 1, ID: 2, TTL: 3 }],
  ['etcdserverpb.LeaseTimeToLiveRequest', { ID: 1, keys: 2 }],
  ['etcdserverpb.LeaseTimeToLiveResponse', { header: 1, ID: 2, TTL: 3, grantedTTL: 4, keys: 5 }],
  ['etcdserverpb.LeaseCheckpoint', { ID: 1, remaining_TTL: 2 }],
  ['etcdserverpb.Member', { ID: 1, name: 2, peerURLs: 3, clientURLs: 4, isLearner: 5 }],
  ['etcdserverpb.MemberAddResponse', { header: 1, member: 2, members: 3 }],
  ['etcdserverpb.MemberListRequest', { linearizable: 1 }],
  ['etcdserverpb.AlarmRequest', { action: 1, memberID: 2, alarm: 3 }],
  ['etcdserverpb.AlarmMember', { memberID: 1, alarm: 2 }],
  [
    'etcdserverpb.StatusResponse',
    {
      header: 1,
      version: 2,
      dbSize: 3,
      leader: 4,
      raftIndex: 5,
      raftTerm: 6,
      raftAppliedIndex: 7,
      errors: 8,
      dbSizeInUse: 9,
      isLearner: 10,
      storageVersion: 11,
      dbSizeQuota: 12,
      downgradeInfo: 13,
    },
  ],
  ['etcdserverpb.HashKVResponse', { header: 1, hash: 2, compact_revision: 3, hash_revision: 4 }],
  ['etcdserverpb.SnapshotResponse', { header: 1, remaining_bytes: 2, blob: 3, version: 4 }],
  ['etcdserverpb.AuthUserAddRequest', { name: 1, password: 2, options: 3, hashedPassword: 4 }],
  ['etcdserverpb.AuthUserGrantRoleRequest', { user: 1, role: 2 }],
  ['etcdserverpb.AuthRoleRevokePermissionRequest', { role: 1, key: 2, range_end: 3 }],
  ['authpb.Permission', { permType: 1, key: 2, range_end: 3 }],
  ['authpb.User', { name: 1, password: 2, roles: 3, options: 4 }],
  ['v3electionpb.CampaignRequest', { name: 1, lease: 2, value: 3 }],
  ['v3electionpb.LeaderKey', { name: 1, key: 2, rev: 3, lease: 4 }],
  ['v3electionpb.ProclaimRequest', { leader: 1, value: 2 }],
  ['v3lockpb.LockRequest', { name: 1, lease: 2 }],
  ['v3lockpb.LockResponse', { header: 1, key: 2 }],
];

describe('field numbers', () => {
  it.each(FIELD_NUMBERS)('%s', (message, expected) => {
    expect(fieldNumbers(message)).toEqual(expected);
  });

  it('64-bit fields keep their signedness (int64 revisions and lease ids, uint64 member ids)', () => {
    const kinds = (message: string): Record<string, string> => {
      const def = loadPackageDefinition()[message] as { type: { field: FieldDescriptor[] } };
      return Object.fromEntries(def.type.field.map((f) => [f.name, f.type]));
    };
    expect(kinds('etcdserverpb.ResponseHeader')).toMatchObject({
      cluster_id: 'TYPE_UINT64',
      member_id: 'TYPE_UINT64',
      revision: 'TYPE_INT64',
      raft_term: 'TYPE_UINT64',
    });
    expect(kinds('mvccpb.KeyValue')).toMatchObject({ create_revision: 'TYPE_INT64', lease: 'TYPE_INT64', create_hlc: 'TYPE_UINT64' });
    expect(kinds('etcdserverpb.Member')).toMatchObject({ ID: 'TYPE_UINT64' });
    expect(kinds('etcdserverpb.LeaseGrantRequest')).toMatchObject({ ID: 'TYPE_INT64', TTL: 'TYPE_INT64' });
    expect(kinds('etcdserverpb.HashKVResponse')).toMatchObject({ hash: 'TYPE_UINT32' });
  });

  it('oneofs group the right members', () => {
    const root = loadProtoRoot();
    const oneof = (type: string, name: string): string[] => root.lookupType(type).oneofs[name]?.oneof ?? [];
    expect(oneof('etcdserverpb.Compare', 'target_union')).toEqual(['version', 'create_revision', 'mod_revision', 'value', 'lease']);
    expect(oneof('etcdserverpb.RequestOp', 'request')).toEqual(['request_range', 'request_put', 'request_delete_range', 'request_txn']);
    expect(oneof('etcdserverpb.ResponseOp', 'response')).toEqual([
      'response_range',
      'response_put',
      'response_delete_range',
      'response_txn',
    ]);
    expect(oneof('etcdserverpb.WatchRequest', 'request_union')).toEqual(['create_request', 'cancel_request', 'progress_request']);
  });
});

const ENUMS: [string, Record<string, number>][] = [
  ['mvccpb.Event.EventType', { PUT: 0, DELETE: 1 }],
  ['etcdserverpb.RangeRequest.SortOrder', { NONE: 0, ASCEND: 1, DESCEND: 2 }],
  ['etcdserverpb.RangeRequest.SortTarget', { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 }],
  ['etcdserverpb.Compare.CompareResult', { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 }],
  ['etcdserverpb.Compare.CompareTarget', { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 }],
  ['etcdserverpb.WatchCreateRequest.FilterType', { NOPUT: 0, NODELETE: 1 }],
  ['etcdserverpb.AlarmType', { NONE: 0, NOSPACE: 1, CORRUPT: 2 }],
  ['etcdserverpb.AlarmRequest.AlarmAction', { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 }],
  ['etcdserverpb.DowngradeRequest.DowngradeAction', { VALIDATE: 0, ENABLE: 1, CANCEL: 2 }],
  ['authpb.Permission.Type', { READ: 0, WRITE: 1, READWRITE: 2 }],
];

describe('enums', () => {
  it.each(ENUMS)('%s', (name, expected) => {
    expect(enumValues(name)).toEqual(expected);
  });
});

describe('encoding', () => {
  it('round-trips a PutRequest through protobufjs, 64-bit lease id intact', () => {
    const type = loadProtoRoot().lookupType('etcdserverpb.PutRequest');
    const lease = '9223372036854775807'; // int64 max: far beyond what a double holds exactly
    const bytes = type.encode(type.fromObject({ key: Buffer.from('foo'), value: Buffer.from('bar'), lease, prev_kv: true })).finish();
    // Hand-checked prefix: field 1 (key), wire type 2 -> tag 0x0a, length 3, "foo".
    expect([...bytes.subarray(0, 5)]).toEqual([0x0a, 3, 0x66, 0x6f, 0x6f]);
    const decoded = type.toObject(type.decode(bytes), CONVERSION_OPTIONS) as PutRequest;
    expect(Buffer.from(decoded.key).toString()).toBe('foo');
    expect(Buffer.from(decoded.value).toString()).toBe('bar');
    expect(decoded.lease).toBe(lease);
    expect(decoded.prev_kv).toBe(true);
    expect(decoded.ignore_value).toBe(false);
  });

  it('grpc-js serializers use the documented shapes: strings for 64-bit, names for enums, null for unset messages', () => {
    const def = loadPackageDefinition()['etcdserverpb.RangeRequest'] as unknown as {
      serialize(v: object): Buffer;
      deserialize(b: Buffer): Record<string, unknown>;
    };
    const out = def.deserialize(def.serialize({ key: Buffer.from('a'), revision: 12n, sort_order: 'DESCEND' }));
    expect(out).toMatchObject({ revision: '12', sort_order: 'DESCEND', limit: '0', serializable: false });
    const resp = loadPackageDefinition()['etcdserverpb.PutResponse'] as unknown as typeof def;
    expect(resp.deserialize(resp.serialize({}))).toEqual({ header: null, prev_kv: null });
    const cmp = loadPackageDefinition()['etcdserverpb.Compare'] as unknown as typeof def;
    const c = cmp.deserialize(cmp.serialize({ key: Buffer.from('a'), target: 'MOD', mod_revision: 7 }));
    expect(c).toMatchObject({ target: 'MOD', target_union: 'mod_revision', mod_revision: '7' });
    expect('version' in c).toBe(false);
  });

  it('Fulcrum extension fields are skipped by a decoder that only knows etcd fields', () => {
    const root = loadProtoRoot();
    const ours = root.lookupType('mvccpb.KeyValue');
    // A KeyValue as etcd's own descriptor defines it: fields 1-6 only.
    const etcdOnly = new protobuf.Type('KeyValue')
      .add(new protobuf.Field('key', 1, 'bytes'))
      .add(new protobuf.Field('create_revision', 2, 'int64'))
      .add(new protobuf.Field('mod_revision', 3, 'int64'))
      .add(new protobuf.Field('version', 4, 'int64'))
      .add(new protobuf.Field('value', 5, 'bytes'))
      .add(new protobuf.Field('lease', 6, 'int64'));
    new protobuf.Root().define('mvccpb').add(etcdOnly);
    const bytes = ours
      .encode(ours.fromObject({ key: Buffer.from('k'), mod_revision: 5, value: Buffer.from('v'), create_hlc: '123456789', mod_hlc: '987654321' }))
      .finish();
    const seen = etcdOnly.toObject(etcdOnly.decode(bytes), CONVERSION_OPTIONS);
    expect(seen).toEqual({
      key: Buffer.from('k'),
      create_revision: '0',
      mod_revision: '5',
      version: '0',
      value: Buffer.from('v'),
      lease: '0',
    });
  });
});

describe("etcd's own view of the contract (loadEtcdClientApi)", () => {
  type Codec = { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };
  const full = loadEtcdApi();
  const plain = loadEtcdClientApi();
  const method = (api: typeof full, service: 'KV' | 'Watch', name: string): Codec => (api.etcdserverpb[service].service as unknown as Record<string, Codec>)[name]!;
  const root = loadProtoRoot();
  const header = { cluster_id: '1311768467294899695', member_id: '2464689971901746671', revision: 12, raft_term: 3, hlc: '99' };
  const kv = { key: Buffer.from('k'), value: Buffer.from('v'), create_revision: 5, mod_revision: 12, version: 2, create_hlc: '7587888000000000123', mod_hlc: '7587888000000000456' };
  const encode = (type: string, v: Record<string, unknown>): Buffer => {
    const t = root.lookupType(type);
    return Buffer.from(t.encode(t.fromObject(v)).finish());
  };
  /** What the full contract decodes, without the three extension fields. */
  const withoutExtensions = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'hlc' || k === 'create_hlc' || k === 'mod_hlc' ? undefined : x)));

  it('decodes Fulcrum\'s answers as an etcd client does: every field but the HLC stamps', () => {
    const range = encode('etcdserverpb.RangeResponse', { header, kvs: [kv], count: 1 });
    const watch = encode('etcdserverpb.WatchResponse', { header, watch_id: 7, events: [{ type: 'PUT', kv, prev_kv: kv }] });
    for (const [service, name, bytes] of [['KV', 'Range', range], ['Watch', 'Watch', watch]] as const) {
      const theirs = method(plain, service, name).responseDeserialize(bytes);
      expect(JSON.stringify(theirs)).not.toMatch(/hlc/);
      expect(JSON.parse(JSON.stringify(theirs))).toEqual(withoutExtensions(method(full, service, name).responseDeserialize(bytes)));
    }
  });

  it('encodes requests to the same bytes', () => {
    const put = { key: Buffer.from('k'), value: Buffer.from('v'), lease: '7', prev_kv: true };
    expect(method(plain, 'KV', 'Put').requestSerialize(put).toString('hex')).toBe(method(full, 'KV', 'Put').requestSerialize(put).toString('hex'));
    const create = { create_request: { key: Buffer.from('a'), range_end: Buffer.from('b'), prev_kv: true } };
    expect(method(plain, 'Watch', 'Watch').requestSerialize(create).toString('hex')).toBe(method(full, 'Watch', 'Watch').requestSerialize(create).toString('hex'));
  });
});
