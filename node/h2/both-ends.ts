// What both ends of a connection (connection.ts, the server; client.ts, the client) do alike: assembling a header
// block from HEADERS and CONTINUATION frames under the block limits, moving every stream's send window when the
// peer changes SETTINGS_INITIAL_WINDOW_SIZE, serving the streams that wait for connection-window credit, and
// keeping the connection's receive window.
import { connectionError, ErrorCode, type Frame, FrameType, frameTypeName, type FrameWriter, MAX_WINDOW_SIZE, parseContinuation } from './frames.js';

export interface HeaderBlockLimits {
  /** A block's encoded bytes across HEADERS and its CONTINUATIONs; past it the connection fails (ENHANCE_YOUR_CALM). */
  readonly headerBlockBytesMax: number;
  /** CONTINUATION frames one block may take; past it the connection fails (ENHANCE_YOUR_CALM). */
  readonly continuationFramesMax: number;
}

/** A complete header block, with what its HEADERS frame said besides the fragment (`extra`: a server's priority). */
export interface HeaderBlock<Extra> {
  readonly streamId: number;
  readonly block: Buffer;
  readonly endStream: boolean;
  readonly extra: Extra;
}

/**
 * One header block at a time, from a HEADERS frame without END_HEADERS to the CONTINUATION that ends it; no other
 * frame may come between them (RFC 9113 6.10). The fragments are copies: a frame's payload is only a view of the
 * socket's chunk.
 */
export class HeaderBlockAssembler<Extra> {
  private pending: { streamId: number; endStream: boolean; extra: Extra; fragments: Buffer[]; bytes: number; continuations: number } | null = null;

  constructor(private readonly limits: HeaderBlockLimits) {}

  /** A frame arrived: while a block is open, only its CONTINUATION may (connection PROTOCOL_ERROR otherwise). */
  checkInterleaving(frame: Frame): void {
    const open = this.pending;
    if (open === null || (frame.type === FrameType.CONTINUATION && frame.streamId === open.streamId)) return;
    throw connectionError(ErrorCode.PROTOCOL_ERROR, `${frameTypeName(frame.type)} on stream ${frame.streamId} inside the header block of stream ${open.streamId}`);
  }

  /** A HEADERS frame without END_HEADERS opens a block. */
  begin(streamId: number, fragment: Buffer, endStream: boolean, extra: Extra): void {
    if (fragment.length > this.limits.headerBlockBytesMax) this.tooLarge(streamId);
    this.pending = { streamId, endStream, extra, fragments: [Buffer.from(fragment)], bytes: fragment.length, continuations: 0 };
  }

  /**
   * A CONTINUATION frame: the complete block once END_HEADERS comes, else undefined. `onEmpty` hears of an empty
   * fragment that does not end the block (a server charges those to its flood budget).
   */
  continue(frame: Frame, onEmpty?: () => void): HeaderBlock<Extra> | undefined {
    const open = this.pending;
    if (open === null) throw connectionError(ErrorCode.PROTOCOL_ERROR, `CONTINUATION on stream ${frame.streamId} with no header block open`);
    const continuation = parseContinuation(frame);
    open.continuations++;
    open.bytes += continuation.fragment.length;
    if (open.continuations > this.limits.continuationFramesMax) {
      throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block of stream ${open.streamId} in more than ${this.limits.continuationFramesMax} CONTINUATION frames`);
    }
    if (open.bytes > this.limits.headerBlockBytesMax) this.tooLarge(open.streamId);
    if (!continuation.endHeaders) {
      if (continuation.fragment.length === 0) onEmpty?.();
      open.fragments.push(Buffer.from(continuation.fragment));
      return undefined;
    }
    this.pending = null;
    open.fragments.push(continuation.fragment);
    return { streamId: open.streamId, block: Buffer.concat(open.fragments, open.bytes), endStream: open.endStream, extra: open.extra };
  }

  /** The connection closed: a block half read is dropped. */
  clear(): void {
    this.pending = null;
  }

  private tooLarge(streamId: number): never {
    throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block of stream ${streamId} longer than ${this.limits.headerBlockBytesMax} bytes`);
  }
}

/**
 * The peer's new SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's send window by the difference (6.9.2): it
 * may go negative, and then the stream waits for WINDOW_UPDATEs to bring it above zero. A window pushed past
 * 2^31-1 is a connection FLOW_CONTROL_ERROR. True when the windows grew (queued bytes may go now).
 */
export function moveSendWindows(streams: Iterable<{ readonly id: number; sendWindow: number }>, from: number, to: number): boolean {
  const delta = to - from;
  for (const stream of streams) {
    stream.sendWindow += delta;
    if (stream.sendWindow > MAX_WINDOW_SIZE) {
      throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${to} takes stream ${stream.id}'s window past ${MAX_WINDOW_SIZE}`);
    }
  }
  return delta > 0;
}

/** What the FIFO of streams waiting for connection credit needs of a stream. */
export interface CreditWaiter {
  readonly closed: boolean;
  readonly queuedBytes: number;
  /** In the FIFO: a stream is queued once however often it runs out. */
  waitingForConnection: boolean;
}

/**
 * Streams with bytes queued and stream credit but no connection credit, served in order of arrival when a
 * connection WINDOW_UPDATE comes. A stream that uses the window up again goes back behind those still waiting, so
 * one large body cannot starve the others.
 */
export class ConnectionCreditQueue<S extends CreditWaiter> {
  private waiting: S[] = [];

  add(stream: S): void {
    if (stream.waitingForConnection) return;
    stream.waitingForConnection = true;
    this.waiting.push(stream);
  }

  /** Credit arrived: `flush` each waiting stream in order while `windowLeft()` is above zero. */
  serve(windowLeft: () => number, flush: (stream: S) => void): void {
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    this.waiting = [];
    for (let i = 0; i < waiting.length; i++) {
      if (windowLeft() <= 0) {
        this.waiting = waiting.slice(i).concat(this.waiting);
        return;
      }
      const stream = waiting[i]!;
      stream.waitingForConnection = false;
      if (!stream.closed && stream.queuedBytes > 0) flush(stream);
    }
  }

  clear(): void {
    this.waiting = [];
  }
}

/**
 * The connection's receive window: what the peer may still send on all streams together. Every DATA frame counts
 * against it, whatever becomes of its stream, and is credited back in batches, one WINDOW_UPDATE per half window
 * owed, so the peer never runs dry at full speed (6.9).
 */
export class ConnectionReceiveWindow {
  private window: number;
  private owed = 0;
  private readonly threshold: number;

  constructor(bytes: number) {
    this.window = bytes;
    this.threshold = Math.floor(bytes / 2);
  }

  /** A DATA frame's flow-controlled length arrived: beyond the window is a connection FLOW_CONTROL_ERROR. */
  consume(length: number): void {
    this.window -= length;
    if (this.window < 0) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
  }

  /** `length` consumed bytes are done with: owed back, and sent once half a window is owed. */
  credit(length: number, writer: FrameWriter): void {
    if (length === 0) return;
    this.owed += length;
    if (this.owed < this.threshold) return;
    writer.windowUpdate(0, this.owed);
    this.window += this.owed;
    this.owed = 0;
  }
}
