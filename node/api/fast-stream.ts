// The streaming calls of the fast path (fast-path.ts), served straight from their HTTP/2 stream: the response side
// they share (FastResponseStream: the surface of grpc-js's ServerWritableStream that Fulcrum's handlers use,
// write() with back-pressure and 'drain', end(), emit('error', status) to end the call with that status,
// 'cancelled' and 'close'), and the bidirectional call (FastStreamCall: Watch, LeaseKeepAlive), which adds
// grpc-js's ServerDuplexStream's request side: 'data' and 'end' events, pause() and resume(). The server-streaming
// call (Snapshot, Observe) is in fast-server-stream.ts.
//
// Why: grpc-js's server stream writes one message at a time and waits for HTTP/2 to report each written before it
// hands over the next, so a watch stream that owes a hundred watchers an event makes a hundred native writes and
// callbacks in a row. Here the messages written in one turn of the event loop go to HTTP/2 as one buffer.
//
// Back-pressure: write() returns false once the messages not yet flushed plus what HTTP/2 still buffers reach
// WRITE_BUFFER_BYTES_MAX, and 'drain' follows when HTTP/2 has written its buffer out. Handlers stop writing on
// false (watch.ts, lease.ts, maintenance.ts, election.ts), so what this call buffers stays near that bound. pause()
// stops reading requests: HTTP/2 flow control then holds a client that keeps sending without reading its answers.
import * as grpc from '@grpc/grpc-js';
import { OK_STATUS, type CallStatus } from './call-transport.js';
import { decodeRequest, encodeMessage, FastCallBase, FRAME_HEADER_BYTES, frameAll, frameHeadRefusal, statusOf } from './fast-call.js';

/** Bytes a stream may hold unwritten (ours plus HTTP/2's) before write() asks its handler to wait for 'drain'. */
export const WRITE_BUFFER_BYTES_MAX = 256 * 1024;

/**
 * The response side of a streaming call: framed messages collected over one turn of the event loop and written
 * together, back-pressure, and the status as trailers after them (or trailers-only when nothing was sent).
 */
export abstract class FastResponseStream extends FastCallBase {
  protected readonly streaming = true;
  /** Responses written in this turn of the event loop, framed and flushed together. */
  private outbox: Buffer[] = [];
  /** The outbox's bytes once framed: its messages' lengths and a frame head each. */
  private outboxBytes = 0;
  private flushScheduled = false;
  private headersSent = false;
  private drainOwed = false;
  /** end() was called: trailers go out once the outbox is flushed. */
  private ending = false;
  /** The trailing metadata end() was given. */
  private trailer: grpc.Metadata | undefined;
  private responseMetadata: grpc.Metadata | undefined;

  /** Take the call (see admit()), with a handler's 'error' as the call's status; false when it was refused. */
  protected admitStream(): boolean {
    // A handler (or our own refusal) emitting 'error' ends the call with that status, as in grpc-js.
    this.on('error', (err: grpc.ServerErrorResponse) => {
      const s = statusOf(err);
      this.sendStatus(s.code, s.details, s.metadata);
    });
    return this.admit();
  }

  /** Queue one response; false when the handler should wait for 'drain' before the next. */
  write(message: unknown): boolean {
    if (this.answered || this.ending) return false;
    const encoded = encodeMessage(this.method, message, this.deps.limits);
    if ('code' in encoded) {
      this.sendStatus(encoded.code, encoded.details);
      return false;
    }
    this.outbox.push(encoded);
    this.outboxBytes += FRAME_HEADER_BYTES + encoded.byteLength;
    this.scheduleFlush();
    if (this.outboxBytes + this.transport.bufferedBytes < WRITE_BUFFER_BYTES_MAX) return true;
    this.drainOwed = true;
    return false;
  }

