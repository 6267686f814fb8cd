// A running hash of everything a run did: every delivered message and every Ready. Two runs of one seed must
// end with the same digest; if they do not, something outside the seed (a Map iteration order that depends on
// history, a clock, Math.random) leaked into the run. Two 32-bit lanes with different multipliers give a
// 64-bit digest that is cheap to update with small integers.
import type { Entry, Message, Ready } from '../../raft/types.js';

export class TraceDigest {
  private a = 0x811c9dc5;
  private b = 0x01000193;

  add(n: number): void {
    // Numbers in a trace are integers below 2^53; fold the high part in so large indexes still count.
    const lo = n | 0;
    const hi = Math.floor(n / 0x1_0000_0000) | 0;
    this.a = Math.imul(this.a ^ lo, 0x01000193);
    this.a = Math.imul(this.a ^ hi, 0x01000193);
    this.b = Math.imul(this.b ^ lo, 0x5bd1e995);
    this.b ^= this.b >>> 15;
    this.b = Math.imul(this.b ^ hi, 0x5bd1e995);
  }

  addBytes(bytes: Uint8Array): void {
    this.add(bytes.byteLength);
    for (let i = 0; i < bytes.byteLength; i++) this.add(bytes[i]!);
  }

  addEntry(e: Entry): void {
    this.add(e.index);
    this.add(e.term);
    this.add(e.type);
    this.add(dataFingerprint(e.data));
  }

  addMessage(m: Message): void {
    this.add(m.type);
    this.add(m.from);
    this.add(m.to);
    this.add(m.term);
    this.add(m.logTerm);
    this.add(m.index);
    this.add(m.commit);
    this.add(m.reject ? 1 : 0);
    this.add(m.rejectHint);
    this.add(m.readRound);
    this.add(m.entries.length);
    for (const e of m.entries) this.addEntry(e);
    this.add(m.snapshot === undefined ? 0 : m.snapshot.metadata.index);
  }

  addReady(node: number, rd: Ready): void {
    this.add(node);
    const hs = rd.hardState;
    if (hs !== undefined) {
      this.add(hs.term);
      this.add(hs.vote);
      this.add(hs.commit);
    }
    this.add(rd.entries.length);
    for (const e of rd.entries) this.addEntry(e);
    this.add(rd.committedEntries.length);
    if (rd.committedEntries.length > 0) this.add(rd.committedEntries[rd.committedEntries.length - 1]!.index);
    this.add(rd.messages.length);
    this.add(rd.readStates.length);
    for (const rs of rd.readStates) this.add(rs.index);
    this.add(rd.snapshot === undefined ? 0 : rd.snapshot.metadata.index);
  }

  hex(): string {
    return (this.a >>> 0).toString(16).padStart(8, '0') + (this.b >>> 0).toString(16).padStart(8, '0');
  }
}

/** FNV-1a over the bytes: the identity of an entry's payload in the checkers' tables. */
export function dataFingerprint(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.byteLength; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h ^ bytes.byteLength) >>> 0;
}

/** One step of the state machine's hash chain: the chain at index i commits to every payload up to i. */
export function chainHash(prev: number, index: number, fingerprint: number): number {
  let h = Math.imul(prev ^ fingerprint, 0x5bd1e995);
  h ^= h >>> 13;
  h = Math.imul(h ^ index, 0x01000193);
  return h >>> 0;
}
