// GrpcPeerTransport: the member's Raft messages to and from its peers over gRPC (fulcrum.raftpb.RaftTransport).
//
// Outbound, per peer (peer.ts): a bounded queue and one long-lived Send stream; MsgSnap goes through
// SendSnapshot instead (snapshot.ts). Inbound (service.ts): every stream and handshake first passes admit(),
// which refuses a member of another cluster, a removed member and a peer speaking another protocol version.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Encodable, HandshakeRequest, MemberInfo } from '../../proto/index.js';
import { ConfChangeType, isLocalMessage, MessageType, type ConfChange, type ConfState, type Message, type NodeId } from '../../raft/types.js';
import { decodeMemberContext } from '../../storage/state-machine.js';
import type { MemberTransport, TransportHooks } from '../member.js';
import type { PeerBatch } from './batch-codec.js';
import { tryInt } from './convert.js';
import { isServiceError, PEER_PROTOCOL_VERSION, REFUSAL, statusError } from './grpc-util.js';
import { switchFromEnv, validateTransportLimits, type TransportLimits } from './limits.js';
import { Peer, type Outbound, type PeerSendOver } from './peer.js';
import { PLAINTEXT_DIAL, type DialCredentials } from '../tls.js';
import { messageBytes } from './queue.js';
import { sendSnapshot, type SnapshotReceiveContext } from './snapshot.js';
import type { SnapshotSource } from '../../storage/wal/index.js';
import { emptyStats, type PeerStats, type TransportStats } from './stats.js';

/** Reported in MemberInfo.version when the caller does not say. */
const DEFAULT_VERSION = '0.1.0';

export interface GrpcPeerTransportOptions {
  readonly selfId: NodeId;
  /** This member's cluster (node/ids.ts clusterIdFor); peers of any other cluster are refused. */
  readonly clusterId: number;
  /** Peer ids and their peer URLs (`http://host:port`); an entry for selfId is ignored. */
  readonly peers: ReadonlyMap<NodeId, readonly string[]>;
  /** Used as it is: it should already name the component and the member (node/server.ts gives it both). */
  readonly logger: Logger;
  /** This member's name and advertised peer URLs, sent in every hello (peers learn unknown senders' URLs from it). */
  readonly name?: string;
  readonly selfPeerUrls?: readonly string[];
  readonly version?: string;
  readonly limits?: Partial<TransportLimits>;
  /** Jitter source for reconnect back-off (tests inject a seeded one). */
  readonly random?: () => number;
  /** Credentials for dialling peers (node/tls.ts dialCredentials); plaintext http:// only when absent. */
  readonly dial?: DialCredentials;
  /** What carries Send streams (peer.ts PeerDeps.sendOver); from FULCRUM_PEER_SEND when absent, else http2 (node:http2). */
  readonly sendOver?: PeerSendOver;
}

/** FULCRUM_PEER_SEND when it names one, else `fallback` (a member's follows --http2-engine, node/server.ts). */
export function peerSendOverFromEnv(env: NodeJS.ProcessEnv = process.env, fallback: PeerSendOver = 'http2'): PeerSendOver {
  return switchFromEnv(env['FULCRUM_PEER_SEND'], ['engine', 'http2', 'grpc-js'], fallback);
}

type Closable = { end(): void };

export class GrpcPeerTransport implements MemberTransport {
  readonly limits: TransportLimits;
  readonly selfId: NodeId;
  readonly clusterId: number;
  private readonly log: Logger;
  private readonly hello: Encodable<MemberInfo>;
  private readonly counters: TransportStats = emptyStats();
  private readonly peers = new Map<NodeId, Peer>();
  private readonly removed = new Set<NodeId>();
  /** One snapshot transfer per peer at a time (Raft sends the next only after we report this one). */
  private readonly snapshotCalls = new Map<NodeId, { cancel(): void } | undefined>();
  private readonly inbound = new Set<Closable>();
  /** Incoming transfers in progress: at most one, so two leaders' images never race for the same file. */
  private receivingSnapshot = false;
  private hooks: TransportHooks | undefined;
  private closed = false;

