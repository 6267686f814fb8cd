// The outbound side of one peer: a bounded queue, one long-lived Send stream carrying batches in order, and a
// reconnect loop with exponential back-off.
//
//   run:  ┌─> connect: Handshake (cluster and member ids checked by the peer) ─> open Send ─> pump until it ends
//         └── back off (min..max, jittered) <── failure: report unreachable, drop what is queued
//
// send() only pushes onto the queue and wakes the pump; it never waits, so the Ready loop never blocks on a
// slow or dead peer. One pump per peer writes batches in queue order, so messages to one peer keep their order.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Encodable, HandshakeResponse, MemberInfo, SendAck } from '../../proto/index.js';
import type { Message, NodeId } from '../../raft/types.js';
import { encodeHello, encodePeerBatch } from './batch-codec.js';
import { Backoff } from './backoff.js';
import { EnginePeerSendChannel } from './engine-send.js';
import { PeerSendChannel, type SendStream } from './h2-send.js';
import { deadlineIn, isServiceError, newRaftTransportClient, REFUSAL, statusError, type RaftTransportClient } from './grpc-util.js';
import type { TransportLimits } from './limits.js';
import type { DialCredentials } from '../tls.js';
import { BoundedQueue } from './queue.js';
import type { PeerStats, TransportStats } from './stats.js';
import { Wakeup } from './wakeup.js';
import { trace } from '../trace.js';

/** A message queued for a peer, with its size estimate. Encoded when its batch is written. */
export interface Outbound {
  readonly message: Message;
  readonly bytes: number;
}

export interface PeerDeps {
  readonly limits: TransportLimits;
  /** Credentials by the URL's scheme: TLS with --peer-cert-file for https, plaintext for http. */
  readonly dial: DialCredentials;
  readonly logger: Logger;
  readonly stats: TransportStats;
  readonly hello: Encodable<MemberInfo>;
  readonly reportUnreachable: (id: NodeId) => void;
  /** A peer says this member was removed from the cluster: it may never learn so from its own log. */
  readonly reportRemoved: () => void;
  readonly random: () => number;
  /**
   * What carries the Send stream: an HTTP/2 connection of its own, either Fulcrum's HTTP/2 client (engine-send.ts)
   * or node:http2 (h2-send.ts), or grpc-js's channel, as before (FULCRUM_PEER_SEND=engine|http2|grpc-js; the
   * others kept for side-by-side measurements). Either way the peer sees the same gRPC call.
   */
  readonly sendOver: PeerSendOver;
}

export type PeerSendOver = 'engine' | 'http2' | 'grpc-js';

/** What opens Send streams on a connection of the Peer's own (not grpc-js's channel). */
interface SendChannel {
  openSend(): SendStream;
  close(): void;
}

export class Peer {
  private readonly queue: BoundedQueue<Outbound>;
  private readonly wake = new Wakeup();
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private urls: readonly string[];
  private urlIndex = 0;
  private client: { url: string; client: RaftTransportClient } | undefined;
  private sendChannel: { url: string; channel: SendChannel } | undefined;
  private call: grpc.ClientUnaryCall | SendStream | undefined;
  private connected = false;
  private closed = false;
  /** In the back-off sleep between attempts (the only time peerIsUp() has anything to cut short). */
  private backingOff = false;
  private retryNow = false;
  /** Failures since the last good connection: only the first of a streak is logged at warn. */
  private failureStreak = 0;
  private readonly running: Promise<void>;

  constructor(
    readonly id: NodeId,
    urls: readonly string[],
    private readonly deps: PeerDeps,
  ) {
    this.urls = [...urls];
    this.queue = new BoundedQueue(deps.limits.queueMessagesMax, deps.limits.queueBytesMax, (o) => o.bytes);
    this.backoff = new Backoff(deps.limits.reconnectMinMs, deps.limits.reconnectMaxMs, deps.random);
    this.log = deps.logger.child({ peer: id.toString(16) });
    this.running = this.run();
  }

  /** Queue messages (in order); returns how many were dropped because the queue is full. */
  enqueue(messages: readonly Outbound[]): number {
    let dropped = 0;
    for (const m of messages) if (this.closed || !this.queue.push(m)) dropped++;
    if (dropped < messages.length) this.wake.notify();
    return dropped;
  }

