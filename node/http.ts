// The operator's HTTP endpoints, served on each --listen-metrics-urls address (and mountable on any other
// node:http server through createHttpHandler):
//
//   GET /metrics   Prometheus text format, from the member's registry
//   GET /health    etcd's JSON: 200 {"health":"true","reason":""}; 503 {"health":"false","reason":"RAFT NO LEADER"}
//                  (or "ALARM NOSPACE", ...). ?exclude=NOSPACE ignores that alarm; ?serializable=true skips the
//                  linearizable read, which otherwise proves a quorum answers.
//   GET /readyz    Kubernetes style: "ok", or 503 with one line per check. ?verbose lists the checks; ?exclude=name skips one.
//   GET /livez     "ok" while the process serves and the member is not stopped.
//
// Everything is bounded: requests in flight, header count and time, the whole request's time, the URL's length,
// and the wait for a linearizable read. A scrape storm gets 503s instead of a growing queue.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ListenAddress } from './config.js';
import type { Member } from './member.js';
import { clientCertificateRefusal, type TlsFileWatcher } from './tls.js';

export const HTTP_LIMITS = {
  /** Requests handled at once; more get 503 with Retry-After. */
  concurrentRequestsMax: 32,
  /** Connections open at once per metrics URL; more are closed as they are accepted (a scraper needs one or two). */
  connectionsMax: 256,
  /** A whole request, from first byte to last: a slow client cannot hold a slot for long. */
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  headersCountMax: 64,
  /** Longer URLs get 414: no endpoint here takes more than a short query. */
  urlChars: 2_048,
  /** How long /health and /readyz wait for a linearizable read before reporting failure. */
  linearizableReadTimeoutMs: 2_000,
} as const;

export type HttpLimits = { readonly [K in keyof typeof HTTP_LIMITS]: number };

/** What the endpoints read from a member: a narrow view, so hosts and tests can provide their own. */
export type HealthMember = Pick<Member, 'leaderId' | 'stateMachine' | 'linearizableBarrier'>;

export interface HttpOptions {
  readonly registry: Registry;
  readonly member: HealthMember;
  readonly logger?: Logger;
  readonly limits?: Partial<HttpLimits>;
  /**
   * Why the member cannot serve at all (stopped after a fatal error, removed from the cluster), or undefined
   * while it can. /livez and /readyz fail with this reason; the server wires it from onFatal / subscribeRemoved.
   */
  readonly notLiveReason?: () => string | undefined;
  /**
   * For https:// addresses: the client listener's certificate, as etcd serves https --listen-metrics-urls with its
   * client TLS settings (so --client-cert-auth applies here too). Rotated files are used for new connections.
   */
  readonly tls?: TlsFileWatcher;
}

export interface HttpEndpoint {
  /** http(s)://host:port as bound (the real port when 0 was asked for). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

// ---------------------------------------------------------------------------------------------------------
// Checks.

interface CheckResult {
  readonly ok: boolean;
  readonly reason: string;
}

const PASS: CheckResult = { ok: true, reason: '' };

/** Waits for a ReadIndex round and the apply behind it, or fails after the timeout. */
async function linearizableRead(member: HealthMember, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `LINEARIZABLE READ TIMEOUT after ${timeoutMs}ms` }), timeoutMs);
  });
  const read = member.linearizableBarrier().then(
    () => PASS,
    (e: unknown) => ({ ok: false, reason: `LINEARIZABLE READ ERROR: ${e instanceof Error ? e.message : String(e)}` }),
  );
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function alarmCheck(member: HealthMember, excluded: ReadonlySet<string>): CheckResult {
  const active = member.stateMachine.activeAlarms().filter((a) => !excluded.has(a));
  return active.length === 0 ? PASS : { ok: false, reason: active.map((a) => `ALARM ${a}`).join(', ') };
}

function leaderCheck(member: HealthMember): CheckResult {
  return member.leaderId() !== 0 ? PASS : { ok: false, reason: 'RAFT NO LEADER' };
}

