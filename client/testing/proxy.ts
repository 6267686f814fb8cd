// A TCP proxy in front of a member, for faults the client must survive that a process signal cannot make:
// an answer lost after the server applied the request, or a member that accepts connections and then says
// nothing (a partition that keeps TCP up). Test code only.
import { createServer, type Server, type Socket, connect } from 'node:net';

/**
 * Bytes from the server that count as "the answer": more than an HTTP/2 WINDOW_UPDATE (13) or PING (17), so
 * dropping them means the server had finished the call (it answers only after applying).
 */
const ANSWER_BYTES_MIN = 30;

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

  /** The next `n` answers are swallowed and their connections cut (the requests were delivered and applied). */
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
    let swallowed = 0;
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => {
      if (!this.silent) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (this.silent) return;
      if (this.dropNext > 0) {
        swallowed += d.length;
        if (swallowed >= ANSWER_BYTES_MIN) {
          this.dropNext--;
          this.dropped++;
          cut();
        }
        return;
      }
      client.write(d);
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
