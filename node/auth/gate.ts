// One member's authentication state beside the replicated auth store: the simple tokens it has learnt from the
// log and the failed-login throttle. The API layer asks it who a call comes from (node/api/authz.ts).
import type { CommandResult } from '../../storage/state-machine.js';
import type { AuthStore } from '../../storage/auth/index.js';
import type { Member } from '../member.js';
import { LoginThrottle, TOKEN_SWEEP_INTERVAL_MS, TokenStore } from './tokens.js';

export interface AuthGateOptions {
  /** etcd's --auth-token-ttl, in milliseconds here. */
  readonly tokenTtlMs: number;
  /**
   * etcd's --client-cert-auth: the common name of a verified client certificate stands for the user when a call
   * carries no token. Only meaningful when the client listener requires and verifies client certificates.
   */
  readonly clientCertAuth?: boolean;
}

export const AUTH_GATE_DEFAULTS: AuthGateOptions = { tokenTtlMs: 300_000, clientCertAuth: false };

export class AuthGate {
  readonly tokens: TokenStore;
  readonly throttle = new LoginThrottle();
  private unsubscribe: (() => void) | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly member: Member,
    readonly options: AuthGateOptions = AUTH_GATE_DEFAULTS,
  ) {
    this.tokens = new TokenStore(options.tokenTtlMs);
  }

  /** The replicated store as this member has applied it (a snapshot install replaces the state machine). */
  get store(): AuthStore {
    return this.member.stateMachine.auth;
  }

  start(): void {
    if (this.unsubscribe !== undefined) return;
    this.unsubscribe = this.member.subscribeApplied((results) => this.onApplied(results));
    this.sweeper = setInterval(() => this.tokens.sweep(), TOKEN_SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.sweeper);
    this.tokens.clear();
  }

  /** Every member learns tokens, and forgets them, from the same applied commands. */
  private onApplied(results: readonly CommandResult[]): void {
    for (const r of results) {
      if (r.error !== undefined || r.duplicate === true) continue;
      const res = r.response as { name?: string; token?: string } | null | undefined;
      if (r.op === 'authenticate' && res?.token !== undefined && res.name !== undefined) this.tokens.add(res.token, res.name);
      else if ((r.op === 'userDelete' || r.op === 'userChangePassword') && res?.name !== undefined) this.tokens.invalidateUser(res.name);
      else if (r.op === 'authDisable') this.tokens.clear();
    }
  }
}
