// Reading one request header as gRPC metadata without building grpc-js's Metadata object for the whole request.
// Every unary call reads two or three keys (hasleader, token, fulcrum-request-id); building a Metadata of all the
// request's headers for that was about a twentieth of what a put allocated on the leader (bench:profile --heap-prof).
import type * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/** What reading metadata needs: grpc.Metadata is one, and so is a call's HeaderMetadata. */
export interface MetadataReader {
  get(key: string): grpc.MetadataValue[];
}

/** A call that can read its metadata cheaply offers `metadataReader`; any other is read through grpc-js's object. */
export interface ReadableMetadata {
  readonly metadata: grpc.Metadata;
  readonly metadataReader?: MetadataReader;
}

export function metadataOf(call: ReadableMetadata): MetadataReader {
  return call.metadataReader ?? call.metadata;
}

/** grpc-js's rule for a text value: printable ASCII, or the entry is dropped (Metadata.add refuses it). */
const LEGAL_TEXT_VALUE = /^[ -~]*$/;

/**
 * Text keys straight from the request's headers, as grpc.Metadata.fromHttp2Headers would give them: the header's
 * values in order, up to the first one with bytes grpc-js refuses (it stops adding that key's values there). Binary keys (-bin, base64) and the reserved names
 * go to `full`, which builds the complete Metadata, so their rules stay grpc-js's.
 */
export class HeaderMetadata implements MetadataReader {
  constructor(
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly isReserved: (key: string) => boolean,
    private readonly full: () => grpc.Metadata,
  ) {}

  get(key: string): grpc.MetadataValue[] {
    const k = key.toLowerCase();
    if (k.endsWith('-bin') || this.isReserved(k)) return this.full().get(k);
    const raw = this.headers[k];
    if (raw === undefined) return [];
    const values = Array.isArray(raw) ? raw : [raw];
    const refused = values.findIndex((v) => !LEGAL_TEXT_VALUE.test(v));
    return refused === -1 ? values : values.slice(0, refused);
  }
}
