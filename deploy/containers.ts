// Containers as deploy/compose.yaml and the Kubernetes StatefulSet describe them, turned into local member
// processes for the tests:
//
//  1. derive each container's command and environment the way the runtime would: the image's ENTRYPOINT, CMD
//     and ENV (from the Dockerfile) under Compose's overrides and `${VAR:-default}` interpolation, or under
//     the pod spec's command/args, env with the downward API, ConfigMap keys and `$(VAR)` expansion, service
//     links and HOSTNAME;
//  2. run that command for real (a start script included) with `fulcrum` on the PATH replaced by a recorder, so
//     what reaches the server is exactly what the container's `fulcrum` would be handed;
//  3. map what cannot exist here: host names to 127.0.0.1 with each container's own free ports (a name that
//     would not resolve inside the cluster is an error), and the data volume to a temporary folder.
//
// The server then runs from the source tree (node/testing/process-cluster.ts); deploy/image.test.ts shows the
// image's `fulcrum` is that server, compiled.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import type { ImageConfig } from './dockerfile.js';
import { imagePath, inRoot, resolveCommand } from './image.js';

const run = promisify(execFile);

/** One container, as the runtime would start it. */
export interface ContainerSpec {
  /** Compose service or pod name. */
  readonly name: string;
  /** Names other containers resolve to this one (Compose service names; pod DNS names under the headless Service). */
  readonly dnsNames: readonly string[];
  /** ENTRYPOINT + CMD after the manifest's overrides. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  /** Where the data volume is mounted (a named volume or a PVC). */
  readonly dataMount: string;
}

/** What a container's `fulcrum` was handed, after its command (a start script, say) ran. */
export interface Handed {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------------------
// Compose.

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, and $$ for a literal $. */
export function interpolate(value: string, env: Readonly<Record<string, string | undefined>>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, braced?: string, op?: string, dflt?: string, bare?: string) => {
    if (all === '$$') return '$';
    const name = braced ?? bare!;
    const v = env[name];
    if (op === ':-') return v === undefined || v === '' ? dflt! : v;
    if (op === '-') return v === undefined ? dflt! : v;
    return v ?? '';
  });
}

function interpolateAll(node: unknown, env: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((n) => interpolateAll(n, env));
  if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, env)]));
  return node;
}

interface ComposeService {
  image?: string;
  build?: unknown;
  hostname?: string;
  entrypoint?: string | string[];
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | number>;
  volumes?: Array<string | { type?: string; source?: string; target: string }>;
  networks?: string[] | Record<string, { aliases?: string[] } | null>;
  working_dir?: string;
}

export interface ComposeFile {
  readonly services: Record<string, ComposeService>;
  readonly volumes?: Record<string, unknown>;
}

/** Read compose.yaml: merge keys (<<) resolved, values interpolated from `shellEnv` (a clean shell by default). */
export function readCompose(text: string, shellEnv: Readonly<Record<string, string | undefined>> = {}): ComposeFile {
  return interpolateAll(parse(text, { merge: true }), shellEnv) as ComposeFile;
}

function commandList(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.map(String) : ['/bin/sh', '-c', v];
}

export function composeContainers(compose: ComposeFile, image: ImageConfig): ContainerSpec[] {
  return Object.entries(compose.services).map(([name, s]) => {
    const env: Record<string, string> = { ...image.env, HOSTNAME: s.hostname ?? name };
    const list = s.environment ?? {};
    const pairs: Array<[string, string | undefined]> = Array.isArray(list)
      ? list.map((e) => (e.includes('=') ? [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] : [e, undefined]))
      : Object.entries(list).map(([k, v]) => [k, v === null ? undefined : String(v)]);
    for (const [k, v] of pairs) {
      // A name without a value takes the shell's, and a clean shell has none.
      if (v !== undefined) env[k] = v;
    }
    const entrypoint = commandList(s.entrypoint);
    const command = commandList(s.command);
    // Compose, like Docker: an entrypoint override drops the image's CMD too.
    const argv = [...(entrypoint ?? image.entrypoint), ...(command ?? (entrypoint !== undefined ? [] : image.cmd))];
    const mount = (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[1]! : v.target)).find((t) => image.volumes.includes(t));
    if (mount === undefined) throw new Error(`service ${name} mounts no volume at the image's data volume ${image.volumes.join(', ')}`);
    const aliases = s.networks !== undefined && !Array.isArray(s.networks) ? Object.values(s.networks).flatMap((n) => n?.aliases ?? []) : [];
    return { name, dnsNames: [name, ...aliases], argv, env, workdir: s.working_dir ?? image.workdir, dataMount: mount };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Kubernetes.

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; configMapKeyRef?: { name: string; key: string; optional?: boolean } };
}

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  /** ConfigMaps. */
  data?: Record<string, string>;
}

