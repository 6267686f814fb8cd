// A broken safety or liveness property, named by the check that saw it. The simulator stops the run at the
// first violation: everything after it is noise.

export type CheckName =
  | 'election-safety'
  | 'single-vote'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'apply-order'
  | 'commit-monotonic'
  | 'commit-own-term'
  | 'learner-no-vote'
  | 'vote-from-voter'
  | 'read-linearizable'
  | 'liveness'
  | 'core-panic';

export class SafetyViolation extends Error {
  constructor(
    readonly check: CheckName,
    readonly detail: string,
  ) {
    super(`${check}: ${detail}`);
    this.name = 'SafetyViolation';
  }
}

export function violation(check: CheckName, detail: string): never {
  throw new SafetyViolation(check, detail);
}
