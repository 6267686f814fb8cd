// node/tls.ts: the start-up checks (one ConfigError per problem, naming flag and file), grpc-js servers and channels
// built from a TlsFileWatcher (mutual TLS, wrong CA, wrong host name), and rotation without restart.
import { readFile, writeFile } from 'node:fs/promises';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi } from '../proto/index.js';
import { ConfigError } from './config.js';
import { daysFromNow, TestPki, type IssuedCert, type TestCa } from './testing/certs.js';
import { checkClientCertificates } from './grpc-listeners.js';
import { clientCertificateRefusal, loadTlsFiles, TlsFileWatcher, type TlsFiles } from './tls.js';

const FLAGS = { cert: '--cert-file', key: '--key-file', ca: '--trusted-ca-file', crl: '--client-crl-file' };
const quiet = pino({ level: 'silent' });

let pki: TestPki;
let ca: TestCa;
let rogueCa: TestCa;
let server: IssuedCert;
let client: IssuedCert;
let intruder: IssuedCert;

beforeAll(async () => {
  pki = await TestPki.create();
  [ca, rogueCa] = await Promise.all([pki.ca('ca'), pki.ca('rogue-ca')]);
  [server, client, intruder] = await Promise.all([pki.issue(ca, 'server'), pki.issue(ca, 'client'), pki.issue(rogueCa, 'intruder')]);
}, 30_000);

afterAll(() => pki.cleanup());

function files(cert: IssuedCert, o: Partial<TlsFiles> = {}): TlsFiles {
  return { certFile: cert.certFile, keyFile: cert.keyFile, trustedCaFile: ca.certFile, clientCertAuth: false, flags: FLAGS, ...o };
}

async function configErrorOf(f: TlsFiles): Promise<string> {
  const e = await loadTlsFiles(f).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return (e as Error).message;
}

describe('loadTlsFiles: checks at start', () => {
  it('a valid set loads', async () => {
    const t = await loadTlsFiles(files(server));
    expect(t.certificate.serialNumber).toBe(server.serial);
    expect(t.ca).toBeDefined();
  });

  it('an unreadable file is named with the reason', async () => {
    expect(await configErrorOf(files(server, { certFile: `${pki.dir}/missing.crt` }))).toBe(`--cert-file ${pki.dir}/missing.crt: cannot read the file (ENOENT)`);
    expect(await configErrorOf(files(server, { trustedCaFile: pki.dir }))).toBe(`--trusted-ca-file ${pki.dir}: not a regular file`);
  });

  it('a file that is not PEM', async () => {
    const junk = `${pki.dir}/junk.pem`;
    await writeFile(junk, 'hello\n');
    expect(await configErrorOf(files(server, { certFile: junk }))).toBe(`--cert-file ${junk}: not a PEM certificate`);
    expect(await configErrorOf(files(server, { keyFile: junk }))).toBe(`--key-file ${junk}: not a PEM private key`);
    expect(await configErrorOf(files(server, { trustedCaFile: junk }))).toBe(`--trusted-ca-file ${junk}: no PEM certificate in the file`);
  });

  it('a key that does not match the certificate', async () => {
    expect(await configErrorOf(files(server, { keyFile: client.keyFile }))).toBe(
      `--key-file ${client.keyFile}: the private key does not match the certificate in --cert-file ${server.certFile}`,
    );
  });

  it('an expired and a not-yet-valid certificate', async () => {
    const expired = await pki.issue(ca, 'expired', { notBefore: daysFromNow(-3), notAfter: daysFromNow(-1) });
    const future = await pki.issue(ca, 'future', { notBefore: daysFromNow(2), notAfter: daysFromNow(30) });
    expect(await configErrorOf(files(expired))).toMatch(new RegExp(`^--cert-file ${expired.certFile}: the certificate expired at \\d{4}-\\d\\d-\\d\\dT`));
    expect(await configErrorOf(files(future))).toMatch(new RegExp(`^--cert-file ${future.certFile}: the certificate is not valid before \\d{4}-`));
  });
});

describe('TlsFileWatcher: a certificate about to expire', () => {
  it('is logged as a warning at start, and as an error once it has expired', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
    const soon = await pki.issue(ca, 'expires-soon', { notBefore: daysFromNow(-1), notAfter: new Date(Date.now() + 2_500) });
    const w = await TlsFileWatcher.open(files(soon), logger, 60_000);
    try {
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
        `fulcrum: the TLS certificate in --cert-file expires at ${new Date(w.current.certificate.validTo).toISOString()}; replace the files (they are reloaded without a restart)`,
      ]);
      await new Promise((r) => setTimeout(r, 3_000));
      await w.check();
      await w.check();
      expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([
        'fulcrum: the TLS certificate in --cert-file has expired; replace the files (they are reloaded without a restart)',
      ]);
    } finally {
      w.close();
    }
  }, 20_000);
});

// ---------------------------------------------------------------------------------------------------------
// A grpc-js server built from a watcher: a KV whose Range answers with the client certificate it saw.

