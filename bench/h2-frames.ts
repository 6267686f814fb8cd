// HTTP/2 frame layer micro-benchmark: a program that prints figures (never a test).
//
//   npx tsx bench/h2-frames.ts [--iterations N]
//
// ns per frame for a typical turn of a busy connection: 100 unary calls, each a HEADERS, a DATA and a trailers
// HEADERS. Writing is measured with FrameWriter (frames packed into a shared slab) and, for comparison, with one
// Buffer.allocUnsafe per frame; reading with FrameReader over the turn's bytes as one chunk, and in 1,400-byte
// pieces (a TCP segment's worth) so payloads cross chunk boundaries, each frame passed to its payload parser.
import { Flag, FrameReader, FrameType, FrameWriter, parseData, parseHeaders, type Frame } from '../node/h2/frames.js';
import { nsPerCall, parseIterations } from './lib/micro-timing.js';

const DEFAULT_ITERATIONS = 20_000;
/** Rounds before timing, so the JIT has compiled the code being measured. */
const WARMUP_ITERATIONS = 2_000;
const CALLS_PER_TURN = 100;
const FRAMES_PER_TURN = 3 * CALLS_PER_TURN;
const MAX_FRAME_BYTES = 16_384;
/** A TCP segment's payload on a 1,500-byte MTU, roughly: how a large read can arrive. */
const SEGMENT_BYTES = 1_400;

// Sizes of what the server sends per call: HPACK-indexed response headers, a small protobuf reply in its gRPC
// length prefix, and trailers.
const RESPONSE_HEADERS = Buffer.from([0x88, 0xbf, 0xbe]);
const MESSAGE = Buffer.alloc(5 + 48, 0x2a);
const TRAILERS = Buffer.from([0xbd, 0xbc]);

/** ns per frame of `turn`, which handles FRAMES_PER_TURN frames. */
function time(iterations: number, turn: () => unknown): number {
  return nsPerCall(iterations, WARMUP_ITERATIONS, turn) / FRAMES_PER_TURN;
}

function report(what: string, ns: number): void {
  console.log(`${what.padEnd(52)} ${ns.toFixed(1).padStart(7)} ns/frame`);
}

function writeTurn(writer: FrameWriter): Buffer[] {
  for (let id = 1; id < 2 * CALLS_PER_TURN; id += 2) {
    writer.headers(id, RESPONSE_HEADERS, false, MAX_FRAME_BYTES);
    writer.data(id, MESSAGE, false);
    writer.headers(id, TRAILERS, true, MAX_FRAME_BYTES);
  }
  return writer.take();
}

/** The alternative to the slab: one buffer per frame, as a naive writer would do. */
function allocatedFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(9 + payload.length);
  b[0] = payload.length >>> 16;
  b[1] = (payload.length >>> 8) & 0xff;
  b[2] = payload.length & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId, 5);
  payload.copy(b, 9);
  return b;
}

function allocateTurn(): Buffer[] {
  const out: Buffer[] = [];
  for (let id = 1; id < 2 * CALLS_PER_TURN; id += 2) {
    out.push(allocatedFrame(FrameType.HEADERS, Flag.END_HEADERS, id, RESPONSE_HEADERS));
    out.push(allocatedFrame(FrameType.DATA, 0, id, MESSAGE));
    out.push(allocatedFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, TRAILERS));
  }
  return out;
}

function parse(frame: Frame): number {
  return frame.type === FrameType.DATA ? parseData(frame).data.length : parseHeaders(frame).fragment.length;
}

function readTurn(chunks: readonly Buffer[]): number {
  const reader = new FrameReader({ maxFrameBytes: MAX_FRAME_BYTES });
  let n = 0;
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let f = reader.next(); f !== undefined; f = reader.next()) n += parse(f);
  }
  return n;
}

function main(): void {
  const iterations = parseIterations(process.argv.slice(2), 'bench/h2-frames.ts', DEFAULT_ITERATIONS);
  const writer = new FrameWriter();
  const turnBytes = Buffer.concat(writeTurn(writer));
  console.log(`one turn: ${CALLS_PER_TURN} calls, ${FRAMES_PER_TURN} frames, ${turnBytes.length} bytes`);

  report('write with FrameWriter (shared slab)', time(iterations, () => writeTurn(writer)));
  report('write with one Buffer.allocUnsafe per frame', time(iterations, allocateTurn));
  report('write with FrameWriter, then Buffer.concat', time(iterations, () => Buffer.concat(writeTurn(writer))));
  report('write one buffer per frame, then Buffer.concat', time(iterations, () => Buffer.concat(allocateTurn())));

  const segments: Buffer[] = [];
  for (let at = 0; at < turnBytes.length; at += SEGMENT_BYTES) segments.push(turnBytes.subarray(at, at + SEGMENT_BYTES));
  report('read + parse, one chunk', time(iterations, () => readTurn([turnBytes])));
  report(`read + parse, ${SEGMENT_BYTES}-byte chunks`, time(iterations, () => readTurn(segments)));
}

main();
