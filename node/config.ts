// The server's one config object: etcd's flag names and meanings, from the command line and the environment.
//
// Precedence, highest first:   --flag value   >   FULCRUM_FLAG_NAME   >   ETCD_FLAG_NAME   >   default
//
// ETCD_* names are accepted so an etcd deployment's environment carries over unchanged. Parsing is pure: the
// caller hands in argv (the user's arguments, without `node` and the script) and the environment, and gets a
// frozen ServerConfig or a ConfigError whose message names the flag. Nothing here reads process state, so
// tests can run every case in one process and several members can be configured side by side.
//
// Worked example (the defaults for `fulcrum --name n1`):
//   data dir                      ./n1.fulcrum
//   listen / advertise client     http://127.0.0.1:2379
//   listen / advertise peer       http://127.0.0.1:2380
//   initial cluster               n1=http://127.0.0.1:2380    → one founding voter, id memberIdFor([url], token)
import { isIP } from 'node:net';
import { Command, CommanderError, Option } from 'commander';
import type { MemberOptions } from './member.js';
import type { ApiLimits } from './api/context.js';
import { API_LIMITS_DEFAULTS } from './api/context.js';
import { GRPC_OVERHEAD_BYTES } from './api/limits.js';
import { clusterIdFor, memberIdFor } from './ids.js';
import type { TlsFiles } from './tls.js';
import packageJson from '../package.json' with { type: 'json' };

/** From package.json, so --version never drifts from the release. */
export const FULCRUM_VERSION: string = packageJson.version;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export type Http2Engine = 'node' | 'fulcrum';
export const HTTP2_ENGINES: readonly Http2Engine[] = ['node', 'fulcrum'];
export type InitialClusterState = 'new' | 'existing';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export const SERVER_CONFIG_DEFAULTS = {
  name: 'default',
  listenClientUrls: 'http://127.0.0.1:2379',
  listenPeerUrls: 'http://127.0.0.1:2380',
  initialClusterState: 'new' as InitialClusterState,
  initialClusterToken: 'fulcrum-cluster',
  heartbeatIntervalMs: 100,
  electionTimeoutMs: 1000,
  snapshotCount: 10_000,
  /** Entries kept behind a snapshot for slow followers (etcd's --experimental-snapshot-catchup-entries). */
  snapshotCatchupEntries: 5_000,
  /** etcd's default backend quota. */
  quotaBackendBytes: 2 * GiB,
  requestBytesMax: 1.5 * MiB,
  txnOpsMax: 128,
  /** How long a simple auth token lives without use (etcd's --auth-token-ttl, seconds). */
  authTokenTtlSeconds: 300,
  responseBytesMax: API_LIMITS_DEFAULTS.responseBytesMax,
  concurrentStreamsMax: API_LIMITS_DEFAULTS.concurrentStreamsMax,
  /** Client connections open at once per client listener (Fulcrum; etcd has no limit). */
  clientConnectionsMax: 10_000,
  /** Unary calls, watches and keep-alives are served straight from HTTP/2 (node/api/fast-path.ts) unless --grpc-fast-path=false. */
  grpcFastPath: true,
  /**
   * Fulcrum's own HTTP/2 engine: a third less of the leader's CPU per put than Node's HTTP/2 with grpc-js
   * (docs/performance.md). --http2-engine=node is the way back.
   */
  http2Engine: 'fulcrum' as Http2Engine,
  logLevel: 'info' as LogLevel,
} as const;

/** Named bounds, checked where etcd checks them (or warns, where etcd warns). */
export const SERVER_CONFIG_LIMITS = {
  /** etcd refuses election timeouts above this: leader failure would go unnoticed for too long. */
  electionTimeoutMsMax: 50_000,
  /** An election timeout shorter than this many heartbeats makes spurious elections likely (etcd's rule). */
  electionToHeartbeatRatioMin: 5,
  /** etcd warns above 8 GiB: a larger store makes snapshots and restarts slow. */
  quotaBackendBytesRecommendedMax: 8 * GiB,
  /** etcd warns above 10 MiB: large requests stall the Raft pipeline for everyone. */
  requestBytesRecommendedMax: 10 * MiB,
  /** Ceiling on one setting's text, so a runaway environment variable fails clearly rather than slowly. */
  settingChars: 64 * 1024,
  /** Members in --initial-cluster: more than this is almost surely a typo (etcd clusters have 3, 5 or 7). */
  initialClusterMembersMax: 64,
} as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A URL this member binds to: host is an IP literal or "localhost", never bracketed; port 0 = any free port. */
export interface ListenAddress {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** https://: served with TLS from the listener's certificate flags (absent: http). */
  readonly secure?: boolean;
}

export interface FoundingMember {
  readonly name: string;
  readonly peerUrls: readonly string[];
}