interface Served {
  readonly port: number;
  readonly watcher: TlsFileWatcher;
  /** The serial of the client certificate on each call, '' without one. */
  readonly seen: string[];
  /** Why connections were closed by the name check (allowedCn / allowedHostname), in order. */
  readonly refused: string[];
  close(): Promise<void>;
}

async function serve(f: TlsFiles): Promise<Served> {
  const watcher = await TlsFileWatcher.open(f, quiet, 60_000);
  const s = new grpc.Server();
  const seen: string[] = [];
  s.addService(loadEtcdApi().etcdserverpb.KV.service, {
    Range: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const peer = call.getAuthContext().sslPeerCertificate as PeerCertificate | undefined;
      seen.push(peer?.serialNumber?.toUpperCase() ?? '');
      cb(null, { kvs: [], count: 0 });
    },
  } as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((res, rej) => s.bindAsync('127.0.0.1:0', watcher.serverCredentials(), (e, p) => (e ? rej(e) : res(p))));
  const refused: string[] = [];
  // As the server does (node/server.ts).
  checkClientCertificates(s, (cert) => clientCertificateRefusal(cert, f, watcher.current.revoked), (reason) => refused.push(reason));
  return {
    port,
    watcher,
    seen,
    refused,
    close: async () => {
      s.forceShutdown();
      watcher.close();
    },
  };
}

type KvClient = InstanceType<ReturnType<typeof loadEtcdApi>['etcdserverpb']['KV']>;

function kvClient(port: number, creds: grpc.ChannelCredentials, host = '127.0.0.1'): KvClient {
  return new (loadEtcdApi().etcdserverpb.KV)(`${host}:${port}`, creds);
}

async function sslCreds(cert?: IssuedCert, caFile = ca.certFile): Promise<grpc.ChannelCredentials> {
  const caPem = await readFile(caFile);
  if (cert === undefined) return grpc.credentials.createSsl(caPem);
  return grpc.credentials.createSsl(caPem, await readFile(cert.keyFile), await readFile(cert.certFile));
}

function range(c: KvClient): Promise<void> {
  return new Promise((resolve, reject) =>
    c.Range({ key: Buffer.from('k') } as never, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, ((e: grpc.ServiceError | null) => (e ? reject(e) : resolve())) as never),
  );
}

/** The certificate a fresh TLS connection is served. */
function servedCertificate(port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', servername: 'localhost', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(s.getPeerCertificate());
      s.end();
    });
    s.on('error', reject);
  });
}

