/**
 * ServiceSpec checking and the pure rules around it (spec docker-api-swarm.md §5.3, §9):
 * what a create or update body must look like, the defaults dockerd fills in, published port
 * resolution, reference resolution and list filters. No I/O: the Manager calls these inside
 * its store transactions. Every refusal is an InvalidArgumentError (400) whose message names
 * the field, so that nothing is half-created.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../lib/errors.js';
import type { EndpointPort, ObjectFilters, PortConfig, ServiceRecord, ServiceSpec, TaskRecord, UpdateConfig } from './service-types.js';
import { NS_PER_MS } from './types.js';

/** Images every agent can run without a registry (src/agent/images must list the same). */
export const BUILTIN_IMAGES: readonly string[] = ['shoal/whoami', 'shoal/ping'];

/** Swarm's range for auto-assigned published ports (swarmkit allocator/portallocator.go). */
export const DYNAMIC_PORT_START = 30000;
export const DYNAMIC_PORT_END = 32767;
export const MAX_REPLICAS = 10_000;

const NAME_RE = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** The image without tag or digest: `shoal/whoami:latest@sha256:…` → `shoal/whoami`; paths unchanged. */
export function imageName(image: string): string {
  if (image.startsWith('/')) return image;
  const at = image.indexOf('@');
  const noDigest = at < 0 ? image : image.slice(0, at);
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/**
 * Checks a create or update body and fills what dockerd fills (§9.1): `Mode` → one replica,
 * `Labels` → {}. Throws InvalidArgumentError naming the first bad field.
 */
export function parseServiceSpec(body: unknown): ServiceSpec {
  const spec = object(body, 'ServiceSpec');
  const name = spec['Name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new InvalidArgumentError(`invalid name ${JSON.stringify(name ?? '')}: a service name is 1–63 letters, digits and dashes, not starting or ending with a dash`);
  }
  const labels = stringMap(spec['Labels'] ?? {}, 'Labels');
  const template = object(spec['TaskTemplate'], 'TaskTemplate');
  const container = object(template['ContainerSpec'], 'TaskTemplate.ContainerSpec');
  const image = container['Image'];
  if (typeof image !== 'string' || image === '') throw new InvalidArgumentError('TaskTemplate.ContainerSpec.Image is required');
  checkImage(image);
  for (const field of ['Args', 'Command', 'Env'] as const) {
    const v = container[field];
    if (v !== undefined && v !== null && (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))) {
      throw new InvalidArgumentError(`TaskTemplate.ContainerSpec.${field} must be a list of strings`);
    }
  }
  const mode = parseMode(spec['Mode']);
  const endpoint = spec['EndpointSpec'];
  if (endpoint !== undefined && endpoint !== null) checkEndpointSpec(endpoint);
  return { ...(spec as unknown as ServiceSpec), Name: name, Labels: labels, Mode: mode };
}

function checkImage(image: string): void {
  if (image.startsWith('/')) return;
  if (BUILTIN_IMAGES.includes(imageName(image))) return;
  throw new InvalidArgumentError(
    `unknown image ${JSON.stringify(image)}: shoal runs the built-in images (${BUILTIN_IMAGES.join(', ')}) or an executable given by its absolute path`,
  );
}

function parseMode(value: unknown): ServiceSpec['Mode'] {
  if (value === undefined || value === null) return { Replicated: { Replicas: 1 } };
  const mode = object(value, 'Mode');
  const keys = Object.keys(mode).filter((k) => mode[k] !== null && mode[k] !== undefined);
  if (keys.length !== 1) throw new InvalidArgumentError('Mode must name exactly one of Replicated or Global');
  if (keys[0] === 'Global') return { Global: {} };
  if (keys[0] !== 'Replicated') throw new InvalidArgumentError(`Mode ${keys[0]} is not supported: use Replicated or Global`);
  const replicated = object(mode['Replicated'], 'Mode.Replicated');
  const replicas = replicated['Replicas'] ?? 1;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
    throw new InvalidArgumentError(`Mode.Replicated.Replicas must be an integer from 0 to ${MAX_REPLICAS}`);
  }
  return { Replicated: { Replicas: replicas } };
}

