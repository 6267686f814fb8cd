// The Fulcrum server: the composition root. One member with its peer listener (Raft over gRPC), its client
// listener (the etcd v3 API), its subsystems (watch hub, lease manager) and its metrics/health listener.
//
// Start order matters: the peer listener is up before the member starts (peers can reach us as soon as we can
// reach them); the client listener opens only once the member has replayed its log, so no client ever reads a
// state older than what this member acknowledged before a restart.
// Stop order is the reverse: stop taking client requests, let in-flight ones finish (bounded), stop the member
// (which syncs), then close the peer listener.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DetailedPeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { loadEtcdApi } from '../proto/index.js';
import { createAuthService } from './api/auth.js';
import { AUTH_GATE_KEY } from './api/authz.js';
import { createClusterService } from './api/cluster.js';
import type { ApiContext, ApiLimits } from './api/context.js';
import { FastPath } from './api/fast-path.js';
import { CallBudget, checkApiLimits, clientServerOptions, fastPathLimits, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS } from './api/limits.js';
import { createElectionService } from './api/election.js';
import { createFulcrumService } from './api/fulcrum.js';
import { createKvService } from './api/kv.js';
import { createLeaseService } from './api/lease.js';
import { createLockService } from './api/lock.js';
import { createMaintenanceService } from './api/maintenance.js';
import { createWatchService } from './api/watch.js';
import { apiLimitsFrom, memberOptionsFrom, type ListenAddress, type ServerConfig } from './config.js';
import { listenEngine } from './engine-listeners.js';
import { H2Server, type H2ServerOptions } from './h2/server.js';
import { startMetricsServers, type HttpEndpoint } from './http.js';
import { AuthGate } from './auth/index.js';
import { componentLogger, createLogger, nameMemberInLogs, type Logger } from './log.js';
import { LeaderForwarder, LeaseManager } from './lease/index.js';
import { Failpoints } from './failpoints.js';
import { checkClientCertificates, limitConnections, shutdownGrpc, widenReceiveWindows, type DroppedConnection } from './grpc-listeners.js';
import { discoverCluster, type ClusterIdentity } from './join.js';
import { idToHex } from './ids.js';
import { Member, readPersistedClusterId, readPersistedMemberId } from './member.js';
import { createMetricsRegistry, MemberMetrics } from './metrics.js';
import { HEARTBEAT_HOLDUP_WARN_INTERVALS } from './raft-loop.js';
import { clientCertificateRefusal, dialCredentials, TlsFileWatcher, type DialCredentials, type TlsFiles } from './tls.js';
import { addPeerService, GrpcPeerTransport, peerReceiveOnFromEnv, peerSendOverFromEnv, PEER_CONNECTIONS_MAX, PEER_RECEIVE_WINDOW_BYTES, PEER_SERVER_OPTIONS, type PeerService } from './transport/index.js';
import { WatchHub } from './watch/index.js';

/** How long stopping waits for in-flight client calls before cutting them off. */
export const SHUTDOWN_GRACE_MS = 5_000;
/** How often the member compares its database size with --quota-backend-bytes. */
export const QUOTA_CHECK_INTERVAL_MS = 1_000;
/**
 * A repeated warning (a listener at its connection limit, refused certificates, slow WAL syncs, late ticks) is
 * logged at most this often, with how many it stands for; metrics count every one.
 */
const WARNING_LOG_INTERVAL_MS = 10_000;
/** Retry interval for publishing this member's name and client URLs until a leader takes it. */
const PUBLISH_RETRY_MS = 500;

export interface FulcrumServer {
  readonly config: ServerConfig;
  readonly member: Member;
  readonly watchHub: WatchHub;
  readonly leases: LeaseManager;
  /** Bound client URLs (real ports when 0 was asked for). */
  readonly clientUrls: readonly string[];
  readonly peerUrls: readonly string[];
  readonly metricsUrls: readonly string[];
  readonly logger: Logger;
  /** Resolves when the server has stopped (after close(), a fatal error, or removal from the cluster). */
  readonly stopped: Promise<void>;
  close(): Promise<void>;
}

