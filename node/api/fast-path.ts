// The client server's calls served straight from their HTTP/2 stream, in front of grpc-js's own stream handler on
// the same listener: every unary call (fast-unary.ts) and the streaming calls named when the path is built,
// bidirectional (fast-stream.ts: Watch and LeaseKeepAlive in a member), server-streaming (fast-server-stream.ts:
// Snapshot and Observe) and client-streaming (fast-client-stream.ts). Other streaming calls, calls whose request is
// compressed, and anything this path does not recognise go on to grpc-js unchanged.
//
// Why: grpc-js builds for every call an interceptor chain, a stream decoder, a metadata copy, a per-call listener
// object and several closures and promises, and writes a stream's messages one at a time, each waiting for the
// previous one's write callback. On a leader taking a few thousand puts a second that was the largest single item
// of its CPU profile besides Raft itself; on a member feeding a thousand watchers, most of its CPU
// (docs/performance.md). A unary call needs none of it, and a stream's answers can go out together.
//
// What it keeps of grpc-js's behaviour, so a client cannot tell the paths apart:
//   - the same handlers, called with call objects of grpc-js's shapes (request or 'data', metadata, deadline,
//     peer, TLS auth context, 'cancelled' when the client goes away or the deadline passes);
//   - the same limits: --max-request-bytes + gRPC overhead per request, --max-response-bytes per response,
//     unary calls and streams in flight per member (CallBudget), each with the same status code and message;
//   - the same wire answer: headers, messages and trailers, or a trailers-only response for an error, with
//     grpc-message percent-encoded as grpc-js does;
//   - grpc-timeout: the call fails with DEADLINE_EXCEEDED "Deadline exceeded" when it passes.
// It differs from grpc-js where grpc-js differs from etcd: a message flagged compressed without a
// grpc-encoding is refused (INTERNAL) as grpc-go does, where grpc-js would read it as uncompressed; and a
// grpc-timeout beyond setTimeout's range is no deadline rather than one that fails at once.
//
// How it gets in front: grpc-js keeps the HTTP/2 servers it creates in a private map (../grpc-listeners.ts) and
// registers one 'stream' listener on each. install() replaces that listener with one that tries this path first.
// grpc-js keeps everything else (sessions, keepalive, GOAWAY on shutdown). If a grpc-js upgrade changes those
// internals, install() throws at start-up rather than serving without the path or twice.
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { type CallTransport, NodeCallTransport } from './call-transport.js';
import type { FastCallDeps, FastLimits, FastMethod } from './fast-call.js';
import { FastClientStreamCall } from './fast-client-stream.js';
import { FastServerStreamCall } from './fast-server-stream.js';
import { FastStreamCall } from './fast-stream.js';
import { FastUnaryCall } from './fast-unary.js';
import { H2CallTransport } from './h2-transport.js';
import type { CallBudget } from './limits.js';
import { boundHttp2Servers } from '../grpc-listeners.js';
import type { HeaderField } from '../h2/hpack.js';
import type { StreamHandler } from '../h2/server.js';

/** grpc-js's answer to a request whose content-type is not gRPC's. */
const UNSUPPORTED_MEDIA_TYPE: readonly HeaderField[] = [{ name: ':status', value: '415' }];

type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => void;

export class FastPath {
  private readonly methods = new Map<string, FastMethod>();
  private readonly installed = new WeakSet<object>();
  private readonly deps: FastCallDeps;
  /** Calls this path answered (tests check that calls really went this way). */
  served = 0;

  /**
   * `streams`: the paths of the streaming methods to serve here, bidirectional or server-streaming
   * ('/etcdserverpb.Watch/Watch', '/etcdserverpb.Maintenance/Snapshot', ...), of any kind; the others stay with grpc-js.
   */
  constructor(
    limits: FastLimits,
    budget: CallBudget,
    private readonly streams: ReadonlySet<string> = new Set(),
  ) {
    this.deps = { limits, budget };
  }