function checkEndpointSpec(value: unknown): void {
  const spec = object(value, 'EndpointSpec');
  const mode = spec['Mode'];
  if (mode !== undefined && mode !== '' && mode !== 'vip' && mode !== 'dnsrr') throw new InvalidArgumentError(`EndpointSpec.Mode must be vip or dnsrr, not ${JSON.stringify(mode)}`);
  const ports = spec['Ports'];
  if (ports === undefined || ports === null) return;
  if (!Array.isArray(ports)) throw new InvalidArgumentError('EndpointSpec.Ports must be a list');
  for (const [i, p] of ports.entries()) {
    const port = object(p, `EndpointSpec.Ports[${i}]`);
    if (!isPort(port['TargetPort'], false)) throw new InvalidArgumentError(`EndpointSpec.Ports[${i}].TargetPort must be a port from 1 to 65535`);
    if (port['PublishedPort'] !== undefined && !isPort(port['PublishedPort'], true)) throw new InvalidArgumentError(`EndpointSpec.Ports[${i}].PublishedPort must be a port from 0 to 65535`);
    const protocol = port['Protocol'];
    if (protocol !== undefined && protocol !== '' && protocol !== 'tcp' && protocol !== 'udp') throw new InvalidArgumentError(`EndpointSpec.Ports[${i}].Protocol must be tcp or udp`);
    const publishMode = port['PublishMode'];
    if (publishMode !== undefined && publishMode !== '' && publishMode !== 'ingress' && publishMode !== 'host') throw new InvalidArgumentError(`EndpointSpec.Ports[${i}].PublishMode must be ingress or host`);
    if (publishMode === 'host' && !port['PublishedPort']) throw new InvalidArgumentError(`EndpointSpec.Ports[${i}]: a port published in host mode needs a PublishedPort`);
  }
  if (mode === 'dnsrr' && ports.some((p) => (p as PortConfig).PublishMode !== 'host')) {
    throw new InvalidArgumentError('port published with ingress mode can\'t be used with dnsrr mode');
  }
}

function isPort(v: unknown, zeroOk: boolean): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= (zeroOk ? 0 : 1) && v <= 65535;
}

/**
 * `Endpoint.Ports` of a service (§9.1): Protocol defaults to tcp, PublishMode to ingress,
 * PublishedPort 0 takes the lowest free port of 30000–32767. `taken` holds `proto/port` of the
 * ingress ports other services publish (the old ports of this service must not be in it).
 * Throws ConflictError for a port already published, InvalidArgumentError when none is free.
 */
export function resolvePorts(ports: readonly PortConfig[] | undefined, taken: ReadonlySet<string>): EndpointPort[] {
  const used = new Set(taken);
  const out: EndpointPort[] = [];
  const resolved = (ports ?? []).map((p) => ({ ...p, Protocol: p.Protocol || 'tcp', PublishMode: p.PublishMode || 'ingress' }) as const);
  for (const p of resolved) {
    if (p.PublishMode === 'ingress' && p.PublishedPort) {
      const key = `${p.Protocol}/${p.PublishedPort}`;
      if (used.has(key)) throw new ConflictError(`port '${p.PublishedPort}' is already in use by another service`);
      used.add(key);
    }
  }
  for (const p of resolved) {
    let published = p.PublishedPort ?? 0;
    if (p.PublishMode === 'ingress' && published === 0) {
      for (let port = DYNAMIC_PORT_START; port <= DYNAMIC_PORT_END && published === 0; port++) if (!used.has(`${p.Protocol}/${port}`)) published = port;
      if (published === 0) throw new InvalidArgumentError('no free port to publish in 30000–32767');
      used.add(`${p.Protocol}/${published}`);
    }
    out.push({ ...(p.Name ? { Name: p.Name } : {}), Protocol: p.Protocol, TargetPort: p.TargetPort, PublishedPort: published, PublishMode: p.PublishMode });
  }
  return out;
}

