// A userspace TCP fault proxy: one listening port per directed link (member i's connections to member j, or a
// client's connections to member j). The machine has no netem, so faults are applied here, on the bytes:
//
//   forward (client → upstream)  and  backward (upstream → client)  are shaped independently:
//     pass       bytes flow
//     cut        bytes are held back (not dropped) while the cut lasts and then discarded with the connection:
//                a cut link looks like a silent network, not like a refused port, which is what a partition is
//     delay      each chunk waits delayMs ± jitterMs (order inside a connection is kept: TCP never reorders)
//     throttle   at most bytesPerSecond per direction per connection
//   drop         a fraction of NEW connections is reset at accept. Dropping chunks inside a TCP stream would
//                corrupt HTTP/2 framing, which real packet loss never does (TCP retransmits); refused or reset
//                connections are what loss looks like to the application.
//
// A cut that starts while connections are open kills them when it ends (`heal` resets them), so both sides
// reconnect on a clean stream, as they would after a real partition long enough to time out.
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Bytes held for one direction of one connection while it is cut or delayed; beyond this the connection is reset. */
export const HELD_BYTES_MAX = 32 * 1024 * 1024;
/** Connections open at once through one link; more are refused (a leak would otherwise go unnoticed). */
export const CONNECTIONS_PER_LINK_MAX = 256;

export interface DirectionShape {
  readonly cut: boolean;
  readonly delayMs: number;
  readonly jitterMs: number;
  /** 0 = unlimited. */
  readonly bytesPerSecond: number;
}

export interface LinkShape {
  readonly forward: DirectionShape;
  readonly backward: DirectionShape;
  /** Fraction in [0, 1] of new connections reset at accept. */
  readonly dropConnections: number;
}

export const PASS: DirectionShape = { cut: false, delayMs: 0, jitterMs: 0, bytesPerSecond: 0 };
export const HEALTHY: LinkShape = { forward: PASS, backward: PASS, dropConnections: 0 };

export function validateShape(s: LinkShape): void {
  for (const d of [s.forward, s.backward]) {
    if (d.delayMs < 0 || d.jitterMs < 0 || d.jitterMs > d.delayMs) throw new RangeError(`delay ${d.delayMs}±${d.jitterMs} ms: need 0 <= jitter <= delay`);
    if (d.bytesPerSecond < 0) throw new RangeError(`throttle ${d.bytesPerSecond} B/s must be >= 0`);
  }
  if (!(s.dropConnections >= 0 && s.dropConnections <= 1)) throw new RangeError(`drop fraction ${s.dropConnections} must be in [0, 1]`);
}

/** One direction of one connection: a FIFO of chunks released according to the link's current shape. */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer; due: number }> = [];
  private held = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the throttle lets the next byte through. */
  private nextFreeAt = 0;
  private lastDue = 0;

  constructor(
    private readonly to: Socket,
    private readonly shape: () => DirectionShape,
    private readonly onOverflow: () => void,
    private readonly random: () => number,
  ) {}

  push(chunk: Buffer): void {
    const s = this.shape();
    const delay = s.delayMs === 0 ? 0 : s.delayMs - s.jitterMs + this.random() * 2 * s.jitterMs;
    // Chunks never overtake each other: a later chunk with less jitter waits for the earlier one.
    const due = Math.max(Date.now() + delay, this.lastDue);
    this.lastDue = due;
    this.queue.push({ chunk, due });
    this.held += chunk.length;
    if (this.held > HELD_BYTES_MAX) return this.onOverflow();
    this.pump();
  }

  /** Release what is due; called on every push, on a timer, and when the shape changes. */
  pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const s = this.shape();
    if (s.cut) return; // held until healed (or the connection is reset)
    const now = Date.now();
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const readyAt = Math.max(head.due, s.bytesPerSecond > 0 ? this.nextFreeAt : 0);
      if (readyAt > now) {
        this.timer = setTimeout(() => this.pump(), readyAt - now);
        return;
      }
      this.queue.shift();
      this.held -= head.chunk.length;
      if (s.bytesPerSecond > 0) this.nextFreeAt = Math.max(now, this.nextFreeAt) + (head.chunk.length * 1000) / s.bytesPerSecond;
      if (!this.to.destroyed) this.to.write(head.chunk);
    }
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.queue.length = 0;
    this.held = 0;
  }
}