export interface ServerConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientUrls: readonly string[];
  readonly advertiseClientUrls: readonly string[];
  readonly listenPeerUrls: readonly string[];
  readonly initialAdvertisePeerUrls: readonly string[];
  /** --initial-cluster as given (or defaulted), normalized: `name=url,...`. */
  readonly initialCluster: string;
  readonly initialClusterState: InitialClusterState;
  readonly initialClusterToken: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly snapshotCatchupEntries: number;
  readonly quotaBackendBytes: number;
  readonly requestBytesMax: number;
  readonly txnOpsMax: number;
  readonly authTokenTtlSeconds: number;
  /** --max-response-bytes (Fulcrum): the largest response a read builds or the server sends. */
  readonly responseBytesMax: number;
  /** --max-concurrent-streams (etcd): HTTP/2 streams per client connection. */
  readonly concurrentStreamsMax: number;
  /** --max-client-connections (Fulcrum): connections open at once on each client listener; more are closed at once. */
  readonly clientConnectionsMax: number;
  /** --grpc-fast-path (Fulcrum): unary calls, watches and keep-alives skip grpc-js's per-call machinery (node/api/fast-path.ts). */
  readonly grpcFastPath: boolean;
  /**
   * --http2-engine (Fulcrum): which HTTP/2 serves the client API and carries the peer path. 'node': Node's
   * node:http2 with grpc-js, the fast path in front when --grpc-fast-path; peers sent to over node:http2.
   * 'fulcrum': Fulcrum's own engine (node/h2/), every call on the fast path, the peer listener on it too, and the
   * Send stream to each peer over its HTTP/2 client (node/h2/client.ts).
   */
  readonly http2Engine: Http2Engine;
  readonly listenMetricsUrls: readonly string[];
  readonly logLevel: LogLevel;
  /** --cert-file, --key-file, --trusted-ca-file, --client-cert-auth: for https client (and metrics) URLs. */
  readonly clientTls?: TlsFiles;
  /** --peer-cert-file, ...: for https peer URLs, both to serve and to dial other members. */
  readonly peerTls?: TlsFiles;

  // Derived.
  /** memberIdFor(initialAdvertisePeerUrls, initialClusterToken). */
  readonly memberId: number;
  /** The founding members from --initial-cluster, by id (in the order they were listed). */
  readonly initialMembers: ReadonlyMap<number, FoundingMember>;
  readonly initialMemberIds: readonly number[];
  /** clusterIdFor(initialMemberIds, initialClusterToken). With --initial-cluster-state existing it names the cluster as listed. */
  readonly clusterId: number;
  /** round(electionTimeoutMs / heartbeatIntervalMs): the Raft core counts time in heartbeats. */
  readonly electionTicks: number;
  readonly listen: {
    readonly client: readonly ListenAddress[];
    readonly peer: readonly ListenAddress[];
    readonly metrics: readonly ListenAddress[];
  };
  /** Things that are allowed but probably wrong (shadowed env vars, unknown FULCRUM_/ETCD_ names, big limits). */
  readonly warnings: readonly string[];
}

/** What the command line asked for: serve with a config, or print something (version, help) and exit 0. */
export type CommandLine = { readonly kind: 'serve'; readonly config: ServerConfig } | { readonly kind: 'print'; readonly text: string };

// ---------------------------------------------------------------------------------------------------------
// The settings table: one row per flag. Env names derive from the flag: --data-dir → FULCRUM_DATA_DIR, ETCD_DATA_DIR.

export interface SettingSpec {
  readonly flag: string;
  readonly valueName: string;
  readonly description: string;
  readonly defaultText: string;
  /** A switch, as in etcd: `--client-cert-auth` alone means true; `--client-cert-auth=false` and env values true/false. */
  readonly boolean?: true;
}