  /** The peer's URLs changed (a member update); reconnect if the one in use is gone. */
  setUrls(urls: readonly string[]): void {
    this.urls = [...urls];
    if (this.client !== undefined && !urls.includes(this.client.url)) this.abortCall();
  }

  /**
   * The peer has just dialled us and passed admission, so it is up: if we are waiting out a back-off to reach
   * it, try now. A member restarting after a crash otherwise hears nothing from the leader until the leader's
   * back-off (grown while the member was down, up to reconnectMaxMs) runs out, and meanwhile its reads and its
   * election timer wait (etcd avoids this by having the restarted member open the streams it reads from). The
   * peer's own back-off paces these calls, so a flapping peer cannot make us hammer it.
   */
  peerIsUp(): void {
    if (!this.backingOff || this.closed) return;
    this.retryNow = true;
    this.wake.notify();
  }

  /** The client to reach this peer on, for snapshot transfers (same channel, separate HTTP/2 stream). */
  snapshotClient(): RaftTransportClient {
    return this.clientFor(this.currentUrl());
  }

  stats(): PeerStats {
    return { id: this.id, connected: this.connected, queuedMessages: this.queue.length, queuedBytes: this.queue.byteLength, url: this.client?.url };
  }

  /** Stop at once: cancel the stream, drop the queue, wait for the loop to notice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.deps.stats.messagesDropped += this.queue.clear();
    this.abortCall();
    this.wake.notify();
    await this.running;
    this.dropConnections();
  }

  private dropConnections(): void {
    this.client?.client.close();
    this.client = undefined;
    this.sendChannel?.channel.close();
    this.sendChannel = undefined;
  }

  private abortCall(): void {
    this.call?.cancel();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        await this.session();
      } catch (e) {
        this.onFailure(e);
      }
      this.connected = false;
      if (this.closed) break;
      await this.sleep(this.backoff.next());
    }
  }

  /** One connection: handshake, then pump batches until the stream ends. Throws why it ended. */
  private async session(): Promise<void> {
    const url = this.currentUrl();
    const client = this.clientFor(url);
    await this.handshake(client);
    if (this.closed) return;
    const stream: SendStream = this.deps.sendOver === 'grpc-js' ? client.Send() : this.sendChannelFor(url).openSend();
    this.call = stream;
    const state = { ended: false, error: undefined as Error | undefined, acked: 0 };
    stream.on('data', (ack: SendAck) => {
      // The peer stepped what we sent: only now is the connection known to work, so only now start over
      // from the shortest back-off (a peer that accepts and then drops every stream must not be hammered).
      if (state.acked === 0) this.backoff.reset();
      state.acked = Number(ack.seq);
      this.wake.notify();
    });
    stream.on('error', (e: Error) => this.streamEnded(state, e));
    stream.on('end', () => this.streamEnded(state, new Error('stream ended by peer')));
    this.connected = true;
    if (this.failureStreak > 0) this.log.info({ url }, 'peer connected again');
    this.failureStreak = 0;
    await this.pump(stream, state);
    stream.cancel();
    if (state.error !== undefined && !this.closed) throw state.error;
  }

  private streamEnded(state: { ended: boolean; error: Error | undefined }, e: Error): void {
    // 'end' may come before the 'error' that carries the peer's status; keep the status, it says why.
    if (state.ended && (isServiceError(state.error) || !isServiceError(e))) return;
    state.ended = true;
    state.error = e;
    this.wake.notify();
  }

  /** Both ends check each other: the peer refuses us (admit), and we refuse a peer that is not who we dialled. */
  private async handshake(client: RaftTransportClient): Promise<void> {
    const res = await new Promise<HandshakeResponse>((resolve, reject) => {
      this.call = client.Handshake({ from: this.deps.hello, to_member_id: this.id }, { deadline: deadlineIn(this.deps.limits.handshakeTimeoutMs) }, (err, r) =>
        err ? reject(err) : resolve(r!),
      );
    });
    const peer = res.member;
    if (peer?.cluster_id !== String(this.deps.hello.cluster_id)) throw statusError(grpc.status.FAILED_PRECONDITION, REFUSAL.clusterMismatch);
    if (peer.member_id !== String(this.id)) throw statusError(grpc.status.FAILED_PRECONDITION, REFUSAL.memberMismatch);
  }

