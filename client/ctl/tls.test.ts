// The TLS flags reach the wire: a member behind a TLS-terminating proxy that requires a client certificate (the
// server itself has no TLS yet), certificates made with openssl. --cacert, --cert and --key together succeed;
// plaintext, a wrong CA, or no client certificate each fail in one line with UNAVAILABLE.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctl, freePorts, startCtlMember, type CtlMember } from './testing.js';

const OPENSSL = '/usr/bin/openssl';
const dir = mkdtempSync(join(tmpdir(), 'fulcrumctl-tls-'));
const file = (name: string): string => join(dir, name);
let m: CtlMember;
let proxy: Server;
let endpoint: string;

/** A self-signed certificate (its own CA) for `cn`, with 127.0.0.1 as its address. */
function selfSigned(name: string, cn: string): void {
  execFileSync(OPENSSL, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`)], { stdio: 'ignore' });
}

describe.skipIf(!existsSync(OPENSSL))('TLS flags', () => {
  beforeAll(async () => {
    for (const [name, cn] of [['server', '127.0.0.1'], ['client', 'fulcrumctl'], ['other', 'someone else']] as const) selfSigned(name, cn);
    m = await startCtlMember(11);
    const memberPort = Number(m.endpoint.split(':')[1]);
    const tls = { key: readFileSync(file('server.key')), cert: readFileSync(file('server.pem')), ca: readFileSync(file('client.pem')), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] };
    proxy = createServer(tls, (socket) => {
      const upstream = connect(memberPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      const close = (): void => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
    });
    proxy.on('tlsClientError', () => undefined); // refused handshakes are what some tests expect
    const [port] = await freePorts(1, 12);
    await new Promise<void>((resolve, reject) => proxy.once('error', reject).listen(port, '127.0.0.1', resolve));
    endpoint = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
    await m?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const flags = (ca: string, client: boolean): string[] => ['--endpoints', endpoint, '--cacert', file(`${ca}.pem`), ...(client ? ['--cert', file('client.pem'), '--key', file('client.key')] : []), '--dial-timeout', '500ms', '--command-timeout', '2s'];

  it('talks to the member over mutual TLS with --cacert, --cert and --key', async () => {
    expect((await ctl([...flags('server', true), 'put', 'tls/k', 'secret'])).out).toBe('OK\n');
    expect((await ctl([...flags('server', true), 'get', 'tls/k', '--print-value-only'])).out).toBe('secret\n');
  });

  it('fails in one line when the CA is wrong, the client certificate is missing, or TLS is off', async () => {
    for (const argv of [flags('other', true), flags('server', false), ['--endpoints', endpoint, '--dial-timeout', '500ms', '--command-timeout', '2s']]) {
      const r = await ctl([...argv, 'get', 'tls/k']);
      expect([r.code, r.out]).toEqual([1, '']);
      expect(r.err).toMatch(/^Error: .*cannot connect to 127\.0\.0\.1:\d+ \(UNAVAILABLE\)\n$/);
    }
  });
});
