// A TCP proxy in front of a member, for faults the client must survive that a process signal cannot make:
// an answer lost after the server applied the request, or a member that accepts connections and then says
// nothing (a partition that keeps TCP up). Test code only; plaintext HTTP/2 (gRPC without TLS) only.
import { createServer, type Server, type Socket, connect } from 'node:net';

/** HTTP/2 framing (RFC 9113 §4.1): a 9-byte header (24-bit length, type, flags, stream id), then the payload. */
const FRAME_HEADER_BYTES = 9;
const FRAME_TYPE_DATA = 0x0;
const FRAME_TYPE_HEADERS = 0x1;
/** The client's connection preface ("PRI * HTTP/2.0..."), sent before its first frame; the server sends none. */
const CLIENT_PREFACE_BYTES = 24;

/** Splits a byte stream into whole HTTP/2 frames; a partial frame waits for the rest. */
class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private skip: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const skipped = Math.min(this.skip, this.pending.length);
    const frames: Buffer[] = skipped > 0 ? [this.pending.subarray(0, skipped)] : [];
    this.skip -= skipped;
    let at = skipped;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const end = at + FRAME_HEADER_BYTES + this.pending.readUIntBE(at, 3);
      if (end > this.pending.length) break;
      frames.push(this.pending.subarray(at, end));
      at = end;
    }
    this.pending = this.pending.subarray(at);
    return frames;
  }
}

function frameType(frame: Buffer): number | undefined {
  return frame.length >= FRAME_HEADER_BYTES ? frame[3] : undefined;
}

function streamId(frame: Buffer): number {
  return frame.readUInt32BE(5) & 0x7fffffff;
}

export class FaultProxy {
  /** Answers dropped so far (each drop cuts the connection it was on). */
  dropped = 0;
  /** Connections accepted so far. */
  connections = 0;
  private dropNext = 0;
  private silent = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(target: string, port: number): Promise<FaultProxy> {
    const [host, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const holder: { proxy?: FaultProxy } = {};
    const server = createServer((client) => holder.proxy!.accept(client, host, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    holder.proxy = new FaultProxy(server, `127.0.0.1:${port}`);
    return holder.proxy;
  }

  /**
   * The answers to the next `n` calls started after this are swallowed and their connections cut: the first
   * DATA frame (the response message, which a unary call's server sends only once it has handled the call) of a
   * stream the client opened from now on. Frames of calls started earlier (flow control, pings, a late answer)
   * pass, so what is dropped is really an answer to a request the server got.
   */
  dropAnswers(n = 1): void {
    this.dropNext += n;
  }

  /** Forward nothing in either direction on any connection (old or new) until unset; connections stay open. */
  setSilent(silent: boolean): void {
    this.silent = silent;
  }

  private accept(client: Socket, host: string, port: number): void {
    this.connections++;
    const upstream = connect(port, host);
    this.sockets.add(client).add(upstream);
    const fromClient = new FrameSplitter(CLIENT_PREFACE_BYTES);
    const fromServer = new FrameSplitter(0);
    /** Streams this connection's client opened while an answer was to be dropped. */
    const armed = new Set<number>();
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    // Whole frames are forwarded a read at a time, in one write (frame by frame, Nagle would hold them back).
    for (const s of [client, upstream]) s.setNoDelay(true);
    client.on('data', (d: Buffer) => {
      if (this.silent) return;
      const frames = fromClient.push(d);
      for (const frame of frames) {
        if (this.dropNext > 0 && frameType(frame) === FRAME_TYPE_HEADERS) armed.add(streamId(frame));
      }
      if (frames.length > 0) upstream.write(Buffer.concat(frames));
    });
    upstream.on('data', (d: Buffer) => {
      if (this.silent) return;
      const frames = fromServer.push(d);
      const answer = frames.findIndex((f) => frameType(f) === FRAME_TYPE_DATA && f.length > FRAME_HEADER_BYTES && armed.has(streamId(f)));
      if (answer >= 0 && this.dropNext > 0) {
        // What came before the answer (its response headers, say) still reaches the client.
        if (answer > 0) client.write(Buffer.concat(frames.slice(0, answer)));
        this.dropNext--;
        this.dropped++;
        cut();
        return;
      }
      if (frames.length > 0) client.write(Buffer.concat(frames));
    });
    for (const s of [client, upstream]) {
      s.on('error', cut);
      s.on('close', () => {
        this.sockets.delete(s);
        cut();
      });
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
