/**
 * The catalog: until the control plane exists, services and each node's tasks come from a
 * compose-like YAML file (compose/*.yaml), the same file on every agent. Each agent runs the
 * tasks listed under its own node name and listens on every published port of every service.
 *
 * ```yaml
 * network:                        # optional: the ingress overlay network
 *   subnet: 100.64.0.0/24         #   tasks get addresses from its upper half (the lower half is the agents')
 *   vni: 4096
 * services:
 *   whoami:
 *     image: shoal/whoami         # a built-in image, or `command: [argv...]`
 *     environment: { GREETING: hi }
 *     ports:
 *       - "8080:80"               # published:target, TCP (compose's short syntax; "8081:80/udp" for UDP)
 *       - { published: 8082, target: 81, protocol: udp }
 *       - published: 8083           # compose's long syntax, plus:
 *         target: 80
 *         app_protocol: http        #   HTTP/1: a request a dying task dropped is replayed on another
 *         proxy_protocol: v2        #   v1 | v2: a PROXY header with the client's address first
 *     healthcheck:                # optional; without one a task takes traffic as soon as it listens
 *       type: http                # tcp | http
 *       path: /health
 *       interval: 2s              # Go-style durations, as compose writes them
 *       timeout: 1s
 *       retries: 3
 *       start_period: 0s
 * nodes:
 *   node-1:
 *     - service: whoami           # the agent starts the service's image or command,
 *       replicas: 2               # keeps it running, and hands it a free port in PORT
 *   node-2:
 *     - service: whoami
 *       address: 127.0.0.1:9000   # or: a process already running at this address
 * ```
 *
 * Slots are numbered per service in file order (nodes in order, then entries), and a task's
 * id is `<service>.<slot>`, so every agent derives the same ids from the same file.
 *
 * A started task gets `PORT` (the host port of its first target port), `PORT_<target>` for
 * every target port, and `SHOAL_SERVICE`, `SHOAL_TASK`, `SHOAL_NODE`, `SHOAL_SLOT`.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { CatalogError } from '../lib/errors.js';
import type { EndpointRow, Health, PortProtocol } from '../mesh/endpoint-codec.js';
import type { HealthCheckSpec } from '../mesh/health.js';
import type { AppProtocol, ProxyProtocolMode, PublishedPort } from '../mesh/router.js';
import { type Ipv4Address, formatIpv4Address, parseIpv4Address } from '../wire/address.js';
import { builtinImageCommand, builtinImages } from './images/index.js';

export interface CatalogNetwork {
  readonly subnet: Ipv4Address;
  readonly prefixLen: number;
  readonly vni: number;
}

export interface CatalogService {
  readonly name: string;
  /** What `run` tasks start, when the service says: a built-in image's command or its own. */
  readonly argv?: readonly string[];
  readonly image?: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly ports: readonly PublishedPort[];
  /** Distinct target ports, in order of first mention; a task serves each of them. */
  readonly targets: readonly { readonly protocol: PortProtocol; readonly target: number }[];
  readonly healthcheck?: HealthCheckSpec;
}

export type CatalogTaskRun =
  | { readonly kind: 'address'; readonly host: string; readonly port: number }
  | { readonly kind: 'command'; readonly argv: readonly string[]; readonly environment: Readonly<Record<string, string>> };

export interface CatalogTask {
  readonly service: string;
  readonly taskId: string;
  readonly slot: number;
  readonly node: string;
  readonly overlayAddress: Ipv4Address;
  readonly run: CatalogTaskRun;
}

export interface Catalog {
  readonly network: CatalogNetwork;
  readonly services: readonly CatalogService[];
  readonly tasks: readonly CatalogTask[];
  readonly nodes: readonly string[];
}

