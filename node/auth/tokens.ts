// Simple tokens (etcd's default token provider): `<random>.<log index>`, assigned through the Raft log so every
// member learns every token, kept only in memory, valid for a TTL that each use renews. A restart forgets them;
// clients authenticate again (etcd clients do so on "invalid auth token").

/** Tokens one member keeps at most; beyond it the token closest to expiry is dropped (its client logs in again). */
export const TOKENS_MAX = 100_000;
/** How often expired tokens are swept out (a lookup also refuses an expired token at once). */
export const TOKEN_SWEEP_INTERVAL_MS = 1_000;

interface TokenEntry {
  readonly user: string;
  expiresAtMs: number;
}

export class TokenStore {
  private readonly tokens = new Map<string, TokenEntry>();

  constructor(
    private readonly ttlMs: number,
    private readonly nowMs: () => number = () => Date.now(),
  ) {
    if (!(ttlMs > 0)) throw new Error(`fulcrum: token TTL must be positive, got ${ttlMs}`);
  }

  get size(): number {
    return this.tokens.size;
  }

  add(token: string, user: string): void {
    if (this.tokens.size >= TOKENS_MAX && !this.tokens.has(token)) this.dropOldest();
    this.tokens.set(token, { user, expiresAtMs: this.nowMs() + this.ttlMs });
  }

  /** Whether the token is held (live or not yet swept), without renewing it. */
  has(token: string): boolean {
    return this.tokens.has(token);
  }

  /** The user a live token stands for, renewing its TTL; undefined when unknown or expired. */
  use(token: string): string | undefined {
    const e = this.tokens.get(token);
    if (e === undefined) return undefined;
    const now = this.nowMs();
    if (e.expiresAtMs <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    e.expiresAtMs = now + this.ttlMs;
    return e.user;
  }

  /** A deleted user or a changed password ends the user's sessions (as etcd's invalidateUser). */
  invalidateUser(user: string): void {
    for (const [t, e] of this.tokens) if (e.user === user) this.tokens.delete(t);
  }

  clear(): void {
    this.tokens.clear();
  }

  sweep(): void {
    const now = this.nowMs();
    for (const [t, e] of this.tokens) if (e.expiresAtMs <= now) this.tokens.delete(t);
  }

  private dropOldest(): void {
    let oldest: [string, number] | undefined;
    for (const [t, e] of this.tokens) if (oldest === undefined || e.expiresAtMs < oldest[1]) oldest = [t, e.expiresAtMs];
    if (oldest !== undefined) this.tokens.delete(oldest[0]);
  }
}

/** Failed logins tracked per user and per peer address at most (the oldest are forgotten first). */
export const LOGIN_FAILURES_TRACKED_MAX = 10_000;
/** Delay before answering a login after the first failure; it doubles with each further failure. */
export const LOGIN_DELAY_BASE_MS = 100;
/**
 * The longest a login is held back. The address count holds back every user behind that address (a NAT, a proxy,
 * a sidecar: all of them may share it), the right password included, so the delay must stay well inside the
 * deadlines clients give a call (etcdctl: 5 s for the whole command, login included); it still caps guessing
 * from one address or at one user name at about one password a second.
 */
export const LOGIN_DELAY_MAX_MS = 1_000;
/** Failures older than this are forgotten. */
export const LOGIN_FAILURE_MEMORY_MS = 15 * 60_000;

/**
 * Slows down password guessing: after n failed logins for a user name, or from one peer address, the next attempt
 * for either waits base * 2^(n-1) ms (at most LOGIN_DELAY_MAX_MS) before the password is even checked. A success
 * clears the user's count; the peer's count only ages out, so one good account does not unlock guessing others.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; lastMs: number }>();

  constructor(private readonly nowMs: () => number = () => Date.now()) {}

  delayMs(user: string, peer: string): number {
    const n = Math.max(this.count(`u:${user}`), this.count(`p:${peer}`));
    if (n === 0) return 0;
    return Math.min(LOGIN_DELAY_MAX_MS, LOGIN_DELAY_BASE_MS * 2 ** Math.min(n - 1, 16));
  }

  failed(user: string, peer: string): void {
    for (const k of [`u:${user}`, `p:${peer}`]) {
      const prev = this.count(k);
      this.failures.delete(k); // re-insert: the map's order is the age order that eviction uses
      this.failures.set(k, { count: prev + 1, lastMs: this.nowMs() });
    }
    while (this.failures.size > LOGIN_FAILURES_TRACKED_MAX) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(user: string): void {
    this.failures.delete(`u:${user}`);
  }

  private count(k: string): number {
    const f = this.failures.get(k);
    if (f === undefined) return 0;
    if (this.nowMs() - f.lastMs > LOGIN_FAILURE_MEMORY_MS) {
      this.failures.delete(k);
      return 0;
    }
    return f.count;
  }
}

/** The log index a simple token names (`<random>.<index>`), or undefined when it names none. */
export function tokenIndex(token: string): number | undefined {
  const dot = token.lastIndexOf('.');
  if (dot < 0) return undefined;
  const digits = token.slice(dot + 1);
  if (!/^\d{1,15}$/.test(digits)) return undefined;
  return Number(digits);
}