export interface ServerDeps {
  readonly logger?: Logger;
  /** Metrics registry; several members in one process share one (each labels its series). */
  readonly registry?: Registry;
  /** Where the measurement switches (FULCRUM_PEER_RECV, FULCRUM_PEER_SEND) are read: process.env by default. */
  readonly env?: NodeJS.ProcessEnv;
}

/** The certificate watchers of one member: checked before anything starts (a bad file is a ConfigError). */
interface MemberTls {
  readonly client?: TlsFileWatcher;
  readonly peer?: TlsFileWatcher;
  /** For another member's client URL (leader forwarding): our client certificate, as etcd's gateway uses it. */
  readonly dialClient: DialCredentials;
  readonly dialPeer: DialCredentials;
  /** The watchers' logger, made before a joining member knows its id (see nameMemberInLogs). */
  readonly logger: Logger;
  close(): void;
}

async function openTls(config: ServerConfig, logger: Logger): Promise<MemberTls> {
  const tlsLogger = componentLogger(logger, 'tls');
  const client = config.clientTls === undefined ? undefined : await TlsFileWatcher.open(config.clientTls, tlsLogger);
  try {
    const peer = config.peerTls === undefined ? undefined : await TlsFileWatcher.open(config.peerTls, tlsLogger);
    return {
      client,
      peer,
      dialClient: dialCredentials(client, '--cert-file'),
      dialPeer: dialCredentials(peer, '--peer-cert-file'),
      logger: tlsLogger,
      close: () => (client?.close(), peer?.close()),
    };
  } catch (e) {
    client?.close();
    throw e;
  }
}

/** The streams the client server's fast path serves (api/fast-path.ts), bidirectional and server-streaming: all of them. */
const FAST_STREAMS: ReadonlySet<string> = new Set(['/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive', '/etcdserverpb.Maintenance/Snapshot', '/v3electionpb.Election/Observe']);

export async function startServer(flagsConfig: ServerConfig, deps: ServerDeps = {}): Promise<FulcrumServer> {
  // A restarted member is who its data dir says (a member added later has an id its flags cannot give).
  const kept = await readPersistedMemberId(flagsConfig.dataDir);
  const config = kept === undefined ? flagsConfig : { ...flagsConfig, memberId: kept };
  const keptClusterId = await readPersistedClusterId(config.dataDir);
  const joining = kept === undefined && keptClusterId === undefined && config.initialClusterState !== 'new';
  // A joining member learns its id from the cluster below: its log lines carry it from then on.
  const logger = deps.logger ?? createLogger({ level: config.logLevel, ...(joining ? {} : { memberId: config.memberId }) });
  for (const w of config.warnings) logger.warn(w);
  const tls = await openTls(config, logger);
  try {
    return await startMember(config, keptClusterId, deps, logger, tls, joining && deps.logger === undefined);
  } catch (e) {
    tls.close();
    throw e;
  }
}