export const DEFAULT_SUBNET = '100.64.0.0/24';
export const DEFAULT_VNI = 4096;
export const MAX_REPLICAS = 1000;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Reads and validates a catalog file. Throws CatalogError naming the file and the field. */
export async function loadCatalog(file: string): Promise<Catalog> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CatalogError(`Cannot read catalog ${file}: ${(error as Error).message}`, { cause: error });
  }
  return parseCatalog(text, file);
}

/** Parses and validates catalog YAML. Throws CatalogError with `<source>: <field path>: <what is wrong>`. */
export function parseCatalog(text: string, source = 'catalog'): Catalog {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (error) {
    throw new CatalogError(`${source}: not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  const fail = (path: string, message: string): never => {
    throw new CatalogError(`${source}: ${path}: ${message}`);
  };
  const root = asObject(doc, 'the file', fail, ['version', 'network', 'services', 'nodes']);
  const network = parseNetwork(root['network'], fail);
  const servicesNode = asObject(root['services'] ?? fail('services', 'missing: list the services under `services:`'), 'services', fail);
  const services: CatalogService[] = [];
  const published = new Map<string, string>();
  for (const [name, value] of Object.entries(servicesNode)) {
    if (!NAME_RE.test(name)) fail(`services.${name}`, 'a service name is letters, digits, `_`, `.` and `-`, at most 63, starting with a letter or digit');
    const s = parseService(name, value, fail);
    for (const p of s.ports) {
      const key = `${p.published}/${p.protocol}`;
      const other = published.get(key);
      if (other) fail(`services.${name}.ports`, `${key} is already published by service ${other}`);
      published.set(key, name);
    }
    services.push(s);
  }
  const byName = new Map(services.map((s) => [s.name, s]));
  const nodesNode = asObject(root['nodes'] ?? {}, 'nodes', fail);
  const tasks: CatalogTask[] = [];
  const slots = new Map<string, number>();
  const size = 2 ** (32 - network.prefixLen);
  const firstTaskAddress = network.subnet + size / 2;
  const lastTaskAddress = network.subnet + size - 2;
  const nodes: string[] = [];
  for (const [node, entries] of Object.entries(nodesNode)) {
    if (!NAME_RE.test(node)) fail(`nodes.${node}`, 'a node name is letters, digits, `_`, `.` and `-`, at most 63, starting with a letter or digit');
    nodes.push(node);
    if (!Array.isArray(entries)) fail(`nodes.${node}`, 'must be a list of `- service: <name>` entries');
    for (const [i, entry] of (entries as unknown[]).entries()) {
      const path = `nodes.${node}[${i}]`;
      const e = asObject(entry, path, fail, ['service', 'replicas', 'address', 'command', 'environment']);
      const serviceName = e['service'];
      if (typeof serviceName !== 'string') fail(`${path}.service`, 'missing: name the service this entry runs');
      const service = byName.get(serviceName as string) ?? fail(`${path}.service`, `no service ${JSON.stringify(serviceName)} in services (have: ${[...byName.keys()].join(', ') || 'none'})`);
      const runs = parseEntryRun(e, service, path, fail);
      for (const run of runs) {
        const slot = (slots.get(service.name) ?? 0) + 1;
        slots.set(service.name, slot);
        const overlayAddress = firstTaskAddress + tasks.length;
        if (overlayAddress > lastTaskAddress) fail(path, `more tasks than the upper half of ${formatIpv4Address(network.subnet)}/${network.prefixLen} holds (${lastTaskAddress - firstTaskAddress + 1}); use a larger network.subnet`);
        tasks.push({ service: service.name, taskId: `${service.name}.${slot}`, slot, node, overlayAddress, run });
      }
    }
  }
  return { network, services, tasks, nodes };
}

type Fail = (path: string, message: string) => never;

function asObject(value: unknown, path: string, fail: Fail, allowed?: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail(path, 'must be a mapping (key: value)');
  const obj = value as Record<string, unknown>;
  if (allowed) {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(path, `unknown key ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
  }
  return obj;
}

function parseNetwork(value: unknown, fail: Fail): CatalogNetwork {
  const n = value === undefined ? {} : asObject(value, 'network', fail, ['subnet', 'vni']);
  const subnetText = n['subnet'] ?? DEFAULT_SUBNET;
  if (typeof subnetText !== 'string') return fail('network.subnet', 'must be a CIDR like 100.64.0.0/24');
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(subnetText);
  const addr = m ? parseIpv4Address(m[1]!) : undefined;
  const prefixLen = m ? Number(m[2]) : NaN;
  if (!addr?.ok || !(prefixLen >= 8 && prefixLen <= 28)) return fail('network.subnet', `${JSON.stringify(subnetText)} is not a CIDR from /8 to /28 like 100.64.0.0/24`);
  const mask = prefixLen === 0 ? 0 : (0xffff_ffff << (32 - prefixLen)) >>> 0;
  if ((addr.value & ~mask) >>> 0 !== 0) return fail('network.subnet', `${subnetText} has host bits set; did you mean ${formatIpv4Address((addr.value & mask) >>> 0)}/${prefixLen}?`);
  const vni = n['vni'] ?? DEFAULT_VNI;
  if (!Number.isInteger(vni) || (vni as number) < 1 || (vni as number) > 0xff_ffff) return fail('network.vni', 'must be an integer from 1 to 16777215');
  return { subnet: addr.value, prefixLen, vni: vni as number };
}

function parseService(name: string, value: unknown, fail: Fail): CatalogService {
  const path = `services.${name}`;
  const s = asObject(value ?? {}, path, fail, ['image', 'command', 'environment', 'ports', 'healthcheck']);
  let argv: readonly string[] | undefined;
  let image: string | undefined;
  if (s['image'] !== undefined && s['command'] !== undefined) fail(path, 'give `image` or `command`, not both');
  if (s['image'] !== undefined) {
    if (typeof s['image'] !== 'string') fail(`${path}.image`, 'must be a string');
    image = s['image'] as string;
    argv = builtinImageCommand(image) ?? fail(`${path}.image`, `unknown image ${JSON.stringify(image)}: shoal runs no container images yet; built-in images: ${builtinImages().join(', ')}; or give \`command: [argv...]\``);
  }
  if (s['command'] !== undefined) argv = parseCommand(s['command'], `${path}.command`, fail);
  const environment = parseEnvironment(s['environment'], `${path}.environment`, fail);
  const ports: PublishedPort[] = [];
  if (s['ports'] !== undefined && !Array.isArray(s['ports'])) fail(`${path}.ports`, 'must be a list');
  for (const [i, p] of ((s['ports'] as unknown[] | undefined) ?? []).entries()) ports.push(parsePort(name, p, `${path}.ports[${i}]`, fail));
  const targets: { protocol: PortProtocol; target: number }[] = [];
  for (const p of ports) if (!targets.some((t) => t.protocol === p.protocol && t.target === p.target)) targets.push({ protocol: p.protocol, target: p.target });
  if (targets.length > 16) fail(`${path}.ports`, 'at most 16 distinct target ports');
  const healthcheck = s['healthcheck'] === undefined ? undefined : parseHealthcheck(s['healthcheck'], `${path}.healthcheck`, fail);
  return { name, ...(argv && { argv }), ...(image !== undefined && { image }), environment, ports, targets, ...(healthcheck && { healthcheck }) };
}

function parseCommand(value: unknown, path: string, fail: Fail): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((a) => typeof a === 'string')) {
    return fail(path, 'must be a non-empty list of strings (exec form, like ["node", "server.js"]); no shell is involved');
  }
  return value as string[];
}

