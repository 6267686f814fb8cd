// What the node/h2 tests share.
import { errorCodeName, Flag, type Frame, FrameReader, FrameType, MAX_FRAME_SIZE_LIMIT, parseData, parseGoaway, parseHeaders, parsePing, parseRstStream, parseSettings, parseWindowUpdate, SettingId } from './frames.js';
import { HpackDecoder } from './hpack.js';

/**
 * A frame's bytes, encoded by hand, independently of FrameWriter: for frames FrameWriter cannot make (padding,
 * priority, malformed ones) and for checking FrameWriter itself.
 */
export function rawFrame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([header, payload]);
}

const SETTING_NAMES = new Map<number, string>(Object.entries(SettingId).map(([name, id]) => [id, name]));

/**
 * One side's frames read back as a transcript of short lines ("HEADERS 1 :status=200 end_stream", "DATA 1 5
 * bytes", "GOAWAY 0 PROTOCOL_ERROR"), header blocks decoded with a table of its own, DATA bodies kept by stream.
 */
export class Transcript {
  readonly bodies = new Map<number, Buffer[]>();
  lastGoawayDebug = '';
  lastHeadersBlock: Buffer = Buffer.alloc(0);
  private readonly reader: FrameReader;
  private readonly decoder = new HpackDecoder({ headerListBytesMax: 1 << 20 });
  private block: { id: number; endStream: boolean; parts: Buffer[]; continuations: number } | null = null;

  /** `expectPreface`: the bytes are a client's, opening with the connection preface. */
  constructor(options: { expectPreface?: boolean } = {}) {
    this.reader = new FrameReader({ maxFrameBytes: MAX_FRAME_SIZE_LIMIT, expectPreface: options.expectPreface === true });
  }

  read(bytes: Buffer): string[] {
    const out: string[] = [];
    this.reader.push(bytes);
    for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) {
      const line = this.render(f);
      if (line !== undefined) out.push(line);
    }
    return out;
  }

  private render(f: Frame): string | undefined {
    switch (f.type) {
      case FrameType.SETTINGS: {
        const s = parseSettings(f);
        return s.ack ? 'SETTINGS ack' : ['SETTINGS', ...s.entries.map(([id, v]) => `${SETTING_NAMES.get(id)}=${v}`)].join(' ');
      }
      case FrameType.WINDOW_UPDATE:
        return `WINDOW_UPDATE ${f.streamId} +${parseWindowUpdate(f)}`;
      case FrameType.DATA: {
        const d = parseData(f);
        if (!this.bodies.has(f.streamId)) this.bodies.set(f.streamId, []);
        this.bodies.get(f.streamId)!.push(Buffer.from(d.data));
        return `DATA ${f.streamId} ${d.data.length} bytes${d.endStream ? ' end_stream' : ''}`;
      }
      case FrameType.HEADERS: {
        const h = parseHeaders(f);
        this.block = { id: f.streamId, endStream: h.endStream, parts: [Buffer.from(h.fragment)], continuations: 0 };
        return h.endHeaders ? this.renderBlock() : undefined;
      }
      case FrameType.CONTINUATION:
        this.block!.parts.push(Buffer.from(f.payload));
        this.block!.continuations++;
        return (f.flags & Flag.END_HEADERS) !== 0 ? this.renderBlock() : undefined;
      case FrameType.RST_STREAM:
        return `RST_STREAM ${f.streamId} ${errorCodeName(parseRstStream(f))}`;
      case FrameType.GOAWAY: {
        const g = parseGoaway(f);
        this.lastGoawayDebug = g.debugData.toString();
        return `GOAWAY ${g.lastStreamId} ${errorCodeName(g.errorCode)}`;
      }
      case FrameType.PING: {
        const p = parsePing(f);
        return `PING${p.ack ? ' ack' : ''} ${p.opaqueData.toString('hex')}`;
      }
      default:
        return `UNEXPECTED ${f.type}`;
    }
  }

  private renderBlock(): string {
    const { id, endStream, parts, continuations } = this.block!;
    this.block = null;
    this.lastHeadersBlock = Buffer.concat(parts);
    const decoded = this.decoder.decode(this.lastHeadersBlock);
    return [
      `HEADERS ${id}`,
      ...(continuations > 0 ? [`+${continuations} CONTINUATION`] : []),
      ...decoded.fields.map((x) => `${x.name}=${x.value}`),
      ...(endStream ? ['end_stream'] : []),
    ].join(' ');
  }
}