  /** Add a service to the grpc-js server, and take its unary methods and listed streams (grpc-js answers the rest). */
  addService(server: grpc.Server, service: grpc.ServiceDefinition, impl: Readonly<Record<string, unknown>>): void {
    server.addService(service, impl as grpc.UntypedServiceImplementation);
    for (const [name, def] of Object.entries(service)) {
      const kind = methodKind(def);
      if (kind !== 'unary' && !this.streams.has(def.path)) continue;
      const handler = impl[name] ?? (def.originalName === undefined ? undefined : impl[def.originalName]);
      if (typeof handler !== 'function') continue;
      this.methods.set(def.path, {
        path: def.path,
        kind,
        handler: handler as FastMethod['handler'],
        deserialize: def.requestDeserialize as (bytes: Buffer) => unknown,
        serialize: def.responseSerialize as (value: unknown) => Buffer,
      });
    }
  }

  /** Put this path in front of grpc-js's stream listener on every HTTP/2 server `server` has bound so far. */
  install(server: grpc.Server): void {
    const internals = server as unknown as { onStreamOpened?: (s: http2.ServerHttp2Stream) => void };
    for (const h2 of boundHttp2Servers(server)) {
      if (this.installed.has(h2)) continue;
      const listeners = h2.listeners('stream');
      if (listeners.length !== 1) throw new Error(`fulcrum: cannot install the fast path: expected grpc-js's one stream listener, found ${listeners.length}`);
      const grpcListener = listeners[0] as StreamListener;
      h2.removeListener('stream', grpcListener);
      h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
        const method = this.claim(headers);
        if (method === undefined) {
          grpcListener(stream, headers, ...rest);
          return;
        }
        // grpc-js's idle-connection bookkeeping counts every stream (a no-op unless max_connection_idle_ms is set).
        internals.onStreamOpened?.call(server, stream);
        this.start(new NodeCallTransport(stream), headers, method);
      });
      this.installed.add(h2);
    }
  }

  /**
   * Fulcrum's own HTTP/2 engine's stream handler (node/h2/server.ts): every call on the engine comes here, with no
   * grpc-js behind this path. So what this path does not serve is answered here as grpc-js would answer it: a
   * method it does not know (a streaming one not named at construction included) UNIMPLEMENTED, a compressed request UNIMPLEMENTED
   * (grpc-go's answer for an encoding it has no decompressor for; Fulcrum installs none), and a request that is
   * not gRPC at all HTTP 415.
   */
  readonly engineStreamHandler: StreamHandler = (stream, headers, endStream, session) => {
    const transport = new H2CallTransport(stream, session.socket, endStream);
    const method = this.classify(headers);
    if (method === 'not gRPC') {
      stream.respond(UNSUPPORTED_MEDIA_TYPE, true);
    } else if (method === 'unknown method') {
      transport.endTrailersOnly({ code: grpc.status.UNIMPLEMENTED, details: `The server does not implement the method ${headers[':path'] ?? ''}` });
    } else if (method === 'compressed') {
      transport.endTrailersOnly({ code: grpc.status.UNIMPLEMENTED, details: `grpc: Decompressor is not installed for grpc-encoding "${String(headers['grpc-encoding'])}"` });
    } else {
      this.start(transport, headers, method);
    }
    return transport;
  };

  private start(transport: CallTransport, headers: http2.IncomingHttpHeaders, method: FastMethod): void {
    this.served++;
    if (method.kind === 'unary') new FastUnaryCall(transport, headers, method, this.deps).start();
    else if (method.kind === 'bidi') new FastStreamCall(transport, headers, method, this.deps).start();
    else if (method.kind === 'clientStream') new FastClientStreamCall(transport, headers, method, this.deps).start();
    else new FastServerStreamCall(transport, headers, method, this.deps).start();
  }

  /** The method when this path serves the call (else grpc-js answers it). */
  private claim(headers: http2.IncomingHttpHeaders): FastMethod | undefined {
    const method = this.classify(headers);
    return typeof method === 'string' ? undefined : method;
  }

  /** The method when this path serves the call: a gRPC content type, a known path, an uncompressed body. */
  private classify(headers: http2.IncomingHttpHeaders): FastMethod | 'not gRPC' | 'unknown method' | 'compressed' {
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return 'not gRPC';
    const method = this.methods.get(headers[':path'] ?? '');
    if (method === undefined) return 'unknown method';
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return 'compressed';
    return method;
  }
}

/** The kind of call a method is. */
function methodKind(def: grpc.MethodDefinition<unknown, unknown>): FastMethod['kind'] {
  if (!def.requestStream) return def.responseStream ? 'serverStream' : 'unary';
  return def.responseStream ? 'bidi' : 'clientStream';
}
