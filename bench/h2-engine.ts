// HTTP/2 engine benchmark: a program that prints figures (never a test).
//
//   npx tsx bench/h2-engine.ts [--seconds S] [--in-flight 100,1] [--rounds R]
//
// What one unary gRPC call costs the server in each HTTP/2 engine, with no work behind the call: Node's
// node:http2 (answered the documented way: respond, end(data), trailers on 'wantTrailers') against Fulcrum's own
// engine (node/h2/server.ts). Each server runs in a child process of its own and answers every call to
// /etcdserverpb.KV/Put with the same 30-byte message; the client is grpc-js in this process, keeping the given
// number of calls in flight. Engines alternate within each round so that the machine's drift falls on both.
// Printed per run: calls per second, latency p50 and p99, and the server's CPU (user + system) per call.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import type { H2Stream, StreamListener } from '../node/h2/connection.js';
import type { HeaderField } from '../node/h2/hpack.js';
import { H2Server } from '../node/h2/server.js';

const ENGINES = ['node', 'fulcrum'] as const;
type Engine = (typeof ENGINES)[number];
const PATH = '/etcdserverpb.KV/Put';
/** Seconds of calls before measuring: connections made, code compiled. */
const WARMUP_SECONDS = 2;
/** Calls whose latency is kept per run; more are counted but not timed. */
const LATENCY_SAMPLES_MAX = 4_000_000;
const RESPONSE_MESSAGE_BYTES = 30;

/** A gRPC frame: flag 0, length, then the message. */
function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

const RESPONSE_MESSAGE = Buffer.from(Array.from({ length: RESPONSE_MESSAGE_BYTES }, (_, i) => 0x41 + i));
const RESPONSE_FRAME = grpcFrame(RESPONSE_MESSAGE);

// ---- the server child

function serveNode(): net.Server {
  const server = http2.createServer();
  const headers = { ':status': 200, 'content-type': 'application/grpc+proto' };
  const trailers = { 'grpc-status': '0', 'grpc-message': 'OK' };
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.once('end', () => {
      stream.respond(headers, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end(RESPONSE_FRAME);
    });
  });
  return server as unknown as net.Server;
}

function serveFulcrum(): net.Server {
  const headers: HeaderField[] = [
    { name: ':status', value: '200' },
    { name: 'content-type', value: 'application/grpc+proto' },
  ];
  const trailers: HeaderField[] = [
    { name: 'grpc-status', value: '0' },
    { name: 'grpc-message', value: 'OK' },
  ];
  const answer = (stream: H2Stream): void => {
    stream.respond(headers, false);
    stream.write(RESPONSE_FRAME);
    stream.end(trailers);
  };
  const h2 = new H2Server({
    onStream: (stream: H2Stream, _headers, endStream): StreamListener => {
      if (endStream) answer(stream);
      return {
        data: (_bytes, end) => {
          if (end) answer(stream);
        },
        writable: () => {},
        closed: () => {},
      };
    },
  });
  const listener = net.createServer();
  h2.attach(listener);
  return listener;
}

/** The child: serve, print the port, then answer each line on stdin with the CPU used since the previous one. */
async function serve(engine: Engine): Promise<void> {
  const listener = engine === 'node' ? serveNode() : serveFulcrum();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  console.log(JSON.stringify({ port: (listener.address() as net.AddressInfo).port }));
  let since = process.cpuUsage();
  for await (const _line of createInterface({ input: process.stdin })) {
    const used = process.cpuUsage(since);
    since = process.cpuUsage();
    console.log(JSON.stringify({ cpuUs: used.user + used.system }));
  }
  process.exit(0);
}

// ---- the client (this process)

interface RunResult {
  engine: Engine;
  inFlight: number;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerCall: number;
  errors: number;
}

class ServerChild {
  private readonly lines: AsyncIterator<string>;

