// TLS for the client and peer listeners, from etcd's flags (--cert-file, --key-file, --trusted-ca-file,
// --client-cert-auth and their --peer-* twins).
//
// Files are checked once at start (loadTlsFiles): unreadable, not PEM, key not matching the certificate, expired or
// not yet valid all stop the member with a one-line ConfigError that names the flag and the file. After that a
// TlsFileWatcher polls the files (stat every TLS_LIMITS.reloadIntervalMs) and, when they change and the new set
// passes the same checks, hands it to everything that uses it:
//
//   grpc-js servers     through its CertificateProvider interface: the next handshake uses the new certificate;
//                       connections already open keep the one they negotiated
//   grpc-js channels    (peers, other members' client URLs) likewise, for the next connection they open
//   node:https servers  (the metrics/health listener) through setSecureContext
//
// A set that fails the checks (a half-copied key, a certificate for another key, an expired one) is not used: the
// watcher logs why and keeps serving the last good set, trying again at the next change. Rotation therefore never
// takes a member off the air, and writing the key and certificate in either order is safe.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { checkServerIdentity, rootCertificates, type DetailedPeerCertificate, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from './config.js';
import { CRL_BYTES_MAX, CrlError, normalizeSerial, revokedSerials } from './crl.js';
import type { Logger } from './log.js';

export const TLS_LIMITS = {
  /** How often the watcher looks at the files' size and modification time. */
  reloadIntervalMs: 1_000,
  /** A certificate, key or CA bundle larger than this is not what the flag meant (a log file, a disk image). */
  fileBytesMax: 1024 * 1024,
  /** A served certificate closer than this to its end is logged as a warning (once per certificate): time to rotate. */
  expiryWarningMs: 7 * 24 * 3600 * 1000,
} as const;

/** One listener's TLS settings as the flags give them. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Required with clientCertAuth; without it, outgoing connections trust the system's roots. */
  readonly trustedCaFile?: string;
  /** Require a client certificate signed by trustedCaFile (mutual TLS). */
  readonly clientCertAuth: boolean;
  /** --peer-cert-allowed-cn: a client certificate must carry this subject CN (peers only, as in etcd). */
  readonly allowedCn?: string;
  /** --client-cert-allowed-hostname, --peer-cert-allowed-hostname: a client certificate must be valid for this name. */
  readonly allowedHostname?: string;
  /** --client-crl-file, --peer-crl-file: client certificates (and their issuers) listed here are refused. */
  readonly crlFile?: string;
  /** The flag names, for messages: `--cert-file` or `--peer-cert-file`, ... */
  readonly flags: { readonly cert: string; readonly key: string; readonly ca: string; readonly crl: string };
}

/** A set of files that passed the checks. */
export interface LoadedTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The trusted CA bundle, or undefined when no --trusted-ca-file was given. */
  readonly ca?: Buffer;
  readonly certificate: X509Certificate;
  /** The serials the CRL file names (crl.ts normalizeSerial form), or undefined without one. */
  readonly revoked?: ReadonlySet<string>;
}

// ---------------------------------------------------------------------------------------------------------
// Checks.

/** Read and check a set of files; throws ConfigError naming the flag, the file and the problem. */
export async function loadTlsFiles(files: TlsFiles, now = Date.now()): Promise<LoadedTls> {
  const cert = await readTlsFile(files.flags.cert, files.certFile);
  const key = await readTlsFile(files.flags.key, files.keyFile);
  const ca = files.trustedCaFile === undefined ? undefined : await readTlsFile(files.flags.ca, files.trustedCaFile);
  const certificate = parseCertificate(files.flags.cert, files.certFile, cert);
  checkValidity(files.flags.cert, files.certFile, certificate, now);
  const privateKey = parsePrivateKey(files.flags.key, files.keyFile, key);
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(`${files.flags.key} ${files.keyFile}: the private key does not match the certificate in ${files.flags.cert} ${files.certFile}`);
  }
  if (ca !== undefined) checkCaBundle(files.flags.ca, files.trustedCaFile!, ca, now);
  const revoked = files.crlFile === undefined ? undefined : await loadCrl(files.flags.crl, files.crlFile);
  return { cert, key, ca, certificate, ...(revoked === undefined ? {} : { revoked }) };
}

