// The client's one config object: defaults, then `validateClientOptions` returns a frozen copy (or throws an
// InvalidArgumentError that names the bad option). Units go last in names.
import { Credentials, type AuthOptions } from './auth.js';
import { InvalidArgumentError } from './errors.js';

export interface TlsOptions {
  /** PEM of the CA that signed the servers' certificates (default: Node's root store). */
  readonly ca?: string | Buffer;
  /** PEM client certificate and key, for servers that ask for them (mutual TLS). Give both or neither. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** The name to check the server certificate against when it differs from the endpoint's host. */
  readonly serverName?: string;
}

export interface ClientOptions {
  /** `host:port`, `http://host:port` or `https://host:port` (https implies TLS). At least one. */
  readonly endpoints: readonly string[];
  readonly tls?: TlsOptions;
  /**
   * etcd's user name and password: the client authenticates and sends the token with every call and stream, and
   * authenticates again when a member no longer knows the token. Use with TLS: the password crosses the wire.
   */
  readonly auth?: AuthOptions;
  /** Deadline of a whole call, retries included, unless the call gives its own `timeoutMs`. */
  readonly requestTimeoutMs?: number;
  /**
   * Deadline of one attempt on one member. A member that does not answer within it (paused, partitioned, slow)
   * is avoided and the call moves on to another, so it bounds how long one bad member can stall a call.
   */
  readonly attemptTimeoutMs?: number;
  /** How long to wait for a connection to a member before trying another one. */
  readonly connectTimeoutMs?: number;
  /** How often an avoided member is probed (Status with hasleader) to bring it back. */
  readonly healthProbeIntervalMs?: number;
  /**
   * 'auto' (default): writes carry a request id, and are retried after a lost answer only on members that say
   * they apply them exactly once (Fulcrum's ServerInfo feature 'exactly-once'); etcd does not, so there a write
   * that may have been sent is never retried. 'off': never retry a write that may have been sent.
   */
  readonly exactlyOnce?: 'auto' | 'off';
  /**
   * A readable prefix for this client's exactly-once identity (a random suffix is added). The server remembers
   * a bounded number of clients (Fulcrum's DEDUP_CLIENTS_MAX), so do not create clients in a loop.
   */
  readonly clientName?: string;
  /**
   * Writes in flight at once with exactly-once identities. Each uses its own sub-identity (the server refuses a
   * sequence number lower than one it applied, so one identity can carry only one write at a time); further
   * writes wait for one to finish.
   */
  readonly writesInFlightMax?: number;
  /** Writes waiting for an identity; more fail at once with TOO_MANY_REQUESTS. */
  readonly writesQueuedMax?: number;
  /** Events a watch buffers for a slow async iterator before it stops reading from the server. */
  readonly watchBufferEventsMax?: number;
  /** A watch stream silent this long is asked for progress (and its member for its leader). */
  readonly watchIdleProbeMs?: number;
  /** No answer to that probe within this: the watch moves to another member, resuming where it was. */
  readonly watchProbeTimeoutMs?: number;
}

export interface ResolvedClientOptions {
  readonly endpoints: readonly string[];
  readonly tls: TlsOptions | undefined;
  /** The password does not show when the options are logged or inspected. */
  readonly auth: Credentials | undefined;
  readonly requestTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly healthProbeIntervalMs: number;
  readonly exactlyOnce: 'auto' | 'off';
  readonly clientName: string;
  readonly writesInFlightMax: number;
  readonly writesQueuedMax: number;
  readonly watchBufferEventsMax: number;
  readonly watchIdleProbeMs: number;
  readonly watchProbeTimeoutMs: number;
}

export const CLIENT_DEFAULTS = Object.freeze({
  requestTimeoutMs: 30_000,
  attemptTimeoutMs: 5_000,
  connectTimeoutMs: 2_000,
  healthProbeIntervalMs: 1_000,
  exactlyOnce: 'auto' as const,
  clientName: 'fulcrum-client',
  writesInFlightMax: 64,
  writesQueuedMax: 10_000,
  watchBufferEventsMax: 10_000,
  watchIdleProbeMs: 5_000,
  watchProbeTimeoutMs: 5_000,
});