  /** Write batches in queue order while the stream is up, at most inflightBatchesMax unacknowledged. */
  private async pump(stream: SendStream, state: { ended: boolean; acked: number }): Promise<void> {
    const { batchMessagesMax, batchBytesMax, inflightBatchesMax } = this.deps.limits;
    let seq = 0;
    while (!this.closed && !state.ended) {
      if (this.queue.length === 0 || seq - state.acked >= inflightBatchesMax) {
        await this.wake.wait();
        continue;
      }
      const batch = this.queue.take(batchMessagesMax, batchBytesMax);
      seq++;
      // The first batch of every stream carries the hello, encoded then: its applied index must be current.
      const frame = encodePeerBatch(seq === 1 ? encodeHello(this.deps.hello) : null, seq, batch.map((o) => o.message));
      trace(() => `send to=${this.id.toString(16)} n=${batch.length} bytes=${frame.length}`);
      await this.write(stream, frame, state);
      this.deps.stats.messagesSent += batch.length;
    }
  }

  /** Wait for the write callback (grpc-js has handed the frame to HTTP/2): one frame buffered at a time. */
  private async write(stream: SendStream, frame: Buffer, state: { ended: boolean }): Promise<void> {
    let written = false;
    stream.write(frame, () => {
      trace(() => `written to=${this.id.toString(16)}`);
      written = true;
      this.wake.notify();
    });
    while (!written && !state.ended && !this.closed) await this.wake.wait();
  }

  private onFailure(e: unknown): void {
    if (this.closed) return;
    const dropped = this.queue.clear();
    this.deps.stats.messagesDropped += dropped;
    this.deps.reportUnreachable(this.id);
    // The next attempt tries the peer's next URL, if it has several.
    this.urlIndex++;
    if (isServiceError(e) && e.code === grpc.status.FAILED_PRECONDITION) {
      this.deps.stats.peersRefused++;
      // Loud on every attempt: this is a misconfiguration (wrong address, another cluster), not a flaky network.
      this.log.error({ details: e.details, url: this.client?.url }, `peer refused this member: ${e.details}`);
      if (e.details === REFUSAL.memberRemoved) this.deps.reportRemoved();
    } else if (this.failureStreak++ === 0) {
      this.log.warn({ err: describe(e), url: this.client?.url, dropped }, 'peer unreachable; reconnecting with back-off');
    } else {
      this.log.debug({ err: describe(e), attempt: this.failureStreak, dropped }, 'peer still unreachable');
    }
  }

  private currentUrl(): string {
    if (this.urls.length === 0) throw new Error('peer has no URLs');
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  private sendChannelFor(url: string): SendChannel {
    if (this.sendChannel?.url === url) return this.sendChannel.channel;
    this.sendChannel?.channel.close();
    const Channel = this.deps.sendOver === 'engine' ? EnginePeerSendChannel : PeerSendChannel;
    this.sendChannel = { url, channel: new Channel(url, this.deps.dial.secureContext(url), { connectTimeoutMs: this.deps.limits.handshakeTimeoutMs }) };
    return this.sendChannel.channel;
  }

  private clientFor(url: string): RaftTransportClient {
    if (this.client?.url === url) return this.client.client;
    this.client?.client.close();
    this.client = { url, client: newRaftTransportClient(url, this.deps.dial(url), this.deps.limits) };
    return this.client.client;
  }

  /** Back off for `ms`, cut short by close() or by peerIsUp(). */
  private async sleep(ms: number): Promise<void> {
    let fired = false;
    const t = setTimeout(() => {
      fired = true;
      this.wake.notify();
    }, ms);
    this.backingOff = true;
    this.retryNow = false;
    while (!fired && !this.closed && !this.retryNow) await this.wake.wait();
    this.backingOff = false;
    clearTimeout(t);
    if (!this.retryNow) return;
    this.retryNow = false;
    this.deps.stats.reconnectsOnPeerUp++;
    // A fresh channel: the old one is waiting out grpc-js's own reconnect back-off, which would delay the retry
    // just as much (it is bounded by ours, see newRaftTransportClient).
    this.dropConnections();
  }
}

function describe(e: unknown): string {
  if (isServiceError(e)) return `${grpc.status[e.code] ?? e.code}: ${e.details}`;
  return e instanceof Error ? e.message : String(e);
}
