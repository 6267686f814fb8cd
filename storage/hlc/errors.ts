// Typed errors of the clock and the revision-at-time index. Stable codes; node/api maps them to gRPC statuses.

export type HlcErrorCode = 'RESERVATION_EXHAUSTED' | 'CLOCK_OFFSET_TOO_LARGE' | 'COMPACTED' | 'BEFORE_HISTORY';

export class HlcError extends Error {
  constructor(
    readonly code: HlcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HlcError';
  }
}

/** Issuing the next value needs a reservation that is not yet durable. Retry after the reservation is persisted. */
export const errReservationExhausted = (boundMs: number): HlcError =>
  new HlcError('RESERVATION_EXHAUSTED', `hlc: issued values reached the persisted reservation ${boundMs}; persist a new reservation first`);

/** A remote value is further ahead of our physical clock than the configured limit: a broken clock somewhere. */
export const errClockOffsetTooLarge = (remoteWallMs: number, physicalMs: number, limitMs: number): HlcError =>
  new HlcError(
    'CLOCK_OFFSET_TOO_LARGE',
    `hlc: remote wall time ${remoteWallMs} is ${remoteWallMs - physicalMs}ms ahead of the local clock (limit ${limitMs}ms)`,
  );

/** The wall time falls before the retained history: the revision current then has been compacted. etcd's message. */
export const errTimeCompacted = (): HlcError => new HlcError('COMPACTED', 'etcdserver: mvcc: required revision has been compacted');

/** The wall time is before the first applied revision: no revision was current then. */
export const errBeforeHistory = (wallMs: number): HlcError =>
  new HlcError('BEFORE_HISTORY', `fulcrum: no revision is known at wall time ${wallMs}: it precedes the first recorded revision`);
