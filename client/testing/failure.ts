// Test code only: what a client call failed with.
import { expect } from 'vitest';
import { FulcrumClientError } from '../errors.js';

/** The error a promise rejects with; fails the test if it resolves or rejects with anything but a client error. */
export async function failure(p: Promise<unknown>): Promise<FulcrumClientError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FulcrumClientError);
  return e as FulcrumClientError;
}