describe('grpc-js over a TlsFileWatcher', () => {
  it('mutual TLS: a client certificate from the trusted CA gets in; none, or one from another CA, does not', async () => {
    const s = await serve(files(server, { clientCertAuth: true }));
    try {
      await range(kvClient(s.port, await sslCreds(client)));
      expect(s.seen).toEqual([client.serial]);
      await expect(range(kvClient(s.port, await sslCreds()))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await expect(range(kvClient(s.port, await sslCreds(intruder)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(s.seen).toEqual([client.serial]);
    } finally {
      await s.close();
    }
  });

  it('without --client-cert-auth, clients need no certificate (guards grpc-js argument order)', async () => {
    const s = await serve(files(server, { clientCertAuth: false }));
    try {
      await range(kvClient(s.port, await sslCreds()));
      expect(s.seen).toEqual(['']);
    } finally {
      await s.close();
    }
  });

  it('a client refuses a server whose certificate is from another CA, or for another host', async () => {
    const wrongHost = await pki.issue(ca, 'wrong-host', { sans: ['DNS:db9.example', 'IP:10.9.9.9'] });
    const rogue = await serve(files(intruder, { trustedCaFile: undefined }));
    const misnamed = await serve(files(wrongHost));
    try {
      await expect(range(kvClient(rogue.port, await sslCreds()))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await expect(range(kvClient(misnamed.port, await sslCreds()))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect([...rogue.seen, ...misnamed.seen]).toEqual([]);
    } finally {
      await Promise.all([rogue.close(), misnamed.close()]);
    }
  });

  it('rotation: new connections get the new certificate, open ones keep working; a half-written set is not used', async () => {
    const first = await pki.issue(ca, 'rotating');
    const s = await serve(files(first, { clientCertAuth: true }));
    try {
      const old = kvClient(s.port, await sslCreds(client));
      await range(old);
      expect((await servedCertificate(s.port)).serialNumber.toUpperCase()).toBe(first.serial);

      // A new key alone does not match the certificate still on disk: the watcher keeps the current set.
      const next = await pki.issue(ca, 'rotating-next');
      await writeFile(first.keyFile, await readFile(next.keyFile));
      await s.watcher.check();
      expect(s.watcher.current.certificate.serialNumber).toBe(first.serial);
      expect((await servedCertificate(s.port)).serialNumber.toUpperCase()).toBe(first.serial);

      await writeFile(first.certFile, await readFile(next.certFile));
      await s.watcher.check();
      expect(s.watcher.current.certificate.serialNumber).toBe(next.serial);
      expect((await servedCertificate(s.port)).serialNumber.toUpperCase()).toBe(next.serial);
      await range(old);
      await range(kvClient(s.port, await sslCreds(client)));
      expect(s.seen).toEqual([client.serial, client.serial, client.serial]);
    } finally {
      await s.close();
    }
  });

  it('outgoing connections present the rotated client certificate', async () => {
    const s = await serve(files(server, { clientCertAuth: true }));
    const dialer = await pki.issue(ca, 'dialer');
    const w = await TlsFileWatcher.open(files(dialer), quiet, 60_000);
    try {
      await range(kvClient(s.port, w.channelCredentials()));
      const renewed = await pki.issue(ca, 'dialer-renewed', { certFile: dialer.certFile, keyFile: dialer.keyFile });
      await w.check();
      // A new channel (a new connection): the channel above may keep its connection and its certificate.
      await range(kvClient(s.port, w.channelCredentials(), 'localhost'));
      expect(s.seen).toEqual([dialer.serial, renewed.serial]);
    } finally {
      w.close();
      await s.close();
    }
  });
});

describe('client certificate names (--peer-cert-allowed-cn, --*-cert-allowed-hostname)', () => {
  it('a CN check admits the named certificate and closes the connection of any other, as the handshake ends', async () => {
    const memberA = await pki.issue(ca, 'member-a');
    const s = await serve(files(server, { clientCertAuth: true, allowedCn: 'member-a' }));
    try {
      await range(kvClient(s.port, await sslCreds(memberA)));
      await expect(range(kvClient(s.port, await sslCreds(client)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      // Only the admitted certificate's call reached a handler.
      expect(s.seen).toEqual([memberA.serial]);
      expect(s.refused.length).toBeGreaterThan(0);
      expect(new Set(s.refused)).toEqual(new Set(['CommonName authentication failed']));
    } finally {
      await s.close();
    }
  });

  it('a host name check matches the subjectAltName, wildcards included, not the CN', async () => {
    const exact = await pki.issue(ca, 'exact', { sans: ['DNS:node1.fulcrum.example'] });
    const wildcard = await pki.issue(ca, 'wildcard', { sans: ['DNS:*.fulcrum.example'] });
    // Its CN is the allowed name, but its subjectAltName is not: a name in the SAN list is what counts.
    const cnOnly = await pki.issue(ca, 'cn-only', { commonName: 'node1.fulcrum.example', sans: ['DNS:localhost'] });
    const s = await serve(files(server, { clientCertAuth: true, allowedHostname: 'node1.fulcrum.example' }));
    try {
      await range(kvClient(s.port, await sslCreds(exact)));
      await range(kvClient(s.port, await sslCreds(wildcard)));
      await expect(range(kvClient(s.port, await sslCreds(cnOnly)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await expect(range(kvClient(s.port, await sslCreds(client)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(s.seen).toEqual([exact.serial, wildcard.serial]);
      expect(new Set(s.refused)).toEqual(new Set(['hostname authentication failed']));
    } finally {
      await s.close();
    }
  });

  it('without a name to check, every certificate from the CA gets in (the check is off by default)', async () => {
    const s = await serve(files(server, { clientCertAuth: true }));
    try {
      await range(kvClient(s.port, await sslCreds(client)));
      expect([s.seen, s.refused]).toEqual([[client.serial], []]);
    } finally {
      await s.close();
    }
  });
});

describe('certificate revocation lists (--client-crl-file, --peer-crl-file)', () => {
  it('a revoked client certificate is closed as its handshake ends; the others get in; a new list is picked up without a restart', async () => {
    const crlCa = await pki.ca('crl-ca');
    const [crlServer, alice, bob] = await Promise.all([pki.issue(crlCa, 'crl-server'), pki.issue(crlCa, 'alice'), pki.issue(crlCa, 'bob')]);
    await pki.revoke(crlCa, bob);
    const crlFile = await pki.crl(crlCa);
    const f: TlsFiles = { certFile: crlServer.certFile, keyFile: crlServer.keyFile, trustedCaFile: crlCa.certFile, clientCertAuth: true, crlFile, flags: FLAGS };
    const s = await serve(f);
    try {
      await range(kvClient(s.port, await sslCreds(alice, crlCa.certFile)));
      await expect(range(kvClient(s.port, await sslCreds(bob, crlCa.certFile)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(s.seen).toEqual([alice.serial]);
      expect(new Set(s.refused)).toEqual(new Set([`transport: certificate serial ${bob.serial.toLowerCase().replace(/^(00)+/, '')} revoked`]));
      // Alice is revoked too: the watcher reads the new list, and her next connection is refused.
      await pki.revoke(crlCa, alice);
      await pki.crl(crlCa, crlFile);
      await s.watcher.check();
      await expect(range(kvClient(s.port, await sslCreds(alice, crlCa.certFile), 'localhost'))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(s.seen).toEqual([alice.serial]);
    } finally {
      await s.close();
    }
  });

  it('a file that is not a CRL stops the member at start with the flag and the file named', async () => {
    const message = await configErrorOf(files(server, { crlFile: server.certFile }));
    expect(message).toBe(`--client-crl-file ${server.certFile}: not a certificate revocation list (no "X509 CRL" PEM block in the file)`);
  });
});