/** `given`: the flags, with the member id kept in the data dir if there is one; a joining member learns its own here. */
async function startMember(given: ServerConfig, keptClusterId: number | undefined, deps: ServerDeps, logger: Logger, tls: MemberTls, nameInLogs: boolean): Promise<FulcrumServer> {
  const identity = await identityToUse(given, keptClusterId, logger, tls.dialPeer);
  const config = identity.memberId === given.memberId ? given : { ...given, memberId: identity.memberId };
  if (nameInLogs) nameMemberInLogs([logger, tls.logger], config.memberId);
  const clusterId = identity.clusterId;
  // The peer path speaks the HTTP/2 the client API does (--http2-engine), both ways, unless a measurement switch
  // says otherwise (node/transport/peer.ts, peer-server.ts).
  const env = deps.env ?? process.env;
  const onEngine = config.http2Engine === 'fulcrum';
  const transport = new GrpcPeerTransport({
    selfId: config.memberId,
    clusterId,
    peers: initialPeers(config, keptClusterId !== undefined),
    logger: componentLogger(logger, 'transport'),
    name: config.name,
    selfPeerUrls: config.initialAdvertisePeerUrls,
    dial: tls.dialPeer,
    sendOver: peerSendOverFromEnv(env, onEngine ? 'engine' : 'http2'),
  });
  // Metrics exist before the member, so the Ready loop's apply and fsync timings reach them from the first entry,
  // and before the peer listener, so its connection limit's drops are counted.
  const registry = deps.registry ?? createMetricsRegistry({ processMetrics: deps.registry === undefined });
  const metrics = new MemberMetrics(registry, config.memberId, { quotaBackendBytes: config.quotaBackendBytes });
  const peerServer = new grpc.Server(PEER_SERVER_OPTIONS);
  const api = loadEtcdApi();
  const peerService = addPeerService(peerServer, transport, peerReceiveOnFromEnv(env, onEngine ? 'engine' : 'fast-path'));
  const peers = await (peerService.receiveOn === 'engine'
    ? servePeersOnEngine(config, peerService, tls.peer, logger, metrics)
    : servePeersOnGrpcJs(config, peerServer, peerService, tls.peer, logger, metrics)
  ).catch((e: unknown) => {
    // A peer port already taken, say: nothing else is running yet but the metrics.
    metrics.close();
    throw e;
  });
  // The member reports a fatal error through a hook that needs the rest of the server; it is set below.
  const onFatal: { fn?: (e: unknown) => void } = {};
  // Test-only (FULCRUM_FAILPOINTS): crash at named steps of the write path, or make the WAL lie about fsync.
  const failpoints = Failpoints.fromEnv(process.env);
  const metricsFaults = metrics.faultHook();
  const member = await Member.start({
    ...memberOptionsFrom(config),
    bootstrap: config.initialClusterState === 'new',
    clusterId,
    transport,
    logger: componentLogger(logger, 'raft'),
    walLogger: componentLogger(logger, 'wal'),
    faults: failpoints === undefined ? metricsFaults : (p) => (metricsFaults(p), failpoints.hit(p)),
    onPersist: walSyncReporter(logger, metrics, config.heartbeatIntervalMs),
    onTickLate: tickLateReporter(logger, config.heartbeatIntervalMs),
    onFatal: (e) => onFatal.fn?.(e),
  });

  // The registry may know members the flags do not (added later, URLs updated): the transport learns them all,
  // now and whenever a snapshot replaces the registry.
  const learnPeers = (): void => {
    const members = member.members();
    for (const m of members) if (m.id !== member.id && m.peerUrls.length > 0) transport.addPeer(m.id, m.peerUrls);
    if (members.length > 0) transport.keepOnlyPeers(new Set(members.map((m) => m.id)));
  };
  learnPeers();
  member.subscribeRestored(learnPeers);

  // From here on, anything that fails (a client port already taken, say) must not leave the member running.
  const started: Array<() => unknown> = [() => metrics.close(), () => member.close(), () => peers.close(0)];
  try {
    return await serve(config, registry, metrics, logger, member, transport, peers, api, started, onFatal, tls);
  } catch (e) {
    for (const undo of started.reverse()) await Promise.resolve(undo()).catch(() => undefined);
    throw e;
  }
}