// ---------------------------------------------------------------------------------------------------------
// Endpoints.

async function health(o: HttpOptions, limits: HttpLimits, query: URLSearchParams): Promise<Reply> {
  const excluded = new Set(query.getAll('exclude'));
  const live = o.notLiveReason?.();
  let result: CheckResult = live !== undefined ? { ok: false, reason: live } : alarmCheck(o.member, excluded);
  if (result.ok) result = leaderCheck(o.member);
  if (result.ok && query.get('serializable') !== 'true') result = await linearizableRead(o.member, limits.linearizableReadTimeoutMs);
  const body = JSON.stringify({ health: String(result.ok), reason: result.reason });
  return { status: result.ok ? 200 : 503, contentType: JSON_TYPE, body };
}

type NamedCheck = readonly [name: string, run: () => CheckResult | Promise<CheckResult>];

/** Kubernetes' format: "[+]name ok" / "[-]name failed: reason", then a summary line. */
async function runChecks(endpoint: string, checks: readonly NamedCheck[], query: URLSearchParams): Promise<Reply> {
  const excluded = new Set(query.getAll('exclude'));
  const lines: string[] = [];
  let failed = false;
  for (const [name, run] of checks) {
    if (excluded.has(name)) {
      lines.push(`[+]${name} excluded: ok`);
      continue;
    }
    const r = await run();
    failed ||= !r.ok;
    lines.push(r.ok ? `[+]${name} ok` : `[-]${name} failed: ${r.reason}`);
  }
  if (!failed && !query.has('verbose')) return { status: 200, contentType: TEXT_TYPE, body: 'ok' };
  lines.push(`${endpoint} check ${failed ? 'failed' : 'passed'}`);
  return { status: failed ? 503 : 200, contentType: TEXT_TYPE, body: lines.join('\n') + '\n' };
}

function liveCheck(o: HttpOptions): CheckResult {
  const reason = o.notLiveReason?.();
  return reason === undefined ? PASS : { ok: false, reason };
}

function livez(o: HttpOptions, query: URLSearchParams): Promise<Reply> {
  // A serializable read: the state machine answers from memory, so this passes without a quorum.
  const serializableRead = (): CheckResult => (Number.isInteger(o.member.stateMachine.revision) ? PASS : { ok: false, reason: 'no revision' });
  return runChecks('livez', [['member', () => liveCheck(o)], ['serializable_read', serializableRead]], query);
}

function readyz(o: HttpOptions, limits: HttpLimits, query: URLSearchParams): Promise<Reply> {
  // Unlike /health, NOSPACE does not make a member unready: it still serves reads and deletes.
  const corrupt = (): CheckResult => alarmCheck(o.member, new Set(['NOSPACE']));
  return runChecks(
    'readyz',
    [
      ['member', () => liveCheck(o)],
      ['leader', () => leaderCheck(o.member)],
      ['data_corruption', corrupt],
      ['linearizable_read', () => linearizableRead(o.member, limits.linearizableReadTimeoutMs)],
    ],
    query,
  );
}

async function metrics(o: HttpOptions): Promise<Reply> {
  return { status: 200, contentType: o.registry.contentType, body: await o.registry.metrics() };
}

