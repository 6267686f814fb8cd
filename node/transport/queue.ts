// The bounded outbound queue of one peer. send() must never block the Ready loop, so a full queue drops the
// newest messages instead of waiting: Raft retransmits appends, heartbeats and votes on its own, and a queue
// that grew without bound would only delay the retries behind stale messages.
import { entriesSize, type Message } from '../../raft/types.js';

/** Fixed per-message overhead in the byte estimate (header fields, framing). */
const MESSAGE_OVERHEAD_BYTES = 64;

/** What a message costs against queueBytesMax: payloads plus a fixed estimate, without encoding it. */
export function messageBytes(m: Message): number {
  return MESSAGE_OVERHEAD_BYTES + entriesSize(m.entries) + m.context.byteLength + (m.snapshot?.data.byteLength ?? 0);
}

/**
 * A FIFO with two bounds: item count and total size. `sizeOf` is called once per item on the way in; items
 * remember their size so that taking them out needs no second estimate.
 */
export class BoundedQueue<T> {
  private items: Array<{ item: T; size: number }> = [];
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly itemsMax: number,
    private readonly bytesMax: number,
    private readonly sizeOf: (item: T) => number,
  ) {}

  get length(): number {
    return this.items.length - this.head;
  }

  get byteLength(): number {
    return this.bytes;
  }

  /** False (and nothing queued) when the item would exceed either bound. */
  push(item: T): boolean {
    const size = this.sizeOf(item);
    if (this.length >= this.itemsMax) return false;
    // An empty queue takes one item of any size: otherwise a single large append could never be sent.
    if (this.length > 0 && this.bytes + size > this.bytesMax) return false;
    this.items.push({ item, size });
    this.bytes += size;
    return true;
  }

  /** Up to `itemsMax` items and `bytesMax` bytes (but at least one item), in queue order. */
  take(itemsMax: number, bytesMax: number): T[] {
    const out: T[] = [];
    let size = 0;
    while (this.length > 0 && out.length < itemsMax) {
      const next = this.items[this.head]!;
      if (out.length > 0 && size + next.size > bytesMax) break;
      out.push(next.item);
      size += next.size;
      this.head++;
    }
    this.bytes -= size;
    this.compact();
    return out;
  }

  /** Drop everything; returns how many items were dropped. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return n;
  }

  /** Reclaim the consumed prefix once it is most of the array, so shifting stays amortised O(1). */
  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
