// The image's HEALTHCHECK: GET /health on this member's metrics listener, exit 0 on 200 and 1 otherwise.
// The health endpoints are served only on --listen-metrics-urls (docs/operations.md), and a HEALTHCHECK sees
// the container's environment but not its command line, so the address comes from FULCRUM_LISTEN_METRICS_URLS
// (the image sets it; ETCD_LISTEN_METRICS_URLS is the alias). A wildcard listen address is dialled on loopback.
/* global fetch, AbortSignal -- Node 20's, and this file runs as plain JavaScript in the image */
import process from 'node:process';
import { URL } from 'node:url';

/** Below Docker's --timeout (5 s in the Dockerfile), so this program reports a timeout itself rather than being killed. */
const REQUEST_TIMEOUT_MS = 4_000;

function healthUrl(env) {
  const list = env.FULCRUM_LISTEN_METRICS_URLS || env.ETCD_LISTEN_METRICS_URLS || '';
  const first = list.split(',')[0].trim();
  if (first === '') return undefined;
  const url = new URL(first);
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  url.pathname = '/health';
  return url;
}

const url = healthUrl(process.env);
if (url === undefined) {
  process.stderr.write('healthcheck: FULCRUM_LISTEN_METRICS_URLS is not set, so there is no /health to ask\n');
  process.exit(1);
}
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  process.stdout.write(`${url.href} ${response.status} ${await response.text()}\n`);
  process.exit(response.status === 200 ? 0 : 1);
} catch (e) {
  process.stdout.write(`${url.href} failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
