// One unary call on the fast path (fast-path.ts): read the one length-prefixed request, run the handler, answer
// once (or not at all if the client has gone).
import * as grpc from '@grpc/grpc-js';
import { FastCallBase, FRAME_HEADER_BYTES, frame, RESPONSE_HEADERS, statusOf } from './fast-call.js';

export class FastUnaryCall extends FastCallBase implements grpc.ServerUnaryCall<unknown, unknown> {
  request: unknown = undefined;
  protected readonly streaming = false;
  private chunks: Buffer[] = [];
  private receivedBytes = 0;
  private responseMetadata: grpc.Metadata | undefined;

  start(): void {
    if (!this.admit()) return;
    this.stream.on('data', this.onData);
    this.stream.once('end', this.onEnd);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.answered) return; // refused already: the rest of the body is read and dropped
    this.receivedBytes += chunk.byteLength;
    this.chunks.push(chunk);
    if (this.receivedBytes < FRAME_HEADER_BYTES) return;
    const declared = this.declaredLength();
    const max = this.deps.limits.receiveMessageBytesMax;
    if (declared > max) {
      this.chunks = [];
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${declared} vs ${max})`);
    } else if (this.receivedBytes > FRAME_HEADER_BYTES + declared) {
      this.chunks = [];
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received a second request message for unary method ${this.method.path}`);
    }
  };

  /** The length prefix of the request's frame (the first five bytes have arrived). */
  private declaredLength(): number {
    const first = this.chunks[0]!;
    const head = first.byteLength >= FRAME_HEADER_BYTES ? first : Buffer.concat(this.chunks, this.receivedBytes);
    return head.readUInt32BE(1);
  }

  private readonly onEnd = (): void => {
    if (this.answered) return;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.receivedBytes);
    this.chunks = [];
    if (body.byteLength < FRAME_HEADER_BYTES || body.byteLength !== FRAME_HEADER_BYTES + body.readUInt32BE(1)) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received no request message for unary method ${this.method.path}`);
      return;
    }
    const flag = body[0];
    if (flag !== 0) {
      // grpc-go's answers, which is what an etcd member gives: this path only takes calls without grpc-encoding.
      this.sendStatus(grpc.status.INTERNAL, flag === 1 ? 'grpc: compressed flag set with identity or empty encoding' : `grpc: received unexpected payload format ${flag}`);
      return;
    }
    try {
      this.request = this.method.deserialize(body.subarray(FRAME_HEADER_BYTES));
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error deserializing request');
      return;
    }
    try {
      (this.method.handler as grpc.handleUnaryCall<unknown, unknown>)(this, this.respond);
    } catch {
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error');
    }
  };

  /** The handler's callback: grpc-js's sendUnaryData. */
  private readonly respond = (err: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata): void => {
    if (this.answered) return;
    if (err !== null && err !== undefined) {
      const s = statusOf(err);
      this.sendStatus(s.code, s.details, trailer ?? s.metadata);
      return;
    }
    let message: Buffer;
    try {
      message = this.method.serialize(value);
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error serializing response');
      return;
    }
    const max = this.deps.limits.sendMessageBytesMax;
    if (message.byteLength > max) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.byteLength} vs. ${max})`);
      return;
    }
    this.sendMessage(message, trailer);
  };

  private sendMessage(message: Buffer, trailer: grpc.Metadata | undefined): void {
    if (!this.beginAnswer()) return;
    const stream = this.stream;
    stream.respond({ ...this.responseMetadata?.toHttp2Headers(), ...RESPONSE_HEADERS }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ ...trailer?.toHttp2Headers(), 'grpc-status': '0', 'grpc-message': 'OK' }));
    stream.end(frame(message));
  }

  sendMetadata(responseMetadata: grpc.Metadata): void {
    if (!this.answered) this.responseMetadata = responseMetadata;
  }
}