function parseEnvironment(value: unknown, path: string, fail: Fail): Record<string, string> {
  if (value === undefined) return {};
  const env = asObject(value, path, fail);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(`${path}.${k}`, 'not a valid environment variable name');
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') fail(`${path}.${k}`, 'must be a string, number or boolean');
    out[k] = String(v);
  }
  return out;
}

function parsePort(service: string, value: unknown, path: string, fail: Fail): PublishedPort {
  let published: unknown;
  let target: unknown;
  let protocol: unknown = 'tcp';
  let appProtocol: AppProtocol | undefined;
  let proxyProtocol: ProxyProtocolMode | undefined;
  if (typeof value === 'string') {
    const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(value);
    if (!m) return fail(path, `${JSON.stringify(value)} is not "published:target" or "published:target/udp"`);
    published = Number(m[1]);
    target = Number(m[2]);
    protocol = m[3] ?? 'tcp';
  } else {
    const p = asObject(value, path, fail, ['published', 'target', 'protocol', 'mode', 'app_protocol', 'proxy_protocol']);
    if (p['mode'] !== undefined && p['mode'] !== 'ingress') fail(`${path}.mode`, 'only ingress publishing exists (every node listens)');
    ({ published, target } = p);
    protocol = p['protocol'] ?? 'tcp';
    const app = p['app_protocol'];
    if (app !== undefined) {
      if (typeof app !== 'string' || app === '') fail(`${path}.app_protocol`, 'must be a protocol name such as http');
      // Only HTTP changes what the mesh does (it may replay a request a dying task dropped); others are plain TCP.
      if ((app as string).toLowerCase() === 'http') appProtocol = 'http';
    }
    const pp = p['proxy_protocol'];
    if (pp !== undefined) {
      if (pp !== 'v1' && pp !== 'v2') fail(`${path}.proxy_protocol`, `must be v1 or v2 (PROXY protocol header toward the task), got ${JSON.stringify(pp)}`);
      proxyProtocol = pp as ProxyProtocolMode;
    }
  }
  for (const [field, v] of [
    ['published', published],
    ['target', target],
  ] as const) {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) fail(`${path}.${field}`, `must be a port from 1 to 65535, got ${JSON.stringify(v)}`);
  }
  if (protocol !== 'tcp' && protocol !== 'udp') fail(`${path}.protocol`, 'must be tcp or udp');
  if (protocol === 'udp' && appProtocol) fail(`${path}.app_protocol`, 'http is for TCP ports');
  if (protocol === 'udp' && proxyProtocol) fail(`${path}.proxy_protocol`, 'PROXY protocol is for TCP ports only');
  return {
    service,
    protocol: protocol as PortProtocol,
    published: published as number,
    target: target as number,
    ...(appProtocol && { appProtocol }),
    ...(proxyProtocol && { proxyProtocol }),
  };
}