async function serve(
  config: ServerConfig,
  registry: Registry,
  metrics: MemberMetrics,
  logger: Logger,
  member: Member,
  transport: GrpcPeerTransport,
  peers: Listeners,
  api: ReturnType<typeof loadEtcdApi>,
  started: Array<() => unknown>,
  onFatal: { fn?: (e: unknown) => void },
  tls: MemberTls,
): Promise<FulcrumServer> {
  const ctx: ApiContext = {
    member,
    logger: componentLogger(logger, 'api'),
    limits: apiLimitsFrom(config),
    self: { name: config.name, clientUrls: config.advertiseClientUrls, peerUrls: config.initialAdvertisePeerUrls },
    registry: new Map(),
    dial: tls.dialClient,
  };
  const hub = new WatchHub(member);
  hub.start();
  started.push(() => hub.stop());
  const leases = new LeaseManager(member, { forwarder: new LeaderForwarder(tls.dialClient) });
  leases.start();
  started.push(() => leases.stop());
  ctx.registry.set('watchHub', hub);
  ctx.registry.set('leases', leases);
  // Tokens are learnt from the log: the gate listens before any client can authenticate.
  const authGate = new AuthGate(member, { tokenTtlMs: config.authTokenTtlSeconds * 1000, clientCertAuth: config.clientTls?.clientCertAuth === true });
  authGate.start();
  started.push(() => authGate.stop());
  ctx.registry.set(AUTH_GATE_KEY, authGate);

  checkApiLimits(ctx.limits);
  const calls = new CallBudget(ctx.limits);
  const clientServer = new grpc.Server(clientServerOptions(ctx.limits, [calls.interceptor]));
  const fastPath = new FastPath(fastPathLimits(ctx.limits), calls, FAST_STREAMS);
  const add = (svc: grpc.ServiceDefinition, impl: unknown): void => fastPath.addService(clientServer, svc, impl as Record<string, unknown>);
  add(api.etcdserverpb.KV.service, createKvService(ctx));
  add(api.etcdserverpb.Watch.service, createWatchService(ctx, hub));
  add(api.etcdserverpb.Lease.service, createLeaseService(ctx, leases));
  add(api.etcdserverpb.Cluster.service, createClusterService(ctx));
  add(api.etcdserverpb.Maintenance.service, createMaintenanceService(ctx));
  add(api.v3electionpb.Election.service, createElectionService(ctx, leases));
  add(api.v3lockpb.Lock.service, createLockService(ctx, leases));
  add(api.fulcrum.v1.Fulcrum.service, createFulcrumService(ctx));
  add(api.etcdserverpb.Auth.service, createAuthService(ctx));
  const clients = config.http2Engine === 'fulcrum'
    ? await serveClientsOnEngine(config, fastPath, ctx.limits, tls.client, logger, metrics)
    : await serveClientsOnGrpcJs(config, clientServer, fastPath, tls.client, logger, metrics, started);
  started.push(() => clients.close(0));
  const clientUrls = clients.urls;

  metrics.collectFrom(member, { watchers: () => hub.watcherCount });
  let notLive: string | undefined;
  const http: HttpEndpoint[] = await startMetricsServers(config.listen.metrics, {
    registry,
    member,
    logger: componentLogger(logger, 'http'),
    notLiveReason: () => notLive,
    ...(tls.client === undefined ? {} : { tls: tls.client }),
  });

  let closing: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const timers: NodeJS.Timeout[] = [];
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const t of timers) clearInterval(t);
      // Leading: hand over first, so clients see a quick leader change instead of an election timeout.
      const successor = await member.handOverLeadership(config.electionTimeoutMs).catch(() => undefined);
      if (successor !== undefined) logger.info({ successor: successor.toString(16) }, 'fulcrum: handed the leadership over before stopping');
      await clients.close(SHUTDOWN_GRACE_MS);
      hub.stop();
      leases.stop();
      authGate.stop();
      metrics.close();
      await member.close();
      await peers.close(SHUTDOWN_GRACE_MS);
      await Promise.all(http.map((h) => h.close()));
      tls.close();
      logger.info('fulcrum: stopped');
      resolveStopped();
    })();
    return closing;
  };
  onFatal.fn = (e) => {
    notLive = `fatal error: ${String(e)}`;
    logger.fatal({ err: e }, 'fulcrum: member stopped after a fatal error; its state on disk is intact up to the last synced batch');
    void close();
  };
  member.subscribeRemoved(() => {
    notLive = 'removed from the cluster';
    logger.warn('fulcrum: this member was removed from the cluster; stopping');
    void close();
  });

  timers.push(publishAttributesUntilDone(member, config, logger));
  timers.push(watchQuota(member, config, logger));
  const peerUrls = peers.urls;
  logger.info({ clientUrls, peerUrls, metricsUrls: http.map((h) => h.url), dataDir: config.dataDir, cluster: config.initialCluster }, 'fulcrum: serving');
  return { config, member, watchHub: hub, leases, clientUrls, peerUrls, metricsUrls: http.map((h) => h.url), logger, stopped, close };
}

