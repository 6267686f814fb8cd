// HPACK micro-benchmark: a program that prints figures (never a test).
//
//   npx tsx bench/hpack.ts [--iterations N]
//
// ns per header block for a typical gRPC unary request (what a grpc-js client sends to etcd's KV service) and the
// response headers and trailers we send back: decoding a first block (literals, Huffman-encoded, as a new
// connection sees it), decoding a repeat (all indexes, the steady state), and encoding both kinds.
import { HpackDecoder, HpackEncoder, type HeaderField } from '../node/h2/hpack.js';
import { nsPerCall, parseIterations } from './lib/micro-timing.js';

const DEFAULT_ITERATIONS = 200_000;
/** Rounds before timing, so the JIT has compiled the code being measured. */
const WARMUP_ITERATIONS = 20_000;

const REQUEST: readonly HeaderField[] = [
  { name: ':method', value: 'POST' },
  { name: ':scheme', value: 'http' },
  { name: ':path', value: '/etcdserverpb.KV/Range' },
  { name: ':authority', value: '127.0.0.1:2379' },
  { name: 'content-type', value: 'application/grpc' },
  { name: 'te', value: 'trailers' },
  { name: 'grpc-accept-encoding', value: 'identity,deflate,gzip' },
  { name: 'accept-encoding', value: 'identity' },
  { name: 'user-agent', value: 'grpc-node-js/1.14.7' },
  { name: 'grpc-timeout', value: '4999m' },
];
const RESPONSE: readonly HeaderField[] = [
  { name: ':status', value: '200' },
  { name: 'content-type', value: 'application/grpc' },
  { name: 'grpc-accept-encoding', value: 'identity' },
];
const TRAILERS: readonly HeaderField[] = [
  { name: 'grpc-status', value: '0' },
  { name: 'grpc-message', value: '' },
];

function report(what: string, ns: number, bytes: number): void {
  console.log(`${what.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/block  (${bytes} bytes)`);
}

function main(): void {
  const iterations = parseIterations(process.argv.slice(2), 'bench/hpack.ts', DEFAULT_ITERATIONS);
  const encoder = new HpackEncoder();
  const firstBlock = encoder.encode(REQUEST);
  const repeatBlock = encoder.encode(REQUEST);

  // A first block re-decoded by fresh decoders: the literals and their Huffman strings every time.
  report('decode first request block (new decoder)', nsPerCall(iterations, WARMUP_ITERATIONS, () => new HpackDecoder().decode(firstBlock)), firstBlock.length);
  const steady = new HpackDecoder();
  steady.decode(firstBlock);
  report('decode repeated request block (indexes)', nsPerCall(iterations, WARMUP_ITERATIONS, () => steady.decode(repeatBlock)), repeatBlock.length);

  report('encode first request block (new encoder)', nsPerCall(iterations, WARMUP_ITERATIONS, () => new HpackEncoder().encode(REQUEST)), firstBlock.length);
  const responder = new HpackEncoder();
  const responseBlock = responder.encode(RESPONSE);
  const trailersBlock = responder.encode(TRAILERS);
  report('encode repeated response headers', nsPerCall(iterations, WARMUP_ITERATIONS, () => responder.encode(RESPONSE)), responder.encode(RESPONSE).length);
  report('encode repeated response trailers', nsPerCall(iterations, WARMUP_ITERATIONS, () => responder.encode(TRAILERS)), responder.encode(TRAILERS).length);
  console.log(`(first response headers ${responseBlock.length} bytes, first trailers ${trailersBlock.length} bytes)`);
}

main();