  /** Finish the call with status OK (and `metadata` as trailers) once every response written so far is out. */
  end(metadata?: grpc.Metadata): this {
    if (this.answered || this.ending) return this;
    this.ending = true;
    this.trailer = metadata;
    this.scheduleFlush();
    return this;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the handler's synchronous writes of this turn (a watch pump runs as one microtask).
    queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.answered) return;
    const transport = this.transport;
    if (!transport.open) return;
    this.sendHeaders();
    if (this.outbox.length > 0) {
      const data = frameAll(this.outbox, this.outboxBytes);
      this.outbox = [];
      this.outboxBytes = 0;
      transport.write(data);
    }
    if (this.ending) this.finish(this.trailer === undefined ? OK_STATUS : { code: grpc.status.OK, details: 'OK', metadata: this.trailer });
    // write() said "wait" counting the outbox, which the transport has now taken. What it holds is below the
    // bound, so the handler may go on at once: the transport owes onWritable() only after a write() of its own
    // returned false, and its last one may have returned true with bytes still queued (a 1 MiB message framed
    // but for its last 100 KiB), which would leave the handler waiting for a 'drain' nobody sends.
    else if (this.drainOwed) this.onWritable();
  };

  override onWritable(): void {
    if (!this.drainOwed || this.outboxBytes + this.transport.bufferedBytes >= WRITE_BUFFER_BYTES_MAX) return;
    this.drainOwed = false;
    this.emit('drain');
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.transport.respond(this.responseMetadata);
  }

  /** Headers for the response, sent with the first message (grpc-js's sendMetadata). */
  sendMetadata(responseMetadata: grpc.Metadata): void {
    if (!this.headersSent && !this.answered) this.responseMetadata = responseMetadata;
  }

  /** End with a status: trailers after what was written, or a trailers-only answer when nothing was. */
  protected override sendStatus(code: grpc.status, details: string, metadata?: grpc.Metadata | null): void {
    if (this.answered) return;
    if (!this.headersSent && this.outbox.length === 0) {
      super.sendStatus(code, details, metadata);
      return;
    }
    this.flush();
    this.finish({ code, details, metadata: metadata ?? undefined });
  }

  private finish(status: CallStatus): void {
    if (!this.beginAnswer()) return;
    this.transport.end(status);
  }

  override onTransportClose(resetCode: number): boolean {
    const running = super.onTransportClose(resetCode);
    // A client that cancels (grpc-js half-closes and then resets) is gone even if the call had ended meanwhile.
    if (resetCode !== 0) this.notifyCancelled();
    this.emit('close');
    return running;
  }
}

/** A bidirectional streaming call: many requests, many responses. */
export class FastStreamCall extends FastResponseStream {
  /** Request bytes received and not yet a whole message. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Decoded requests waiting while the handler has paused the stream. */
  private readonly inbox: unknown[] = [];
  private paused = false;
  private clientEnded = false;
  private endEmitted = false;

  start(): void {
    if (!this.admitStream()) return;
    (this.method.handler as (call: FastStreamCall) => void)(this);
  }

  // ---- requests

  onRequestData(chunk: Buffer): void {
    if (this.answered) return;
    this.partial.push(chunk);
    this.partialBytes += chunk.byteLength;
    while (this.partialBytes >= FRAME_HEADER_BYTES) {
      const head = this.partial[0]!.byteLength >= FRAME_HEADER_BYTES ? this.partial[0]! : Buffer.concat(this.partial, this.partialBytes);
      const refusal = frameHeadRefusal(head, this.deps.limits);
      if (refusal !== undefined) {
        this.refuse(refusal.code, refusal.details);
        return;
      }
      const length = head.readUInt32BE(1);
      if (this.partialBytes < FRAME_HEADER_BYTES + length) return;
      const all = this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial, this.partialBytes);
      const message = all.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      const rest = all.subarray(FRAME_HEADER_BYTES + length);
      this.partial = rest.byteLength > 0 ? [rest] : [];
      this.partialBytes = rest.byteLength;
      const decoded = decodeRequest(this.method, message);
      if ('code' in decoded) {
        this.refuse(decoded.code, decoded.details);
        return;
      }
      this.deliver(decoded.request);
      if (this.answered) return; // the handler ended the call on this request: the rest is dropped
    }
  }

  private deliver(request: unknown): void {
    if (this.paused || this.inbox.length > 0) this.inbox.push(request);
    else this.emit('data', request);
  }

  onRequestEnd(): void {
    // Node ends the readable side on a reset too; then the exchange is closed already, and the client cancelled.
    if (!this.transport.open) {
      this.notifyCancelled(); // onTransportClose follows and does the rest
      return;
    }
    this.clientEnded = true;
    this.maybeEmitEnd();
  }

  private maybeEmitEnd(): void {
    if (!this.clientEnded || this.endEmitted || this.inbox.length > 0 || this.answered) return;
    this.endEmitted = true;
    this.emit('end');
  }

  pause(): this {
    this.paused = true;
    this.transport.pause();
    return this;
  }

  resume(): this {
    this.paused = false;
    while (!this.paused && this.inbox.length > 0 && !this.answered) this.emit('data', this.inbox.shift());
    if (!this.paused) {
      this.transport.resume();
      this.maybeEmitEnd();
    }
    return this;
  }

  /** A request this call cannot take: end with the status, and read (and drop) the rest. */
  private refuse(code: grpc.status, details: string): void {
    this.partial = [];
    this.partialBytes = 0;
    this.sendStatus(code, details);
    this.notifyCancelled();
    this.transport.resume();
  }
}