export const SETTINGS: readonly SettingSpec[] = [
  { flag: 'name', valueName: 'name', description: 'human-readable name for this member', defaultText: 'default' },
  { flag: 'data-dir', valueName: 'path', description: 'path to the data directory', defaultText: './<name>.fulcrum' },
  { flag: 'listen-client-urls', valueName: 'urls', description: 'URLs to listen on for client traffic', defaultText: SERVER_CONFIG_DEFAULTS.listenClientUrls },
  {
    flag: 'advertise-client-urls',
    valueName: 'urls',
    description: "this member's client URLs to advertise to the rest of the cluster",
    defaultText: '--listen-client-urls',
  },
  { flag: 'listen-peer-urls', valueName: 'urls', description: 'URLs to listen on for peer traffic', defaultText: SERVER_CONFIG_DEFAULTS.listenPeerUrls },
  {
    flag: 'initial-advertise-peer-urls',
    valueName: 'urls',
    description: "this member's peer URLs to advertise to the rest of the cluster",
    defaultText: '--listen-peer-urls',
  },
  { flag: 'initial-cluster', valueName: 'name=url,...', description: 'initial cluster configuration for bootstrapping', defaultText: '<name>=<initial-advertise-peer-urls>' },
  { flag: 'initial-cluster-state', valueName: 'new|existing', description: 'new: founding member of a new cluster; existing: joins a running one', defaultText: 'new' },
  { flag: 'initial-cluster-token', valueName: 'token', description: 'initial cluster token: part of every member and cluster id', defaultText: SERVER_CONFIG_DEFAULTS.initialClusterToken },
  { flag: 'heartbeat-interval', valueName: 'ms', description: 'time (in milliseconds) of a heartbeat interval', defaultText: '100' },
  { flag: 'election-timeout', valueName: 'ms', description: 'time (in milliseconds) for an election to timeout', defaultText: '1000' },
  { flag: 'snapshot-count', valueName: 'n', description: 'number of applied entries between two snapshots', defaultText: String(SERVER_CONFIG_DEFAULTS.snapshotCount) },
  {
    flag: 'experimental-snapshot-catchup-entries',
    valueName: 'n',
    description: 'entries kept in the log behind a snapshot so a slow follower can catch up without one',
    defaultText: String(SERVER_CONFIG_DEFAULTS.snapshotCatchupEntries),
  },
  { flag: 'quota-backend-bytes', valueName: 'bytes', description: 'raise the NOSPACE alarm when the store exceeds this size (0 = default)', defaultText: '2147483648 (2 GiB)' },
  { flag: 'max-request-bytes', valueName: 'bytes', description: 'maximum client request size in bytes the server will accept', defaultText: '1572864 (1.5 MiB)' },
  { flag: 'max-txn-ops', valueName: 'n', description: 'maximum number of operations permitted in a transaction', defaultText: '128' },
  { flag: 'auth-token-ttl', valueName: 'seconds', description: 'time (in seconds) an auth token lives without being used', defaultText: '300' },
  {
    flag: 'max-concurrent-streams',
    valueName: 'n',
    description: 'maximum number of concurrent streams that each client connection can have open',
    defaultText: String(SERVER_CONFIG_DEFAULTS.concurrentStreamsMax),
  },
  {
    flag: 'max-client-connections',
    valueName: 'n',
    description: 'maximum number of client connections open at once on each client URL; further ones are closed as they are accepted (Fulcrum)',
    defaultText: String(SERVER_CONFIG_DEFAULTS.clientConnectionsMax),
  },
  {
    flag: 'max-response-bytes',
    valueName: 'bytes',
    description: 'maximum size of one response (Fulcrum; a larger read fails and should page with limit)',
    defaultText: '16777216 (16 MiB)',
  },
  {
    flag: 'grpc-fast-path',
    valueName: 'bool',
    description: 'serve unary calls, Watch and LeaseKeepAlive straight from HTTP/2 rather than through grpc-js (Fulcrum; false: grpc-js serves every call)',
    defaultText: 'true',
    boolean: true,
  },
  {
    flag: 'http2-engine',
    valueName: 'engine',
    description: "the HTTP/2 of the client API and the peer path: node (node:http2 and grpc-js) or fulcrum (Fulcrum's own engine; every call on the fast path)",
    defaultText: 'fulcrum',
  },
  { flag: 'listen-metrics-urls', valueName: 'urls', description: 'URLs to serve /metrics and the health endpoints on', defaultText: '(none)' },
  { flag: 'log-level', valueName: 'level', description: 'debug, info, warn or error', defaultText: 'info' },
  { flag: 'cert-file', valueName: 'path', description: 'path to the client server TLS certificate file (PEM)', defaultText: '(none)' },
  { flag: 'key-file', valueName: 'path', description: 'path to the client server TLS key file (PEM, unencrypted)', defaultText: '(none)' },
  { flag: 'trusted-ca-file', valueName: 'path', description: 'path to the client server TLS trusted CA certificate file', defaultText: '(none)' },
  { flag: 'client-cert-auth', valueName: 'bool', description: 'require a client certificate signed by --trusted-ca-file', defaultText: 'false', boolean: true },
  { flag: 'peer-cert-file', valueName: 'path', description: 'path to the peer server TLS certificate file (also the client certificate towards peers)', defaultText: '(none)' },
  { flag: 'peer-key-file', valueName: 'path', description: 'path to the peer server TLS key file', defaultText: '(none)' },
  { flag: 'peer-trusted-ca-file', valueName: 'path', description: 'path to the peer server TLS trusted CA file', defaultText: '(none)' },
  {
    flag: 'peer-client-cert-auth',
    valueName: 'bool',
    description: 'require peers to present a certificate signed by --peer-trusted-ca-file',
    defaultText: 'false',
    boolean: true,
  },
  { flag: 'client-crl-file', valueName: 'path', description: 'refuse client certificates this certificate revocation list (PEM or DER) names', defaultText: '(none)' },
  { flag: 'peer-crl-file', valueName: 'path', description: 'refuse peer certificates this certificate revocation list (PEM or DER) names', defaultText: '(none)' },
  {
    flag: 'client-cert-allowed-hostname',
    valueName: 'name',
    description: 'accept only client certificates valid for this host name (needs --client-cert-auth)',
    defaultText: '(any)',
  },
  { flag: 'peer-cert-allowed-cn', valueName: 'cn', description: 'accept only peer certificates with this subject CN (needs --peer-client-cert-auth)', defaultText: '(any)' },
  {
    flag: 'peer-cert-allowed-hostname',
    valueName: 'name',
    description: 'accept only peer certificates valid for this host name (needs --peer-client-cert-auth)',
    defaultText: '(any)',
  },
];

export function envNameFor(flag: string, prefix: 'FULCRUM_' | 'ETCD_'): string {
  return prefix + flag.toUpperCase().replace(/-/g, '_');
}

const ENV_PREFIXES = ['FULCRUM_', 'ETCD_'] as const;

// ---------------------------------------------------------------------------------------------------------
// Entry points.

/** Parse the command line: `--version` and `--help` ask to print; anything else gives a validated config. */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): CommandLine {
  const program = buildProgram();
  let printed = '';
  program.configureOutput({ writeOut: (s) => (printed += s), writeErr: (s) => (printed += s), outputError: () => {} });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError && (e.code === 'commander.version' || e.code === 'commander.helpDisplayed')) {
      return { kind: 'print', text: printed };
    }
    if (e instanceof CommanderError) throw new ConfigError(e.message.replace(/^error: /, ''));
    throw e;
  }
  const flags = Object.fromEntries(
    Object.entries(program.opts<Record<string, string | boolean | undefined>>()).map(([k, v]) => [k, v === true ? 'true' : v === false ? 'false' : v]),
  );
  return { kind: 'serve', config: resolveConfig(flags, env) };
}

/** The validated, frozen server config. Throws ConfigError on bad input, and for --version / --help (use parseCommandLine). */
export function parseServerConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServerConfig {
  const cl = parseCommandLine(argv, env);
  if (cl.kind === 'print') throw new ConfigError('--version and --help print and exit; they give no server config');
  return cl.config;
}

