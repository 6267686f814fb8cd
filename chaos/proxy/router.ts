// For etcd, which cannot be told to connect through a per-link port: one front door per member that reads the
// first HTTP request of each incoming peer connection, finds etcd's `X-Server-From: <member id>` header, and
// hands the connection to the proxy of the link (from → this member). Connections without the header (version
// probes) or from unknown ids go straight to the member. The bytes read are replayed, untouched.
import { connect, type Server, type Socket } from 'node:net';
import { listenLoopback } from './proxy.js';

/** Bytes read looking for the end of the first request's headers before giving up and passing straight on. */
export const SNIFF_BYTES_MAX = 16 * 1024;

export class FromRouter {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly listenPort: number,
    private readonly directPort: number,
    private readonly linkPortFor: (fromHexId: string) => number | undefined,
  ) {}

  async listen(): Promise<void> {
    this.server = await listenLoopback(this.listenPort, (s) => this.accept(s));
  }

  private accept(down: Socket): void {
    this.sockets.add(down);
    down.on('close', () => this.sockets.delete(down));
    down.on('error', () => down.destroy());
    let head = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      head = Buffer.concat([head, b]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < SNIFF_BYTES_MAX) return;
      down.off('data', onData);
      down.pause();
      const from = /\r\nX-Server-From:\s*([0-9a-f]+)\r\n/i.exec(head.subarray(0, end < 0 ? head.length : end + 2).toString('latin1'))?.[1];
      const port = (from !== undefined ? this.linkPortFor(from.toLowerCase()) : undefined) ?? this.directPort;
      const up = connect({ port, host: '127.0.0.1', noDelay: true });
      this.sockets.add(up);
      up.on('close', () => {
        this.sockets.delete(up);
        down.destroy();
      });
      up.on('error', () => up.destroy());
      down.on('close', () => up.destroy());
      up.write(head);
      down.pipe(up);
      up.pipe(down);
      down.resume();
    };
    down.on('data', onData);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}
