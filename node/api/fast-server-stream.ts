// A server-streaming call on the fast path (fast-path.ts): one request, many responses (etcd's Maintenance/Snapshot,
// v3election's Observe), with the surface of grpc-js's ServerWritableStream that Fulcrum's handlers use: request and
// metadata, write() with back-pressure and 'drain', end(), emit('error', status) to end the call with that status,
// 'cancelled' and 'close' (the response side is fast-stream.ts's FastResponseStream). The handler runs once the
// request has arrived whole and the client has ended its side, as in grpc-js.
import * as grpc from '@grpc/grpc-js';
import { oneMessage, oneMessageRefusal } from './fast-call.js';
import { FastResponseStream } from './fast-stream.js';

export class FastServerStreamCall extends FastResponseStream {
  request: unknown = undefined;
  /** The request's bytes until it has ended. */
  private chunks: Buffer[] = [];
  private receivedBytes = 0;

  start(): void {
    this.admitStream();
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
    // Node ends the readable side on a reset too: then the exchange is closed, and onTransportClose does the rest.
    if (this.answered || !this.transport.open) return;
    const decoded = oneMessage(this.chunks, this.receivedBytes, this.method);
    this.chunks = [];
    if ('code' in decoded) {
      this.sendStatus(decoded.code, decoded.details);
      return;
    }
    this.request = decoded.request;
    try {
      (this.method.handler as (call: FastServerStreamCall) => void)(this);
    } catch {
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error');
    }
  }
}
