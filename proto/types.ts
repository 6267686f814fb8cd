// Hand-written TypeScript shapes of the messages that Fulcrum's server and client handle most, exactly as
// @grpc/proto-loader hands them over with the options in proto/index.ts (LOADER_OPTIONS):
//
//   keepCase: true   field names as on the wire and in etcd's docs: `range_end`, `create_revision`, `TTL`, `ID`
//   longs: String    int64/uint64 arrive as decimal strings ('9007199254740993'): lossless, and the same
//                    representation the `etcd3` npm client uses. Turn them into numbers or bigints at the edge.
//   enums: String    enum values arrive as their names ('DESCEND'); a value this file does not know (a newer
//                    client) arrives as its number, which is why enum fields are typed `Name | number`.
//   bytes (default)  bytes arrive as Node Buffers.
//   defaults: true   every scalar and repeated field is present (0 / '0' / '' / empty Buffer / []); an unset
//                    sub-message is `null`.
//   oneofs: true     a oneof also sets a virtual field named after the oneof to the name of the member that is
//                    set; members that are not set are absent. Modelled below as discriminated unions.
//
// The interfaces describe DECODED messages (what a handler receives as a request, what a client receives as a
// response). What you may PASS to grpc-js (a handler's response, a client's request) is looser; `Encodable<T>`
// derives it: every field optional, int64 as string | number | bigint, bytes as any Uint8Array.
// Caution: protobufjs reads a JS string given for a bytes field as BASE64, so `key: 'foo'` would put the bytes
// of base64-decoding "foo" on the wire. Encodable types therefore only allow Uint8Array for bytes.

// ---------------------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------------------

/**
 * A decoded 64-bit integer (int64 or uint64): its decimal string, e.g. '42' or '-1'. The template type keeps
 * ordinary strings out and lets `Encodable` tell 64-bit fields apart from text fields.
 */
export type Int64 = `${bigint}`;
/** What grpc-js accepts for a 64-bit field on the way out. Numbers above 2^53 lose precision: use bigint or string. */
export type Int64Like = string | number | bigint;
/** A decoded bytes field. */
export type Bytes = Buffer;
/** An enum as decoded: its name, or its number when this build does not know the value. */
export type EnumValue<Name extends string> = Name | number;

/**
 * The shape grpc-js accepts for a message of type T: all fields optional (an absent field encodes as its
 * default), 64-bit integers as string | number | bigint, bytes as Uint8Array, nested messages likewise.
 */
export type Encodable<T> = T extends Int64
  ? Int64Like
  : T extends Buffer
    ? Uint8Array
    : T extends readonly (infer E)[]
      ? readonly Encodable<E>[]
      : T extends object
        ? { [K in keyof T]?: Encodable<T[K]> | null }
        : T;

// ---------------------------------------------------------------------------------------------------------
// mvccpb
// ---------------------------------------------------------------------------------------------------------

export interface KeyValue {
  key: Bytes;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Bytes;
  lease: Int64;
  /** Fulcrum extension (field 1000): HLC stamp of the creating write; '0' from a server that does not set it. */
  create_hlc: Int64;
  /** Fulcrum extension (field 1001): HLC stamp of the last write. */
  mod_hlc: Int64;
}

export type EventType = 'PUT' | 'DELETE';

export interface Event {
  type: EnumValue<EventType>;
  kv: KeyValue | null;
  prev_kv: KeyValue | null;
}

// ---------------------------------------------------------------------------------------------------------
// etcdserverpb: common and KV
// ---------------------------------------------------------------------------------------------------------

export interface ResponseHeader {
  cluster_id: Int64;
  member_id: Int64;
  revision: Int64;
  raft_term: Int64;
  /** Fulcrum extension (field 1000): HLC stamp that goes with `revision`. */
  hlc: Int64;
}

export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND';
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';