interface Conn {
  readonly down: Socket;
  readonly up: Socket;
  readonly pipes: readonly Pipe[];
  /** The connection saw a cut: when the link heals it is reset so both ends start a fresh stream. */
  sawCut: boolean;
}

export interface LinkStats {
  accepted: number;
  dropped: number;
  refused: number;
  bytesForward: number;
  bytesBackward: number;
}

/** A proxy for one directed link: listens on `listenPort`, forwards to `upstreamPort` on 127.0.0.1. */
export class LinkProxy {
  private server: Server | undefined;
  private readonly conns = new Set<Conn>();
  private shapeNow: LinkShape = HEALTHY;
  readonly stats: LinkStats = { accepted: 0, dropped: 0, refused: 0, bytesForward: 0, bytesBackward: 0 };

  constructor(
    readonly name: string,
    readonly listenPort: number,
    readonly upstreamPort: number,
    private readonly random: () => number = Math.random,
  ) {}

  async listen(): Promise<void> {
    this.server = await listenLoopback(this.listenPort, (s) => this.accept(s));
  }

  get shape(): LinkShape {
    return this.shapeNow;
  }

  setShape(shape: LinkShape): void {
    validateShape(shape);
    const wasCut = this.shapeNow.forward.cut || this.shapeNow.backward.cut;
    this.shapeNow = shape;
    const isCut = shape.forward.cut || shape.backward.cut;
    for (const c of this.conns) {
      if (isCut) c.sawCut = true;
      if (wasCut && !isCut && c.sawCut) this.reset(c);
      else for (const p of c.pipes) p.pump();
    }
  }

  private accept(down: Socket): void {
    this.stats.accepted++;
    if (this.conns.size >= CONNECTIONS_PER_LINK_MAX) {
      this.stats.refused++;
      return void down.resetAndDestroy();
    }
    if (this.shapeNow.dropConnections > 0 && this.random() < this.shapeNow.dropConnections) {
      this.stats.dropped++;
      return void down.resetAndDestroy();
    }
    down.setNoDelay(true);
    const up = connect({ port: this.upstreamPort, host: '127.0.0.1', noDelay: true });
    const overflow = (): void => this.reset(conn);
    const forward = new Pipe(up, () => this.shapeNow.forward, overflow, this.random);
    const backward = new Pipe(down, () => this.shapeNow.backward, overflow, this.random);
    const conn: Conn = { down, up, pipes: [forward, backward], sawCut: this.shapeNow.forward.cut || this.shapeNow.backward.cut };
    this.conns.add(conn);
    down.on('data', (b: Buffer) => {
      this.stats.bytesForward += b.length;
      forward.push(b);
    });
    up.on('data', (b: Buffer) => {
      this.stats.bytesBackward += b.length;
      backward.push(b);
    });
    // One side closing or failing ends the whole connection; errors are the normal life of a chaos proxy.
    const end = (): void => this.reset(conn);
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
    }
  }

  private reset(c: Conn): void {
    if (!this.conns.delete(c)) return;
    for (const p of c.pipes) p.close();
    for (const s of [c.down, c.up]) if (!s.destroyed) s.resetAndDestroy();
  }

  /** Reset every open connection (a partition that ends, a member that restarts). */
  resetAll(): void {
    for (const c of [...this.conns]) this.reset(c);
  }

  async close(): Promise<void> {
    this.resetAll();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}

/** A TCP server on 127.0.0.1:port with Nagle off (proxied bytes must not wait), resolved once it listens. */
export async function listenLoopback(port: number, onConnection: (s: Socket) => void): Promise<Server> {
  const server = createServer({ noDelay: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
