// WatchResponse bytes for many watchers of the same events. A put seen by 1,000 watchers used to be converted and
// encoded 1,000 times; here each event is encoded once (its bytes kept beside the event object while any watcher
// still holds it) and a response is framed around the shared bytes: the header, the watch id, the fragment flag
// and the events as protobuf length-delimited fields, in field-number order as protobufjs writes them.
//
// The Watch service definition passes a Buffer through untouched (proto/index.ts), so a response either goes out
// as these bytes or, for the rare ones (created, canceled, progress), as an object encoded as before.
import type protobuf from 'protobufjs';
import { loadProtoRoot, type Encodable, type ResponseHeader } from '../../proto/index.js';
import { headerFieldSize, headerOf, writeHeader } from '../../proto/kv-wire.js';
import { lengthDelimitedSize, ProtoWriter, varintSize } from '../../proto/wire.js';
import type { MvccEvent } from '../../storage/mvcc/index.js';
import { fromMvccKv } from './convert.js';

const FIELD_HEADER = 1;
const FIELD_WATCH_ID = 2;
const FIELD_FRAGMENT = 7;
const FIELD_EVENTS = 11;
/** A uint64 varint's longest: what a watch id beyond 2^53 (or a negative one, as two's complement) may take. */
const VARINT_BYTES_MAX = 10;
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

let types: { header: protobuf.Type; event: protobuf.Type } | undefined;

function protoTypes(): { header: protobuf.Type; event: protobuf.Type } {
  if (types === undefined) {
    const root = loadProtoRoot();
    types = { header: root.lookupType('etcdserverpb.ResponseHeader'), event: root.lookupType('mvccpb.Event') };
  }
  return types;
}

/** Each event's encoded bytes, for as long as the event object lives (watchers share one object per event). */
const encodedEvents = new WeakMap<MvccEvent, Uint8Array>();

export function encodeEvent(ev: MvccEvent): Uint8Array {
  const cached = encodedEvents.get(ev);
  if (cached !== undefined) return cached;
  const { event } = protoTypes();
  const bytes = event.encode(event.fromObject({ type: ev.type, kv: fromMvccKv(ev.kv), ...(ev.prevKv === undefined ? {} : { prev_kv: fromMvccKv(ev.prevKv) }) })).finish();
  encodedEvents.set(ev, bytes);
  return bytes;
}

/**
 * Field 1 of a WatchResponse, its header, as bytes: the same for every watcher a stream sends one revision to, so
 * the stream encodes it once per revision (node/api/watch.ts) rather than once per watcher.
 */
export function encodeHeaderField(header: Encodable<ResponseHeader>): Uint8Array {
  // By hand (kv-wire.ts) unless the header holds a value only protobufjs converts (a bigint, a negative number).
  const fields = headerOf(header as unknown as Record<string, unknown>, 'omit');
  if (fields === undefined) {
    const body = encodeHeader(header);
    const w = new ProtoWriter(lengthDelimitedSize(body.length));
    w.bytesField(FIELD_HEADER, body);
    return w.finish();
  }
  const w = new ProtoWriter(headerFieldSize(fields));
  writeHeader(w, fields);
  return w.finish();
}

/**
 * The bytes of a WatchResponse carrying events (headerField from encodeHeaderField): what protobufjs would write
 * for the same object. A stream owing 100 watchers the same event writes 100 of these, so each costs what it
 * writes: the watch id as a number while it is one, the header and the events copied from shared bytes.
 */
export function encodeEventsResponse(headerField: Uint8Array, watchId: bigint, events: readonly MvccEvent[], fragment: boolean): Buffer {
  const smallId = watchId >= 0n && watchId <= MAX_SAFE_BIGINT ? Number(watchId) : undefined;
  let bytes = headerField.length;
  if (watchId !== 0n) bytes += 1 + (smallId === undefined ? VARINT_BYTES_MAX : varintSize(smallId));
  if (fragment) bytes += 2;
  for (const ev of events) bytes += lengthDelimitedSize(encodeEvent(ev).length);
  const w = new ProtoWriter(bytes);
  w.raw(headerField);
  if (smallId !== undefined) w.uintField(FIELD_WATCH_ID, smallId);
  else w.uint64Field(FIELD_WATCH_ID, BigInt.asUintN(64, watchId));
  w.boolField(FIELD_FRAGMENT, fragment);
  for (const ev of events) w.bytesField(FIELD_EVENTS, encodeEvent(ev));
  return w.finish();
}

/** A header protobufjs must convert (a negative number, a bigint, a fraction): the rare path. */
function encodeHeader(header: Encodable<ResponseHeader>): Uint8Array {
  const { header: headerType } = protoTypes();
  return headerType.encode(headerType.fromObject(header)).finish();
}
