import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HEALTHY, LinkProxy, PASS, validateShape } from './proxy.js';

// An echo server behind the proxy: what goes forward comes back backward.
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => undefined); // resets are what this proxy does
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port };
}

/** A free port for the proxy, from the suite's range (24800–25999), offset by pid; retried on EADDRINUSE. */
async function listenProxy(upstream: number): Promise<LinkProxy> {
  for (let i = 0; i < 50; i++) {
    const p = new LinkProxy('test', 24_800 + ((process.pid * 7 + i * 13) % 1_200), upstream);
    try {
      await p.listen();
      return p;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error('no free proxy port');
}

function collect(s: Socket): { text: () => string; closed: Promise<void> } {
  let buf = '';
  s.on('data', (d: Buffer) => (buf += d.toString()));
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  s.on('error', () => undefined);
  return { text: () => buf, closed };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const x of opened.splice(0)) await x.close();
});

describe('LinkProxy', () => {
  it('passes bytes both ways, and holds them while a direction is cut', async () => {
    const { server, port } = await echoServer();
    const proxy = await listenProxy(port);
    opened.push(proxy, server);
    const s = connect(proxy.listenPort, '127.0.0.1');
    const got = collect(s);
    s.write('hello');
    await until(() => got.text() === 'hello', 'the echo');
    // Backward cut: the request reaches the server, the answer is held.
    proxy.setShape({ ...HEALTHY, backward: { ...PASS, cut: true } });
    s.write('-again');
    await until(() => proxy.stats.bytesBackward >= 11, 'the server to answer');
    expect(got.text()).toBe('hello');
    expect(proxy.stats.bytesForward).toBe(11);
    s.destroy();
  });

  it('resets connections that saw a cut when the link heals, so both ends start a clean stream', async () => {
    const { server, port } = await echoServer();
    const proxy = await listenProxy(port);
    opened.push(proxy, server);
    const s = connect(proxy.listenPort, '127.0.0.1');
    const got = collect(s);
    await new Promise<void>((r) => s.once('connect', () => r()));
    proxy.setShape({ ...HEALTHY, forward: { ...PASS, cut: true } });
    s.write('lost');
    proxy.setShape(HEALTHY);
    await got.closed;
    expect(got.text()).toBe('');
    // A new connection works.
    const s2 = connect(proxy.listenPort, '127.0.0.1');
    const got2 = collect(s2);
    s2.write('fresh');
    await until(() => got2.text() === 'fresh', 'the echo on a new connection');
    s2.destroy();
  });

  it('delays and throttles without reordering', async () => {
    const { server, port } = await echoServer();
    const proxy = await listenProxy(port);
    opened.push(proxy, server);
    proxy.setShape({ ...HEALTHY, forward: { cut: false, delayMs: 30, jitterMs: 30, bytesPerSecond: 20_000 } });
    const s = connect(proxy.listenPort, '127.0.0.1');
    const got = collect(s);
    const sent = Array.from({ length: 50 }, (_, i) => `<${i}>`).join('');
    for (let i = 0; i < 50; i++) s.write(`<${i}>`);
    await until(() => got.text().length === sent.length, 'every chunk');
    expect(got.text()).toBe(sent);
    s.destroy();
  });

  it('resets the given fraction of new connections', async () => {
    const { server, port } = await echoServer();
    const proxy = await listenProxy(port);
    opened.push(proxy, server);
    proxy.setShape({ ...HEALTHY, dropConnections: 1 });
    const s = connect(proxy.listenPort, '127.0.0.1');
    const got = collect(s);
    await got.closed;
    expect(proxy.stats.dropped).toBe(1);
  });

  it('refuses shapes that make no sense, with a clear error', () => {
    expect(() => validateShape({ ...HEALTHY, dropConnections: 1.5 })).toThrow(/drop fraction/);
    expect(() => validateShape({ ...HEALTHY, forward: { ...PASS, delayMs: 10, jitterMs: 20 } })).toThrow(/jitter/);
    expect(() => validateShape({ ...HEALTHY, backward: { ...PASS, bytesPerSecond: -1 } })).toThrow(/throttle/);
  });
});
