// Every link of a chaos cluster, as fault proxies: one per directed peer link (i→j) and one per member for the
// clients. Partitions are expressed on members; the proxies do the cutting.
import { HEALTHY, LinkProxy, PASS, type DirectionShape, type LinkShape } from '../proxy/proxy.js';
import type { FromRouter } from '../proxy/router.js';

export type LinkKey = `${number}->${number}` | `client->${number}`;

const CUT: DirectionShape = { ...PASS, cut: true };

export class Network {
  readonly links = new Map<LinkKey, LinkProxy>();
  private readonly routers: FromRouter[] = [];

  constructor(readonly size: number) {}

  add(key: LinkKey, proxy: LinkProxy): void {
    this.links.set(key, proxy);
  }

  addRouter(r: FromRouter): void {
    this.routers.push(r);
  }

  peer(from: number, to: number): LinkProxy {
    const l = this.links.get(`${from}->${to}`);
    if (l === undefined) throw new Error(`no peer link ${from}->${to}`);
    return l;
  }

  client(to: number): LinkProxy {
    const l = this.links.get(`client->${to}`);
    if (l === undefined) throw new Error(`no client link to ${to}`);
    return l;
  }

  /** Every link healthy again (open connections that saw a cut are reset, so streams restart cleanly). */
  heal(): void {
    for (const l of this.links.values()) l.setShape(HEALTHY);
  }

  /** Bytes from `from` to `to` stop, on both of the TCP connections between them; the other direction flows. */
  cutOneWay(from: number, to: number): void {
    const fwd = this.peer(from, to);
    fwd.setShape({ ...fwd.shape, forward: CUT });
    const back = this.peer(to, from);
    back.setShape({ ...back.shape, backward: CUT });
  }

  cutBothWays(a: number, b: number): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  /** Members in different groups cannot talk; a member in no group is cut from everyone. */
  partition(groups: readonly (readonly number[])[]): void {
    const groupOf = new Map<number, number>();
    groups.forEach((g, gi) => g.forEach((m) => groupOf.set(m, gi)));
    for (let a = 0; a < this.size; a++)
      for (let b = a + 1; b < this.size; b++) {
        const ga = groupOf.get(a);
        if (ga === undefined || ga !== groupOf.get(b)) this.cutBothWays(a, b);
      }
  }

  /** Each member talks only to its ring neighbours: everyone sees a majority, no two majorities agree. */
  ring(): void {
    for (let a = 0; a < this.size; a++)
      for (let b = a + 1; b < this.size; b++) {
        const d = Math.min(b - a, this.size - (b - a));
        if (d > 1) this.cutBothWays(a, b);
      }
  }

  /** Same shape on every peer link (delay, throttle, dropped connections). */
  shapePeers(shape: LinkShape): void {
    for (const [k, l] of this.links) if (!k.startsWith('client')) l.setShape(shape);
  }

  /** The connections of a member that restarts or is removed are dead; clear them at once. */
  resetMember(m: number): void {
    for (let o = 0; o < this.size; o++) {
      if (o === m) continue;
      this.links.get(`${m}->${o}`)?.resetAll();
      this.links.get(`${o}->${m}`)?.resetAll();
    }
    this.links.get(`client->${m}`)?.resetAll();
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await Promise.all(this.routers.splice(0).map((r) => r.close()));
  }
}