function parseHealthcheck(value: unknown, path: string, fail: Fail): HealthCheckSpec {
  const h = asObject(value, path, fail, ['type', 'path', 'interval', 'timeout', 'retries', 'start_period']);
  const kind = h['type'] ?? 'tcp';
  if (kind !== 'tcp' && kind !== 'http') fail(`${path}.type`, 'must be tcp (connect) or http (GET, 2xx/3xx passes)');
  if (h['path'] !== undefined && (typeof h['path'] !== 'string' || !h['path'].startsWith('/'))) fail(`${path}.path`, 'must start with /');
  if (h['path'] !== undefined && kind !== 'http') fail(`${path}.path`, 'only an http check has a path');
  const duration = (key: string, dflt: number): number => {
    const v = h[key];
    if (v === undefined) return dflt;
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined) return fail(`${path}.${key}`, `${JSON.stringify(v)} is not a duration like 500ms, 2s or 1m30s`);
    return ms;
  };
  const intervalMs = duration('interval', 5_000);
  const timeoutMs = duration('timeout', 2_000);
  const startPeriodMs = duration('start_period', 0);
  if (intervalMs <= 0 || timeoutMs <= 0) fail(path, 'interval and timeout must be more than 0');
  const retries = h['retries'] ?? 3;
  if (!Number.isInteger(retries) || (retries as number) < 1 || (retries as number) > 100) fail(`${path}.retries`, 'must be an integer from 1 to 100');
  return { kind: kind as HealthCheckSpec['kind'], ...(h['path'] !== undefined && { path: h['path'] as string }), intervalMs, timeoutMs, retries: retries as number, startPeriodMs };
}