async function loadCrl(flag: string, file: string): Promise<Set<string>> {
  const bytes = await readTlsFile(flag, file, CRL_BYTES_MAX);
  try {
    return revokedSerials(bytes);
  } catch (e) {
    if (!(e instanceof CrlError)) throw e;
    throw new ConfigError(`${flag} ${file}: not a certificate revocation list (${e.message})`);
  }
}

async function readTlsFile(flag: string, file: string, bytesMax: number = TLS_LIMITS.fileBytesMax): Promise<Buffer> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new ConfigError(`${flag} ${file}: not a regular file`);
    if (info.size > bytesMax) throw new ConfigError(`${flag} ${file}: ${info.size} bytes; the file is at most ${bytesMax}`);
    return await readFile(file);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`${flag} ${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function parseCertificate(flag: string, file: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ConfigError(`${flag} ${file}: not a PEM certificate`);
  }
}

function parsePrivateKey(flag: string, file: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (e) {
    // An encrypted key asks for a passphrase; the member has nobody to ask.
    const why = /passphrase/i.test((e as Error).message) ? 'an encrypted private key (Fulcrum needs it unencrypted)' : 'not a PEM private key';
    throw new ConfigError(`${flag} ${file}: ${why}`);
  }
}

/** validFrom/validTo are "Nov 21 09:46:12 2026 GMT", which Date parses. */
function checkValidity(flag: string, file: string, c: X509Certificate, now: number): void {
  const from = new Date(c.validFrom);
  const to = new Date(c.validTo);
  if (now < from.getTime()) throw new ConfigError(`${flag} ${file}: the certificate is not valid before ${from.toISOString()}`);
  if (now > to.getTime()) throw new ConfigError(`${flag} ${file}: the certificate expired at ${to.toISOString()}`);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** A CA file may hold several certificates (a bundle during a CA rotation); each must parse and be current. */
function checkCaBundle(flag: string, file: string, pem: Buffer, now: number): void {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${flag} ${file}: no PEM certificate in the file`);
  for (const block of blocks) checkValidity(flag, file, parseCertificate(flag, file, Buffer.from(block)), now);
}

/**
 * Why a client certificate is refused after its handshake, in etcd's words; undefined when it passes or nothing is
 * checked. `revoked`: the listener's CRL (LoadedTls.revoked); the certificate and every issuer it was presented
 * with are looked up, as etcd does. The name checks (--peer-cert-allowed-cn, --*-cert-allowed-hostname) apply
 * to a verified certificate: the CN is the subject's last one, as Go reads it; a host name is matched as for a
 * server (subjectAltName, wildcards).
 */
export function clientCertificateRefusal(
  cert: DetailedPeerCertificate | undefined,
  files: Pick<TlsFiles, 'allowedCn' | 'allowedHostname'>,
  revoked?: ReadonlySet<string>,
): string | undefined {
  const present = cert !== undefined && cert.raw !== undefined;
  if (present && revoked !== undefined && revoked.size > 0) {
    for (const c of chainOf(cert)) {
      const serial = normalizeSerial(c.serialNumber ?? '');
      if (revoked.has(serial)) return `transport: certificate serial ${serial.toLowerCase()} revoked`;
    }
  }
  if (files.allowedCn === undefined && files.allowedHostname === undefined) return undefined;
  if (!present) return 'no client certificate to check';
  if (files.allowedCn !== undefined) {
    const cn: unknown = cert.subject?.CN;
    const last = Array.isArray(cn) ? (cn[cn.length - 1] as unknown) : cn;
    if (last !== files.allowedCn) return 'CommonName authentication failed';
  }
  if (files.allowedHostname !== undefined && checkServerIdentity(files.allowedHostname, cert) !== undefined) return 'hostname authentication failed';
  return undefined;
}

/** The certificate and the issuers it came with, each once (a self-signed root names itself as its issuer). */
function chainOf(cert: DetailedPeerCertificate): DetailedPeerCertificate[] {
  const out: DetailedPeerCertificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = cert; c?.raw !== undefined && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(c);
  }
  return out;
}

/** For the load and reload log lines: how many serials the CRL names, when there is one. */
function revokedCount(t: LoadedTls): { revokedSerials?: number } {
  return t.revoked === undefined ? {} : { revokedSerials: t.revoked.size };
}