/** The spec `service inspect` shows (`insertDefaults=true`, §9.4). */
export function withDefaults(spec: ServiceSpec): ServiceSpec {
  const update = (c: UpdateConfig | undefined): UpdateConfig =>
    c ? { ...c, Monitor: c.Monitor || 5000 * NS_PER_MS } : { Parallelism: 1, FailureAction: 'pause', Monitor: 5000 * NS_PER_MS, MaxFailureRatio: 0, Order: 'stop-first' };
  const t = spec.TaskTemplate;
  return {
    ...spec,
    TaskTemplate: {
      ...t,
      ContainerSpec: { StopGracePeriod: 10_000 * NS_PER_MS, DNSConfig: {}, ...t.ContainerSpec },
      Resources: t.Resources ?? { Limits: {}, Reservations: {} },
      Placement: t.Placement ?? {},
      RestartPolicy: { Condition: 'any', Delay: 5000 * NS_PER_MS, MaxAttempts: 0, ...t.RestartPolicy },
    },
    UpdateConfig: update(spec.UpdateConfig),
    RollbackConfig: update(spec.RollbackConfig),
    EndpointSpec: { Mode: 'vip', ...spec.EndpointSpec },
  };
}

/**
 * dockerd's reference resolution (§3.5): full ID, then exact name, then unique ID prefix.
 * Throws NotFoundError (`<kind> <ref> not found`) or InvalidArgumentError when ambiguous.
 */
export function resolveRef<T>(items: readonly T[], ref: string, kind: string, idOf: (item: T) => string, nameOf: (item: T) => string | undefined): T {
  const byId = items.find((i) => idOf(i) === ref);
  if (byId) return byId;
  const byName = items.filter((i) => nameOf(i) === ref);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) throw new InvalidArgumentError(`${kind} ${ref} is ambiguous (${byName.length} matches found)`);
  const byPrefix = ref === '' ? [] : items.filter((i) => idOf(i).startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw new InvalidArgumentError(`${kind} ${ref} is ambiguous (${byPrefix.length} matches found)`);
  throw new NotFoundError(`${kind} ${ref} not found`);
}

/** A label filter value, `k` or `k=v`, against labels. */
export function labelMatches(labels: Readonly<Record<string, string>>, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq < 0) return Object.hasOwn(labels, filter);
  const key = filter.slice(0, eq);
  return Object.hasOwn(labels, key) && labels[key] === filter.slice(eq + 1);
}

export const SERVICE_FILTER_KEYS = ['id', 'label', 'mode', 'name'];
export const TASK_FILTER_KEYS = ['_up-to-date', 'desired-state', 'id', 'label', 'name', 'node', 'service'];

/** Throws InvalidArgumentError `invalid filter '<key>'` for keys outside `allowed` (§9.5). */
export function checkFilterKeys(filters: ObjectFilters, allowed: readonly string[]): void {
  for (const key of Object.keys(filters)) if (!allowed.includes(key)) throw new InvalidArgumentError(`invalid filter '${key}'`);
}

/** Whether a service passes `GET /services` filters (each key: any of its values). */
export function serviceMatches(service: ServiceRecord, filters: ObjectFilters): boolean {
  const any = (values: readonly string[] | undefined, test: (v: string) => boolean): boolean => !values || values.length === 0 || values.some(test);
  const mode = 'Global' in service.Spec.Mode ? 'global' : 'replicated';
  return (
    any(filters['id'], (v) => service.ID.startsWith(v)) &&
    any(filters['name'], (v) => service.Spec.Name.startsWith(v)) &&
    any(filters['label'], (v) => labelMatches(service.Spec.Labels, v)) &&
    any(filters['mode'], (v) => v === mode)
  );
}

/** The task's name as the CLI builds it: `<service>.<slot>`, or `<service>.<node ID>` for a global task. */
export function taskName(serviceName: string, task: Pick<TaskRecord, 'Slot' | 'NodeID'>): string {
  return `${serviceName}.${task.Slot > 0 ? task.Slot : task.NodeID}`;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function stringMap(value: unknown, what: string): Record<string, string> {
  const map = object(value, what);
  for (const [k, v] of Object.entries(map)) if (typeof v !== 'string') throw new InvalidArgumentError(`${what}.${k} must be a string`);
  return map as Record<string, string>;
}