/** Fulcrum's DEDUP_CLIENT_ID_BYTES_MAX is 128; the random suffix and lane number take up to 45 of them. */
const CLIENT_NAME_BYTES_MAX = 64;

export function validateClientOptions(o: ClientOptions): ResolvedClientOptions {
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('fulcrum client: options must be an object with endpoints');
  if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) throw new InvalidArgumentError('fulcrum client: endpoints must be a non-empty array');
  for (const e of o.endpoints) parseEndpoint(e);
  const r: ResolvedClientOptions = {
    endpoints: [...new Set(o.endpoints)],
    tls: o.tls,
    auth: o.auth === undefined ? undefined : Credentials.from(o.auth),
    requestTimeoutMs: positive('requestTimeoutMs', o.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs),
    attemptTimeoutMs: positive('attemptTimeoutMs', o.attemptTimeoutMs ?? CLIENT_DEFAULTS.attemptTimeoutMs),
    connectTimeoutMs: positive('connectTimeoutMs', o.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs),
    healthProbeIntervalMs: positive('healthProbeIntervalMs', o.healthProbeIntervalMs ?? CLIENT_DEFAULTS.healthProbeIntervalMs),
    exactlyOnce: o.exactlyOnce ?? CLIENT_DEFAULTS.exactlyOnce,
    clientName: o.clientName ?? CLIENT_DEFAULTS.clientName,
    writesInFlightMax: positive('writesInFlightMax', o.writesInFlightMax ?? CLIENT_DEFAULTS.writesInFlightMax),
    writesQueuedMax: positive('writesQueuedMax', o.writesQueuedMax ?? CLIENT_DEFAULTS.writesQueuedMax),
    watchBufferEventsMax: positive('watchBufferEventsMax', o.watchBufferEventsMax ?? CLIENT_DEFAULTS.watchBufferEventsMax),
    watchIdleProbeMs: positive('watchIdleProbeMs', o.watchIdleProbeMs ?? CLIENT_DEFAULTS.watchIdleProbeMs),
    watchProbeTimeoutMs: positive('watchProbeTimeoutMs', o.watchProbeTimeoutMs ?? CLIENT_DEFAULTS.watchProbeTimeoutMs),
  };
  if (r.exactlyOnce !== 'auto' && r.exactlyOnce !== 'off') throw new InvalidArgumentError(`fulcrum client: exactlyOnce must be 'auto' or 'off', got ${String(r.exactlyOnce)}`);
  if (!/^[\w.-]+$/.test(r.clientName) || r.clientName.length > CLIENT_NAME_BYTES_MAX) {
    throw new InvalidArgumentError(`fulcrum client: clientName must be 1-${CLIENT_NAME_BYTES_MAX} of [A-Za-z0-9_.-], got ${JSON.stringify(r.clientName)}`);
  }
  if ((o.tls?.cert === undefined) !== (o.tls?.key === undefined)) throw new InvalidArgumentError('fulcrum client: tls.cert and tls.key go together');
  return Object.freeze(r);
}

function positive(name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`fulcrum client: ${name} must be a positive number, got ${String(v)}`);
  return v;
}

export interface ParsedEndpoint {
  /** host:port, what grpc-js dials. */
  readonly address: string;
  readonly secure: boolean;
}

export function parseEndpoint(e: string): ParsedEndpoint {
  if (typeof e !== 'string') throw new InvalidArgumentError(`fulcrum client: an endpoint must be a string, got ${typeof e}`);
  const m = /^(?:(https?):\/\/)?([^/\s]+):(\d{1,5})\/?$/.exec(e);
  if (m === null || Number(m[3]) > 65_535) throw new InvalidArgumentError(`fulcrum client: bad endpoint ${JSON.stringify(e)}: want host:port, http://host:port or https://host:port`);
  return { address: `${m[2]}:${m[3]}`, secure: m[1] === 'https' };
}