/**
 * Whom the transport calls before the member has read its registry. Ids computed from --initial-cluster's URLs are
 * the founding members' only, right only on a new cluster's first start: a joining or restarted member calls
 * nobody until its registry is read (learnPeers, right after Member.start), and answers whoever calls it first
 * (transport.ts admit).
 */
function initialPeers(config: ServerConfig, restarting: boolean): Map<number, readonly string[]> {
  // A restarted member's registry (read right after its local replay) is the truth; the flags may name members
  // long replaced under new ids, whose URLs now answer to another id ("member ID mismatch" at every attempt).
  if (restarting || config.initialClusterState !== 'new') return new Map();
  // A founding member's first start: the flags' ids are the founding ones, its own among them.
  return new Map([...config.initialMembers].filter(([id]) => id !== config.memberId).map(([id, m]) => [id, m.peerUrls]));
}

/**
 * A founding member computes the cluster id from --initial-cluster, and its id from its peer URLs. A joining member
 * asks the members listed there for both (MemberAdd gave it a fresh id). A restarted member has both in its data
 * dir (startServer read both).
 */
async function identityToUse(config: ServerConfig, keptClusterId: number | undefined, logger: Logger, dial: DialCredentials): Promise<ClusterIdentity> {
  // The kept cluster id, not the flags': a member that joined lists in --initial-cluster members that were not
  // the founding ones, so the id those flags give is not its cluster's, and its peers would refuse it.
  if (keptClusterId !== undefined) return { clusterId: keptClusterId, memberId: config.memberId };
  if (config.initialClusterState === 'new') return { clusterId: config.clusterId, memberId: config.memberId };
  const urls = new Set(config.initialAdvertisePeerUrls);
  const peers = [...config.initialMembers.values()].flatMap((m) => m.peerUrls).filter((u) => !urls.has(u));
  const identity = await discoverCluster(peers, { id: config.memberId, name: config.name, peerUrls: config.initialAdvertisePeerUrls }, dial);
  logger.info({ clusterId: idToHex(identity.clusterId), memberId: idToHex(identity.memberId) }, 'fulcrum: joining an existing cluster');
  return identity;
}

/** Count each connection a listener closes at its limit, and log it at most every WARNING_LOG_INTERVAL_MS. */
function dropReporter(listener: 'client' | 'peer', limit: string, logger: Logger, metrics: MemberMetrics): (c: DroppedConnection) => void {
  let last: DroppedConnection | undefined;
  const log = throttled(WARNING_LOG_INTERVAL_MS, (dropped) =>
    logger.warn({ listener, limit, dropped, remote: describeRemote(last) }, `fulcrum: ${listener} connections at the limit of ${limit}; closing new ones as they are accepted`),
  );
  return (c) => {
    metrics.connectionDropped(listener);
    last = c;
    log();
  };
}

/** Log connections closed for their client certificate (revoked, or the wrong name), at most every WARNING_LOG_INTERVAL_MS. */
function certificateRefusalReporter(listener: 'client' | 'peer', logger: Logger): (reason: string, c: DroppedConnection) => void {
  let last: { reason: string; c: DroppedConnection } | undefined;
  const log = throttled(WARNING_LOG_INTERVAL_MS, (refused) =>
    logger.warn({ listener, refused, remote: describeRemote(last?.c), reason: last?.reason }, `fulcrum: closed a ${listener} connection: its client certificate was refused (${last?.reason})`),
  );
  return (reason, c) => {
    last = { reason, c };
    log();
  };
}

/**
 * The WAL fsync histogram, and a warning for a synced write that took longer than HEARTBEAT_HOLDUP_WARN_INTERVALS
 * heartbeat intervals: the Ready loop waits for it, and with it the heartbeats a leader owes and the
 * acknowledgements a follower owes. etcd warns the same way ("slow fdatasync").
 */
