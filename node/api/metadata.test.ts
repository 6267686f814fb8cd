import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderMetadata, metadataOf } from './metadata.js';

const RESERVED = new Set(['grpc-timeout', 'content-type', 'te']);
const isReserved = (k: string): boolean => k.startsWith(':') || RESERVED.has(k);

function withoutReserved(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !isReserved(k)));
}

/** What grpc-js makes of the same headers: the reader must agree with it key by key. */
function grpcJsView(headers: Record<string, string | string[]>): grpc.Metadata {
  return grpc.Metadata.fromHttp2Headers(withoutReserved(headers));
}

describe('HeaderMetadata', () => {
  it('reads text keys as grpc-js does, stopping at a value it refuses', () => {
    const headers = { token: 'abc', hasleader: 'true', 'fulcrum-request-id': ['c1:1', 'c1:2'], odd: 'caf\u00e9', mixed: ['ok', 'n\u00f6', 'later'] };
    const r = new HeaderMetadata(headers, isReserved, () => grpcJsView(headers));
    expect(r.get('token')).toEqual(['abc']);
    expect(r.get('HasLeader')).toEqual(['true']);
    expect(r.get('fulcrum-request-id')).toEqual(['c1:1', 'c1:2']);
    expect(r.get('odd')).toEqual([]);
    expect(r.get('mixed')).toEqual(['ok']);
    expect(r.get('absent')).toEqual([]);
  });

  it('hands binary and reserved keys to the full Metadata', () => {
    const headers = { 'trace-bin': 'AAEC', 'grpc-timeout': '5S' };
    let built = 0;
    const r = new HeaderMetadata(headers, isReserved, () => {
      built++;
      return grpcJsView(headers);
    });
    expect(r.get('token')).toEqual([]);
    expect(built).toBe(0);
    expect(r.get('trace-bin')).toEqual([Buffer.from([0, 1, 2])]);
    expect(r.get('grpc-timeout')).toEqual([]);
    expect(built).toBe(2);
  });

  it('agrees with grpc.Metadata.fromHttp2Headers on any headers', () => {
    const key = fc.constantFrom('token', 'hasleader', 'fulcrum-request-id', 'x-a', 'grpc-timeout', 'te', 'k-bin', 'grpc-status-details-bin');
    const text = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', ',', '~', '\u007f', '\u00e9', '\t', '='), maxLength: 6 });
    const value = fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 }));
    fc.assert(
      fc.property(fc.dictionary(key, value), (headers) => {
        const expected = grpcJsView(headers);
        const r = new HeaderMetadata(headers, isReserved, () => grpcJsView(headers));
        for (const k of ['token', 'hasleader', 'fulcrum-request-id', 'x-a', 'grpc-timeout', 'te', 'k-bin', 'grpc-status-details-bin']) {
          expect(r.get(k)).toEqual(expected.get(k));
        }
      }),
    );
  });

  it('metadataOf takes the reader a call offers, else its Metadata', () => {
    const md = new grpc.Metadata();
    md.set('token', 't');
    expect(metadataOf({ metadata: md })).toBe(md);
    const reader = new HeaderMetadata({ token: 'u' }, isReserved, () => md);
    expect(metadataOf({ metadata: md, metadataReader: reader }).get('token')).toEqual(['u']);
  });
});
