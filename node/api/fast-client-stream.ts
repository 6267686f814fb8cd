// A client-streaming call on the fast path (fast-path.ts): many requests, one response (the peer transport's
// SendSnapshot), with the surface of grpc-js's ServerReadableStream that Fulcrum's handlers use: 'data' and 'end',
// pause() and resume(), `for await` over the requests, destroy(), 'cancelled', metadata and peer; the answer goes
// through the handler's callback, as grpc-js's sendUnaryData. The request side is FastStreamCall's, and one
// message followed by status OK is what a unary answer is on the wire, so the response side is its too.
//
// Why: a member's peer listener can then run on Fulcrum's own HTTP/2 engine, which serves every call through this
// path (grpc-js is not behind it there); until now the fast path left client-streaming methods to grpc-js.
import * as grpc from '@grpc/grpc-js';
import { FastStreamCall } from './fast-stream.js';

/** Requests `for await` reads ahead of its loop before it pauses the stream (HTTP/2 flow control then holds the client). */
export const ITERATOR_READ_AHEAD_MAX = 4;

export type ClientStreamHandler = (call: FastClientStreamCall, callback: grpc.sendUnaryData<unknown>) => void;

export class FastClientStreamCall extends FastStreamCall {
  override start(): void {
    if (!this.admitStream()) return;
    try {
      (this.method.handler as ClientStreamHandler)(this, (err, value, trailer) => this.answer(err, value, trailer));
    } catch {
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error');
    }
  }

  /** grpc-js's sendUnaryData: the error's status, or the one response and OK. Only the first answer counts. */
  private answer(err: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata): void {
    if (this.answered) return;
    if (err !== null) {
      this.emit('error', err); // admitStream's listener turns it into the call's status
      return;
    }
    this.write(value);
    this.end(trailer);
  }

  /** End the call now, as grpc-js's destroy() of a server stream does: CANCELLED, and the requests stop. */
  destroy(): void {
    this.sendStatus(grpc.status.CANCELLED, 'Cancelled');
    this.notifyCancelled();
  }

  /**
   * The requests in order, ending when the client ends its side and throwing if the call is cancelled (the deadline
   * passed, destroy(), the client went away). A client's reset may reach the loop as the end of its requests (Node
   * ends a reset stream's readable side before it reports the reset, and grpc-js's own cancel half-closes first),
   * so a handler checks that what it read is complete, as receiveSnapshot does with its 'last' chunk. At most
   * ITERATOR_READ_AHEAD_MAX requests wait unread: past that the stream is paused until the loop catches up.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<unknown, void, undefined> {
    const unread: unknown[] = [];
    let ended = false;
    let cancelled = false;
    let pausedHere = false;
    let wake: (() => void) | undefined;
    const onData = (request: unknown): void => {
      unread.push(request);
      if (unread.length >= ITERATOR_READ_AHEAD_MAX && !pausedHere) {
        pausedHere = true;
        this.pause();
      }
      wake?.();
    };
    const onEnd = (): void => {
      ended = true;
      wake?.();
    };
    const onCancelled = (): void => {
      cancelled = true;
      wake?.();
    };
    this.on('data', onData);
    this.on('end', onEnd);
    this.on('cancelled', onCancelled);
    try {
      for (;;) {
        if (cancelled) throw Object.assign(new Error('Cancelled'), { code: grpc.status.CANCELLED, details: 'Cancelled' });
        if (unread.length > 0) {
          const next = unread.shift();
          if (pausedHere && unread.length < ITERATOR_READ_AHEAD_MAX) {
            pausedHere = false;
            this.resume();
          }
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.off('data', onData);
      this.off('end', onEnd);
      this.off('cancelled', onCancelled);
    }
  }
}
