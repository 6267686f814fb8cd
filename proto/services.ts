// Typed views of the gRPC services: one method map per service (method name -> call kind, request, response),
// from which both the client type and the server-handler type are derived, so that the two can never disagree.
//
// Requests and responses in the maps are DECODED shapes (proto/types.ts). A handler receives the decoded request
// and may answer with any Encodable response; a client sends an Encodable request and receives the decoded
// response.
import type * as grpc from '@grpc/grpc-js';
import type * as t from './types.js';

// Phantom markers: never built at run time, only carried in types.
export interface Unary<Req, Res> {
  readonly kind: 'unary';
  readonly req: Req;
  readonly res: Res;
}
export interface ServerStream<Req, Res> {
  readonly kind: 'server-stream';
  readonly req: Req;
  readonly res: Res;
}
export interface ClientStream<Req, Res> {
  readonly kind: 'client-stream';
  readonly req: Req;
  readonly res: Res;
}
export interface BidiStream<Req, Res> {
  readonly kind: 'bidi';
  readonly req: Req;
  readonly res: Res;
}
export type AnyMethod = Unary<unknown, unknown> | ServerStream<unknown, unknown> | ClientStream<unknown, unknown> | BidiStream<unknown, unknown>;
export type MethodMap = { readonly [name: string]: AnyMethod };

type E<T> = t.Encodable<T>;

// ---------------------------------------------------------------------------------------------------------
// Method maps (names and streaming sides must match the .proto files; proto/proto.test.ts checks them)
// ---------------------------------------------------------------------------------------------------------

export type KVMethods = {
  Range: Unary<t.RangeRequest, t.RangeResponse>;
  Put: Unary<t.PutRequest, t.PutResponse>;
  DeleteRange: Unary<t.DeleteRangeRequest, t.DeleteRangeResponse>;
  Txn: Unary<t.TxnRequest, t.TxnResponse>;
  Compact: Unary<t.CompactionRequest, t.CompactionResponse>;
};

export type WatchMethods = {
  Watch: BidiStream<t.WatchRequest, t.WatchResponse>;
};

export type LeaseMethods = {
  LeaseGrant: Unary<t.LeaseGrantRequest, t.LeaseGrantResponse>;
  LeaseRevoke: Unary<t.LeaseRevokeRequest, t.LeaseRevokeResponse>;
  LeaseKeepAlive: BidiStream<t.LeaseKeepAliveRequest, t.LeaseKeepAliveResponse>;
  LeaseTimeToLive: Unary<t.LeaseTimeToLiveRequest, t.LeaseTimeToLiveResponse>;
  LeaseLeases: Unary<t.LeaseLeasesRequest, t.LeaseLeasesResponse>;
};

export type ClusterMethods = {
  MemberAdd: Unary<t.MemberAddRequest, t.MemberAddResponse>;
  MemberRemove: Unary<t.MemberRemoveRequest, t.MemberRemoveResponse>;
  MemberUpdate: Unary<t.MemberUpdateRequest, t.MemberUpdateResponse>;
  MemberList: Unary<t.MemberListRequest, t.MemberListResponse>;
  MemberPromote: Unary<t.MemberPromoteRequest, t.MemberPromoteResponse>;
};

export type MaintenanceMethods = {
  Alarm: Unary<t.AlarmRequest, t.AlarmResponse>;
  Status: Unary<t.StatusRequest, t.StatusResponse>;
  Defragment: Unary<t.EmptyRequest, t.HeaderOnlyResponse>;
  Hash: Unary<t.EmptyRequest, t.HashResponse>;
  HashKV: Unary<t.HashKVRequest, t.HashKVResponse>;
  Snapshot: ServerStream<t.EmptyRequest, t.SnapshotResponse>;
  MoveLeader: Unary<t.MoveLeaderRequest, t.HeaderOnlyResponse>;
  Downgrade: Unary<t.DowngradeRequest, t.DowngradeResponse>;
};

export type AuthMethods = {
  AuthEnable: Unary<t.EmptyRequest, t.HeaderOnlyResponse>;
  AuthDisable: Unary<t.EmptyRequest, t.HeaderOnlyResponse>;
  AuthStatus: Unary<t.EmptyRequest, t.AuthStatusResponse>;
  Authenticate: Unary<t.AuthenticateRequest, t.AuthenticateResponse>;
  UserAdd: Unary<t.AuthUserAddRequest, t.HeaderOnlyResponse>;
  UserGet: Unary<t.AuthUserNameRequest, t.AuthRolesResponse>;
  UserList: Unary<t.EmptyRequest, t.AuthUserListResponse>;
  UserDelete: Unary<t.AuthUserNameRequest, t.HeaderOnlyResponse>;
  UserChangePassword: Unary<t.AuthUserChangePasswordRequest, t.HeaderOnlyResponse>;
  UserGrantRole: Unary<t.AuthUserGrantRoleRequest, t.HeaderOnlyResponse>;
  UserRevokeRole: Unary<t.AuthUserRevokeRoleRequest, t.HeaderOnlyResponse>;
  RoleAdd: Unary<t.AuthRoleAddRequest, t.HeaderOnlyResponse>;
  RoleGet: Unary<t.AuthRoleNameRequest, t.AuthRoleGetResponse>;
  RoleList: Unary<t.EmptyRequest, t.AuthRolesResponse>;
  RoleDelete: Unary<t.AuthRoleNameRequest, t.HeaderOnlyResponse>;
  RoleGrantPermission: Unary<t.AuthRoleGrantPermissionRequest, t.HeaderOnlyResponse>;
  RoleRevokePermission: Unary<t.AuthRoleRevokePermissionRequest, t.HeaderOnlyResponse>;
};