/** What a log line or a test needs to recognize a certificate. */
export function describeCertificate(c: X509Certificate): { subject: string; serial: string; fingerprint256: string; validTo: string } {
  return { subject: c.subject.replace(/\n/g, ', '), serial: c.serialNumber, fingerprint256: c.fingerprint256, validTo: new Date(c.validTo).toISOString() };
}

// ---------------------------------------------------------------------------------------------------------
// Reloading.

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** The files' identity as far as stat tells: a change in any of them means "read them all again". */
async function signature(files: TlsFiles): Promise<string> {
  const paths = [files.certFile, files.keyFile, ...(files.trustedCaFile === undefined ? [] : [files.trustedCaFile]), ...(files.crlFile === undefined ? [] : [files.crlFile])];
  const parts = await Promise.all(paths.map((p) => stat(p).then((s) => `${s.ino}:${s.size}:${s.mtimeMs}`, () => 'missing')));
  return parts.join('|');
}

/**
 * One listener's TLS material, kept current. Implements grpc-js's CertificateProvider (both the CA and the identity
 * side), so grpc-js servers and channels built from it pick up each new set on their next handshake.
 */
export class TlsFileWatcher implements grpc.experimental.CertificateProvider {
  #current: LoadedTls;
  #signature: string;
  #lastError = '';
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  /** Serial of the certificate last warned about, and whether that warning was for "expired". */
  #expiryWarned: { serial: string; expired: boolean } | undefined;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  readonly #changeListeners = new Set<(t: LoadedTls) => void>();
  #channelCredentials: grpc.ChannelCredentials | undefined;

  private constructor(
    readonly files: TlsFiles,
    initial: LoadedTls,
    initialSignature: string,
    private readonly logger: Logger,
  ) {
    this.#current = initial;
    this.#signature = initialSignature;
  }