/** Go-style durations as compose files write them: `500ms`, `2s`, `1m30s`, `1h`. Undefined when not one. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

function parseEntryRun(e: Record<string, unknown>, service: CatalogService, path: string, fail: Fail): CatalogTaskRun[] {
  if (e['address'] !== undefined) {
    if (e['replicas'] !== undefined || e['command'] !== undefined) fail(path, '`address` names one running process: no `replicas` or `command` with it');
    if (service.targets.length !== 1) fail(`${path}.address`, `service ${service.name} has ${service.targets.length} target ports; \`address\` works for a service with exactly one`);
    const text = e['address'];
    const m = typeof text === 'string' ? /^([0-9.]+):(\d+)$/.exec(text) : null;
    const host = m ? parseIpv4Address(m[1]!) : undefined;
    const port = m ? Number(m[2]) : NaN;
    if (!host?.ok || !(port >= 1 && port <= 65535)) return fail(`${path}.address`, `${JSON.stringify(text)} is not an IPv4 address and port like 127.0.0.1:9000`);
    return [{ kind: 'address', host: m![1]!, port }];
  }
  const argv = e['command'] !== undefined ? parseCommand(e['command'], `${path}.command`, fail) : service.argv;
  if (!argv) return fail(path, `service ${service.name} has no image or command to run: give one there, or \`command\` or \`address\` here`);
  const replicas = e['replicas'] ?? 1;
  if (!Number.isInteger(replicas) || (replicas as number) < 1 || (replicas as number) > MAX_REPLICAS) fail(`${path}.replicas`, `must be an integer from 1 to ${MAX_REPLICAS}`);
  const environment = { ...service.environment, ...parseEnvironment(e['environment'], `${path}.environment`, fail) };
  return Array.from({ length: replicas as number }, () => ({ kind: 'command' as const, argv, environment }));
}

/** Every port every node listens on. */
export function publishedPorts(catalog: Catalog): PublishedPort[] {
  return catalog.services.flatMap((s) => s.ports);
}

/** The tasks a node runs or fronts. */
export function tasksOf(catalog: Catalog, node: string): CatalogTask[] {
  return catalog.tasks.filter((t) => t.node === node);
}

export function serviceOf(catalog: Catalog, name: string): CatalogService | undefined {
  return catalog.services.find((s) => s.name === name);
}

/**
 * The endpoint table row of a local task, once it listens: `hostPorts` maps each target port
 * to the host port the task serves it on. A task with a health check starts `starting`
 * (the checker moves it), one without starts `none` (routable at once).
 */
export function catalogTaskRow(
  catalog: Catalog,
  task: CatalogTask,
  where: { readonly hostAddress: Ipv4Address; readonly hostPorts: ReadonlyMap<number, number>; readonly vtepAddress: Ipv4Address; readonly vtepPort: number },
  health?: Health,
): EndpointRow {
  const service = serviceOf(catalog, task.service);
  const targets = service?.targets ?? [];
  return {
    service: task.service,
    taskId: task.taskId,
    slot: task.slot,
    node: task.node,
    overlayAddress: task.overlayAddress,
    vni: catalog.network.vni,
    vtepAddress: where.vtepAddress,
    vtepPort: where.vtepPort,
    hostAddress: where.hostAddress,
    ports: targets.flatMap((t) => {
      const hostPort = where.hostPorts.get(t.target);
      return hostPort === undefined ? [] : [{ protocol: t.protocol, target: t.target, hostPort }];
    }),
    health: health ?? (service?.healthcheck ? 'starting' : 'none'),
  };
}
