// The wire contract, loaded: the .proto files of this folder turned into grpc-js service definitions and
// client classes, plus a protobufjs Root for encoding and decoding messages directly.
//
//   const api = loadEtcdApi();
//   server.addService(api.etcdserverpb.KV.service, kvHandlers);            // kvHandlers: Handlers<KVMethods>
//   const kv = new api.etcdserverpb.KV('127.0.0.1:2379', grpc.credentials.createInsecure());
//
// Loader options (LOADER_OPTIONS), chosen once here for the whole project, and why:
//   keepCase: true  Field names stay as in the .proto files and on the wire (`range_end`, `create_revision`,
//                   `TTL`, `peerURLs`). etcd's docs, etcdctl's JSON output and the `etcd3` npm client all use
//                   these names, so code and logs can be compared with them without translation.
//   longs: String   int64/uint64 (revisions, lease ids, member and cluster ids, HLC stamps) decode as decimal
//                   strings: lossless (member ids are random 64-bit values, far above 2^53, so Number would
//                   corrupt them) and plain JSON-safe data (unlike Long objects). On the way out, grpc-js accepts
//                   string, number or bigint for these fields. The `etcd3` npm client makes the same choice.
//   enums: String   Enum values decode as names ('DESCEND'), which read well in logs and switches. Unknown
//                   numeric values (from a newer client) decode as numbers: validate before trusting.
//   defaults: true  Every field is present after decoding (proto3 does not send defaults), so handlers need
//                   no `?? 0` everywhere; unset sub-messages are null.
//   oneofs: true    Adds the oneof's name as a virtual field naming the member that is set
//                   (`op.request === 'request_put'`), which TypeScript narrows as a discriminated union.
//   bytes           Left at the default: Node Buffers.
// proto/types.ts spells out the resulting shapes.
import { existsSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { fromJSON, loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { decodePutRequest, encodePutResponse, encodeTxnResponse } from './kv-wire.js';
import { decodeKeepAliveRequest, encodeKeepAliveResponse } from './lease-wire.js';
import type { Encodable, LeaseKeepAliveResponse, PutResponse, TxnResponse } from './types.js';
import type {
  AuthMethods,
  ClusterMethods,
  ElectionMethods,
  FulcrumMethods,
  KVMethods,
  LeaseMethods,
  LockMethods,
  MaintenanceMethods,
  MethodMap,
  RaftTransportMethods,
  TypedServiceClientConstructor,
  WatchMethods,
} from './services.js';

export type * from './types.js';
export { RAFT_MESSAGE_TYPE_NAMES } from './types.js';
export type * from './services.js';

/** Every .proto file of the contract, relative to PROTO_ROOT (each file's imports come along). */
export const PROTO_FILES: readonly string[] = Object.freeze([
  'etcd/api/mvccpb/kv.proto',
  'etcd/api/authpb/auth.proto',
  'etcd/api/etcdserverpb/rpc.proto',
  'etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto',
  'etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto',
  'fulcrum/v1/fulcrum.proto',
  'fulcrum/raftpb/raft.proto',
]);

/**
 * The include root: every .proto file is named relative to it, and imports resolve against it. The files sit
 * beside this module (proto/ in the sources, dist/proto/ after tsc); in the one-file server (dist/fulcrum.mjs,
 * deploy/docker/bundle.mjs) this module's URL is the bundle's, and they are in proto/ beside it.
 */
export const PROTO_ROOT: string = protoRoot(fileURLToPath(new URL('.', import.meta.url)));

function protoRoot(here: string): string {
  if (existsSync(join(here, PROTO_FILES[0]!))) return here;
  const besideBundle = join(here, 'proto') + sep;
  if (existsSync(join(besideBundle, PROTO_FILES[0]!))) return besideBundle;
  throw new Error(`proto: the contract's .proto files are neither in ${here} nor in ${besideBundle}`);
}

/** The options every part of Fulcrum loads the contract with; proto/types.ts depends on them. */
export const LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});

