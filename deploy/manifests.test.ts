// deploy/compose.yaml and deploy/kubernetes/ kept honest: each container's command and environment are derived
// from the files as Compose or the kubelet would give them (deploy/containers.ts), the start script runs for
// real, and the members start as local processes with host names mapped to 127.0.0.1 and free ports. The
// cluster must form and serve: a put on one member, a linearizable get on the others. The StatefulSet is also
// scaled from 3 to 5 and has a failed member replaced the way docs/operations.md says, and its probes are asked.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandLine, type ServerConfig } from '../node/config.js';
import { EtcdTestClient } from '../node/testing/etcd-client.js';
import { eventually } from '../node/testing/eventually.js';
import { ProcessMember } from '../node/testing/process-cluster.js';
import { composeContainers, handedToFulcrum, mapToLocal, readCompose, readManifests, statefulSetPods, type ContainerSpec, type Handed, type PortMap } from './containers.js';
import { finalImageConfig } from './dockerfile.js';
import { freePorts } from './ports.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string): string => readFileSync(join(REPO, p), 'utf8');
const IMAGE = finalImageConfig(read('Dockerfile'));
/** The image's ports: clients, peers, metrics and health. */
const PORTS = { client: 2379, peer: 2380, metrics: 2381 } as const;
const K8S_FILES = ['deploy/kubernetes/services.yaml', 'deploy/kubernetes/statefulset.yaml', 'deploy/kubernetes/pdb.yaml', 'deploy/kubernetes/configmap.yaml'];

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-manifests-'));
const started: ProcessMember[] = [];
const clients: EtcdTestClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(started.map((m) => m.kill()));
  rmSync(dir, { recursive: true, force: true });
});

interface LocalContainer {
  readonly spec: ContainerSpec;
  readonly handed: Handed;
  readonly config: ServerConfig;
  readonly member: ProcessMember;
  readonly client: EtcdTestClient;
  readonly ports: PortMap;
}

async function allocate(containers: readonly ContainerSpec[]): Promise<Map<string, PortMap>> {
  const free = await freePorts(1, containers.length * 3);
  return new Map(containers.map((c, i) => [c.name, { [PORTS.client]: free[3 * i]!, [PORTS.peer]: free[3 * i + 1]!, [PORTS.metrics]: free[3 * i + 2]! }]));
}

/** Derive, run the container's command up to `fulcrum`, map to this machine, and check the server accepts it. */
async function prepare(c: ContainerSpec, all: readonly ContainerSpec[], ports: ReadonlyMap<string, PortMap>): Promise<LocalContainer> {
  const handed = await handedToFulcrum(c, dir);
  // Each container its own volume (compose's fulcrum-1 and the StatefulSet's fulcrum-1 are different members).
  const dataDir = mkdtempSync(join(dir, `volume-${c.name}-`));
  const local = mapToLocal(handed, c, all, ports, dataDir);
  const cl = parseCommandLine(local.args, local.env);
  if (cl.kind !== 'serve') throw new Error(`${c.name}: the server would print instead of serving: ${cl.text}`);
  const p = ports.get(c.name)!;
  const member = new ProcessMember({ name: c.name, clientPort: p[PORTS.client]!, peerPort: p[PORTS.peer]!, dataDir, env: local.env }, local.args, undefined);
  const client = new EtcdTestClient(member.clientEndpoint, 3_000);
  clients.push(client);
  return { spec: c, handed, config: cl.config, member, client, ports: p };
}

function start(c: LocalContainer): void {
  started.push(c.member);
  c.member.start();
}

/** Wait as `eventually` does; on a timeout, the members' last output lines go into the error. */
async function waitFor<T>(members: readonly LocalContainer[], what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return eventually(what, fn, timeoutMs).catch((e: Error) => {
    throw new Error(`${e.message}\n${members.map((m) => `--- ${m.spec.name}:\n${m.member.output.slice(-15).join('\n')}`).join('\n')}`);
  });
}

