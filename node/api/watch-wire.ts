// WatchResponse bytes for many watchers of the same events. A put seen by 1,000 watchers used to be converted and
// encoded 1,000 times; here each event is encoded once (its bytes kept beside the event object while any watcher
// still holds it) and a response is framed around the shared bytes: the header, the watch id, the fragment flag
// and the events as protobuf length-delimited fields, in field-number order as protobufjs writes them.
//
// The Watch service definition passes a Buffer through untouched (proto/index.ts), so a response either goes out
// as these bytes or, for the rare ones (created, canceled, progress), as an object encoded as before.
import type protobuf from 'protobufjs';
import { loadProtoRoot, type Encodable, type ResponseHeader } from '../../proto/index.js';
import { ProtoWriter } from '../../proto/wire.js';
import type { MvccEvent } from '../../storage/mvcc/index.js';
import { fromMvccKv } from './convert.js';

const FIELD_HEADER = 1;
const FIELD_WATCH_ID = 2;
const FIELD_FRAGMENT = 7;
const FIELD_EVENTS = 11;

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

/** The bytes of a WatchResponse carrying events: what protobufjs would write for the same object. */
export function encodeEventsResponse(header: Encodable<ResponseHeader>, watchId: bigint, events: readonly MvccEvent[], fragment: boolean): Buffer {
  const { header: headerType } = protoTypes();
  const headerBytes = headerType.encode(headerType.fromObject(header)).finish();
  const eventBytes = events.map(encodeEvent);
  const w = new ProtoWriter(16 + headerBytes.length + eventBytes.reduce((n, b) => n + b.length + 6, 0));
  w.bytesField(FIELD_HEADER, headerBytes);
  if (watchId !== 0n) w.uint64Field(FIELD_WATCH_ID, BigInt.asUintN(64, watchId));
  w.boolField(FIELD_FRAGMENT, fragment);
  for (const b of eventBytes) w.bytesField(FIELD_EVENTS, b);
  return w.finish();
}