  /** Check the files (ConfigError if they do not pass) and start watching them. */
  static async open(files: TlsFiles, logger: Logger, intervalMs: number = TLS_LIMITS.reloadIntervalMs): Promise<TlsFileWatcher> {
    const sig = await signature(files);
    const w = new TlsFileWatcher(files, await loadTlsFiles(files), sig, logger);
    w.#timer = setInterval(() => void w.check(), intervalMs);
    w.#timer.unref();
    logger.info({ ...describeCertificate(w.#current.certificate), certFile: files.certFile, clientCertAuth: files.clientCertAuth, ...revokedCount(w.#current) }, 'fulcrum: TLS certificate loaded');
    w.warnNearExpiry();
    return w;
  }

  get current(): LoadedTls {
    return this.#current;
  }

  /** Look at the files now (the timer calls this; tests may too). Resolves once any change is applied or refused. */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      this.warnNearExpiry();
      const sig = await signature(this.files);
      if (sig === this.#signature) return;
      const next = await loadTlsFiles(this.files).catch((e: unknown) => e as Error);
      if (next instanceof Error) return this.refuse(next);
      this.#signature = sig;
      this.#lastError = '';
      this.#current = next;
      this.logger.info({ ...describeCertificate(next.certificate), certFile: this.files.certFile, ...revokedCount(next) }, 'fulcrum: TLS certificate reloaded');
      this.publish();
    } finally {
      this.#checking = false;
    }
  }

  /**
   * A member runs for months: the certificate it loaded can expire under it (clients then refuse it). Say so in the
   * log before it happens, and again when it has.
   */
  private warnNearExpiry(now = Date.now()): void {
    const c = this.#current.certificate;
    const leftMs = new Date(c.validTo).getTime() - now;
    if (leftMs > TLS_LIMITS.expiryWarningMs) return;
    const expired = leftMs <= 0;
    if (this.#expiryWarned?.serial === c.serialNumber && this.#expiryWarned.expired === expired) return;
    this.#expiryWarned = { serial: c.serialNumber, expired };
    const fields = { ...describeCertificate(c), certFile: this.files.certFile };
    if (expired) this.logger.error(fields, `fulcrum: the TLS certificate in ${this.files.flags.cert} has expired; replace the files (they are reloaded without a restart)`);
    else this.logger.warn(fields, `fulcrum: the TLS certificate in ${this.files.flags.cert} expires at ${fields.validTo}; replace the files (they are reloaded without a restart)`);
  }

  /** The signature stays old, so the next tick tries again: the rest of a rotation may still be on its way. */
  private refuse(e: Error): void {
    if (e.message === this.#lastError) return;
    this.#lastError = e.message;
    this.logger.warn(`fulcrum: kept the current TLS certificate; the files on disk do not pass: ${e.message}`);
  }

  private publish(): void {
    for (const l of this.#caListeners) l(this.caUpdate());
    for (const l of this.#identityListeners) l(this.identityUpdate());
    for (const l of this.#changeListeners) l(this.#current);
  }

  /** Without --trusted-ca-file, peers and members are verified against the system's roots, as Go's TLS would. */
  private caUpdate(): { caCertificate: Buffer } {
    return { caCertificate: this.#current.ca ?? Buffer.from(rootCertificates.join('\n')) };
  }

  private identityUpdate(): { certificate: Buffer; privateKey: Buffer } {
    return { certificate: this.#current.cert, privateKey: this.#current.key };
  }

  addCaCertificateListener(l: CaListener): void {
    this.#caListeners.add(l);
    process.nextTick(() => this.#caListeners.has(l) && l(this.caUpdate()));
  }
  removeCaCertificateListener(l: CaListener): void {
    this.#caListeners.delete(l);
  }
  addIdentityCertificateListener(l: IdentityListener): void {
    this.#identityListeners.add(l);
    process.nextTick(() => this.#identityListeners.has(l) && l(this.identityUpdate()));
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.#identityListeners.delete(l);
  }

  /** Called with each new set that passed the checks. Returns the unsubscribe function. */
  onChange(l: (t: LoadedTls) => void): () => void {
    this.#changeListeners.add(l);
    return () => this.#changeListeners.delete(l);
  }

  /**
   * For a grpc-js server. Beware grpc-js 1.14's argument order: its .d.ts names the first argument the CA
   * provider, but the function hands it to the constructor's identity slot (and the second to the CA slot). The
   * identity slot is the one that must not be null, which matches what the types allow, so: identity first.
   * The TLS tests (node/tls.test.ts) fail if a grpc-js update changes this.
   */
  serverCredentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this, this.files.clientCertAuth ? this : null, this.files.clientCertAuth);
  }

  /** For dialling other members: the CA verifies them, the certificate is our client certificate. One object, so grpc-js can share channels. */
  channelCredentials(): grpc.ChannelCredentials {
    this.#channelCredentials ??= grpc.experimental.createCertificateProviderChannelCredentials(this, this);
    return this.#channelCredentials;
  }

  /** For dialling other members without grpc-js: verified against the CA (the system's roots without one), our certificate as the client's. */
  dialSecureContext(): SecureContextOptions {
    return { cert: this.#current.cert, key: this.#current.key, ca: this.#current.ca ?? rootCertificates.join('\n') };
  }

  /** For node:https (the metrics listener): the current set; follow onChange with server.setSecureContext(). */
  secureContextOptions(): SecureContextOptions {
    return { cert: this.#current.cert, key: this.#current.key, ...(this.#current.ca === undefined ? {} : { ca: this.#current.ca }) };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#caListeners.clear();
    this.#identityListeners.clear();
    this.#changeListeners.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Dialling: the scheme of a URL decides.

/** Credentials for dialling a member's URL: TLS from this watcher for https, plaintext for http. */
export interface DialCredentials {
  /** For a grpc-js client. */
  (url: string): grpc.ChannelCredentials;
  /**
   * The same choice for node:http2 and node:tls (the peer transport's Send connection, node/transport/h2-send.ts):
   * undefined for http, the current certificate, key and CA for https. A connection keeps the set it was opened
   * with, as grpc-js's channels do; the next one takes a reloaded set.
   */
  readonly secureContext: (url: string) => SecureContextOptions | undefined;
}

export function dialCredentials(tls: TlsFileWatcher | undefined, flag: string): DialCredentials {
  const watcher = (url: string): TlsFileWatcher | undefined => {
    if (!url.startsWith('https://')) return undefined;
    if (tls === undefined) throw new Error(`fulcrum: ${url} is https but this member has no ${flag}`);
    return tls;
  };
  const credentials = (url: string): grpc.ChannelCredentials => watcher(url)?.channelCredentials() ?? grpc.credentials.createInsecure();
  return Object.assign(credentials, { secureContext: (url: string) => watcher(url)?.dialSecureContext() });
}

/** http:// only: for callers given no TLS settings (tests, tools). */
export const PLAINTEXT_DIAL: DialCredentials = dialCredentials(undefined, 'TLS settings');
