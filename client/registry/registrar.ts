// The registrar: a sidecar that registers an application that knows nothing of Fulcrum (the Registrar pattern).
// It polls the application's HTTP health check and keeps the instance registered while the check passes;
// it deregisters when the check fails (the app is unhealthy or gone) and when the registrar stops (SIGTERM,
// SIGINT). If the registrar itself is killed, the entry goes when its lease expires.
//
//   fulcrum registrar --service payments --address 10.0.0.7:50051 --check http://127.0.0.1:8080/healthz \
//     --endpoints 10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Client } from '../client.js';
import { InvalidArgumentError } from '../errors.js';
import { Registry, REGISTRY_PREFIX_DEFAULT, REGISTRATION_TTL_SECONDS_DEFAULT, type Registration } from './registry.js';

export const REGISTRAR_INTERVAL_MS_DEFAULT = 2_000;
/** A health check slower than this (or the interval, if shorter) counts as failed. */
const CHECK_TIMEOUT_MS_MAX = 5_000;

export interface RegistrarOptions {
  readonly endpoints: readonly string[];
  readonly service: string;
  /** host:port that clients of the service connect to. */
  readonly address: string;
  /** The app's health URL: healthy while it answers 2xx. */
  readonly check: string;
  /** Between checks (default 2000). */
  readonly intervalMs?: number;
  /** Lease TTL in seconds (default 10): how long the entry outlives a killed registrar. */
  readonly ttl?: number;
  /** Instance id (default: the address). */
  readonly id?: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly prefix?: string;
  /** Stops the registrar (like stop()). */
  readonly signal?: AbortSignal;
  /** One line per state change (default: none). */
  readonly log?: (line: string) => void;
}

export interface Registrar {
  /** Whether the app is registered now. */
  readonly registered: boolean;
  /** Deregister and stop checking; resolves once the entry is gone (or the cluster could not be reached). */
  stop(): Promise<void>;
  /** Resolves when the registrar has stopped. */
  readonly done: Promise<void>;
}

/** Healthy: the URL answered 2xx within the timeout. */
export async function checkHealth(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export function runRegistrar(o: RegistrarOptions): Registrar {
  const intervalMs = o.intervalMs ?? REGISTRAR_INTERVAL_MS_DEFAULT;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new InvalidArgumentError(`fulcrum registrar: intervalMs must be positive, got ${String(intervalMs)}`);
  new URL(o.check); // a bad URL fails here, not at every check
  const log = o.log ?? (() => undefined);
  const client = new Client({ endpoints: o.endpoints, clientName: 'fulcrum-registrar' });
  const registry = new Registry(client, { prefix: o.prefix ?? REGISTRY_PREFIX_DEFAULT });
  const id = o.id ?? o.address;
  const name = `${o.service}/${id}`;
  registry.instanceKey(o.service, id); // validates both names now
  const stopping = new AbortController();
  let registration: Registration | undefined;

  const deregister = async (why: string): Promise<void> => {
    const r = registration;
    registration = undefined;
    if (r === undefined) return;
    await r.close();
    log(`registrar: deregistered ${name} (${why})`);
  };

  const step = async (): Promise<void> => {
    const healthy = await checkHealth(o.check, Math.min(CHECK_TIMEOUT_MS_MAX, intervalMs));
    if (stopping.signal.aborted) return;
    if (!healthy) return deregister('health check failed');
    if (registration !== undefined) return;
    try {
      registration = await registry.register(o.service, { id, address: o.address, metadata: o.metadata ?? {}, ttl: o.ttl ?? REGISTRATION_TTL_SECONDS_DEFAULT, timeoutMs: intervalMs * 2 });
      registration.on('lost', () => log(`registrar: lost the registration of ${name}; registering again`));
      log(`registrar: registered ${name} at ${o.address}`);
      if (stopping.signal.aborted) await deregister('stopping');
    } catch (e) {
      log(`registrar: cannot register ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  const done = (async () => {
    try {
      while (!stopping.signal.aborted) {
        await step();
        await sleep(intervalMs, stopping.signal);
      }
      await deregister('stopping');
    } finally {
      await client.close();
    }
  })();

  const stop = async (): Promise<void> => {
    stopping.abort();
    await done;
  };
  o.signal?.addEventListener('abort', () => void stop(), { once: true });
  return {
    get registered() {
      return registration !== undefined;
    },
    stop,
    done,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

const USAGE = `usage: fulcrum registrar --service S --address HOST:PORT --check URL [options]
  --service S          the service name
  --address HOST:PORT  where clients reach the app
  --check URL          the app's health check (healthy while it answers 2xx)
  --endpoints LIST     Fulcrum (or etcd) members, comma-separated (default 127.0.0.1:2379)
  --id ID              instance id (default: the address)
  --ttl SECONDS        lease TTL (default ${REGISTRATION_TTL_SECONDS_DEFAULT})
  --interval-ms MS     between health checks (default ${REGISTRAR_INTERVAL_MS_DEFAULT})
  --metadata JSON      metadata stored with the entry
  --prefix P           registry prefix (default ${REGISTRY_PREFIX_DEFAULT})
`;

/**
 * `fulcrum registrar ...`: runs until SIGTERM or SIGINT, then deregisters and resolves 0; 2 for bad arguments.
 * `hostname` goes into the metadata (`host`) unless given, so an operator can tell registrars apart.
 */
export async function runRegistrarCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let o: RegistrarOptions;
  try {
    o = parseRegistrarArgs(argv, out);
  } catch (e) {
    err(`fulcrum registrar: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  const registrar = runRegistrar(o);
  const onSignal = (): void => void registrar.stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await registrar.done;
  return 0;
}

export function parseRegistrarArgs(argv: readonly string[], out: (s: string) => void): RegistrarOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      service: { type: 'string' },
      address: { type: 'string' },
      check: { type: 'string' },
      endpoints: { type: 'string', default: '127.0.0.1:2379' },
      id: { type: 'string' },
      ttl: { type: 'string' },
      'interval-ms': { type: 'string' },
      metadata: { type: 'string' },
      prefix: { type: 'string' },
    },
    strict: true,
  });
  for (const required of ['service', 'address', 'check'] as const) if (values[required] === undefined) throw new InvalidArgumentError(`--${required} is required`);
  const number = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`--${flag} must be a positive whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  const metadata = values.metadata === undefined ? {} : (JSON.parse(values.metadata) as Record<string, unknown>);
  return {
    endpoints: values.endpoints!.split(',').map((e) => e.trim()).filter((e) => e.length > 0),
    service: values.service!,
    address: values.address!,
    check: values.check!,
    ...(values.id === undefined ? {} : { id: values.id }),
    ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
    ...(number('ttl', values.ttl) === undefined ? {} : { ttl: number('ttl', values.ttl)! }),
    ...(number('interval-ms', values['interval-ms']) === undefined ? {} : { intervalMs: number('interval-ms', values['interval-ms'])! }),
    metadata: { host: hostname(), ...metadata },
    log: (line) => out(`${line}\n`),
  };
}