async function leaderOf(members: readonly LocalContainer[]): Promise<string> {
  return waitFor(members, 'one leader that every member knows', async () => {
    const leaders = new Set<string>();
    for (const m of members) leaders.add((await m.client.status()).leader);
    return leaders.size === 1 && !leaders.has('0') ? [...leaders][0] : undefined;
  });
}

/** The settings warnings a member logs at start (unknown FULCRUM_ names, shadowed values): there should be none. */
function settingWarnings(members: readonly LocalContainer[]): string[] {
  return members.flatMap((m) => m.config.warnings.map((w) => `${m.spec.name}: ${w}`));
}

async function probe(c: LocalContainer, path: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${c.ports[PORTS.metrics]}${path}`, { signal: AbortSignal.timeout(5_000) });
  return r.status;
}

describe('deploy/compose.yaml', () => {
  it('starts three members that form one cluster and serve from any member', async () => {
    const compose = readCompose(read('deploy/compose.yaml'));
    const specs = composeContainers(compose, IMAGE);
    expect(specs.map((s) => s.name)).toEqual(['fulcrum-1', 'fulcrum-2', 'fulcrum-3']);
    // Each member has its own named volume, declared at the top level.
    const volumes = Object.values(compose.services).map((s) => String(s.volumes![0]).split(':')[0]);
    expect(new Set(volumes).size).toBe(3);
    for (const v of volumes) expect(Object.keys(compose.volumes ?? {})).toContain(v);
    // Clients reach any member: every member's client port is published, on different host ports.
    const published = Object.values(compose.services).map((s) => s.ports!.map(String).find((p) => p.endsWith(`:${PORTS.client}`))!);
    expect(new Set(published.map((p) => p.split(':').at(-2))).size).toBe(3);

    const ports = await allocate(specs);
    const members = await Promise.all(specs.map((s) => prepare(s, specs, ports)));
    expect(settingWarnings(members)).toEqual([]);
    expect(members.map((m) => m.config.name)).toEqual(['fulcrum-1', 'fulcrum-2', 'fulcrum-3']);
    expect(new Set(members.map((m) => m.config.clusterId)).size).toBe(1);
    expect(new Set(members.map((m) => m.config.memberId)).size).toBe(3);

    members.forEach(start);
    await leaderOf(members);
    await eventually('a put on fulcrum-1', () => members[0]!.client.put('compose/greeting', 'hello'));
    expect(await members[1]!.client.get('compose/greeting')).toBe('hello');
    expect(await members[2]!.client.get('compose/greeting')).toBe('hello');
    expect((await members[2]!.client.memberList()).map((m) => m.name).sort()).toEqual(['fulcrum-1', 'fulcrum-2', 'fulcrum-3']);
    // `docker compose stop` sends SIGTERM: each member exits cleanly.
    expect(await Promise.all(members.map((m) => m.member.stop()))).toEqual([0, 0, 0]);
  }, 150_000);
});

describe('deploy/kubernetes', () => {
  const objects = readManifests(...K8S_FILES.map(read));
  const byKind = (kind: string): Array<(typeof objects)[number]> => objects.filter((o) => o.kind === kind);
  const sts = byKind('StatefulSet')[0]!;
  const stsSpec = sts.spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- manifest JSON, checked field by field
  const container = stsSpec.template.spec.containers[0];

  it('has what a consistent core needs: stable peer names, a quorum-keeping disruption budget, probes, requests, volumes', () => {
    const podLabels = stsSpec.template.metadata.labels as Record<string, string>;
    const selects = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    const headless = byKind('Service').find((s) => s.metadata.name === stsSpec.serviceName)!;
    expect(headless.spec.clusterIP).toBe('None');
    // Peers must resolve each other before any is ready (readiness needs a leader, which needs the peers).
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const clientService = byKind('Service').find((s) => s !== headless)!;
    expect(selects(clientService.spec.selector as Record<string, string>)).toBe(true);
    expect((clientService.spec.ports as Array<{ port: number }>).map((p) => p.port)).toContain(PORTS.client);
    expect(stsSpec.replicas).toBe(3);
    expect(stsSpec.podManagementPolicy).toBe('Parallel');
    const pdb = byKind('PodDisruptionBudget')[0]!;
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(selects((pdb.spec.selector as { matchLabels: Record<string, string> }).matchLabels)).toBe(true);
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.livenessProbe.httpGet.path).toMatch(/^\/(livez|health)/);
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.requests.memory).toBeDefined();
    const claim = stsSpec.volumeClaimTemplates[0];
    expect(container.volumeMounts.find((m: { name: string }) => m.name === claim.metadata.name).mountPath).toBe(IMAGE.volumes[0]);
    expect(stsSpec.template.spec.securityContext.runAsNonRoot).toBe(true);
  });

  it('negative controls: service links would leak FULCRUM_* settings; a wrong serviceName leaves peer names unresolvable', async () => {
    const withLinks = readManifests(...K8S_FILES.map(read));
    delete (withLinks.find((o) => o.kind === 'StatefulSet')!.spec as Record<string, any>).template.spec.enableServiceLinks; // eslint-disable-line @typescript-eslint/no-explicit-any
    const pods = statefulSetPods(withLinks, IMAGE, 3).pods;
    const ports = await allocate(pods);
    const handed = await handedToFulcrum(pods[0]!, dir);
    const local = mapToLocal(handed, pods[0]!, pods, ports, join(dir, 'links-control'));
    const cl = parseCommandLine(local.args, local.env);
    expect(cl.kind === 'serve' ? cl.config.warnings : []).toContainEqual(expect.stringMatching(/^FULCRUM_SERVICE_HOST is not a Fulcrum server setting/));

    const renamed = readManifests(...K8S_FILES.map(read));
    (renamed.find((o) => o.kind === 'StatefulSet')!.spec as Record<string, unknown>).serviceName = 'fulcrum-elsewhere';
    const lost = statefulSetPods(renamed, IMAGE, 3).pods;
    const lostHanded = await handedToFulcrum(lost[0]!, dir);
    expect(() => mapToLocal(lostHanded, lost[0]!, lost, ports, join(dir, 'dns-control'))).toThrow(/fulcrum-\d\.fulcrum-peer would not resolve/);
  });

  it('starts the three founding pods as a cluster, scales to five with MemberAdd, replaces a failed member, and answers its probes', async () => {
    const { pods } = statefulSetPods(objects, IMAGE, 5);
    const ports = await allocate(pods);
    const founders = await Promise.all(pods.slice(0, 3).map((p) => prepare(p, pods, ports)));
    expect(settingWarnings(founders)).toEqual([]);
    expect(founders.map((m) => m.config.name)).toEqual(['fulcrum-0', 'fulcrum-1', 'fulcrum-2']);
    expect(founders.map((m) => m.config.initialClusterState)).toEqual(['new', 'new', 'new']);
    expect(new Set(founders.map((m) => m.config.clusterId)).size).toBe(1);

    founders.forEach(start);
    await leaderOf(founders);
    await eventually('a put on fulcrum-0', () => founders[0]!.client.put('k8s/greeting', 'hello'));
    expect(await founders[1]!.client.get('k8s/greeting')).toBe('hello');
    expect(await founders[2]!.client.get('k8s/greeting')).toBe('hello');
    for (const probeName of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(await probe(founders[1]!, container[probeName].httpGet.path), probeName).toBe(200);
    }

    // 3 → 5, one member at a time (docs/operations.md): MemberAdd as a learner with the pod's peer URL, one more
    // replica (the start script makes it join), wait for it to catch up, promote it.
    const members = [...founders];
    for (const ordinal of [3, 4]) {
      const pod = await prepare(pods[ordinal]!, pods, ports);
      expect(pod.config.initialClusterState).toBe('existing');
      expect(pod.config.initialMembers.size).toBe(ordinal + 1);
      expect(settingWarnings([pod])).toEqual([]);
      const id = await founders[0]!.client.memberAdd([...pod.config.initialAdvertisePeerUrls], true);
      start(pod);
      await waitFor([pod], `${pod.spec.name} to catch up`, async () => ((await pod.client.get('k8s/greeting', true)) === 'hello' ? true : undefined));
      // docs/deploy.md waits for the pod's readiness (kubectl wait) before promoting: a learner must become ready.
      await waitFor([pod], `${pod.spec.name} ready`, async () => ((await probe(pod, container.readinessProbe.httpGet.path)) === 200 ? true : undefined));
      await eventually(`${pod.spec.name} promoted`, async () => {
        await founders[0]!.client.memberPromote(id);
        return true;
      }, 60_000);
      members.push(pod);
    }
    // A member added by MemberAdd has no name in the list until it has started and published it.
    const five = ['fulcrum-0', 'fulcrum-1', 'fulcrum-2', 'fulcrum-3', 'fulcrum-4'];
    const list = await eventually('five named members', async () => {
      const l = await members[4]!.client.memberList();
      return JSON.stringify(l.map((m) => m.name).sort()) === JSON.stringify(five) ? l : undefined;
    });
    expect(list.every((m) => !m.isLearner)).toBe(true);
    await eventually('a put on fulcrum-4', () => members[4]!.client.put('k8s/after-scale', 'five'));
    expect(await members[0]!.client.get('k8s/after-scale')).toBe('five');

    // Replace a failed member (docs/operations.md): fulcrum-1's machine and volume are gone. MemberRemove, MemberAdd
    // with the same peer URL as a learner, name the pod in the fulcrum-join ConfigMap, and the recreated pod (new,
    // empty volume) joins instead of founding; then promote it.
    await members[1]!.member.kill();
    const failedId = (await members[0]!.client.memberList()).find((m) => m.name === 'fulcrum-1')!.ID;
    await eventually('fulcrum-1 removed', async () => {
      await members[0]!.client.memberRemove(failedId);
      return true;
    });
    const withJoin = readManifests(...K8S_FILES.map(read));
    withJoin.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'fulcrum-join')!.data!.members = 'fulcrum-1';
    const replacement = await prepare(statefulSetPods(withJoin, IMAGE, 5).pods[1]!, pods, ports);
    expect(replacement.config.initialClusterState).toBe('existing');
    const replacementId = await members[0]!.client.memberAdd([...replacement.config.initialAdvertisePeerUrls], true);
    start(replacement);
    await waitFor([replacement, members[0]!], 'the replacement to catch up', async () => ((await replacement.client.get('k8s/after-scale', true)) === 'five' ? true : undefined));
    await waitFor([replacement], 'the replacement ready', async () => ((await probe(replacement, container.readinessProbe.httpGet.path)) === 200 ? true : undefined));
    await eventually('the replacement promoted', async () => {
      await members[0]!.client.memberPromote(replacementId);
      return true;
    }, 60_000);
    members[1] = replacement;
    await eventually('a put through the replacement', () => replacement.client.put('k8s/after-replace', 'ok'));
    expect(await members[4]!.client.get('k8s/after-replace')).toBe('ok');

    // Three of five gone: the two left have no quorum. Readiness fails (no traffic to them); liveness still
    // passes, so Kubernetes does not restart them into a crash loop while the others come back.
    await Promise.all(members.slice(0, 3).map((m) => m.member.kill()));
    const survivor = members[3]!;
    await eventually('readiness to fail without a quorum', async () => ((await probe(survivor, container.readinessProbe.httpGet.path)) === 503 ? true : undefined), 30_000);
    expect(await probe(survivor, container.livenessProbe.httpGet.path)).toBe(200);
  }, 240_000);
});