/** The same conversion options, for protobufjs's `Type.toObject` when encoding or decoding directly. */
export const CONVERSION_OPTIONS: Readonly<protobuf.IConversionOptions> = Object.freeze({
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/** The services as grpc-js client classes, grouped by proto package as in `pkg.etcdserverpb.KV`. */
export interface FulcrumGrpcApi {
  readonly etcdserverpb: {
    readonly KV: TypedServiceClientConstructor<KVMethods>;
    readonly Watch: TypedServiceClientConstructor<WatchMethods>;
    readonly Lease: TypedServiceClientConstructor<LeaseMethods>;
    readonly Cluster: TypedServiceClientConstructor<ClusterMethods>;
    readonly Maintenance: TypedServiceClientConstructor<MaintenanceMethods>;
    readonly Auth: TypedServiceClientConstructor<AuthMethods>;
  };
  readonly v3electionpb: { readonly Election: TypedServiceClientConstructor<ElectionMethods> };
  readonly v3lockpb: { readonly Lock: TypedServiceClientConstructor<LockMethods> };
  readonly fulcrum: {
    readonly v1: { readonly Fulcrum: TypedServiceClientConstructor<FulcrumMethods> };
    readonly raftpb: { readonly RaftTransport: TypedServiceClientConstructor<RaftTransportMethods> };
  };
}

let cachedDefinition: PackageDefinition | undefined;
let cachedApi: FulcrumGrpcApi | undefined;
let cachedRoot: protobuf.Root | undefined;

/**
 * The proto-loader package definition of the whole contract (message descriptors under keys like
 * 'etcdserverpb.RangeRequest', service definitions under 'etcdserverpb.KV'). Parsed once per process.
 */
export function loadPackageDefinition(): PackageDefinition {
  cachedDefinition ??= loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
  return cachedDefinition;
}

/**
 * Every service of the contract as a grpc-js client class whose static `service` is the definition to pass to
 * `server.addService`. Loaded once per process; throws if a service is missing (a broken .proto file).
 */
export function loadEtcdApi(): FulcrumGrpcApi {
  if (cachedApi !== undefined) return cachedApi;
  const api = apiOf(loadPackageDefinition());
  passEncodedResponsesThrough(api.etcdserverpb.Watch.service, 'Watch');
  // KV.Put's request and response, KV.Txn's all-put response (proto/kv-wire.ts) and Lease.LeaseKeepAlive's request
  // and response (proto/lease-wire.ts) by hand; each hands what it does not cover to protobufjs.
  byHand(api.etcdserverpb.KV.service, 'Put', decodePutRequest, (v) => encodePutResponse(v as Encodable<PutResponse>));
  byHand(api.etcdserverpb.KV.service, 'Txn', undefined, (v) => encodeTxnResponse(v as Encodable<TxnResponse>));
  byHand(api.etcdserverpb.Lease.service, 'LeaseKeepAlive', decodeKeepAliveRequest, (v) => encodeKeepAliveResponse(v as Encodable<LeaseKeepAliveResponse>));
  passEncodedResponsesThrough(api.etcdserverpb.KV.service, 'Range');
  cachedApi = api;
  return api;
}

/** Fulcrum's extension fields of etcd's messages (the HLC stamps): what an etcd client does not know. */
const EXTENSION_FIELDS: ReadonlyArray<readonly [type: string, field: string]> = [
  ['etcdserverpb.ResponseHeader', 'hlc'],
  ['mvccpb.KeyValue', 'create_hlc'],
  ['mvccpb.KeyValue', 'mod_hlc'],
];

let cachedClientApi: FulcrumGrpcApi | undefined;

/**
 * The same services as an etcd client knows them: without Fulcrum's extension fields, which such a client skips
 * as unknown. For a client that must be an etcd client and nothing more, like the benchmark's load generator: with
 * the extensions it turned two HLC stamps per key-value into decimal strings for Fulcrum's answers and none for
 * etcd's (about 1.5 µs more per watch event).
 */
export function loadEtcdClientApi(): FulcrumGrpcApi {
  if (cachedClientApi !== undefined) return cachedClientApi;
  // A root of its own: loadProtoRoot()'s is shared, and this one loses fields.
  const root = parseProtoFiles();
  for (const [type, field] of EXTENSION_FIELDS) {
    const t = root.lookupType(type);
    t.remove(t.fields[field]!);
  }
  cachedClientApi = apiOf(fromJSON(root.toJSON(), LOADER_OPTIONS));
  return cachedClientApi;
}

function apiOf(definition: PackageDefinition): FulcrumGrpcApi {
  const pkg = grpc.loadPackageDefinition(definition);
  return {
    etcdserverpb: {
      KV: serviceAt<KVMethods>(pkg, 'etcdserverpb.KV'),
      Watch: serviceAt<WatchMethods>(pkg, 'etcdserverpb.Watch'),
      Lease: serviceAt<LeaseMethods>(pkg, 'etcdserverpb.Lease'),
      Cluster: serviceAt<ClusterMethods>(pkg, 'etcdserverpb.Cluster'),
      Maintenance: serviceAt<MaintenanceMethods>(pkg, 'etcdserverpb.Maintenance'),
      Auth: serviceAt<AuthMethods>(pkg, 'etcdserverpb.Auth'),
    },
    v3electionpb: { Election: serviceAt<ElectionMethods>(pkg, 'v3electionpb.Election') },
    v3lockpb: { Lock: serviceAt<LockMethods>(pkg, 'v3lockpb.Lock') },
    fulcrum: {
      v1: { Fulcrum: serviceAt<FulcrumMethods>(pkg, 'fulcrum.v1.Fulcrum') },
      raftpb: { RaftTransport: serviceAt<RaftTransportMethods>(pkg, 'fulcrum.raftpb.RaftTransport') },
    },
  };
}

/**
 * A server may write a response it has encoded already (a Buffer) and it goes out as it is: the Watch service
 * frames each event's bytes once for all its watchers (node/api/watch-wire.ts), and KV.Range encodes its answer
 * straight from the store's (proto/kv-wire.ts). Objects are encoded as before.
 */
function passEncodedResponsesThrough(service: grpc.ServiceDefinition, method: string): void {
  const def = service[method] as grpc.MethodDefinition<unknown, unknown>;
  const serialize = def.responseSerialize;
  (def as { responseSerialize: (v: unknown) => Buffer }).responseSerialize = (v) => (Buffer.isBuffer(v) ? v : serialize(v));
}

/**
 * A method's request decoder and response encoder put in front of protobufjs's: each answers undefined for what it
 * does not cover, and protobufjs takes that one as before.
 */
function byHand(service: grpc.ServiceDefinition, method: string, decode: ((b: Buffer) => unknown) | undefined, encode: (v: unknown) => Buffer | undefined): void {
  const def = service[method] as grpc.MethodDefinition<unknown, unknown> & {
    requestDeserialize: (b: Buffer) => unknown;
    responseSerialize: (v: unknown) => Buffer;
  };
  const protobufjsDecode = def.requestDeserialize;
  const protobufjsEncode = def.responseSerialize;
  if (decode !== undefined) def.requestDeserialize = (b) => decode(b) ?? protobufjsDecode(b);
  def.responseSerialize = (v) => encode(v) ?? protobufjsEncode(v);
}

/**
 * The contract as a protobufjs Root, for encoding and decoding without grpc-js (the peer transport's hot path,
 * snapshot files, tests): `root.lookupType('etcdserverpb.PutRequest')`. Field names are kept as in the .proto
 * files, matching LOADER_OPTIONS. Use CONVERSION_OPTIONS with `toObject` to get the shapes of proto/types.ts.
 */
export function loadProtoRoot(): protobuf.Root {
  if (cachedRoot !== undefined) return cachedRoot;
  const root = parseProtoFiles();
  root.resolveAll();
  cachedRoot = root;
  return root;
}

/** The .proto files parsed into a new protobufjs Root, names as written (keepCase). */
function parseProtoFiles(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : PROTO_ROOT + target);
  root.loadSync([...PROTO_FILES], { keepCase: true });
  return root;
}

function serviceAt<Ms extends MethodMap>(pkg: grpc.GrpcObject, fullName: string): TypedServiceClientConstructor<Ms> {
  let node: unknown = pkg;
  for (const part of fullName.split('.')) {
    node = typeof node === 'object' || typeof node === 'function' ? (node as Record<string, unknown> | null)?.[part] : undefined;
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`proto: service ${fullName} is missing from the loaded definitions`);
  }
  return node as unknown as TypedServiceClientConstructor<Ms>;
}