export function walSyncReporter(logger: Logger, metrics: Pick<MemberMetrics, 'observeWalFsync'>, heartbeatMs: number): (ms: number, synced: boolean) => void {
  const slow = throttledWorst(WARNING_LOG_INTERVAL_MS, (slowWrites, slowestMs) =>
    logger.warn({ slowWrites, slowestMs: Math.round(slowestMs) }, `fulcrum: slow WAL sync: ${Math.round(slowestMs)} ms (heartbeats wait for it; the election timeout is what a member may miss)`),
  );
  return (ms, synced) => {
    if (!synced) return;
    metrics.observeWalFsync(ms);
    if (ms > heartbeatMs * HEARTBEAT_HOLDUP_WARN_INTERVALS) slow(ms);
  };
}

/** A warning when Raft ticks come late (RaftLoop's onTickLate): the event loop was blocked. */
function tickLateReporter(logger: Logger, heartbeatMs: number): (gapMs: number) => void {
  return throttledWorst(WARNING_LOG_INTERVAL_MS, (lateTicks, longestGapMs) =>
    logger.warn({ lateTicks, longestGapMs: Math.round(longestGapMs), tickMs: heartbeatMs }, `fulcrum: raft ticks ${Math.round(longestGapMs)} ms apart (every ${heartbeatMs} ms expected): the event loop was blocked, and heartbeats with it`),
  );
}

/** `log(n, worst)` at most once per interval: n the values it stands for, worst the largest of them. */
function throttledWorst(intervalMs: number, log: (count: number, worst: number) => void): (value: number) => void {
  let worst = 0;
  const logged = throttled(intervalMs, (count) => {
    log(count, worst);
    worst = 0;
  });
  return (value) => {
    worst = Math.max(worst, value);
    logged();
  };
}

/** `log(n)` at most once per interval, n being the calls it stands for (a flood of refusals is one line in ten seconds). */
function throttled(intervalMs: number, log: (count: number) => void): () => void {
  let loggedAt = -Infinity;
  let unlogged = 0;
  return () => {
    unlogged++;
    const now = Date.now();
    if (now - loggedAt < intervalMs) return;
    log(unlogged);
    loggedAt = now;
    unlogged = 0;
  };
}

function describeRemote(c: DroppedConnection | undefined): string {
  return `${c?.remoteAddress ?? '?'}:${c?.remotePort ?? '?'}`;
}

