// Test-only hooks into lease expiry, set by node/failpoints.ts when FULCRUM_FAILPOINTS asks for them and never
// otherwise. They exist so the chaos suite can show that its lease checker catches what it claims to catch.
export const leaseTestHooks: {
  /**
   * The leader never proposes the revoke of an expired lease: leases let go are never deleted (negative control
   * for the lease checker's late-expiry bound).
   */
  skipExpiry: boolean;
} = { skipExpiry: false };
