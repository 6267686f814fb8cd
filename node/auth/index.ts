// Per-member authentication state: tokens learnt from the log, the login throttle.
export { AUTH_GATE_DEFAULTS, AuthGate, type AuthGateOptions } from './gate.js';
export {
  LOGIN_DELAY_BASE_MS,
  LOGIN_DELAY_MAX_MS,
  LOGIN_FAILURE_MEMORY_MS,
  LOGIN_FAILURES_TRACKED_MAX,
  LoginThrottle,
  TOKEN_SWEEP_INTERVAL_MS,
  TOKENS_MAX,
  TokenStore,
} from './tokens.js';