/** Bind each address: https ones with the listener's certificate (config validation guarantees there is one). */
async function bindAll(server: grpc.Server, addresses: readonly ListenAddress[], tls: TlsFileWatcher | undefined): Promise<string[]> {
  const urls: string[] = [];
  for (const a of addresses) {
    const secure = a.secure === true;
    if (secure && tls === undefined) throw new Error(`fulcrum: ${a.url} is https but no certificate is configured for it`);
    const credentials = secure ? tls!.serverCredentials() : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${a.host}:${a.port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    urls.push(`${secure ? 'https' : 'http'}://${a.host}:${port}`);
  }
  return urls;
}

/** What bounds one kind of listener, client or peer: where it listens, its TLS, its connection limit. */
interface ListenerBounds {
  readonly kind: 'client' | 'peer';
  readonly addresses: readonly ListenAddress[];
  /** The certificate the https:// addresses serve. */
  readonly tls: TlsFileWatcher | undefined;
  /** The TLS settings whose client-certificate rules are checked after each handshake (none: plaintext only). */
  readonly files: TlsFiles | undefined;
  readonly connectionsMax: number;
  /** The limit's name for the log when it drops a connection. */
  readonly limitName: string;
}

function clientListenerBounds(config: ServerConfig, tls: TlsFileWatcher | undefined): ListenerBounds {
  return { kind: 'client', addresses: config.listen.client, tls, files: config.clientTls, connectionsMax: config.clientConnectionsMax, limitName: '--max-client-connections' };
}

function peerListenerBounds(config: ServerConfig, tls: TlsFileWatcher | undefined): ListenerBounds {
  return { kind: 'peer', addresses: config.listen.peer, tls, files: config.peerTls, connectionsMax: PEER_CONNECTIONS_MAX, limitName: 'PEER_CONNECTIONS_MAX' };
}

/** The connection limit's drop reporter and, with TLS settings, the client-certificate check, for either engine. */
function listenerGuards(b: ListenerBounds, logger: Logger, metrics: MemberMetrics) {
  const files = b.files;
  return {
    onDropped: dropReporter(b.kind, `${b.connectionsMax} (${b.limitName})`, logger, metrics),
    certificates:
      files === undefined
        ? undefined
        : { refusal: (cert: DetailedPeerCertificate) => clientCertificateRefusal(cert, files, b.tls?.current.revoked), onRefused: certificateRefusalReporter(b.kind, logger) },
  };
}

/** grpc-js's server on Node's HTTP/2: bound, bounded, then `prepare` (the fast path, windows) on what was bound. */
async function serveOnGrpcJs(server: grpc.Server, b: ListenerBounds, logger: Logger, metrics: MemberMetrics, prepare: () => void): Promise<Listeners> {
  const urls = await bindAll(server, b.addresses, b.tls);
  const guards = listenerGuards(b, logger, metrics);
  if (guards.certificates !== undefined) checkClientCertificates(server, guards.certificates.refusal, guards.certificates.onRefused);
  limitConnections(server, b.connectionsMax, guards.onDropped);
  prepare();
  return { urls, close: (graceMs) => shutdownGrpc(server, graceMs) };
}

/** Fulcrum's own HTTP/2 engine on `b`'s addresses, every call to `options.onStream`. */
async function serveOnEngine(b: ListenerBounds, options: Omit<H2ServerOptions, 'onInternalError'>, logger: Logger, metrics: MemberMetrics): Promise<Listeners> {
  const engine = new H2Server({
    ...options,
    onInternalError: (session, err) =>
      logger.error({ err, remoteAddress: session.socket.remoteAddress, remotePort: session.socket.remotePort }, `fulcrum: a ${b.kind} connection was closed on an internal error in the HTTP/2 engine`),
  });
  const guards = listenerGuards(b, logger, metrics);
  const listeners = await listenEngine(engine, {
    addresses: b.addresses,
    tls: b.tls,
    connectionsMax: b.connectionsMax,
    onDropped: guards.onDropped,
    ...(guards.certificates === undefined ? {} : { certificateRefusal: guards.certificates.refusal, onRefused: guards.certificates.onRefused }),
  });
  return {
    urls: listeners.urls,
    async close(graceMs) {
      listeners.close();
      await engine.close(graceMs);
    },
  };
}

/** --http2-engine=node: grpc-js's server on Node's HTTP/2, the fast path in front of it unless FULCRUM_PEER_RECV=grpc-js. */
function servePeersOnGrpcJs(config: ServerConfig, server: grpc.Server, service: PeerService, tls: TlsFileWatcher | undefined, logger: Logger, metrics: MemberMetrics): Promise<Listeners> {
  return serveOnGrpcJs(server, peerListenerBounds(config, tls), logger, metrics, () => {
    widenReceiveWindows(server, PEER_RECEIVE_WINDOW_BYTES);
    service.install(server);
  });
}

/**
 * The peer port on Fulcrum's own HTTP/2 engine (--http2-engine=fulcrum, the default), every RaftTransport call on
 * the fast path (the grpc-js server the service was added to is never bound). The same bounds as the grpc-js
 * listener: 1 MiB windows, PEER_CONNECTIONS_MAX, the peer certificate checks.
 */
function servePeersOnEngine(config: ServerConfig, service: PeerService, tls: TlsFileWatcher | undefined, logger: Logger, metrics: MemberMetrics): Promise<Listeners> {
  return serveOnEngine(
    peerListenerBounds(config, tls),
    { onStream: service.engineStreamHandler, connection: { limits: { streamWindowBytes: PEER_RECEIVE_WINDOW_BYTES, connectionWindowBytes: PEER_RECEIVE_WINDOW_BYTES } } },
    logger,
    metrics,
  );
}

/**
 * The client API's or the peer port's listeners, whichever HTTP/2 serves them (--http2-engine; for peers also
 * FULCRUM_PEER_RECV, node/transport/peer-server.ts).
 */
interface Listeners {
  readonly urls: string[];
  /** Stop taking new calls, let in-flight ones finish for up to graceMs, then cut them off. */
  close(graceMs: number): Promise<void>;
}

/** --http2-engine=node: grpc-js's server on Node's HTTP/2, the fast path in front of it when --grpc-fast-path. */
function serveClientsOnGrpcJs(
  config: ServerConfig,
  server: grpc.Server,
  fastPath: FastPath,
  tls: TlsFileWatcher | undefined,
  logger: Logger,
  metrics: MemberMetrics,
  started: Array<() => unknown>,
): Promise<Listeners> {
  started.push(() => server.forceShutdown());
  return serveOnGrpcJs(server, clientListenerBounds(config, tls), logger, metrics, () => {
    if (config.grpcFastPath) fastPath.install(server);
  });
}

/** --http2-engine=fulcrum: Fulcrum's own HTTP/2 engine, every call on the fast path (grpc-js's server unused). */
function serveClientsOnEngine(
  config: ServerConfig,
  fastPath: FastPath,
  limits: ApiLimits,
  tls: TlsFileWatcher | undefined,
  logger: Logger,
  metrics: MemberMetrics,
): Promise<Listeners> {
  return serveOnEngine(
    clientListenerBounds(config, tls),
    { onStream: fastPath.engineStreamHandler, connection: { limits: { concurrentStreamsMax: limits.concurrentStreamsMax } }, keepaliveTimeMs: KEEPALIVE_TIME_MS, keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS },
    logger,
    metrics,
  );
}

/**
 * etcd's publish: once a leader exists, record this member's name and client URLs in the registry, once per start,
 * retrying until it commits. Always proposed, even when the local registry already shows the same attributes: a
 * member that is replaying its log may be looking at an old record (a replaced member replays its predecessor's
 * attributes, then the removal and the re-add that clear them).
 */
function publishAttributesUntilDone(member: Member, config: ServerConfig, logger: Logger): NodeJS.Timeout {
  let inFlight = false;
  const t = setInterval(() => {
    if (inFlight || member.leaderId() === 0) return;
    inFlight = true;
    member
      .publishAttributes(config.name, config.advertiseClientUrls)
      .then(() => clearInterval(t))
      .catch((e: unknown) => logger.debug({ err: e }, 'fulcrum: publishing member attributes failed; retrying'))
      .finally(() => (inFlight = false));
  }, PUBLISH_RETRY_MS);
  t.unref();
  return t;
}

/** Raise the NOSPACE alarm (through the log, so every member agrees) once the database outgrows the quota. */
function watchQuota(member: Member, config: ServerConfig, logger: Logger): NodeJS.Timeout {
  let inFlight = false;
  const t = setInterval(() => {
    if (inFlight || config.quotaBackendBytes <= 0 || member.stateMachine.activeAlarms().includes('NOSPACE')) return;
    inFlight = true;
    dirBytes(join(config.dataDir, 'kv'))
      .then(async (size) => {
        if (size <= config.quotaBackendBytes) return;
        logger.warn({ size, quota: config.quotaBackendBytes }, 'fulcrum: database size exceeds --quota-backend-bytes; raising the NOSPACE alarm');
        await member.propose({ alarm: { action: 'activate', alarm: 'NOSPACE' } });
      })
      .catch((e: unknown) => logger.debug({ err: e }, 'fulcrum: quota check failed'))
      .finally(() => (inFlight = false));
  }, QUOTA_CHECK_INTERVAL_MS);
  t.unref();
  return t;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