export function readManifests(...texts: string[]): K8sObject[] {
  return texts.flatMap((t) => parseAllDocuments(t).map((d) => d.toJSON() as K8sObject)).filter((o) => o !== null);
}

/** Kubernetes' $(VAR) expansion: defined names are replaced, $$(VAR) is a literal $(VAR), others stay as written. */
export function expandK8s(value: string, vars: ReadonlyMap<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name?: string) => (all === '$$' ? '$' : vars.has(name!) ? vars.get(name!)! : all));
}

/** The environment variables the kubelet adds for each Service with a cluster IP, unless enableServiceLinks is false. */
function serviceLinkEnv(services: readonly K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of services) {
    if (s.spec.clusterIP === 'None') continue;
    const prefix = s.metadata.name.toUpperCase().replace(/-/g, '_');
    const ports = (s.spec.ports as Array<{ name?: string; port: number }>) ?? [];
    const ip = '10.96.0.10';
    env[`${prefix}_SERVICE_HOST`] = ip;
    env[`${prefix}_SERVICE_PORT`] = String(ports[0]?.port ?? '');
    env[`${prefix}_PORT`] = `tcp://${ip}:${ports[0]?.port ?? ''}`;
    for (const p of ports) {
      if (p.name !== undefined) env[`${prefix}_SERVICE_PORT_${p.name.toUpperCase().replace(/-/g, '_')}`] = String(p.port);
      env[`${prefix}_PORT_${p.port}_TCP`] = `tcp://${ip}:${p.port}`;
    }
  }
  return env;
}

export interface StatefulSetPods {
  readonly statefulSet: K8sObject;
  readonly pods: ContainerSpec[];
}

/** Pods 0..replicas-1 of the StatefulSet, in namespace `namespace`, as the kubelet would start their first container. */
export function statefulSetPods(objects: readonly K8sObject[], image: ImageConfig, replicas: number, namespace = 'default'): StatefulSetPods {
  const sts = objects.find((o) => o.kind === 'StatefulSet');
  if (sts === undefined) throw new Error('no StatefulSet');
  const services = objects.filter((o) => o.kind === 'Service');
  const spec = sts.spec as { serviceName: string; template: { spec: PodSpec } };
  const podSpec = spec.template.spec;
  const container = podSpec.containers[0]!;
  const headless = services.find((s) => s.metadata.name === spec.serviceName);
  const pods = Array.from({ length: replicas }, (_, ordinal): ContainerSpec => {
    const podName = `${sts.metadata.name}-${ordinal}`;
    const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': namespace, 'status.podIP': '127.0.0.1' };
    const vars = new Map<string, string>();
    for (const e of container.env ?? []) {
      if (e.valueFrom?.configMapKeyRef !== undefined) {
        // The ConfigMap as it is when the container starts; a missing optional one leaves the variable unset.
        const ref = e.valueFrom.configMapKeyRef;
        const value = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.name)?.data?.[ref.key];
        if (value !== undefined) vars.set(e.name, value);
        else if (ref.optional !== true) throw new Error(`env ${e.name}: ConfigMap ${ref.name} has no key ${ref.key}, and the pod would not start`);
      } else if (e.valueFrom !== undefined) {
        const path = e.valueFrom.fieldRef?.fieldPath;
        if (path === undefined || !(path in fields)) throw new Error(`env ${e.name}: only fieldRef ${Object.keys(fields).join(', ')} is modelled`);
        vars.set(e.name, fields[path]!);
      } else {
        vars.set(e.name, expandK8s(e.value ?? '', vars));
      }
    }
    const env: Record<string, string> = {
      ...image.env,
      ...(podSpec.enableServiceLinks === false ? {} : serviceLinkEnv(services)),
      HOSTNAME: podName,
      ...Object.fromEntries(vars),
    };
    const command = container.command?.map((c) => expandK8s(c, vars));
    const args = container.args?.map((a) => expandK8s(a, vars));
    const argv = [...(command ?? image.entrypoint), ...(args ?? (command !== undefined ? [] : image.cmd))];
    const mount = (container.volumeMounts ?? []).map((m) => m.mountPath).find((p) => image.volumes.includes(p));
    if (mount === undefined) throw new Error(`the container mounts nothing at the image's data volume ${image.volumes.join(', ')}`);
    // Pod DNS under a headless Service: <pod>.<service>[.<namespace>[.svc[.cluster.local]]]. Without one the
    // pods have no stable names at all, so nothing resolves.
    const dnsNames =
      headless !== undefined && headless.spec.clusterIP === 'None'
        ? [`${podName}.${spec.serviceName}`, `${podName}.${spec.serviceName}.${namespace}`, `${podName}.${spec.serviceName}.${namespace}.svc`, `${podName}.${spec.serviceName}.${namespace}.svc.cluster.local`]
        : [];
    return { name: podName, dnsNames, argv, env, workdir: container.workingDir ?? image.workdir, dataMount: mount };
  });
  return { statefulSet: sts, pods };
}