  private constructor(private readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  static async start(engine: Engine): Promise<{ child: ServerChild; port: number }> {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, '--serve', engine], { stdio: ['pipe', 'pipe', 'inherit'] });
    const server = new ServerChild(child);
    const { port } = JSON.parse(await server.line()) as { port: number };
    return { child: server, port };
  }

  /** CPU microseconds the server used since the previous call. */
  async cpuUs(): Promise<number> {
    this.child.stdin!.write('\n');
    return (JSON.parse(await this.line()) as { cpuUs: number }).cpuUs;
  }

  stop(): void {
    this.child.kill();
  }

  private async line(): Promise<string> {
    const next = await this.lines.next();
    if (next.done === true) throw new Error('the server child exited');
    return next.value;
  }
}

async function run(engine: Engine, inFlight: number, seconds: number): Promise<RunResult> {
  const { child, port } = await ServerChild.start(engine);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const request = Buffer.alloc(271, 0x76);
  const latencies = new Float64Array(LATENCY_SAMPLES_MAX);
  let measuring = false;
  let stopping = false;
  let calls = 0;
  let errors = 0;
  let outstanding = 0;
  let allDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const one = (): void => {
    outstanding++;
    const start = performance.now();
    client.makeUnaryRequest(PATH, (b: Buffer) => b, (b: Buffer) => b, request, (err, res) => {
      outstanding--;
      if (measuring) {
        if (calls < LATENCY_SAMPLES_MAX) latencies[calls] = performance.now() - start;
        calls++;
        if (err !== null || res === undefined || !res.equals(RESPONSE_MESSAGE)) errors++;
      }
      if (!stopping) one();
      else if (outstanding === 0) allDone();
    });
  };
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5_000, (e) => (e ? reject(e) : resolve())));
  for (let i = 0; i < inFlight; i++) one();
  await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
  await child.cpuUs();
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsedS = (performance.now() - t0) / 1000;
  const cpuUs = await child.cpuUs();
  stopping = true;
  await done;
  client.close();
  child.stop();
  const sorted = latencies.slice(0, Math.min(calls, LATENCY_SAMPLES_MAX)).sort();
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { engine, inFlight, callsPerSecond: calls / elapsedS, p50Ms: q(0.5), p99Ms: q(0.99), serverCpuUsPerCall: cpuUs / calls, errors };
}

function parseArgs(argv: readonly string[]): { seconds: number; inFlight: number[]; rounds: number } {
  const out = { seconds: 5, inFlight: [100, 1], rounds: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--seconds') out.seconds = Number(value);
    else if (flag === '--in-flight') out.inFlight = value.split(',').map(Number);
    else if (flag === '--rounds') out.rounds = Number(value);
    else throw new Error('usage: bench/h2-engine.ts [--seconds S] [--in-flight N,M] [--rounds R]');
  }
  if (!(out.seconds > 0) || !(out.rounds > 0) || !out.inFlight.every((n) => Number.isSafeInteger(n) && n > 0)) throw new Error('bench/h2-engine.ts: positive numbers only');
  return out;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--serve') return serve(argv[1] as Engine);
  const { seconds, inFlight, rounds } = parseArgs(argv);
  console.log('engine   in-flight  calls/s   p50 ms   p99 ms  server CPU us/call  errors');
  for (let round = 0; round < rounds; round++) {
    for (const n of inFlight) {
      const order = round % 2 === 0 ? ENGINES : [...ENGINES].reverse();
      for (const engine of order) {
        const r = await run(engine, n, seconds);
        console.log(
          `${r.engine.padEnd(8)} ${String(r.inFlight).padStart(9)} ${r.callsPerSecond.toFixed(0).padStart(8)} ${r.p50Ms.toFixed(3).padStart(8)} ` +
            `${r.p99Ms.toFixed(3).padStart(8)} ${r.serverCpuUsPerCall.toFixed(1).padStart(19)} ${String(r.errors).padStart(7)}`,
        );
      }
    }
  }
}

await main();