export type ElectionMethods = {
  Campaign: Unary<t.CampaignRequest, t.CampaignResponse>;
  Proclaim: Unary<t.ProclaimRequest, t.HeaderOnlyResponse>;
  Leader: Unary<t.LeaderRequest, t.LeaderResponse>;
  Observe: ServerStream<t.LeaderRequest, t.LeaderResponse>;
  Resign: Unary<t.ResignRequest, t.HeaderOnlyResponse>;
};

export type LockMethods = {
  Lock: Unary<t.LockRequest, t.LockResponse>;
  Unlock: Unary<t.UnlockRequest, t.HeaderOnlyResponse>;
};

export type FulcrumMethods = {
  RevisionAt: Unary<t.RevisionAtRequest, t.RevisionAtResponse>;
  ServerInfo: Unary<t.EmptyRequest, t.ServerInfoResponse>;
};

export type RaftTransportMethods = {
  Handshake: Unary<t.HandshakeRequest, t.HandshakeResponse>;
  Send: BidiStream<t.MessageBatch, t.SendAck>;
  SendSnapshot: ClientStream<t.SnapshotChunk, t.SnapshotAck>;
};

// ---------------------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------------------

/** The grpc-js handler for one method: decoded request in, Encodable response out. */
export type Handler<M> =
  M extends Unary<infer Q, infer R>
    ? grpc.handleUnaryCall<Q, E<R>>
    : M extends ServerStream<infer Q, infer R>
      ? grpc.handleServerStreamingCall<Q, E<R>>
      : M extends ClientStream<infer Q, infer R>
        ? grpc.handleClientStreamingCall<Q, E<R>>
        : M extends BidiStream<infer Q, infer R>
          ? grpc.handleBidiStreamingCall<Q, E<R>>
          : never;

/**
 * A full implementation of a service, for `server.addService(api.etcdserverpb.KV.service, impl)`.
 * A type alias (not an interface) so that it is assignable to grpc-js's UntypedServiceImplementation.
 */
export type Handlers<Ms extends MethodMap> = { [K in keyof Ms]: Handler<Ms[K]> };

// ---------------------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------------------

type CallOptions = Partial<grpc.CallOptions>;

export interface UnaryCall<Q, R> {
  (request: Q, callback: grpc.requestCallback<R>): grpc.ClientUnaryCall;
  (request: Q, metadata: grpc.Metadata, callback: grpc.requestCallback<R>): grpc.ClientUnaryCall;
  (request: Q, options: CallOptions, callback: grpc.requestCallback<R>): grpc.ClientUnaryCall;
  (request: Q, metadata: grpc.Metadata, options: CallOptions, callback: grpc.requestCallback<R>): grpc.ClientUnaryCall;
}

export interface ServerStreamCall<Q, R> {
  (request: Q, options?: CallOptions): grpc.ClientReadableStream<R>;
  (request: Q, metadata?: grpc.Metadata, options?: CallOptions): grpc.ClientReadableStream<R>;
}

export interface ClientStreamCall<Q, R> {
  (callback: grpc.requestCallback<R>): grpc.ClientWritableStream<Q>;
  (metadata: grpc.Metadata, callback: grpc.requestCallback<R>): grpc.ClientWritableStream<Q>;
  (options: CallOptions, callback: grpc.requestCallback<R>): grpc.ClientWritableStream<Q>;
  (metadata: grpc.Metadata, options: CallOptions, callback: grpc.requestCallback<R>): grpc.ClientWritableStream<Q>;
}

export interface BidiStreamCall<Q, R> {
  (options?: CallOptions): grpc.ClientDuplexStream<Q, R>;
  (metadata?: grpc.Metadata, options?: CallOptions): grpc.ClientDuplexStream<Q, R>;
}

/** The client-side signature of one method: Encodable request out, decoded response in. */
export type ClientMethod<M> =
  M extends Unary<infer Q, infer R>
    ? UnaryCall<E<Q>, R>
    : M extends ServerStream<infer Q, infer R>
      ? ServerStreamCall<E<Q>, R>
      : M extends ClientStream<infer Q, infer R>
        ? ClientStreamCall<E<Q>, R>
        : M extends BidiStream<infer Q, infer R>
          ? BidiStreamCall<E<Q>, R>
          : never;

export type TypedClient<Ms extends MethodMap> = grpc.Client & { [K in keyof Ms]: ClientMethod<Ms[K]> };

/** What grpc-js's loadPackageDefinition builds for a service: a client class that also carries the definition. */
export interface TypedServiceClientConstructor<Ms extends MethodMap> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): TypedClient<Ms>;
  readonly service: grpc.ServiceDefinition;
  readonly serviceName: string;
}
