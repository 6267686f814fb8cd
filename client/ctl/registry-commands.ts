// registry list / registry watch: the service registry's instances (client/registry, docs/registry.md), read
// with the registry's own key schema (<prefix><service>/<id> -> {"Addr", "Metadata"}, etcd naming's).
import type { Command } from 'commander';
import { decodeInstance, type Instance, Registry, REGISTRY_PREFIX_DEFAULT, type ServiceChange } from '../index.js';
import type { Ctx, Register } from './context.js';
import { hexId, renderTable } from './format.js';

export function registerRegistryCommands(program: Command, register: Register): void {
  const registry = program.command('registry').description('the instances registered in the service registry');
  register(
    registry
      .command('list')
      .description('the live instances of a service (or of every service)')
      .argument('[service]')
      .option('--registry-prefix <prefix>', 'where services live', REGISTRY_PREFIX_DEFAULT),
    (ctx, service, flags) => list(ctx, service as string | undefined, (flags as { registryPrefix: string }).registryPrefix),
  );
  register(
    registry
      .command('watch')
      .description('the instances of a service, then every change, until interrupted (Ctrl-C)')
      .argument('<service>')
      .option('--registry-prefix <prefix>', 'where services live', REGISTRY_PREFIX_DEFAULT),
    (ctx, service, flags) => watch(ctx, service as string, (flags as { registryPrefix: string }).registryPrefix),
  );
}

function instanceJson(i: Instance): Record<string, unknown> {
  return { service: i.service, id: i.id, address: i.address, metadata: i.metadata, lease: i.lease === 0n ? '0' : hexId(i.lease), revision: i.revision };
}

function instanceRow(i: Instance): string[] {
  return [i.service, i.id, i.address, JSON.stringify(i.metadata), i.lease === 0n ? '' : hexId(i.lease), String(i.revision)];
}

const INSTANCE_HEADERS = ['SERVICE', 'ID', 'ADDRESS', 'METADATA', 'LEASE', 'REVISION'];

function printInstances(ctx: Ctx, instances: Instance[]): void {
  if (ctx.format === 'json') ctx.json({ instances: instances.map(instanceJson) });
  else if (ctx.format === 'simple') for (const i of instances) ctx.io.out(`${i.service} ${i.id} ${i.address}\n`);
  else ctx.io.out(renderTable(INSTANCE_HEADERS, instances.map(instanceRow)));
}

async function list(ctx: Ctx, service: string | undefined, prefix: string): Promise<void> {
  const registry = new Registry(ctx.kv, { prefix });
  if (service !== undefined) {
    printInstances(ctx, await registry.list(service, ctx.call));
    return;
  }
  // Every service: one read of the whole prefix, each key split into <service>/<id> by the registry's schema.
  const r = await ctx.kv.range({ prefix }, ctx.call);
  const instances = r.kvs.flatMap((kv) => {
    const rest = kv.key.subarray(Buffer.byteLength(prefix)).toString('utf8');
    const slash = rest.indexOf('/');
    if (slash <= 0) return [];
    const name = rest.slice(0, slash);
    return decodeInstance(name, Buffer.from(`${prefix}${name}/`), kv) ?? [];
  });
  printInstances(ctx, instances);
}

/** The instances now, then each change (the registry's discovery: one read, then a watch with no gap). */
async function watch(ctx: Ctx, service: string, prefix: string): Promise<void> {
  const discovery = await new Registry(ctx.kv, { prefix }).discover(service, { signal: ctx.io.interrupt });
  const n = discovery.instances.length;
  ctx.io.err(`watching service ${service}: ${n} instance${n === 1 ? '' : 's'} at revision ${discovery.revision} (Ctrl-C to stop)\n`);
  if (ctx.format === 'json') for (const i of discovery.instances) ctx.json({ type: 'up', initial: true, instance: instanceJson(i), revision: i.revision });
  else for (const i of discovery.instances) printChange(ctx, { type: 'up', instance: i, previous: undefined, revision: i.revision });
  for await (const change of discovery) {
    if (ctx.format === 'json') ctx.json({ type: change.type, initial: false, instance: instanceJson(change.instance), revision: change.revision });
    else printChange(ctx, change);
  }
}

function printChange(ctx: Ctx, c: ServiceChange): void {
  const i = c.instance;
  if (ctx.format === 'simple') ctx.io.out(`${c.type.toUpperCase()} ${i.id} ${i.address}\n`);
  else ctx.io.out(`${c.type.toUpperCase().padEnd(4)} rev ${String(c.revision).padEnd(6)} ${i.id}  ${i.address}  ${JSON.stringify(i.metadata)}\n`);
}
