// The simulator's agenda: a binary min-heap of events ordered by (time, sequence). The sequence number breaks
// ties in insertion order, so two runs that schedule the same events in the same order pop them in the same
// order: the heap is part of what makes a seed replay exactly.

export interface Scheduled<T> {
  readonly atMs: number;
  readonly seq: number;
  readonly item: T;
}

export class EventQueue<T> {
  private readonly heap: Scheduled<T>[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, item: T): void {
    this.heap.push({ atMs, seq: this.nextSeq++, item });
    this.siftUp(this.heap.length - 1);
  }

  /** Time of the earliest event, or Infinity when empty. */
  peekTime(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0]!.atMs;
  }

  pop(): Scheduled<T> | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private static before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const moving = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!EventQueue.before(moving, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = moving;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const moving = heap[i]!;
    while (true) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && EventQueue.before(heap[right]!, heap[left]!) ? right : left;
      if (!EventQueue.before(heap[child]!, moving)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = moving;
  }
}
