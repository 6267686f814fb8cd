// node/crl.ts against CRLs that openssl made: the revoked serials, in PEM and DER; an empty list; malformed files.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CrlError, normalizeSerial, revokedSerials } from './crl.js';
import { TestPki, type IssuedCert, type TestCa } from './testing/certs.js';

let pki: TestPki;
let ca: TestCa;
let kept: IssuedCert;
let gone: IssuedCert[];

beforeAll(async () => {
  pki = await TestPki.create();
  ca = await pki.ca('ca');
  kept = await pki.issue(ca, 'kept');
  gone = [await pki.issue(ca, 'gone-1'), await pki.issue(ca, 'gone-2')];
}, 30_000);

afterAll(() => pki.cleanup());

describe('revokedSerials', () => {
  it('an empty list names no serial', async () => {
    expect(revokedSerials(await readFile(await pki.crl(ca, `${pki.dir}/empty.crl`)))).toEqual(new Set());
  });

  it('names exactly the revoked certificates, the same in PEM and in DER', async () => {
    for (const c of gone) await pki.revoke(ca, c);
    const want = new Set(gone.map((c) => normalizeSerial(c.serial)));
    const pem = revokedSerials(await readFile(await pki.crl(ca, `${pki.dir}/two.crl`)));
    const der = revokedSerials(await readFile(await pki.crl(ca, `${pki.dir}/two.der`, { der: true })));
    expect(pem).toEqual(want);
    expect(der).toEqual(want);
    expect(pem.has(normalizeSerial(kept.serial))).toBe(false);
  });

  it('refuses what is not a CRL, and a truncated one, with CrlError', async () => {
    const der = await readFile(await pki.crl(ca, `${pki.dir}/cut.der`, { der: true }));
    expect(() => revokedSerials(der.subarray(0, der.byteLength - 10))).toThrow(CrlError);
    expect(() => revokedSerials(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'))).toThrow(CrlError);
    const certificate = await readFile(kept.certFile);
    expect(() => revokedSerials(certificate)).toThrow(CrlError);
    expect(() => revokedSerials(Buffer.from([0x30, 0x03, 0x02, 0x01]))).toThrow(CrlError);
  });

  it('serials compare without leading zero bytes and in one case', () => {
    expect(normalizeSerial('00ab12')).toBe('AB12');
    expect(normalizeSerial('0000')).toBe('00');
    expect(normalizeSerial('7F')).toBe('7F');
  });
});
