// The fast path's calls over Fulcrum's own HTTP/2 engine (node/h2/): a CallTransport (call-transport.ts) over one
// H2Stream, which is also the StreamListener the connection reports the stream's events to, so a call costs one
// object here besides itself.
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { CallSink, CallStatus, CallTransport } from './call-transport.js';
import { CONTENT_TYPE, RESPONSE_HEADERS, statusHeaders } from './call-transport.js';
import type { H2Stream, StreamListener } from '../h2/connection.js';
import type { HeaderField } from '../h2/hpack.js';

/**
 * The response headers of every call without leading metadata, built once: grpc-js's, except that the engine
 * accepts only uncompressed requests (engineStreamHandler refuses the others), so it says so.
 */
const RESPONSE_FIELDS: readonly HeaderField[] = Object.freeze(
  Object.entries({ ...RESPONSE_HEADERS, 'grpc-accept-encoding': 'identity' }).map(([name, value]) => ({ name, value: String(value) })),
);
/** The trailers of a call that succeeded without trailing metadata: nearly every call's. */
const OK_TRAILERS: readonly HeaderField[] = Object.freeze([
  { name: 'grpc-status', value: '0' },
  { name: 'grpc-message', value: 'OK' },
]);
const TRAILERS_ONLY_HEAD: readonly HeaderField[] = Object.freeze([
  { name: ':status', value: '200' },
  { name: 'content-type', value: CONTENT_TYPE },
]);

/** Headers as Node writes them, as header fields: repeated values (an array) as repeated fields. */
function headerFields(headers: http2.OutgoingHttpHeaders, out: HeaderField[]): HeaderField[] {
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push({ name, value: v });
    else out.push({ name, value: String(value) });
  }
  return out;
}

/** Metadata as header fields: binary values base64, repeated keys as repeated fields (grpc-js's own encoding). */
function metadataFields(metadata: grpc.Metadata, out: HeaderField[]): HeaderField[] {
  return headerFields(metadata.toHttp2Headers(), out);
}

/** A status as trailer fields, as over Node's http2 (statusHeaders): trailing metadata, grpc-status, grpc-message. */
function statusFields(status: CallStatus, out: HeaderField[]): HeaderField[] {
  return headerFields(statusHeaders(status), out);
}

function isPlainOk(status: CallStatus): boolean {
  return status.code === grpc.status.OK && status.details === 'OK' && (status.metadata === undefined || status.metadata === null);
}

export class H2CallTransport implements CallTransport, StreamListener {
  private sink: CallSink | null = null;

  /**
   * `requestEnded`: the request's headers ended the stream (no body follows). The call hears it just after
   * attach(), never during it (CallSink's rule).
   */
  constructor(
    private readonly stream: H2Stream,
    private readonly socket: net.Socket,
    private readonly requestEnded: boolean,
  ) {}

  // ---- CallTransport

  attach(sink: CallSink): void {
    this.sink = sink;
    if (this.requestEnded) queueMicrotask(() => this.sink?.onRequestEnd());
  }

  detach(): void {
    this.sink = null;
  }

  handlerDone(): void {
    this.stream.done();
  }

  respond(metadata: grpc.Metadata | undefined): void {
    // Pseudo-headers (:status) must lead the block (RFC 9113 8.3), so the metadata follows the fixed fields.
    this.stream.respond(metadata === undefined ? RESPONSE_FIELDS : metadataFields(metadata, [...RESPONSE_FIELDS]), false);
  }

  write(bytes: Buffer): boolean {
    return this.stream.write(bytes);
  }

  end(status: CallStatus, data?: Buffer): void {
    if (data !== undefined) this.stream.write(data);
    this.stream.end(isPlainOk(status) ? OK_TRAILERS : statusFields(status, []));
  }

  endTrailersOnly(status: CallStatus): void {
    this.stream.respond(statusFields(status, [...TRAILERS_ONLY_HEAD]), true);
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  get bufferedBytes(): number {
    return this.stream.queuedBytes;
  }

  get open(): boolean {
    return !this.stream.closed;
  }

  get peerSocket(): net.Socket | undefined {
    return this.socket;
  }

  // ---- StreamListener (the connection's events)

  data(bytes: Buffer, endStream: boolean): void {
    if (bytes.length > 0) this.sink?.onRequestData(bytes);
    if (endStream) this.sink?.onRequestEnd();
  }

  writable(): void {
    this.sink?.onWritable();
  }

  /** True while the call's handler is still running: the connection counts the stream until handlerDone(). */
  closed(code: number): boolean {
    return this.sink?.onTransportClose(code) ?? false;
  }
}
