// fulcrum.raftpb must mirror raft/types.ts: same fields, same enum numbers. This test reads the TypeScript side
// (the only place proto/ looks at raft/, and only in a test) so that a change to one without the other fails here.
import { describe, expect, it } from 'vitest';
import { EntryType, MessageType, message, type Message } from '../raft/types.js';
import { CONVERSION_OPTIONS, RAFT_MESSAGE_TYPE_NAMES, loadProtoRoot, type RaftMessage } from './index.js';

const snake = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The numeric members of a TypeScript enum, name -> value. */
function tsEnum(e: Record<string, string | number>): Record<string, number> {
  return Object.fromEntries(Object.entries(e).filter((kv): kv is [string, number] => typeof kv[1] === 'number'));
}

describe('fulcrum.raftpb mirrors raft/types.ts', () => {
  const root = loadProtoRoot();

  it('MessageType has the same numbers, one to one', () => {
    const wire = root.lookupEnum('fulcrum.raftpb.MessageType').values;
    const ts = tsEnum(MessageType as unknown as Record<string, string | number>);
    expect(Object.keys(wire).length).toBe(Object.keys(ts).length);
    for (const [name, value] of Object.entries(ts)) {
      // Hup -> MSG_HUP, AppResp -> MSG_APP_RESP, ReadIndexResp -> MSG_READ_INDEX_RESP
      expect(wire[`MSG${snake(name).toUpperCase()}`], name).toBe(value);
      expect(RAFT_MESSAGE_TYPE_NAMES[value]).toBe(`MSG${snake(name).toUpperCase()}`);
    }
  });

  it('EntryType has the same numbers', () => {
    const wire = root.lookupEnum('fulcrum.raftpb.EntryType').values;
    expect(wire).toEqual({ ENTRY_NORMAL: EntryType.Normal, ENTRY_CONF_CHANGE: EntryType.ConfChange });
  });

  it('Message has exactly the fields of the TypeScript Message, in snake_case', () => {
    const tsFields = Object.keys(message({ type: MessageType.App })).map(snake).sort();
    const wireFields = root.lookupType('fulcrum.raftpb.Message').fieldsArray.map((f) => f.name).sort();
    expect(wireFields).toEqual(tsFields);
  });

  it.each([
    ['fulcrum.raftpb.Entry', ['term', 'index', 'type', 'data']],
    ['fulcrum.raftpb.HardState', ['term', 'vote', 'commit']],
    ['fulcrum.raftpb.ConfState', ['voters', 'learners']],
    ['fulcrum.raftpb.SnapshotMetadata', ['index', 'term', 'conf_state']],
    ['fulcrum.raftpb.Snapshot', ['metadata', 'data']],
  ] as const)('%s has the fields of its TypeScript twin', (type, fields) => {
    expect(root.lookupType(type).fieldsArray.map((f) => f.name)).toEqual(fields);
  });

  it('round-trips an append with entries and a snapshot-bearing message', () => {
    const type = root.lookupType('fulcrum.raftpb.Message');
    const ts: Message = message({
      type: MessageType.App,
      from: 1,
      to: 3,
      term: 7,
      logTerm: 6,
      index: 41,
      commit: 40,
      entries: [
        { term: 7, index: 42, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) },
        { term: 7, index: 43, type: EntryType.ConfChange, data: new Uint8Array([9]) },
      ],
      readRound: 5,
    });
    // The conversion node/ will do: rename to snake_case, numbers stay numbers on the way out.
    const wireIn = {
      type: ts.type,
      from: ts.from,
      to: ts.to,
      term: ts.term,
      log_term: ts.logTerm,
      index: ts.index,
      commit: ts.commit,
      entries: ts.entries,
      read_round: ts.readRound,
      snapshot: { metadata: { index: 40, term: 6, conf_state: { voters: [1, 2, 3], learners: [4] } } },
    };
    const out = type.toObject(type.decode(type.encode(type.fromObject(wireIn)).finish()), CONVERSION_OPTIONS) as RaftMessage;
    expect(out.type).toBe('MSG_APP');
    expect(out).toMatchObject({ from: '1', to: '3', term: '7', log_term: '6', index: '41', commit: '40', read_round: '5', reject: false });
    expect(out.entries.map((e) => [e.index, e.type, [...e.data]])).toEqual([
      ['42', 'ENTRY_NORMAL', [1, 2, 3]],
      ['43', 'ENTRY_CONF_CHANGE', [9]],
    ]);
    expect(out.snapshot?.metadata?.conf_state).toEqual({ voters: ['1', '2', '3'], learners: ['4'] });
  });
});