/** What Member.start needs from the config. */
export function memberOptionsFrom(
  c: ServerConfig,
): Pick<
  MemberOptions,
  'id' | 'dataDir' | 'initialVoters' | 'initialMembers' | 'clusterToken' | 'heartbeatMs' | 'electionTicks' | 'snapshotCount' | 'snapshotCatchUpEntries' | 'maxRequestBytes'
> {
  return {
    id: c.memberId,
    dataDir: c.dataDir,
    initialVoters: c.initialMemberIds,
    initialMembers: new Map([...c.initialMembers].map(([id, m]) => [id, { name: m.name, peerUrls: m.peerUrls }])),
    clusterToken: c.initialClusterToken,
    heartbeatMs: c.heartbeatIntervalMs,
    electionTicks: c.electionTicks,
    snapshotCount: c.snapshotCount,
    snapshotCatchUpEntries: c.snapshotCatchupEntries,
    maxRequestBytes: c.requestBytesMax,
  };
}

/** The limits node/api enforces, from the config. */
export function apiLimitsFrom(c: ServerConfig): ApiLimits {
  return Object.freeze({
    ...API_LIMITS_DEFAULTS,
    requestBytesMax: c.requestBytesMax,
    txnOpsMax: c.txnOpsMax,
    // A larger --max-txn-ops raises the total over nested txns with it.
    txnOpsTotalMax: Math.max(API_LIMITS_DEFAULTS.txnOpsTotalMax, 8 * c.txnOpsMax),
    responseBytesMax: c.responseBytesMax,
    concurrentStreamsMax: c.concurrentStreamsMax,
    // Room for a few watches on keys of the largest size a request allows.
    watchKeyBytesPerMemberMax: Math.max(API_LIMITS_DEFAULTS.watchKeyBytesPerMemberMax, 4 * (c.requestBytesMax + GRPC_OVERHEAD_BYTES)),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Command line.

function buildProgram(): Command {
  const program = new Command('fulcrum')
    .description('Fulcrum: a Raft-replicated consistent core that speaks the etcd v3 API')
    .exitOverride()
    .allowExcessArguments(false)
    .version(FULCRUM_VERSION, '--version', 'print the version and exit');
  // No commander defaults: a flag we see was given, so the environment and the defaults can fill the rest.
  for (const s of SETTINGS) {
    const envNote = `(env ${envNameFor(s.flag, 'FULCRUM_')} or ${envNameFor(s.flag, 'ETCD_')}; default ${s.defaultText})`;
    // A switch takes an optional value (`--client-cert-auth`, `--client-cert-auth=false`); commander gives `true` for the bare flag.
    const spec = s.boolean === true ? `--${s.flag} [${s.valueName}]` : `--${s.flag} <${s.valueName}>`;
    program.addOption(new Option(spec, `${s.description} ${envNote}`));
  }
  return program;
}

/** commander's camel-case key for a flag: data-dir → dataDir. */
function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

interface RawSetting {
  readonly value: string;
  /** Where it came from, for error messages: "--name", "FULCRUM_NAME", "ETCD_NAME". */
  readonly source: string;
}

/** One raw value per flag that was set somewhere, plus warnings about shadowed and unknown names. */
function collectRaw(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): { raw: Map<string, RawSetting>; warnings: string[] } {
  const raw = new Map<string, RawSetting>();
  const warnings: string[] = [];
  for (const s of SETTINGS) {
    const candidates: RawSetting[] = [];
    const flagValue = flags[camel(s.flag)];
    if (flagValue !== undefined) candidates.push({ value: flagValue, source: `--${s.flag}` });
    for (const prefix of ENV_PREFIXES) {
      const name = envNameFor(s.flag, prefix);
      const v = env[name];
      // An empty variable counts as unset: `FULCRUM_X=` in a unit file usually means "no value here".
      if (v !== undefined && v !== '') candidates.push({ value: v, source: name });
    }
    const [winner, ...shadowed] = candidates;
    if (winner === undefined) continue;
    for (const l of shadowed) if (l.value !== winner.value) warnings.push(`${l.source}=${l.value} is shadowed by ${winner.source}`);
    if (winner.value.length > SERVER_CONFIG_LIMITS.settingChars) {
      throw new ConfigError(`${winner.source}: value is ${winner.value.length} characters; at most ${SERVER_CONFIG_LIMITS.settingChars} are allowed`);
    }
    raw.set(s.flag, winner);
  }
  warnings.push(...unknownEnvWarnings(env));
  return { raw, warnings };
}

/**
 * FULCRUM_* variables that are not server settings but belong to other parts of Fulcrum: the test-only failpoints
 * (node/failpoints.ts), the chaos suite's link redirection, the shared test data, what `fulcrumctl lock` hands
 * the command it runs, and the measurement switches (the peer transport's FULCRUM_PEER_SEND and FULCRUM_PEER_RECV,
 * node/trace.ts's FULCRUM_TRACE, bench:profile's hooks). A member started by those tools must not warn about them:
 * they are read, not ignored.
 */
const OTHER_FULCRUM_VARIABLES = new Set([
  'FULCRUM_FAILPOINTS',
  'FULCRUM_FAILPOINTS_FILE',
  'FULCRUM_CHAOS_REDIRECT',
  'FULCRUM_SHARED_TESTDATA',
  'FULCRUM_LOCK_TOKEN',
  'FULCRUM_LOCK_KEY',
  'FULCRUM_PEER_SEND',
  'FULCRUM_PEER_RECV',
  'FULCRUM_TRACE',
  'FULCRUM_GC_LOG',
  'FULCRUM_PROFILE_DIR',
  'FULCRUM_PROFILE_KIND',
  'FULCRUM_PROFILE_NAME',
]);

/** Typos in FULCRUM_* names, and etcd settings Fulcrum does not have, would otherwise be ignored silently. */
function unknownEnvWarnings(env: NodeJS.ProcessEnv): string[] {
  const known = new Set([...SETTINGS.flatMap((s) => ENV_PREFIXES.map((p) => envNameFor(s.flag, p))), ...OTHER_FULCRUM_VARIABLES]);
  const out: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (known.has(name)) continue;
    if (name.startsWith('FULCRUM_')) out.push(`${name} is not a Fulcrum server setting; ignored`);
    else if (name.startsWith('ETCD_')) out.push(`${name} is an etcd setting Fulcrum does not support; ignored`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Resolution: raw strings → typed values with defaults → cross-checks → derived values → frozen.

function resolveConfig(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): ServerConfig {
  const { raw, warnings } = collectRaw(flags, env);
  const get = (flag: string): RawSetting | undefined => raw.get(flag);
  const d = SERVER_CONFIG_DEFAULTS;

  const name = parseName(get('name'));
  const dataDir = parseNonEmpty(get('data-dir'), '--data-dir') ?? `./${name}.fulcrum`;
  const listenClient = parseListenUrls(get('listen-client-urls') ?? { value: d.listenClientUrls, source: '--listen-client-urls' });
  const listenPeer = parseListenUrls(get('listen-peer-urls') ?? { value: d.listenPeerUrls, source: '--listen-peer-urls' });
  const advertiseClientUrls = advertisedOrDefault(get('advertise-client-urls'), listenClient, '--advertise-client-urls', '--listen-client-urls');
  const initialAdvertisePeerUrls = advertisedOrDefault(get('initial-advertise-peer-urls'), listenPeer, '--initial-advertise-peer-urls', '--listen-peer-urls');
  const token = parseNonEmpty(get('initial-cluster-token'), '--initial-cluster-token') ?? d.initialClusterToken;
  const initialClusterRaw = get('initial-cluster') ?? { value: initialAdvertisePeerUrls.map((u) => `${name}=${u}`).join(','), source: '--initial-cluster' };
  const founding = parseInitialCluster(initialClusterRaw, token);
  checkSelfInCluster(name, initialAdvertisePeerUrls, founding, initialClusterRaw.source);

  const heartbeatIntervalMs = parseInteger(get('heartbeat-interval'), 1) ?? d.heartbeatIntervalMs;
  const electionTimeoutMs = parseInteger(get('election-timeout'), 1) ?? d.electionTimeoutMs;
  checkElectionTimeout(heartbeatIntervalMs, electionTimeoutMs);
  const quotaBackendBytes = parseInteger(get('quota-backend-bytes'), 0) || d.quotaBackendBytes; // 0 means default, as in etcd
  const requestBytesMax = parseInteger(get('max-request-bytes'), 1) ?? d.requestBytesMax;
  warnings.push(...limitWarnings(quotaBackendBytes, requestBytesMax));

  const grpcFastPath = parseBool(get('grpc-fast-path')) ?? d.grpcFastPath;
  // Fulcrum's engine has no grpc-js behind it: the fast path is how it serves every call. So turning the fast path
  // off means Node's engine, unless Fulcrum's was asked for by name, which is a contradiction.
  const engineSetting = parseChoice(get('http2-engine'), HTTP2_ENGINES);
  if (engineSetting === 'fulcrum' && !grpcFastPath) throw new ConfigError('--grpc-fast-path=false needs --http2-engine=node: Fulcrum\'s engine serves every call on the fast path');
  const http2Engine = engineSetting ?? (grpcFastPath ? d.http2Engine : 'node');

  const memberIds = [...founding.keys()];
  const metrics = get('listen-metrics-urls') === undefined ? [] : parseListenUrls(get('listen-metrics-urls')!);
  const clientTls = parseTlsFiles(get, '', warnings);
  const peerTls = parseTlsFiles(get, 'peer-', warnings);
  checkHttpsHasTls(clientTls, [
    ['--listen-client-urls', listenClient.map((a) => a.url)],
    ['--advertise-client-urls', advertiseClientUrls],
    ['--listen-metrics-urls', metrics.map((a) => a.url)],
  ], '--cert-file and --key-file');
  checkHttpsHasTls(peerTls, [
    ['--listen-peer-urls', listenPeer.map((a) => a.url)],
    ['--initial-advertise-peer-urls', initialAdvertisePeerUrls],
    [initialClusterRaw.source, [...founding.values()].flatMap((m) => m.peerUrls)],
  ], '--peer-cert-file and --peer-key-file');
  warnings.push(...unusedTlsWarnings(clientTls, [...listenClient, ...metrics], '--cert-file', '--listen-client-urls'));
  warnings.push(...unusedTlsWarnings(peerTls, listenPeer, '--peer-cert-file', '--listen-peer-urls'));
  const config: ServerConfig = {
    name,
    dataDir,
    listenClientUrls: listenClient.map((a) => a.url),
    advertiseClientUrls,
    listenPeerUrls: listenPeer.map((a) => a.url),
    initialAdvertisePeerUrls,
    initialCluster: [...founding.values()].flatMap((m) => m.peerUrls.map((u) => `${m.name}=${u}`)).join(','),
    initialClusterState: parseChoice(get('initial-cluster-state'), ['new', 'existing'] as const) ?? d.initialClusterState,
    initialClusterToken: token,
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount: parseInteger(get('snapshot-count'), 1) ?? d.snapshotCount,
    snapshotCatchupEntries: parseInteger(get('experimental-snapshot-catchup-entries'), 1) ?? d.snapshotCatchupEntries,
    quotaBackendBytes,
    requestBytesMax,
    txnOpsMax: parseInteger(get('max-txn-ops'), 1) ?? d.txnOpsMax,
    authTokenTtlSeconds: parseInteger(get('auth-token-ttl'), 1) ?? d.authTokenTtlSeconds,
    responseBytesMax: parseResponseBytes(get('max-response-bytes'), requestBytesMax),
    concurrentStreamsMax: parseInteger(get('max-concurrent-streams'), 1) ?? d.concurrentStreamsMax,
    clientConnectionsMax: parseInteger(get('max-client-connections'), 1) ?? d.clientConnectionsMax,
    grpcFastPath,
    http2Engine,
    listenMetricsUrls: metrics.map((a) => a.url),
    logLevel: parseChoice(get('log-level'), LOG_LEVELS) ?? d.logLevel,
    ...(clientTls === undefined ? {} : { clientTls }),
    ...(peerTls === undefined ? {} : { peerTls }),
    memberId: memberIdFor(initialAdvertisePeerUrls, token),
    initialMembers: new FrozenMap(founding),
    initialMemberIds: memberIds,
    clusterId: clusterIdFor(memberIds, token),
    electionTicks: Math.round(electionTimeoutMs / heartbeatIntervalMs),
    listen: { client: listenClient, peer: listenPeer, metrics },
    warnings,
  };
  return deepFreeze(config);
}

function parseName(s: RawSetting | undefined): string {
  const name = parseNonEmpty(s, '--name') ?? SERVER_CONFIG_DEFAULTS.name;
  // '=' and ',' are --initial-cluster's separators: such a name could never be found there.
  if (/[=,]/.test(name)) throw new ConfigError(`${s!.source}: "${name}" must not contain "=" or ","`);
  return name;
}

function parseNonEmpty(s: RawSetting | undefined, flag: string): string | undefined {
  if (s === undefined) return undefined;
  const v = s.value.trim();
  if (v === '') throw new ConfigError(`${flag}: must not be empty`);
  return v;
}

function parseChoice<T extends string>(s: RawSetting | undefined, choices: readonly T[]): T | undefined {
  if (s === undefined) return undefined;
  const v = s.value.trim();
  if (!(choices as readonly string[]).includes(v)) throw new ConfigError(`${s.source}: "${s.value}" is not one of ${choices.join(', ')}`);
  return v as T;
}

/** A whole decimal number ≥ min. No units, no exponents: etcd takes plain integers too. */
function parseInteger(s: RawSetting | undefined, min: number): number | undefined {
  if (s === undefined) return undefined;
  const v = s.value.trim();
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new ConfigError(`${s.source}: "${s.value}" is not a whole number`);
  if (n < min) throw new ConfigError(`${s.source}: must be at least ${min}, got ${n}`);
  return n;
}

/** Go's strconv.ParseBool, which etcd's boolean flags and ETCD_* variables go through. */
function parseBool(s: RawSetting | undefined): boolean | undefined {
  if (s === undefined) return undefined;
  const v = s.value.trim();
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw new ConfigError(`${s.source}: "${s.value}" is not true or false`);
}

/**
 * One listener's certificate flags (prefix '' for clients, 'peer-' for peers). Only names are checked here; the
 * files are read and checked at start (node/tls.ts loadTlsFiles), so parsing stays pure.
 */
function parseTlsFiles(get: (flag: string) => RawSetting | undefined, prefix: '' | 'peer-', warnings: string[]): TlsFiles | undefined {
  const crlFlag = `${prefix === 'peer-' ? 'peer' : 'client'}-crl-file`;
  const flags = { cert: `--${prefix}cert-file`, key: `--${prefix}key-file`, ca: `--${prefix}trusted-ca-file`, crl: `--${crlFlag}` };
  const certFile = parseNonEmpty(get(`${prefix}cert-file`), flags.cert);
  const keyFile = parseNonEmpty(get(`${prefix}key-file`), flags.key);
  const trustedCaFile = parseNonEmpty(get(`${prefix}trusted-ca-file`), flags.ca);
  const clientCertAuth = parseBool(get(`${prefix}client-cert-auth`)) ?? false;
  const names = parseAllowedNames(get, prefix, clientCertAuth);
  // Empty is etcd's default: no list.
  const crlFile = get(crlFlag)?.value.trim() || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile === undefined ? `${flags.key} needs ${flags.cert}` : `${flags.cert} needs ${flags.key}`);
  }
  if (clientCertAuth && trustedCaFile === undefined) {
    throw new ConfigError(`--${prefix}client-cert-auth needs ${flags.ca}: the CA that signs the certificates to accept`);
  }
  if (certFile === undefined || keyFile === undefined) {
    if (trustedCaFile !== undefined || clientCertAuth) warnings.push(`${flags.ca} and --${prefix}client-cert-auth have no effect without ${flags.cert} and ${flags.key}`);
    if (crlFile !== undefined) warnings.push(`${flags.crl} has no effect without ${flags.cert} and ${flags.key}`);
    return undefined;
  }
  return { certFile, keyFile, ...(trustedCaFile === undefined ? {} : { trustedCaFile }), clientCertAuth, ...names, ...(crlFile === undefined ? {} : { crlFile }), flags };
}

/**
 * etcd 3.4's name checks on client certificates: --peer-cert-allowed-cn, --peer-cert-allowed-hostname (peers) and
 * --client-cert-allowed-hostname (clients). Only a verified certificate has a name worth checking, so each needs
 * its listener's client-cert-auth; a CN and a host name together are refused, as etcd refuses them.
 */
function parseAllowedNames(get: (flag: string) => RawSetting | undefined, prefix: '' | 'peer-', clientCertAuth: boolean): { allowedCn?: string; allowedHostname?: string } {
  const cnFlag = prefix === 'peer-' ? 'peer-cert-allowed-cn' : undefined;
  const hostnameFlag = `${prefix === 'peer-' ? 'peer' : 'client'}-cert-allowed-hostname`;
  // Empty is etcd's default for these flags: no check.
  const optional = (flag: string | undefined): string | undefined => (flag === undefined ? undefined : get(flag)?.value.trim() || undefined);
  const allowedCn = optional(cnFlag);
  const allowedHostname = optional(hostnameFlag);
  if (allowedCn !== undefined && allowedHostname !== undefined) {
    throw new ConfigError(`--${cnFlag} and --${hostnameFlag} are mutually exclusive (cn=${allowedCn}, hostname=${allowedHostname})`);
  }
  const given = allowedCn !== undefined ? cnFlag : allowedHostname !== undefined ? hostnameFlag : undefined;
  if (given !== undefined && !clientCertAuth) throw new ConfigError(`--${given} needs --${prefix}client-cert-auth: only a verified client certificate has a name to check`);
  return { ...(allowedCn === undefined ? {} : { allowedCn }), ...(allowedHostname === undefined ? {} : { allowedHostname }) };
}

/** An https URL is served, advertised or dialled with TLS: without a certificate there is nothing to serve it with. */
function checkHttpsHasTls(tls: TlsFiles | undefined, lists: ReadonlyArray<readonly [string, readonly string[]]>, needed: string): void {
  if (tls !== undefined) return;
  for (const [source, urls] of lists) {
    const https = urls.find((u) => u.startsWith('https://'));
    if (https !== undefined) throw new ConfigError(`${source}: "${https}" is https but ${needed} are not set`);
  }
}

/** etcd serves http:// URLs in plaintext even when certificates are given; say so, since it is rarely meant. */
function unusedTlsWarnings(tls: TlsFiles | undefined, listen: readonly ListenAddress[], certFlag: string, listenFlag: string): string[] {
  if (tls === undefined || listen.some((a) => a.secure)) return [];
  return [`${certFlag} is set but no ${listenFlag} URL is https://; the certificate is not served`];
}

/** A response must be able to carry what the largest request could write, plus gRPC's framing. */
function parseResponseBytes(s: RawSetting | undefined, requestBytesMax: number): number {
  const min = requestBytesMax + GRPC_OVERHEAD_BYTES;
  if (s === undefined) return Math.max(SERVER_CONFIG_DEFAULTS.responseBytesMax, min);
  return parseInteger(s, min)!;
}

function checkElectionTimeout(heartbeatMs: number, electionMs: number): void {
  const L = SERVER_CONFIG_LIMITS;
  if (electionMs < L.electionToHeartbeatRatioMin * heartbeatMs) {
    throw new ConfigError(
      `--election-timeout (${electionMs}ms) must be at least ${L.electionToHeartbeatRatioMin} times --heartbeat-interval (${heartbeatMs}ms)`,
    );
  }
  if (electionMs > L.electionTimeoutMsMax) {
    throw new ConfigError(`--election-timeout (${electionMs}ms) is too long; it must be at most ${L.electionTimeoutMsMax}ms`);
  }
}

function limitWarnings(quotaBackendBytes: number, requestBytesMax: number): string[] {
  const L = SERVER_CONFIG_LIMITS;
  const out: string[] = [];
  if (quotaBackendBytes > L.quotaBackendBytesRecommendedMax) {
    out.push(`--quota-backend-bytes ${quotaBackendBytes} exceeds the recommended maximum ${L.quotaBackendBytesRecommendedMax}`);
  }
  if (requestBytesMax > L.requestBytesRecommendedMax) {
    out.push(`--max-request-bytes ${requestBytesMax} exceeds the recommended maximum ${L.requestBytesRecommendedMax}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// URLs.

interface ParsedUrl {
  /** Normalized: lower-case scheme, no trailing slash. Ids are computed from this form (so https:// and http:// differ). */
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
}

/**
 * One URL of a flag: http or https; the port must be explicit (etcd's rule: a member's address without a port is
 * ambiguous), the path empty.
 */
function parseUrl(text: string, source: string): ParsedUrl {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(text);
  if (m === null) throw new ConfigError(`${source}: "${text}" is not a URL (expected http://host:port or https://host:port)`);
  const scheme = m[1]!.toLowerCase();
  const authority = m[2]!;
  const rest = m[3]!;
  if (scheme !== 'http' && scheme !== 'https') throw new ConfigError(`${source}: "${text}": scheme "${scheme}" is not supported; use http:// or https://`);
  if (rest !== '' && rest !== '/') throw new ConfigError(`${source}: "${text}" must not have a path, query or fragment`);
  if (authority.includes('@')) throw new ConfigError(`${source}: "${text}" must not carry a user name or password`);
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(authority);
  if (hp === null) throw new ConfigError(`${source}: "${text}" must have the form ${scheme}://host:port, with an explicit port`);
  const port = Number(hp[2]);
  if (port > 65_535) throw new ConfigError(`${source}: "${text}": port ${port} is out of range`);
  const hostname = hp[1]!.replace(/^\[|\]$/g, '');
  if (hp[1]!.startsWith('[') && isIP(hostname) !== 6) throw new ConfigError(`${source}: "${text}": "${hp[1]}" is not an IPv6 address`);
  return { url: `${scheme}://${hp[1]!.toLowerCase()}:${port}`, hostname: hostname.toLowerCase(), port, secure: scheme === 'https' };
}

function splitList(s: RawSetting): string[] {
  const items = s.value.split(',').map((x) => x.trim());
  if (items.some((x) => x === '')) throw new ConfigError(`${s.source}: "${s.value}" has an empty entry`);
  return items;
}

function isUnspecifiedHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** Addresses to bind: IP literals (or localhost), since a name that resolves to several addresses is ambiguous. */
function parseListenUrls(s: RawSetting): ListenAddress[] {
  const out = splitList(s).map((text) => {
    const u = parseUrl(text, s.source);
    if (u.hostname !== 'localhost' && isIP(u.hostname) === 0) {
      throw new ConfigError(`${s.source}: "${text}": listen URLs need an IP address (or localhost) to bind, not a host name`);
    }
    return Object.freeze({ url: u.url, host: u.hostname, port: u.port, ...(u.secure ? { secure: true } : {}) });
  });
  rejectDuplicates(out.map((a) => a.url), s.source);
  return out;
}

function parseAdvertisedUrls(s: RawSetting): string[] {
  const out = splitList(s).map((text) => {
    const u = parseUrl(text, s.source);
    if (isUnspecifiedHost(u.hostname)) throw new ConfigError(`${s.source}: "${text}": ${u.hostname} cannot be advertised; give an address others can reach`);
    if (u.port === 0) throw new ConfigError(`${s.source}: "${text}": port 0 cannot be advertised`);
    return u.url;
  });
  rejectDuplicates(out, s.source);
  return out;
}

/** Advertised URLs default to the listen URLs, unless those cannot be reached as written (0.0.0.0, port 0). */
function advertisedOrDefault(s: RawSetting | undefined, listen: readonly ListenAddress[], flag: string, listenFlag: string): string[] {
  if (s !== undefined) return parseAdvertisedUrls(s);
  const unreachable = listen.find((a) => isUnspecifiedHost(a.host) || a.port === 0);
  if (unreachable !== undefined) throw new ConfigError(`${flag} is required when ${listenFlag} has ${unreachable.url}, which others cannot reach`);
  return listen.map((a) => a.url);
}

function rejectDuplicates(urls: readonly string[], source: string): void {
  const seen = new Set<string>();
  for (const u of urls) {
    if (seen.has(u)) throw new ConfigError(`${source}: ${u} appears more than once`);
    seen.add(u);
  }
}

// ---------------------------------------------------------------------------------------------------------
// --initial-cluster: name=url pairs; a name may repeat to give one member several peer URLs (as in etcd).

function parseInitialCluster(s: RawSetting, token: string): Map<number, FoundingMember> {
  const byName = new Map<string, string[]>();
  for (const item of splitList(s)) {
    const eq = item.indexOf('=');
    const name = item.slice(0, Math.max(eq, 0)).trim();
    if (name === '') throw new ConfigError(`${s.source}: "${item}" is not name=url`);
    const url = parseAdvertisedUrls({ value: item.slice(eq + 1).trim(), source: s.source })[0]!;
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  if (byName.size > SERVER_CONFIG_LIMITS.initialClusterMembersMax) {
    throw new ConfigError(`${s.source}: ${byName.size} members; at most ${SERVER_CONFIG_LIMITS.initialClusterMembersMax} are allowed`);
  }
  rejectDuplicates([...byName.values()].flat(), s.source);
  const members = new Map<number, FoundingMember>();
  for (const [name, peerUrls] of byName) {
    const id = memberIdFor(peerUrls, token);
    if (members.has(id)) throw new ConfigError(`${s.source}: members ${members.get(id)!.name} and ${name} get the same id`);
    members.set(id, { name, peerUrls });
  }
  return members;
}

/** etcd's rule: this member must be listed under its --name, with exactly its advertised peer URLs. */
function checkSelfInCluster(name: string, advertised: readonly string[], founding: ReadonlyMap<number, FoundingMember>, source: string): void {
  const self = [...founding.values()].find((m) => m.name === name);
  if (self === undefined) throw new ConfigError(`${source}: no member named "${name}" (--name); list this member in the initial cluster`);
  const listed = [...self.peerUrls].sort().join(',');
  const mine = [...advertised].sort().join(',');
  if (listed !== mine) {
    throw new ConfigError(`${source} has ${name}=${listed} but --initial-advertise-peer-urls is ${mine}; they must match`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Freezing: the config is shared by every component; nobody may change it after validation.

/** A Map that refuses changes once built (Object.freeze does not stop Map.set). */
class FrozenMap<K, V> extends Map<K, V> {
  #sealed = false;
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    this.#sealed = true;
  }
  override set(key: K, value: V): this {
    if (this.#sealed) throw new TypeError('fulcrum: the server config is frozen');
    return super.set(key, value);
  }
  override delete(): boolean {
    throw new TypeError('fulcrum: the server config is frozen');
  }
  override clear(): void {
    throw new TypeError('fulcrum: the server config is frozen');
  }
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}
