// One unary call on the fast path (fast-path.ts): read the one length-prefixed request, run the handler, answer
// once (or not at all if the client has gone).
import * as grpc from '@grpc/grpc-js';
import { OK_STATUS } from './call-transport.js';
import { encodeResponse, FastCallBase, oneMessage, oneMessageRefusal, statusOf } from './fast-call.js';

export class FastUnaryCall extends FastCallBase implements grpc.ServerUnaryCall<unknown, unknown> {
  request: unknown = undefined;
  protected readonly streaming = false;
  private chunks: Buffer[] = [];
  private receivedBytes = 0;
  private responseMetadata: grpc.Metadata | undefined;

  start(): void {
    this.admit();
  }

  onRequestData(chunk: Buffer): void {
    if (this.answered) return; // refused already: the rest of the body is read and dropped
    this.receivedBytes += chunk.byteLength;
    this.chunks.push(chunk);
    const refusal = oneMessageRefusal(this.chunks, this.receivedBytes, this.method, this.deps.limits);
    if (refusal === undefined) return;
    this.chunks = [];
    this.sendStatus(refusal.code, refusal.details);
  }

  onRequestEnd(): void {
    if (this.answered) return;
    const decoded = oneMessage(this.chunks, this.receivedBytes, this.method);
    this.chunks = [];
    if ('code' in decoded) {
      this.sendStatus(decoded.code, decoded.details);
      return;
    }
    this.request = decoded.request;
    this.handlerRunning = true;
    try {
      (this.method.handler as grpc.handleUnaryCall<unknown, unknown>)(this, this.respond);
    } catch {
      this.handlerReturned();
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error');
    }
  }

  /** The handler's callback: grpc-js's sendUnaryData. */
  private readonly respond = (err: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata): void => {
    this.handlerReturned();
    if (this.answered) return;
    if (err !== null && err !== undefined) {
      const s = statusOf(err);
      this.sendStatus(s.code, s.details, trailer ?? s.metadata);
      return;
    }
    const framed = encodeResponse(this.method, value, this.deps.limits);
    if ('code' in framed) {
      this.sendStatus(framed.code, framed.details);
      return;
    }
    this.sendMessage(framed, trailer);
  };

  private sendMessage(framed: Buffer, trailer: grpc.Metadata | undefined): void {
    if (!this.beginAnswer()) return;
    this.transport.respond(this.responseMetadata);
    this.transport.end(trailer === undefined ? OK_STATUS : { code: grpc.status.OK, details: 'OK', metadata: trailer }, framed);
  }

  sendMetadata(responseMetadata: grpc.Metadata): void {
    if (!this.answered) this.responseMetadata = responseMetadata;
  }
}
