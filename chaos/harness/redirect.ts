// Loaded into each chaos member with `node --import`: rewrites the destination port of outgoing TCP connections
// according to FULCRUM_CHAOS_REDIRECT ("canonicalPort:proxyPort,..."), so member i reaches member j through the
// proxy of the directed link i→j while every member still advertises the same canonical peer URLs (member ids
// are derived from those URLs, so per-member URLs would give every member a different idea of the cluster).
// Test-only: nothing in the server knows about it, and without the variable it does nothing.
import net from 'node:net';

function parseRedirects(text: string | undefined): Map<number, number> {
  const map = new Map<number, number>();
  for (const pair of (text ?? '').split(',')) {
    if (pair === '') continue;
    const [from, to] = pair.split(':').map(Number);
    if (!Number.isInteger(from) || !Number.isInteger(to)) throw new Error(`FULCRUM_CHAOS_REDIRECT: bad pair "${pair}" (want canonicalPort:proxyPort)`);
    map.set(from!, to!);
  }
  return map;
}

const redirects = parseRedirects(process.env.FULCRUM_CHAOS_REDIRECT);

if (redirects.size > 0) {
  const original = net.Socket.prototype.connect;
  // net.connect() passes its normalized [options, callback] array as the first argument; grpc-js calls
  // net.connect({host, port}); both end here with an options object whose port we rewrite in place.
  net.Socket.prototype.connect = function connect(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const options = (Array.isArray(first) ? first[0] : first) as { port?: number | string } | undefined;
    if (options !== null && typeof options === 'object' && options.port !== undefined) {
      const to = redirects.get(Number(options.port));
      if (to !== undefined) options.port = to;
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      const to = redirects.get(Number(first));
      if (to !== undefined) args[0] = to;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
}
