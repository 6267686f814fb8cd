// Key ranges as etcd encodes them in a watch: `rangeEnd` empty means the single key; `rangeEnd` = [0] means every
// key >= key; otherwise the half-open interval [key, rangeEnd). Keys are compared as latin1 strings (one char per
// byte), so that string order is byte order, as in the MVCC store's index.

/** A watched key range: `to` undefined means unbounded ("every key >= from"). */
export interface KeyRange {
  readonly from: string;
  readonly to: string | undefined;
  readonly single: boolean;
}

export function keyString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

export function keyRangeOf(key: Uint8Array, rangeEnd: Uint8Array | undefined): KeyRange {
  const from = keyString(key);
  if (rangeEnd === undefined || rangeEnd.length === 0) return { from, to: from, single: true };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { from, to: undefined, single: false };
  return { from, to: keyString(rangeEnd), single: false };
}

/** Whether a range can match anything: etcd refuses a watch whose key is not below its range end. */
export function isEmptyRange(r: KeyRange): boolean {
  return !r.single && r.to !== undefined && r.from >= r.to;
}

export function rangeContains(r: KeyRange, key: string): boolean {
  if (r.single) return key === r.from;
  return key >= r.from && (r.to === undefined || key < r.to);
}
