// Typed errors of the exactly-once table. Stable codes; node/api maps them to gRPC statuses.

export type DedupErrorCode = 'STALE_SEQUENCE' | 'INVALID_DEDUP_REQUEST';

export class DedupError extends Error {
  constructor(
    readonly code: DedupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DedupError';
  }
}

/**
 * The request is older than the last one applied for this client: its response is gone, and applying it now
 * could undo a later write. The client must not retry it; it should treat the outcome as unknown.
 */
export const errStaleSequence = (clientId: string, seq: number, lastSeq: number): DedupError =>
  new DedupError('STALE_SEQUENCE', `fulcrum: request ${seq} of client "${clientId}" is older than its last applied request ${lastSeq}`);

export const errInvalidDedupRequest = (detail: string): DedupError =>
  new DedupError('INVALID_DEDUP_REQUEST', `fulcrum: invalid exactly-once request: ${detail}`);
