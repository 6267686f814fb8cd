// Transcript tests: a readable script of steps, each followed by what the core said and sent. The expected
// output is checked in; regenerate on purpose with UPDATE_TRANSCRIPTS=1 and review the diff.
//
// File format (raft/testdata/*.txt): blocks of
//   # comments, kept as they are
//   <command> <args...>
//   ----
//   <expected output lines>
//   <blank line>
import { ConfChangeType, type NodeId } from '../types.js';
import { describeMessage, TestCluster } from './cluster.js';

interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string[];
}

export function parseTranscript(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && (lines[i]!.startsWith('#') || lines[i]!.trim() === '')) {
      const line = lines[i++]!;
      if (line.startsWith('#')) comments.push(line);
    }
    if (i >= lines.length) {
      if (comments.length > 0) blocks.push({ comments, command: '', expected: [] });
      break;
    }
    const command = lines[i++]!;
    if (lines[i] !== '----') throw new Error(`transcript: expected ---- after "${command}" at line ${i + 1}`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i] !== '') expected.push(lines[i++]!);
    blocks.push({ comments, command, expected });
  }
  return blocks;
}

export function formatTranscript(blocks: ReadonlyArray<Block & { actual: string[] }>): string {
  const out: string[] = [];
  for (const b of blocks) {
    out.push(...b.comments);
    if (b.command === '') continue;
    out.push(b.command, '----', ...(b.actual.length > 0 ? b.actual : ['ok']), '');
  }
  return out.join('\n').replace(/\n+$/, '\n');
}

/** Runs the commands of a transcript against a TestCluster and returns each block with its actual output. */
export class TranscriptRunner {
  private cluster: TestCluster | undefined;
  private output: string[] = [];

  run(blocks: readonly Block[]): Array<Block & { actual: string[] }> {
    return blocks.map((b) => {
      this.output = [];
      if (b.command !== '') this.exec(b.command);
      return { ...b, actual: this.output };
    });
  }

  private get c(): TestCluster {
    if (this.cluster === undefined) throw new Error('transcript: no cluster yet (use "cluster voters=N")');
    return this.cluster;
  }

  private exec(line: string): void {
    const [cmd, ...args] = line.trim().split(/\s+/);
    const num = (i: number): NodeId => {
      const v = Number(args[i]);
      if (!Number.isInteger(v)) throw new Error(`transcript: "${line}": argument ${i + 1} must be a number`);
      return v;
    };
    const empty = new Uint8Array(0);
    switch (cmd) {
      case 'cluster':
        return this.newCluster(args);
      case 'campaign':
        return this.c.member(num(0)).node.campaign();
      case 'tick':
        return this.c.tick(num(0), args[1] === undefined ? 1 : num(1));
      case 'tick-all':
        return this.c.tickAll(args[0] === undefined ? 1 : num(0));
      case 'stabilize':
        return this.c.stabilize();
      case 'process-ready':
        this.c.processReadies();
        return;
      case 'deliver':
        this.c.processReadies();
        return this.c.deliverAll();
      case 'propose':
        return this.guard(() => this.c.member(num(0)).node.propose(new TextEncoder().encode(args[1] ?? '')));
      case 'read':
        return this.guard(() => this.c.member(num(0)).node.readIndex(new TextEncoder().encode(args[1] ?? '')));
      case 'transfer':
        return this.c.member(num(0)).node.transferLeadership(num(1));
      case 'unreachable':
        return this.c.member(num(0)).node.reportUnreachable(num(1));
      case 'isolate':
        return this.c.isolate(num(0));
      case 'cut':
        return this.c.cutLink(num(0), num(1));
      case 'heal':
        return this.c.heal();
      case 'add-learner':
        return this.guard(() => this.c.member(num(0)).node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: num(1), context: empty }));
      case 'add-voter':
        return this.guard(() => this.c.member(num(0)).node.proposeConfChange({ type: ConfChangeType.AddVoter, nodeId: num(1), context: empty }));
      case 'remove':
        return this.guard(() => this.c.member(num(0)).node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: num(1), context: empty }));
      case 'snapshot':
        this.c.snapshotAndCompact(num(0));
        this.output.push(`${num(0)} snapshot at ${this.c.member(num(0)).storage.snapshot().metadata.index}, log compacted`);
        return;
      case 'restart':
        return this.c.restart(num(0));
      case 'status':
        return this.printStatus(args.length > 0 ? args.map((_, i) => num(i)) : [...this.c.members.keys()]);
      case 'log':
        return this.printLog(num(0));
      case 'applied':
        return this.printApplied(num(0));
      case 'reads':
        return this.printReads(num(0));
      default:
        throw new Error(`transcript: unknown command "${cmd}"`);
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.output.push(`error: ${(e as Error).message}`);
    }
  }

  private newCluster(args: string[]): void {
    const opts = Object.fromEntries(args.map((a) => a.split('=') as [string, string]));
    // Construction and the bootstrap entries are silent set-up: the transcript starts with a settled cluster.
    const saved = this.output;
    this.output = [];
    this.cluster = new TestCluster({
      size: Number(opts.voters ?? 3),
      spares: Number(opts.spares ?? 0),
      seed: Number(opts.seed ?? 1),
      config: {
        preVote: opts.prevote !== 'false',
        checkQuorum: opts.checkquorum !== 'false',
        electionTicks: Number(opts.election ?? 10),
      },
      logger: (l) => this.output.push(l),
      onDeliver: (m) => this.output.push(`> ${describeMessage(m)}`),
      onDrop: (m) => this.output.push(`x ${describeMessage(m)} (dropped: link cut)`),
    });
    this.cluster.stabilize();
    this.output = saved;
  }

  private printStatus(ids: NodeId[]): void {
    for (const id of ids) {
      const s = this.c.member(id).node.status();
      this.output.push(
        `${id}: ${s.softState.role} term=${s.hardState.term} vote=${s.hardState.vote} lead=${s.softState.lead} ` +
          `commit=${s.commit} applied=${s.applied} last=${s.lastIndex} voters=[${s.confState.voters.join(',')}]` +
          (s.confState.learners.length > 0 ? ` learners=[${s.confState.learners.join(',')}]` : ''),
      );
      if (s.progress !== undefined) {
        for (const [pid, p] of s.progress) {
          if (pid !== id) this.output.push(`   ${pid}: match=${p.match} next=${p.next} ${p.state}${p.isLearner ? ' learner' : ''}`);
        }
      }
    }
  }

  private printLog(id: NodeId): void {
    const st = this.c.member(id).storage;
    const first = st.firstIndex();
    const last = st.lastIndex();
    const ents = last >= first ? st.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
    this.output.push(`${id} log (first ${first}): ${ents.map((e) => `${e.index}@${e.term}${e.type === 1 ? 'c' : ''}${e.data.byteLength && e.type === 0 ? `:${new TextDecoder().decode(e.data)}` : ''}`).join(' ') || 'empty'}`);
  }

  private printApplied(id: NodeId): void {
    const m = this.c.member(id);
    this.output.push(`${id} applied: ${m.applied.map((a) => new TextDecoder().decode(a)).join(' ') || 'nothing'}`);
  }

  private printReads(id: NodeId): void {
    const m = this.c.member(id);
    this.output.push(`${id} reads: ${m.readStates.map((r) => `${new TextDecoder().decode(r.context)}@${r.index}`).join(' ') || 'none'}`);
    m.readStates = [];
  }
}