export interface RangeRequest {
  key: Bytes;
  range_end: Bytes;
  limit: Int64;
  revision: Int64;
  sort_order: EnumValue<SortOrder>;
  sort_target: EnumValue<SortTarget>;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface RangeResponse {
  header: ResponseHeader | null;
  kvs: KeyValue[];
  more: boolean;
  count: Int64;
}

export interface PutRequest {
  key: Bytes;
  value: Bytes;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PutResponse {
  header: ResponseHeader | null;
  prev_kv: KeyValue | null;
}

export interface DeleteRangeRequest {
  key: Bytes;
  range_end: Bytes;
  prev_kv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader | null;
  deleted: Int64;
  prev_kvs: KeyValue[];
}

export type RequestOp =
  | { request: 'request_range'; request_range: RangeRequest }
  | { request: 'request_put'; request_put: PutRequest }
  | { request: 'request_delete_range'; request_delete_range: DeleteRangeRequest }
  | { request: 'request_txn'; request_txn: TxnRequest }
  | { request?: undefined };

export type ResponseOp =
  | { response: 'response_range'; response_range: RangeResponse }
  | { response: 'response_put'; response_put: PutResponse }
  | { response: 'response_delete_range'; response_delete_range: DeleteRangeResponse }
  | { response: 'response_txn'; response_txn: TxnResponse }
  | { response?: undefined };

export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';

interface CompareCommon {
  result: EnumValue<CompareResult>;
  target: EnumValue<CompareTarget>;
  key: Bytes;
  range_end: Bytes;
}

/** The member of `target_union` that is set should agree with `target` (VERSION -> version, ...); check it. */
export type Compare = CompareCommon &
  (
    | { target_union: 'version'; version: Int64 }
    | { target_union: 'create_revision'; create_revision: Int64 }
    | { target_union: 'mod_revision'; mod_revision: Int64 }
    | { target_union: 'value'; value: Bytes }
    | { target_union: 'lease'; lease: Int64 }
    | { target_union?: undefined }
  );

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader | null;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader | null;
}

// ---------------------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------------------

export type WatchFilterType = 'NOPUT' | 'NODELETE';

export interface WatchCreateRequest {
  key: Bytes;
  range_end: Bytes;
  start_revision: Int64;
  progress_notify: boolean;
  filters: EnumValue<WatchFilterType>[];
  prev_kv: boolean;
  watch_id: Int64;
  fragment: boolean;
}

export interface WatchCancelRequest {
  watch_id: Int64;
}

// Empty message: the type names the intent.
export type WatchProgressRequest = Record<string, never>;

export type WatchRequest =
  | { request_union: 'create_request'; create_request: WatchCreateRequest }
  | { request_union: 'cancel_request'; cancel_request: WatchCancelRequest }
  | { request_union: 'progress_request'; progress_request: WatchProgressRequest }
  | { request_union?: undefined };

export interface WatchResponse {
  header: ResponseHeader | null;
  watch_id: Int64;
  created: boolean;
  canceled: boolean;
  compact_revision: Int64;
  cancel_reason: string;
  fragment: boolean;
  events: Event[];
}

// ---------------------------------------------------------------------------------------------------------
// Lease
// ---------------------------------------------------------------------------------------------------------

export interface LeaseGrantRequest {
  TTL: Int64;
  ID: Int64;
}

export interface LeaseGrantResponse {
  header: ResponseHeader | null;
  ID: Int64;
  TTL: Int64;
  error: string;
}

export interface LeaseRevokeRequest {
  ID: Int64;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader | null;
}

export interface LeaseCheckpoint {
  ID: Int64;
  remaining_TTL: Int64;
}

export interface LeaseKeepAliveRequest {
  ID: Int64;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader | null;
  ID: Int64;
  TTL: Int64;
}

export interface LeaseTimeToLiveRequest {
  ID: Int64;
  keys: boolean;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader | null;
  ID: Int64;
  TTL: Int64;
  grantedTTL: Int64;
  keys: Bytes[];
}

export type LeaseLeasesRequest = Record<string, never>;

export interface LeaseStatus {
  ID: Int64;
}

export interface LeaseLeasesResponse {
  header: ResponseHeader | null;
  leases: LeaseStatus[];
}

// ---------------------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------------------

export interface Member {
  ID: Int64;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberAddRequest {
  peerURLs: string[];
  isLearner: boolean;
}

export interface MemberAddResponse {
  header: ResponseHeader | null;
  member: Member | null;
  members: Member[];
}

export interface MemberRemoveRequest {
  ID: Int64;
}

export interface MemberUpdateRequest {
  ID: Int64;
  peerURLs: string[];
}

export interface MemberListRequest {
  linearizable: boolean;
}

export interface MemberPromoteRequest {
  ID: Int64;
}

/** MemberRemove, MemberUpdate, MemberList and MemberPromote all answer with this shape. */
export interface MembersResponse {
  header: ResponseHeader | null;
  members: Member[];
}
export type MemberRemoveResponse = MembersResponse;
export type MemberUpdateResponse = MembersResponse;
export type MemberListResponse = MembersResponse;
export type MemberPromoteResponse = MembersResponse;

// ---------------------------------------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------------------------------------

export type AlarmType = 'NONE' | 'NOSPACE' | 'CORRUPT';
export type AlarmAction = 'GET' | 'ACTIVATE' | 'DEACTIVATE';

export interface AlarmRequest {
  action: EnumValue<AlarmAction>;
  memberID: Int64;
  alarm: EnumValue<AlarmType>;
}

export interface AlarmMember {
  memberID: Int64;
  alarm: EnumValue<AlarmType>;
}

export interface AlarmResponse {
  header: ResponseHeader | null;
  alarms: AlarmMember[];
}

export type StatusRequest = Record<string, never>;

export interface DowngradeInfo {
  enabled: boolean;
  targetVersion: string;
}

export interface StatusResponse {
  header: ResponseHeader | null;
  version: string;
  dbSize: Int64;
  leader: Int64;
  raftIndex: Int64;
  raftTerm: Int64;
  raftAppliedIndex: Int64;
  errors: string[];
  dbSizeInUse: Int64;
  isLearner: boolean;
  /** etcd 3.6 addition; 3.4/3.5 clients skip it. */
  storageVersion: string;
  /** etcd 3.6 addition. */
  dbSizeQuota: Int64;
  /** etcd 3.6 addition. */
  downgradeInfo: DowngradeInfo | null;
}

/** Defragment, Hash and Snapshot take empty requests. */
export type EmptyRequest = Record<string, never>;

export interface HeaderOnlyResponse {
  header: ResponseHeader | null;
}

export interface HashKVRequest {
  revision: Int64;
}

export interface HashKVResponse {
  header: ResponseHeader | null;
  hash: number;
  compact_revision: Int64;
  /** etcd 3.6 addition. */
  hash_revision: Int64;
}

export interface HashResponse {
  header: ResponseHeader | null;
  hash: number;
}

export interface SnapshotResponse {
  header: ResponseHeader | null;
  remaining_bytes: Int64;
  blob: Bytes;
  /** etcd 3.6 addition. */
  version: string;
}

export interface MoveLeaderRequest {
  targetID: Int64;
}

export type DowngradeAction = 'VALIDATE' | 'ENABLE' | 'CANCEL';

export interface DowngradeRequest {
  action: EnumValue<DowngradeAction>;
  version: string;
}

export interface DowngradeResponse {
  header: ResponseHeader | null;
  version: string;
}

// ---------------------------------------------------------------------------------------------------------
// Auth (etcdserverpb + authpb)
// ---------------------------------------------------------------------------------------------------------

export type PermissionType = 'READ' | 'WRITE' | 'READWRITE';

export interface Permission {
  permType: EnumValue<PermissionType>;
  key: Bytes;
  range_end: Bytes;
}

export interface UserAddOptions {
  no_password: boolean;
}

export interface AuthenticateRequest {
  name: string;
  password: string;
}

export interface AuthenticateResponse {
  header: ResponseHeader | null;
  token: string;
}

export interface AuthStatusResponse {
  header: ResponseHeader | null;
  enabled: boolean;
  authRevision: Int64;
}

export interface AuthUserAddRequest {
  name: string;
  password: string;
  options: UserAddOptions | null;
  hashedPassword: string;
}

/** UserGet, UserDelete: by name. */
export interface AuthUserNameRequest {
  name: string;
}

export interface AuthUserChangePasswordRequest {
  name: string;
  password: string;
  hashedPassword: string;
}

export interface AuthUserGrantRoleRequest {
  user: string;
  role: string;
}

export interface AuthUserRevokeRoleRequest {
  name: string;
  role: string;
}

export interface AuthRoleAddRequest {
  name: string;
}

/** RoleGet, RoleDelete: by `role`. */
export interface AuthRoleNameRequest {
  role: string;
}

export interface AuthRoleGrantPermissionRequest {
  name: string;
  perm: Permission | null;
}

export interface AuthRoleRevokePermissionRequest {
  role: string;
  key: Bytes;
  range_end: Bytes;
}

/** UserGet and RoleList answer a list of role names. */
export interface AuthRolesResponse {
  header: ResponseHeader | null;
  roles: string[];
}

export interface AuthUserListResponse {
  header: ResponseHeader | null;
  users: string[];
}

export interface AuthRoleGetResponse {
  header: ResponseHeader | null;
  perm: Permission[];
}

// ---------------------------------------------------------------------------------------------------------
// v3electionpb, v3lockpb
// ---------------------------------------------------------------------------------------------------------

export interface LeaderKey {
  name: Bytes;
  key: Bytes;
  rev: Int64;
  lease: Int64;
}

export interface CampaignRequest {
  name: Bytes;
  lease: Int64;
  value: Bytes;
}

export interface CampaignResponse {
  header: ResponseHeader | null;
  leader: LeaderKey | null;
}

export interface ProclaimRequest {
  leader: LeaderKey | null;
  value: Bytes;
}

export interface LeaderRequest {
  name: Bytes;
}

export interface LeaderResponse {
  header: ResponseHeader | null;
  kv: KeyValue | null;
}

export interface ResignRequest {
  leader: LeaderKey | null;
}

export interface LockRequest {
  name: Bytes;
  lease: Int64;
}

export interface LockResponse {
  header: ResponseHeader | null;
  key: Bytes;
}

export interface UnlockRequest {
  key: Bytes;
}

// ---------------------------------------------------------------------------------------------------------
// fulcrum.v1
// ---------------------------------------------------------------------------------------------------------

export interface RevisionAtRequest {
  wall_time_ms: Int64;
  serializable: boolean;
}

export interface RevisionAtResponse {
  header: ResponseHeader | null;
  revision: Int64;
  hlc: Int64;
}

export interface ServerInfoResponse {
  header: ResponseHeader | null;
  name: string;
  version: string;
  etcd_api_version: string;
  leader: Int64;
  role: string;
  raft_term: Int64;
  raft_index: Int64;
  raft_applied_index: Int64;
  hlc: Int64;
  peer_urls: string[];
  client_urls: string[];
  features: string[];
  alarms: EnumValue<AlarmType>[];
}

// ---------------------------------------------------------------------------------------------------------
// fulcrum.raftpb (wire form of raft/types.ts; node/ converts: snake_case <-> camelCase, Int64 <-> number)
// ---------------------------------------------------------------------------------------------------------

export type RaftEntryType = 'ENTRY_NORMAL' | 'ENTRY_CONF_CHANGE';

export type RaftMessageType =
  | 'MSG_HUP'
  | 'MSG_BEAT'
  | 'MSG_PROP'
  | 'MSG_APP'
  | 'MSG_APP_RESP'
  | 'MSG_VOTE'
  | 'MSG_VOTE_RESP'
  | 'MSG_PRE_VOTE'
  | 'MSG_PRE_VOTE_RESP'
  | 'MSG_SNAP'
  | 'MSG_HEARTBEAT'
  | 'MSG_HEARTBEAT_RESP'
  | 'MSG_UNREACHABLE'
  | 'MSG_SNAP_STATUS'
  | 'MSG_READ_INDEX'
  | 'MSG_READ_INDEX_RESP'
  | 'MSG_TRANSFER_LEADER'
  | 'MSG_TIMEOUT_NOW'
  | 'MSG_CHECK_QUORUM';

/** Index i is the name of raft/types.ts MessageType value i: the two enums are one-to-one by number. */
export const RAFT_MESSAGE_TYPE_NAMES: readonly RaftMessageType[] = Object.freeze([
  'MSG_HUP',
  'MSG_BEAT',
  'MSG_PROP',
  'MSG_APP',
  'MSG_APP_RESP',
  'MSG_VOTE',
  'MSG_VOTE_RESP',
  'MSG_PRE_VOTE',
  'MSG_PRE_VOTE_RESP',
  'MSG_SNAP',
  'MSG_HEARTBEAT',
  'MSG_HEARTBEAT_RESP',
  'MSG_UNREACHABLE',
  'MSG_SNAP_STATUS',
  'MSG_READ_INDEX',
  'MSG_READ_INDEX_RESP',
  'MSG_TRANSFER_LEADER',
  'MSG_TIMEOUT_NOW',
  'MSG_CHECK_QUORUM',
]);

export interface RaftEntry {
  term: Int64;
  index: Int64;
  type: EnumValue<RaftEntryType>;
  data: Bytes;
}

export interface RaftHardState {
  term: Int64;
  vote: Int64;
  commit: Int64;
}

export interface RaftConfState {
  voters: Int64[];
  learners: Int64[];
}

export interface RaftSnapshotMetadata {
  index: Int64;
  term: Int64;
  conf_state: RaftConfState | null;
}

export interface RaftSnapshot {
  metadata: RaftSnapshotMetadata | null;
  data: Bytes;
}

export interface RaftMessage {
  type: EnumValue<RaftMessageType>;
  from: Int64;
  to: Int64;
  term: Int64;
  log_term: Int64;
  index: Int64;
  entries: RaftEntry[];
  commit: Int64;
  reject: boolean;
  reject_hint: Int64;
  snapshot: RaftSnapshot | null;
  context: Bytes;
  read_round: Int64;
  transfer: boolean;
}

export interface MemberInfo {
  cluster_id: Int64;
  member_id: Int64;
  name: string;
  peer_urls: string[];
  version: string;
  protocol_version: number;
  applied_index: Int64;
}

export interface HandshakeRequest {
  from: MemberInfo | null;
  to_member_id: Int64;
}

export interface HandshakeResponse {
  member: MemberInfo | null;
  assigned_member_id: Int64;
  assigns_member_ids: boolean;
}

export interface MessageBatch {
  hello: MemberInfo | null;
  seq: Int64;
  messages: RaftMessage[];
}

export interface SendAck {
  seq: Int64;
}

export interface SnapshotChunk {
  hello: MemberInfo | null;
  message: RaftMessage | null;
  offset: Int64;
  data: Bytes;
  total_bytes: Int64;
  crc32c: number;
  last: boolean;
}

export interface SnapshotAck {
  received_bytes: Int64;
  applied: boolean;
}
