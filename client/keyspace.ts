// Namespaces: a client view whose keys all live under a prefix. Every key, range end, compare, op and watch
// goes through `KeySpace` on the way out and every key that comes back loses the prefix on the way in, so
// code written against a namespace never sees the prefix (etcd's clientv3/namespace does the same).
//
// Ranges in the view map to ranges under the prefix ("p" the prefix, user range [a, b)):
//
//   single key a        -> key p+a, no range end
//   [a, b)              -> [p+a, p+b)
//   [a, end of space)   -> [p+a, prefixEnd(p))      (etcd's range_end "\0" means "to the end": of the view here)
//   every key           -> [p, prefixEnd(p))        (user key empty, range end "\0")
import { InvalidArgumentError } from './errors.js';
import { prefixEnd, RANGE_END_ALL } from './bytes.js';

export class KeySpace {
  static readonly ROOT = new KeySpace(Buffer.alloc(0));

  constructor(readonly prefix: Buffer) {}

  /** A view nested in this one: prefixes add up. */
  child(prefix: Uint8Array): KeySpace {
    if (prefix.length === 0) throw new InvalidArgumentError('fulcrum client: a namespace prefix must not be empty');
    return new KeySpace(Buffer.concat([this.prefix, prefix]));
  }

  /** A user key on the wire. */
  key(k: Buffer): Buffer {
    return this.prefix.length === 0 ? k : Buffer.concat([this.prefix, k]);
  }

  /**
   * A user range [key, end) on the wire. `end` empty: the single key; `end` "\0": to the end of the view.
   * A user key that is empty with end "\0" is every key of the view.
   */
  range(key: Buffer, end: Buffer): { key: Buffer; rangeEnd: Buffer } {
    if (end.length === 0) return { key: this.key(key), rangeEnd: end };
    const isToEnd = end.equals(RANGE_END_ALL);
    if (this.prefix.length === 0) return { key: key.length === 0 ? RANGE_END_ALL : key, rangeEnd: end };
    return { key: this.key(key), rangeEnd: isToEnd ? prefixEnd(this.prefix) : this.key(end) };
  }

  /** Whether a wire key lies in this view. */
  contains(k: Buffer): boolean {
    return k.length >= this.prefix.length && k.subarray(0, this.prefix.length).equals(this.prefix);
  }

  /** A key from the wire, without the prefix. A key outside the view is a server bug: say so. */
  strip(k: Buffer): Buffer {
    if (this.prefix.length === 0) return k;
    if (k.length < this.prefix.length || !k.subarray(0, this.prefix.length).equals(this.prefix)) {
      throw new InvalidArgumentError(`fulcrum client: the server returned key ${JSON.stringify(k.toString('latin1'))} outside the namespace ${JSON.stringify(this.prefix.toString('latin1'))}`);
    }
    return k.subarray(this.prefix.length);
  }
}