interface PodSpec {
  enableServiceLinks?: boolean;
  containers: Array<{
    command?: string[];
    args?: string[];
    env?: EnvVar[];
    workingDir?: string;
    volumeMounts?: Array<{ name: string; mountPath: string }>;
  }>;
}

// ---------------------------------------------------------------------------------------------------------
// Running the container's command up to the server.

/**
 * Run the container's argv in a folder standing for its `/`, whose /usr/local/bin/fulcrum records its arguments
 * and environment and exits. /bin/sh and node are this machine's. Returns what `fulcrum` was handed.
 */
export async function handedToFulcrum(c: ContainerSpec, dir: string): Promise<Handed> {
  const root = mkdtempSync(join(dir, `root-${c.name}-`));
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(inRoot(root, c.workdir), { recursive: true });
  symlinkSync(process.execPath, join(root, 'usr/local/bin/node'));
  symlinkSync('/bin/sh', join(root, 'bin/sh'));
  const record = join(root, 'handed.json');
  const recorder = join(root, 'usr/local/bin/fulcrum');
  writeFileSync(
    recorder,
    `#!/usr/bin/env node\nrequire('node:fs').writeFileSync(${JSON.stringify(record)}, JSON.stringify({ args: process.argv.slice(2), env: process.env }));\n`,
  );
  // No package.json above the folder, so the recorder runs as CommonJS and require() is there.
  chmodSync(recorder, 0o755);
  const exe = resolveCommand(root, c.argv[0]!, c.env.PATH ?? '');
  if (exe === undefined) throw new Error(`${c.name}: ${c.argv[0]} is not on the container's PATH`);
  await run(exe, c.argv.slice(1), { cwd: inRoot(root, c.workdir), env: { ...c.env, PATH: imagePath(root, c.env.PATH ?? '') }, timeout: 30_000 });
  const handed = JSON.parse(readFileSync(record, 'utf8')) as Handed;
  // The recorder's own PATH was the mapped one; give back the container's.
  return { args: handed.args, env: { ...handed.env, PATH: c.env.PATH ?? '' } };
}

/** A container's ports on this machine. */
export interface PortMap {
  readonly [containerPort: number]: number;
}

/**
 * Move a container's handed arguments and environment to this machine: every http://host:port names a
 * container (itself for 0.0.0.0, 127.0.0.1, localhost and its own host name) and becomes 127.0.0.1 with that
 * container's local port; values under the data mount move into `dataDir`. A host or port no container has
 * throws: inside the cluster it would not resolve either.
 */
export function mapToLocal(h: Handed, self: ContainerSpec, all: readonly ContainerSpec[], ports: ReadonlyMap<string, PortMap>, dataDir: string): Handed {
  const byName = new Map<string, ContainerSpec>();
  for (const c of all) for (const n of c.dnsNames) byName.set(n, c);
  const own = new Set(['0.0.0.0', '127.0.0.1', 'localhost', self.env.HOSTNAME ?? self.name]);
  const mapValue = (v: string): string => {
    if (v === self.dataMount || v.startsWith(`${self.dataMount}/`)) return dataDir + v.slice(self.dataMount.length);
    return v.replace(/http:\/\/([^/:,\s]+):(\d+)/g, (_, host: string, port: string) => {
      const target = own.has(host) ? self : byName.get(host);
      if (target === undefined) throw new Error(`${self.name}: ${host} would not resolve (known: ${[...byName.keys()].join(', ')})`);
      const local = ports.get(target.name)?.[Number(port)];
      if (local === undefined) throw new Error(`${self.name}: ${target.name} has no port ${port}`);
      return `http://127.0.0.1:${local}`;
    });
  };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(h.env)) env[k] = k === 'PATH' || k === 'PWD' || k === 'HOME' ? v : mapValue(v);
  return { args: h.args.map(mapValue), env };
}