  constructor(private readonly options: GrpcPeerTransportOptions) {
    this.limits = validateTransportLimits(options.limits);
    this.selfId = options.selfId;
    this.clusterId = options.clusterId;
    // Not a child naming them again: pino appends a child's bindings, and each line printed both twice.
    this.log = options.logger;
    const appliedIndex = (): number => this.hooks?.appliedIndex?.() ?? 0;
    this.hello = {
      cluster_id: options.clusterId,
      member_id: options.selfId,
      name: options.name ?? '',
      peer_urls: options.selfPeerUrls ?? options.peers.get(options.selfId) ?? [],
      version: options.version ?? DEFAULT_VERSION,
      protocol_version: PEER_PROTOCOL_VERSION,
      // Read whenever a hello is encoded (each new stream, handshake and snapshot transfer), so it is current.
      get applied_index() {
        return appliedIndex();
      },
    };
    for (const [id, urls] of options.peers) this.addPeer(id, urls);
  }

  start(hooks: TransportHooks): void {
    this.hooks = hooks;
  }

  /** Never blocks: messages are queued per peer (dropped and counted when full); MsgSnap starts a transfer. */
  send(messages: readonly Message[]): void {
    const byPeer = new Map<NodeId, Outbound[]>();
    for (const m of messages) {
      if (m.type === MessageType.Snap) {
        this.startSnapshot(m);
        continue;
      }
      let list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, (list = []));
      list.push({ message: m, bytes: messageBytes(m) });
    }
    for (const [to, list] of byPeer) this.enqueue(to, list);
  }

  private enqueue(to: NodeId, list: readonly Outbound[]): void {
    const peer = this.closed ? undefined : this.peers.get(to);
    const dropped = peer === undefined ? list.length : peer.enqueue(list);
    if (dropped === 0) return;
    this.counters.messagesDropped += dropped;
    // Raft should probe rather than stream appends into a peer we cannot keep up with (etcd does the same).
    if (peer !== undefined) this.hooks?.reportUnreachable(to);
    else if (!this.closed) this.log.debug({ to: to.toString(16), dropped }, 'dropped messages for an unknown peer');
  }

  /** The membership changed: added members get a peer (URLs from the change's context), removed ones lose it. */
  onConfChange(cc: ConfChange, _cs: ConfState): void {
    if (cc.nodeId === this.selfId) {
      if (cc.type === ConfChangeType.RemoveNode) this.log.warn('this member was removed from the cluster');
      return;
    }
    if (cc.type === ConfChangeType.RemoveNode) {
      this.removePeer(cc.nodeId);
      return;
    }
    this.removed.delete(cc.nodeId);
    const urls = decodeMemberContext(cc.context).peerUrls ?? [];
    if (urls.length > 0) this.addPeer(cc.nodeId, urls);
    else if (!this.peers.has(cc.nodeId)) this.log.warn({ peer: cc.nodeId.toString(16) }, 'member added without peer URLs; cannot reach it until it calls us');
  }

  /** Add a peer, or update its URLs. The server composition may call this with the registry after a restart. */
  addPeer(id: NodeId, urls: readonly string[]): void {
    if (id === this.selfId || this.closed || urls.length === 0) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      existing.setUrls(urls);
      return;
    }
    this.peers.set(id, this.newPeer(id, urls));
    this.log.info({ peer: id.toString(16), urls }, 'added peer');
  }

  private newPeer(id: NodeId, urls: readonly string[]): Peer {
    return new Peer(id, urls, {
      limits: this.limits,
      logger: this.log,
      stats: this.counters,
      hello: this.hello,
      reportUnreachable: (p) => this.hooks?.reportUnreachable(p),
      reportRemoved: () => this.hooks?.reportRemoved?.(),
      random: this.options.random ?? Math.random,
      dial: this.options.dial ?? PLAINTEXT_DIAL,
      sendOver: this.options.sendOver ?? peerSendOverFromEnv(),
    });
  }

  /** Forget a peer (removed from the cluster): stop its stream, refuse its calls from now on. */
  removePeer(id: NodeId): void {
    this.removed.add(id);
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    this.snapshotCalls.get(id)?.cancel();
    void peer.close();
    this.log.info({ peer: id.toString(16) }, 'removed peer');
  }

  /**
   * Stop calling the peers not among `members` (the member's registry), without refusing them as removed: a member
   * removed while this one was away (a snapshot installed over its removal, so no conf change told us), or an id
   * the cluster no longer uses at that URL (it was added back under a fresh id), would be dialled again and again.
   */
  keepOnlyPeers(members: ReadonlySet<NodeId>): void {
    for (const [id, peer] of this.peers) {
      if (members.has(id)) continue;
      this.peers.delete(id);
      this.snapshotCalls.get(id)?.cancel();
      void peer.close();
      this.log.info({ peer: id.toString(16) }, 'forgot a peer the membership does not have');
    }
  }

  stats(): TransportStats & { readonly peers: readonly PeerStats[] } {
    return { ...this.counters, peers: [...this.peers.values()].map((p) => p.stats()) };
  }

  /** Stop every stream and transfer; incoming calls are ended. Resolves once the peers' loops have stopped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.snapshotCalls.values()) c?.cancel();
    for (const c of this.inbound) c.end();
    this.inbound.clear();
    const peers = [...this.peers.values()];
    this.peers.clear();
    await Promise.all(peers.map((p) => p.close()));
  }

  // -------------------------------------------------------------------------------------------------------
  // Snapshots out
  // -------------------------------------------------------------------------------------------------------

  private startSnapshot(m: Message): void {
    const peer = this.peers.get(m.to);
    const hooks = this.hooks;
    if (peer === undefined || hooks === undefined || this.closed) {
      this.counters.messagesDropped++;
      hooks?.reportSnapshot(m.to, false);
      return;
    }
    // Raft keeps one snapshot in flight per follower and waits for our report, so a second one here is a
    // duplicate of the running transfer: that transfer's report answers for both.
    if (this.snapshotCalls.has(m.to)) return;
    this.snapshotCalls.set(m.to, undefined);
    void this.runSnapshot(peer, m, hooks);
  }

  private async runSnapshot(peer: Peer, m: Message, hooks: TransportHooks): Promise<void> {
    const md = m.snapshot!.metadata;
    const log = this.log.child({ peer: m.to.toString(16), index: md.index, term: md.term });
    log.info('sending snapshot to peer');
    let ok = false;
    let source: SnapshotSource | undefined;
    try {
      source = await (hooks.openSnapshot?.(md) ?? hooks.snapshots.source(md));
      ok = await sendSnapshot({
        client: peer.snapshotClient(),
        message: m,
        hello: this.hello,
        source,
        limits: this.limits,
        stats: this.counters,
        onCall: (call) => (this.closed ? call.cancel() : this.snapshotCalls.set(m.to, call)),
      });
    } catch (e) {
      if (!this.closed) log.warn({ err: isServiceError(e) ? e.details : String(e) }, 'snapshot transfer to peer failed');
    } finally {
      await source?.release();
    }
    this.snapshotCalls.delete(m.to);
    if (ok) this.counters.snapshotsSent++;
    else this.counters.snapshotsSendFailed++;
    if (ok) log.info('snapshot sent and applied by peer');
    if (this.closed) return;
    hooks.reportSnapshot(m.to, ok);
    if (!ok) hooks.reportUnreachable(m.to);
  }

  // -------------------------------------------------------------------------------------------------------
  // Inbound (called by the service handlers)
  // -------------------------------------------------------------------------------------------------------

  /** Undefined when a peer with this hello may talk to us; otherwise the status to end its call with. */
  admit(hello: MemberInfo | null): grpc.ServiceError | undefined {
    if (this.closed) return statusError(grpc.status.UNAVAILABLE, 'fulcrum: member is stopping');
    if (hello === null) return this.refuse(REFUSAL.missingHello, undefined);
    const from = tryInt(hello.member_id);
    if (from === undefined || from === 0) return statusError(grpc.status.INVALID_ARGUMENT, `fulcrum: bad member id ${hello.member_id}`);
    if (hello.protocol_version !== PEER_PROTOCOL_VERSION) return this.refuse(`${REFUSAL.protocolVersion} ${hello.protocol_version}`, hello);
    if (hello.cluster_id !== String(this.clusterId)) return this.refuse(REFUSAL.clusterMismatch, hello);
    if (this.removed.has(from) && !this.aheadOfUs(hello)) return this.refuse(REFUSAL.memberRemoved, hello);
    if (from === this.selfId) return this.refuse(REFUSAL.memberMismatch, hello);
    // A member we have no URLs for (added in a snapshot we installed, or a learner racing its conf change)
    // told us where it listens: remember, so that our answers reach it.
    if (!this.peers.has(from) && hello.peer_urls.length > 0) this.addPeer(from, hello.peer_urls);
    return undefined;
  }

  /**
   * Whether the sender has applied more of the log than we have. Clusters whose members were re-added by builds
   * before fresh ids (node/ids.ts freshMemberId) reuse ids, so our record of a removal can predate the id's return:
   * a member still replaying the log (just added, or restarting) holds the removal until it applies the entry that
   * adds the sender back. Refusing such a sender could refuse the very leader whose entries would correct us, and a
   * refused member stops (peer.ts). A sender that really was removed has not applied its own removal, which we have.
   */
  private aheadOfUs(hello: MemberInfo): boolean {
    const ours = this.hooks?.appliedIndex?.();
    const theirs = Number(hello.applied_index ?? 0);
    return ours !== undefined && Number.isSafeInteger(theirs) && theirs > ours;
  }

  private refuse(details: string, hello: MemberInfo | undefined): grpc.ServiceError {
    this.counters.peersRefused++;
    // Loud: a member of another cluster (or a removed one) pointed at us is an operator's mistake to fix.
    this.log.error(
      { details, remoteCluster: hello?.cluster_id, remoteMember: hello?.member_id, remoteName: hello?.name, remoteUrls: hello?.peer_urls, localCluster: this.clusterId },
      `refused a peer: ${details}`,
    );
    return statusError(grpc.status.FAILED_PRECONDITION, details);
  }

  handshake(req: HandshakeRequest): { error?: grpc.ServiceError; member?: Encodable<MemberInfo>; assignedMemberId?: NodeId } {
    // Discovery: a member joining an existing cluster (after MemberAdd) asks who we are, with cluster id 0, to
    // learn the cluster id it must present and the id MemberAdd gave it (found by its peer URLs in our registry;
    // 0 when we have not applied that MemberAdd yet). It is told, and admitted to nothing: Send still checks both.
    if (req.from !== null && req.from.cluster_id === '0' && !this.closed) {
      return { member: this.hello, assignedMemberId: this.hooks?.memberIdByPeerUrls?.(req.from.peer_urls) ?? 0 };
    }
    const error = this.admit(req.from);
    if (error !== undefined) return { error };
    const to = tryInt(req.to_member_id);
    if (to !== 0 && to !== this.selfId) return { error: this.refuse(REFUSAL.memberMismatch, req.from ?? undefined) };
    // It dialled us, so it is up: our own stream to it need not wait out its back-off.
    this.peers.get(tryInt(req.from!.member_id)!)?.peerIsUp();
    return { member: this.hello };
  }

  /** Raft messages from an admitted peer: only those addressed to us, from that peer, and meant for the wire. */
  receive(from: NodeId, batch: Pick<PeerBatch, 'messages' | 'malformed'>): void {
    for (const reason of batch.malformed) {
      this.counters.messagesRejected++;
      this.log.warn({ err: `fulcrum: malformed raft message: ${reason}`, from: from.toString(16) }, 'dropped a malformed message from a peer');
    }
    for (const m of batch.messages) {
      if (!this.acceptable(from, m) || this.hooks === undefined || this.closed) {
        this.counters.messagesRejected++;
        continue;
      }
      try {
        this.hooks.deliver(m);
        this.counters.messagesReceived++;
      } catch (e) {
        this.counters.messagesRejected++;
        this.log.debug({ err: String(e), type: MessageType[m.type] }, 'raft refused a message from a peer');
      }
    }
  }

  private acceptable(from: NodeId, m: Message): boolean {
    // A MsgSnap inline would carry no image: images only come through SendSnapshot.
    return m.to === this.selfId && m.from === from && !isLocalMessage(m.type) && m.type !== MessageType.Snap;
  }

  /**
   * Called after each batch of an admitted stream: the sender may have been removed since. Its batch was still
   * stepped (a leader that removed itself sends MsgTimeoutNow to its successor right after), and the stream is then
   * ended with this refusal. The leader stops sending to a member it removes, often before that member learns the
   * removal committed: with its own streams up and nothing refusing them, it would never learn it was removed.
   */
  refusalAfterBatch(from: NodeId, hello: MemberInfo): grpc.ServiceError | undefined {
    if (!this.removed.has(from) || this.aheadOfUs(hello)) return undefined;
    this.counters.peersRefused++;
    this.log.info({ peer: from.toString(16) }, 'ended the stream of a removed member');
    return statusError(grpc.status.FAILED_PRECONDITION, REFUSAL.memberRemoved);
  }

  /** Track an incoming call so close() can end it. Returns the function that forgets it. */
  trackInbound(call: Closable): () => void {
    this.inbound.add(call);
    return () => this.inbound.delete(call);
  }

  snapshotReceiver(): SnapshotReceiveContext | undefined {
    if (this.receivingSnapshot) return undefined;
    this.receivingSnapshot = true;
    return {
      selfId: this.selfId,
      limits: this.limits,
      stats: this.counters,
      log: this.log,
      admit: (hello) => this.admit(hello),
      store: () => this.hooks?.snapshots,
      deliver: (m) => {
        if (!this.closed) this.hooks?.deliver(m);
      },
    };
  }

  snapshotReceiverDone(): void {
    this.receivingSnapshot = false;
  }
}
