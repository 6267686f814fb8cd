// Test certificates made at run time with the openssl command line: certificate authorities, and certificates they
// sign that are valid, expired, not yet valid, for the wrong host, or signed by another CA. Nothing is checked in,
// so no test breaks the day a fixture expires.
//
//   const pki = await TestPki.create();                  // a fresh temp dir; pki.cleanup() removes it
//   const ca = await pki.ca('ca');
//   const server = await pki.issue(ca, 'server');        // SAN IP:127.0.0.1, DNS:localhost; serverAuth + clientAuth
//   const expired = await pki.issue(ca, 'old', { notBefore: daysFromNow(-2), notAfter: daysFromNow(-1) });
//   const other = await pki.issue(await pki.ca('rogue-ca'), 'intruder');
//   await pki.revoke(ca, server); const crlFile = await pki.crl(ca);   // a CRL (PEM; { der: true } for DER)
//
// Keys are EC P-256: fast to make, and every client under test (grpc-js, Go's etcdctl) takes them. Signing goes
// through `openssl ca` because it is the one openssl 3.0 command that sets both ends of the validity period.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How long a certificate is valid when the caller does not say. */
export const TEST_CERT_DAYS_DEFAULT = 30;
/** The names a certificate answers to by default: what tests on loopback dial. */
export const LOOPBACK_SANS: readonly string[] = ['IP:127.0.0.1', 'DNS:localhost'];

export interface TestCa {
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Where `openssl ca` keeps its database and serial for this CA. */
  readonly dir: string;
}

export interface IssuedCert {
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that signed it (its certificate file), for a client's --cacert. */
  readonly caFile: string;
  /** Upper-case hex, as node:crypto's X509Certificate.serialNumber reports it. */
  readonly serial: string;
  readonly fingerprint256: string;
}

export interface IssueOptions {
  /** Subject common name; defaults to the name (etcd maps a client certificate's CN to a user). */
  readonly commonName?: string;
  /** subjectAltName entries in openssl's form (`IP:10.0.0.1`, `DNS:node1`); default LOOPBACK_SANS. */
  readonly sans?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Write the files here instead of `<pki dir>/<name>.crt|.key` (to overwrite a member's files in a rotation test). */
  readonly certFile?: string;
  readonly keyFile?: string;
}

export function daysFromNow(days: number, now = Date.now()): Date {
  return new Date(now + days * 24 * 3600 * 1000);
}

/** openssl ca's -startdate / -enddate form: YYYYMMDDHHMMSSZ. */
function opensslTime(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

export class TestPki {
  /** `openssl ca` rewrites its database files: signings run one at a time, even when a test issues in parallel. */
  #signing: Promise<unknown> = Promise.resolve();

  private constructor(readonly dir: string) {}

  static async create(parent = tmpdir()): Promise<TestPki> {
    return new TestPki(await mkdtemp(join(parent, 'fulcrum-pki-')));
  }

  async ca(name: string): Promise<TestCa> {
    const dir = join(this.dir, `${name}.ca`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'ca.cnf'), caConfig(dir));
    const certFile = join(this.dir, `${name}.crt`);
    const keyFile = join(this.dir, `${name}.key`);
    await openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-subj', `/CN=${name}`, '-days', String(10 * 365),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return { name, certFile, keyFile, dir };
  }

  async issue(ca: TestCa, name: string, o: IssueOptions = {}): Promise<IssuedCert> {
    const certFile = o.certFile ?? join(this.dir, `${name}.crt`);
    const keyFile = o.keyFile ?? join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const sans = o.sans ?? LOOPBACK_SANS;
    await openssl([
      'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${keyFile}.new`, '-out', csr,
      '-subj', `/CN=${o.commonName ?? name}`,
      ...(sans.length > 0 ? ['-addext', `subjectAltName=${sans.join(',')}`] : []),
      '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
      '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
    ]);
    const notBefore = o.notBefore ?? daysFromNow(-1);
    const notAfter = o.notAfter ?? daysFromNow(TEST_CERT_DAYS_DEFAULT);
    await this.serially(() => openssl([
      'ca', '-batch', '-config', join(ca.dir, 'ca.cnf'), '-cert', ca.certFile, '-keyfile', ca.keyFile, '-in', csr, '-out', `${certFile}.new`,
      '-startdate', opensslTime(notBefore), '-enddate', opensslTime(notAfter), '-notext', '-rand_serial',
    ]));
    // Rename last, key and certificate together as far as a test can: a member polling the files may read between.
    await rename(`${keyFile}.new`, keyFile);
    await rename(`${certFile}.new`, certFile);
    const x = new X509Certificate(await readFile(certFile));
    return { name, certFile, keyFile, caFile: ca.certFile, serial: x.serialNumber, fingerprint256: x.fingerprint256 };
  }

  /** Mark `cert` revoked in `ca`'s database: the next crl() lists it. */
  async revoke(ca: TestCa, cert: IssuedCert): Promise<void> {
    await this.serially(() => openssl(['ca', '-batch', '-config', join(ca.dir, 'ca.cnf'), '-cert', ca.certFile, '-keyfile', ca.keyFile, '-revoke', cert.certFile]));
  }

  /** A CRL signed by `ca` listing what it has revoked so far: PEM, or DER with `der`. Written whole (renamed into place). */
  async crl(ca: TestCa, file: string = join(this.dir, `${ca.name}.crl`), o: { der?: boolean } = {}): Promise<string> {
    const pem = `${file}.pem.new`;
    await this.serially(() => openssl(['ca', '-batch', '-config', join(ca.dir, 'ca.cnf'), '-cert', ca.certFile, '-keyfile', ca.keyFile, '-gencrl', '-crldays', '30', '-out', pem]));
    if (o.der === true) {
      await openssl(['crl', '-in', pem, '-outform', 'DER', '-out', `${file}.new`]);
      await rm(pem);
    } else {
      await rename(pem, `${file}.new`);
    }
    await rename(`${file}.new`, file);
    return file;
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#signing.then(fn, fn);
    this.#signing = next.catch(() => undefined);
    return next;
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function caConfig(dir: string): string {
  return [
    '[ca]',
    'default_ca = test_ca',
    '[test_ca]',
    `database = ${join(dir, 'index.txt')}`,
    `serial = ${join(dir, 'serial')}`,
    `new_certs_dir = ${dir}`,
    'default_md = sha256',
    'policy = any_subject',
    // The request carries the extensions (SANs, key usage); without this `openssl ca` drops them.
    'copy_extensions = copy',
    'unique_subject = no',
    '[any_subject]',
    'commonName = supplied',
    '',
  ].join('\n');
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', [...args]);
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${err.stderr ?? err.message}`);
  }
}
