/**
 * `shoal node ls|inspect|update|promote|demote|rm`: docker's verbs, columns and messages, as a
 * client of the agent's Docker API (spec §5.2, §6).
 */
import type { Command } from 'commander';
import { action, ApiCallError, call, capitalise, inspectJson, socketOf, table, withSocket } from './swarm-api.js';

interface NodeAnswer {
  ID: string;
  Version: { Index: number };
  Spec: { Name?: string; Labels: Record<string, string>; Role: string; Availability: string };
  Description: { Hostname: string; Engine: { EngineVersion: string } };
  Status: { State: string };
  ManagerStatus?: { Leader?: boolean; Reachability: string };
}

async function selfId(socket: string): Promise<string> {
  const info = (await call(socket, 'GET', '/info')) as { Swarm: { NodeID: string } };
  return info.Swarm.NodeID;
}

async function resolveRef(socket: string, ref: string): Promise<string> {
  return ref === 'self' ? selfId(socket) : ref;
}

/** GET the node, change its Spec, POST it back with its version: what `docker node update` does. */
async function updateSpec(socket: string, ref: string, edit: (spec: NodeAnswer['Spec']) => NodeAnswer['Spec']): Promise<void> {
  const node = (await call(socket, 'GET', `/nodes/${encodeURIComponent(await resolveRef(socket, ref))}`)) as NodeAnswer;
  await call(socket, 'POST', `/nodes/${node.ID}/update?version=${node.Version.Index}`, edit(node.Spec));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** docker's MANAGER STATUS column. */
function managerStatus(n: NodeAnswer): string {
  if (!n.ManagerStatus) return '';
  if (n.ManagerStatus.Leader) return 'Leader';
  return capitalise(n.ManagerStatus.Reachability);
}

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('manage swarm nodes (as docker node)');

  withSocket(node.command('ls').alias('list').description('list the nodes of the swarm'))
    .option('-q, --quiet', 'only print IDs')
    .option('-f, --filter <key=value>', 'filter (id, label, membership, name, node.label, role)', collect, [])
    .action(
      action(async (opts: { apiSocket?: string; quiet?: boolean; filter: string[] }) => {
        const socket = socketOf(opts);
        const filters: Record<string, Record<string, boolean>> = {};
        for (const f of opts.filter) {
          const eq = f.indexOf('=');
          if (eq < 1) throw new ApiCallError(`bad format of filter (expected name=value): ${f}`);
          (filters[f.slice(0, eq)] ??= {})[f.slice(eq + 1)] = true;
        }
        const query = Object.keys(filters).length > 0 ? `?filters=${encodeURIComponent(JSON.stringify(filters))}` : '';
        const nodes = (await call(socket, 'GET', `/nodes${query}`)) as NodeAnswer[];
        if (opts.quiet) {
          process.stdout.write(nodes.map((n) => `${n.ID}\n`).join(''));
          return;
        }
        const self = nodes.length > 0 ? await selfId(socket) : '';
        nodes.sort((a, b) => a.Description.Hostname.localeCompare(b.Description.Hostname, undefined, { numeric: true }));
        const rows = nodes.map((n) => [
          n.ID === self ? `${n.ID} *` : n.ID,
          n.Description.Hostname,
          capitalise(n.Status.State),
          capitalise(n.Spec.Availability),
          managerStatus(n),
          n.Description.Engine.EngineVersion,
        ]);
        process.stdout.write(table(['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ENGINE VERSION'], rows));
      }),
    );

  withSocket(node.command('inspect').description('show nodes (JSON)'))
    .argument('<node...>', 'node IDs, names, or self')
    .action(
      action(async (refs: string[], opts: { apiSocket?: string }) => {
        const socket = socketOf(opts);
        const out: unknown[] = [];
        for (const ref of refs) out.push(await call(socket, 'GET', `/nodes/${encodeURIComponent(await resolveRef(socket, ref))}`));
        process.stdout.write(inspectJson(out));
      }),
    );

  withSocket(node.command('update').description("change a node's availability, role or labels"))
    .argument('<node>', 'node ID, name, or self')
    .option('--availability <active|pause|drain>', 'availability')
    .option('--role <worker|manager>', 'role')
    .option('--label-add <key=value>', 'add or replace a label (repeatable)', collect, [])
    .option('--label-rm <key>', 'remove a label (repeatable)', collect, [])
    .action(
      action(async (ref: string, opts: { apiSocket?: string; availability?: string; role?: string; labelAdd: string[]; labelRm: string[] }) => {
        const socket = socketOf(opts);
        await updateSpec(socket, ref, (spec) => {
          const labels = { ...spec.Labels };
          for (const l of opts.labelAdd) {
            const eq = l.indexOf('=');
            labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
          }
          for (const k of opts.labelRm) {
            if (!(k in labels)) throw new ApiCallError(`key ${k} doesn't exist in node's labels`);
            delete labels[k];
          }
          return { ...spec, Labels: labels, ...(opts.availability ? { Availability: opts.availability } : {}), ...(opts.role ? { Role: opts.role } : {}) };
        });
        process.stdout.write(`${ref}\n`);
      }),
    );

  withSocket(node.command('promote').description('make nodes managers'))
    .argument('<node...>', 'node IDs, names, or self')
    .action(
      action(async (refs: string[], opts: { apiSocket?: string }) => {
        const socket = socketOf(opts);
        for (const ref of refs) {
          await updateSpec(socket, ref, (spec) => ({ ...spec, Role: 'manager' }));
          process.stdout.write(`Node ${ref} promoted to a manager in the swarm.\n`);
        }
      }),
    );

  withSocket(node.command('demote').description('make managers workers'))
    .argument('<node...>', 'node IDs, names, or self')
    .action(
      action(async (refs: string[], opts: { apiSocket?: string }) => {
        const socket = socketOf(opts);
        for (const ref of refs) {
          await updateSpec(socket, ref, (spec) => ({ ...spec, Role: 'worker' }));
          process.stdout.write(`Manager ${ref} demoted in the swarm.\n`);
        }
      }),
    );

  withSocket(node.command('rm').alias('remove').description('remove nodes from the swarm'))
    .argument('<node...>', 'node IDs or names')
    .option('-f, --force', 'remove even a node that is not down')
    .action(
      action(async (refs: string[], opts: { apiSocket?: string; force?: boolean }) => {
        const socket = socketOf(opts);
        for (const ref of refs) {
          await call(socket, 'DELETE', `/nodes/${encodeURIComponent(ref)}${opts.force ? '?force=1' : ''}`);
          process.stdout.write(`${ref}\n`);
        }
      }),
    );
}
