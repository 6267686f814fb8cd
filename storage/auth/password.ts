// Password hashes: scrypt with a random salt, computed by the member that receives the request BEFORE it proposes
// (the log and the store only ever hold the hash), compared in constant time. Both run on libuv's thread pool
// (async scrypt), so a login never blocks the event loop.
//
// Stored form: scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>. The parameters travel with the hash so they can be
// raised later without invalidating existing users.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt cost (N), block size (r), parallelism (p): about 50 ms and 16 MiB per hash on a current core. */
export const SCRYPT_COST = 16_384;
const SCRYPT_BLOCK_SIZE = 8;
const SCRYPT_PARALLELISM = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** A stored hash may ask for at most this cost, so a corrupt or hostile record cannot pin the thread pool. */
const SCRYPT_COST_MAX = 1 << 20;
/** Longest password accepted (scrypt takes any length; this bounds the work of one request). */
export const PASSWORD_BYTES_MAX = 4096;
/**
 * scrypt runs at most this many at once: it shares libuv's thread pool (4 threads by default) with LevelDB and the
 * file system, and a burst of logins must not starve the apply path.
 */
export const SCRYPT_IN_FLIGHT_MAX = 2;
/** Hashes waiting for a slot at most; beyond it a login or user change is refused with "too many requests". */
export const SCRYPT_QUEUE_MAX = 256;

let inFlight = 0;
const queue: Array<() => void> = [];

/** Refused when too many password hashes are already waiting (code TOO_MANY_REQUESTS, etcd's "too many requests"). */
export class PasswordBusyError extends Error {
  readonly code = 'TOO_MANY_REQUESTS';
  constructor() {
    super('etcdserver: too many requests');
    this.name = 'PasswordBusyError';
  }
}

async function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  await acquireSlot();
  try {
    return await deriveNow(password, salt, options);
  } finally {
    releaseSlot();
  }
}

async function acquireSlot(): Promise<void> {
  if (inFlight < SCRYPT_IN_FLIGHT_MAX) {
    inFlight++;
    return;
  }
  if (queue.length >= SCRYPT_QUEUE_MAX) throw new PasswordBusyError();
  await new Promise<void>((resolve) => queue.push(resolve)); // the releasing hash hands its slot over
}

function releaseSlot(): void {
  const next = queue.shift();
  if (next !== undefined) next();
  else inFlight--;
}

function deriveNow(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const maxmem = 256 * (options.N ?? SCRYPT_COST) * (options.r ?? SCRYPT_BLOCK_SIZE) + 1024 * 1024;
    scrypt(password, salt, HASH_BYTES, { ...options, maxmem }, (err, key) => (err !== null ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, { N: SCRYPT_COST, r: SCRYPT_BLOCK_SIZE, p: SCRYPT_PARALLELISM });
  return ['scrypt', SCRYPT_COST, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM, salt.toString('base64'), hash.toString('base64')].join('$');
}

/** Whether `password` matches a stored hash. A malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!Number.isSafeInteger(n) || n < 2 || n > SCRYPT_COST_MAX || (n & (n - 1)) !== 0) return false;
  if (!Number.isSafeInteger(r) || r < 1 || r > 32 || !Number.isSafeInteger(p) || p < 1 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.byteLength !== HASH_BYTES) return false;
  const actual = await derive(password, salt, { N: n, r, p });
  return timingSafeEqual(actual, expected);
}