async function route(o: HttpOptions, limits: HttpLimits, path: string, query: URLSearchParams): Promise<Reply> {
  switch (path) {
    case '/metrics':
      return metrics(o);
    case '/health':
      return health(o, limits, query);
    case '/readyz':
      return readyz(o, limits, query);
    case '/livez':
      return livez(o, query);
    default:
      return { status: 404, contentType: TEXT_TYPE, body: 'not found\n' };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Serving.

function send(req: IncomingMessage, res: ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(r.status, { 'content-type': r.contentType, 'cache-control': 'no-store', ...r.headers });
  res.end(req.method === 'HEAD' ? undefined : r.body);
}

/** A request listener for the endpoints above; mount it on any node:http server. */
export function createHttpHandler(options: HttpOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...options.limits };
  let inFlight = 0;
  return (req, res) => {
    const rawUrl = req.url ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(req, res, { status: 405, contentType: TEXT_TYPE, body: 'method not allowed\n', headers: { allow: 'GET, HEAD' } });
    }
    if (rawUrl.length > limits.urlChars) return send(req, res, { status: 414, contentType: TEXT_TYPE, body: 'URI too long\n' });
    if (inFlight >= limits.concurrentRequestsMax) {
      return send(req, res, { status: 503, contentType: TEXT_TYPE, body: 'too many requests\n', headers: { 'retry-after': '1' } });
    }
    inFlight++;
    const url = new URL(rawUrl, 'http://localhost');
    route(options, limits, url.pathname, url.searchParams)
      .then(
        (reply) => send(req, res, reply),
        (e: unknown) => {
          options.logger?.warn({ err: e, path: url.pathname }, 'http request failed');
          send(req, res, { status: 500, contentType: TEXT_TYPE, body: 'internal error\n' });
        },
      )
      .finally(() => inFlight--);
  };
}

function formatUrl(host: string, port: number, secure: boolean): string {
  return `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A plain or TLS server; with TLS, each new set of files the watcher accepts serves the next handshakes. */
function createEndpointServer(secure: boolean, limits: HttpLimits, options: HttpOptions): { server: Server; stopFollowing: () => void } {
  const serverOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: 16 * 1024,
  };
  if (!secure) return { server: createServer(serverOptions, createHttpHandler(options)), stopFollowing: () => undefined };
  const tls = options.tls;
  if (tls === undefined) throw new Error('fulcrum: an https metrics URL needs the client TLS settings (--cert-file, --key-file)');
  const auth = tls.files.clientCertAuth;
  const server = createHttpsServer({ ...serverOptions, ...tls.secureContextOptions(), requestCert: auth, rejectUnauthorized: auth }, createHttpHandler(options));
  // The client listener's CRL and name checks hold here too (the gRPC listeners: node/grpc-listeners.ts).
  server.on('secureConnection', (socket: TLSSocket) => {
    if (clientCertificateRefusal(socket.getPeerCertificate(true), tls.files, tls.current.revoked) !== undefined) socket.destroy();
  });
  const stopFollowing = tls.onChange(() => server.setSecureContext(tls.secureContextOptions()));
  return { server, stopFollowing };
}

/** Serve the endpoints on one address (https when address.secure). Resolves once listening. */
export async function startHttpServer(address: { host: string; port: number; secure?: boolean }, options: HttpOptions): Promise<HttpEndpoint> {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...options.limits };
  const secure = address.secure === true;
  const { server, stopFollowing } = createEndpointServer(secure, limits, options);
  server.maxHeadersCount = limits.headersCountMax;
  server.maxConnections = limits.connectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => options.logger?.error({ err: e }, 'http server error'));
  const bound = server.address() as AddressInfo;
  const url = formatUrl(address.host, bound.port, secure);
  options.logger?.info({ url }, 'serving /metrics, /health, /readyz, /livez');
  return {
    url,
    host: address.host,
    port: bound.port,
    close: () => {
      stopFollowing();
      return closeServer(server);
    },
  };
}

/** Stop accepting, drop idle and active connections (scrapes are retried), resolve when closed. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((e) => (e === undefined || (e as NodeJS.ErrnoException).code === 'ERR_SERVER_NOT_RUNNING' ? resolve() : reject(e)));
    server.closeAllConnections();
  });
}

/** One server per --listen-metrics-urls address; on failure, the ones already started are closed again. */
export async function startMetricsServers(addresses: readonly ListenAddress[], options: HttpOptions): Promise<HttpEndpoint[]> {
  const started: HttpEndpoint[] = [];
  try {
    for (const a of addresses) started.push(await startHttpServer(a, options));
  } catch (e) {
    await Promise.all(started.map((s) => s.close()));
    throw e;
  }
  return started;
}
