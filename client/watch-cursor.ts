// Where a watch stands in history, so that it can resume on any member after any disconnect without losing or
// repeating an event.
//
// The invariant: every event with a revision below `nextRevision` has been delivered, none at or above it.
// The server sends each revision's events whole (a `fragment`ed revision is put back together before it gets
// here), in revision order, so after delivering revision R the watch resumes from R + 1:
//
//   watch from 5:  deliver 5, 7, 7 (one txn), 9  -> nextRevision 10
//   member dies;   new stream: create with start_revision 10 -> the server replays 10.. then goes live
//   a server that replays a little too much (it never should) has anything below 10 dropped here
//
// A watch "from now" (start 0) has no revision until the server answers `created`: its header revision H is
// the store's revision when the watch began, so it delivers events from H + 1. A progress notification for
// this watch (etcd's progress_notify, sent only to a synced watch, in order with its events) says every event
// up to its header revision was sent: the watch may resume after it.
export class WatchCursor {
  private next: number;

  constructor(startRevision: number) {
    this.next = startRevision;
  }

  /** 0 until a "from now" watch is anchored by its first `created`. */
  get nextRevision(): number {
    return this.next;
  }

  /** The revision every event at or below which has been delivered (-1: not anchored yet). */
  get deliveredThrough(): number {
    return this.next - 1;
  }

  /** What to ask for when (re)creating the watch on a stream. */
  get resumeRevision(): number {
    return this.next;
  }

  /** The server accepted the watch; `headerRevision` was the store's revision then. */
  created(headerRevision: number): void {
    if (this.next === 0) this.next = headerRevision + 1;
  }

  /**
   * One whole revision group (or several) arrived. Returns the events to deliver: those at or above
   * nextRevision (anything below was already delivered), and moves the cursor past the last one.
   */
  accept<E extends { readonly revision: number }>(events: readonly E[]): E[] {
    const fresh = events.filter((e) => e.revision >= this.next);
    const last = fresh[fresh.length - 1];
    if (last !== undefined) this.next = last.revision + 1;
    return fresh;
  }

  /** The server says every event of this watch up to `headerRevision` was sent. */
  progressed(headerRevision: number): void {
    if (this.next === 0 || headerRevision + 1 > this.next) this.next = headerRevision + 1;
  }
}
