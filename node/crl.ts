// The serial numbers a certificate revocation list names (--client-crl-file, --peer-crl-file), read from its DER
// (or PEM "X509 CRL") encoding. node:crypto parses certificates but not CRLs, and only this one list is needed,
// so this walks the ASN.1 directly (RFC 5280 section 5.1):
//
//   CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
//   TBSCertList     ::= SEQUENCE { version INTEGER OPTIONAL, signature, issuer, thisUpdate, nextUpdate OPTIONAL,
//                                  revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, ... } OPTIONAL,
//                                  crlExtensions [0] OPTIONAL }
//
// As etcd does, the list is trusted as the operator's file: its signature and dates are not checked.

/** A CRL larger than this is not what the flag meant. */
export const CRL_BYTES_MAX = 16 * 1024 * 1024;
/** Entries in one list (about 40 bytes each in DER). */
export const CRL_ENTRIES_MAX = 1_000_000;

const TAG_INTEGER = 0x02;
const TAG_SEQUENCE = 0x30;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;

export class CrlError extends Error {}

interface Tlv {
  readonly tag: number;
  /** Where the value starts and ends in the buffer. */
  readonly start: number;
  readonly end: number;
}

/** One DER element at `at`, which must lie inside [at, limit). */
function readTlv(b: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new CrlError(`truncated element at byte ${at}`);
  const tag = b[at]!;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new CrlError(`unsupported length form at byte ${at}`);
    if (start + n > limit) throw new CrlError(`truncated length at byte ${at}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new CrlError(`element at byte ${at} runs past its container`);
  return { tag, start, end };
}

/** The elements directly inside a constructed element. */
function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(b, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** Upper-case hex without leading zero bytes: how serials are compared (node:crypto prints them upper-case). */
export function normalizeSerial(hex: string): string {
  return hex.toUpperCase().replace(/^(00)+(?=.)/, '');
}

function hexOf(b: Uint8Array, t: Tlv): string {
  return normalizeSerial(Buffer.from(b.subarray(t.start, t.end)).toString('hex'));
}

const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/g;

/** DER from a file that holds either DER or one or more PEM blocks (their lists are merged). */
function derBlocks(file: Uint8Array): Uint8Array[] {
  const text = Buffer.from(file).toString('latin1');
  if (!text.includes('-----BEGIN')) return [file];
  const blocks = [...text.matchAll(PEM_CRL)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  if (blocks.length === 0) throw new CrlError('no "X509 CRL" PEM block in the file');
  return blocks;
}

/** The revoked serial numbers (normalized hex) of every list in the file. Throws CrlError on anything malformed. */
export function revokedSerials(file: Uint8Array): Set<string> {
  if (file.byteLength > CRL_BYTES_MAX) throw new CrlError(`${file.byteLength} bytes; a CRL is at most ${CRL_BYTES_MAX}`);
  const out = new Set<string>();
  for (const der of derBlocks(file)) {
    const list = readTlv(der, 0, der.byteLength);
    if (list.tag !== TAG_SEQUENCE || list.end !== der.byteLength) throw new CrlError('not a DER CertificateList');
    const tbs = children(der, list)[0];
    if (tbs?.tag !== TAG_SEQUENCE) throw new CrlError('no tbsCertList');
    const fields = children(der, tbs);
    let i = fields[0]?.tag === TAG_INTEGER ? 1 : 0; // version
    i += 2; // signature algorithm, issuer
    if (fields[i]?.tag !== TAG_UTC_TIME && fields[i]?.tag !== TAG_GENERALIZED_TIME) throw new CrlError('no thisUpdate');
    i++;
    if (fields[i]?.tag === TAG_UTC_TIME || fields[i]?.tag === TAG_GENERALIZED_TIME) i++; // nextUpdate
    const revoked = fields[i];
    if (revoked?.tag !== TAG_SEQUENCE) continue; // no revokedCertificates: an empty list
    for (const entry of children(der, revoked)) {
      const serial = entry.tag === TAG_SEQUENCE ? children(der, entry)[0] : undefined;
      if (serial?.tag !== TAG_INTEGER) throw new CrlError('a revoked entry without a serial number');
      out.add(hexOf(der, serial));
      if (out.size > CRL_ENTRIES_MAX) throw new CrlError(`more than ${CRL_ENTRIES_MAX} entries`);
    }
  }
  return out;
}
