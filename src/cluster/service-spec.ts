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

/** swarmkit's isValidDNSName: stack services are `<stack>_<name>`, so `_` is allowed inside. */
const NAME_RE = /^(?=.{1,63}$)[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9])*$/;

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
 * `Labels` → {}. Every field of the ServiceSpec type (§5.3, moby api/types/swarm) is accepted,
 * `null` included (Go reads it as "absent" and so does this: null fields are dropped); any
 * other field, anywhere, is refused, so that a misspelt `Replicaz` never passes for a default.
 * The fields shoal acts on are checked for type and meaning. Returns a fresh object, never
 * the body. Throws InvalidArgumentError naming the first bad field.
 */
export function parseServiceSpec(body: unknown): ServiceSpec {
  const spec = SERVICE_SPEC(body, '') as Record<string, unknown>;
  const name = spec['Name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new InvalidArgumentError(`invalid name ${JSON.stringify(name ?? '')}: a service name is 1–63 letters, digits, dashes and underscores, starting and ending with a letter or digit`);
  }
  const template = spec['TaskTemplate'];
  if (template === undefined) throw new InvalidArgumentError('TaskTemplate.ContainerSpec is required');
  checkTaskSpec(template as Record<string, unknown>);
  const mode = parseMode(spec['Mode']);
  for (const field of ['UpdateConfig', 'RollbackConfig'] as const) if (spec[field] !== undefined) checkUpdateConfig(spec[field] as UpdateConfig, field);
  if (spec['EndpointSpec'] !== undefined) checkEndpointSpec(spec['EndpointSpec']);
  for (const [i, n] of ((spec['Networks'] as { Target?: string }[] | undefined) ?? []).entries()) checkNetwork(n, `Networks[${i}]`);
  return { ...(spec as unknown as ServiceSpec), Name: name, Labels: (spec['Labels'] as Record<string, string> | undefined) ?? {}, Mode: mode };
}

// --- The ServiceSpec type, field by field (moby api/types/swarm, API 1.50) -------------------

/** Checks one value at `path` and returns it cleaned (nulls dropped). Throws InvalidArgumentError. */
type Field = (value: unknown, path: string) => unknown;

const at = (path: string, key: string | number): string => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key);

/** An object with exactly these fields (each optional); a null field is dropped. */
function struct(fields: Record<string, Field>): Field {
  return (value, path) => {
    const o = object(value, path || 'ServiceSpec');
    const out: [string, unknown][] = [];
    for (const [key, v] of Object.entries(o)) {
      if (!Object.hasOwn(fields, key)) throw new InvalidArgumentError(`unknown field ${JSON.stringify(key)} in ${path || 'ServiceSpec'}`);
      if (v === null) continue;
      out.push([key, fields[key]!(v, at(path, key))]);
    }
    // fromEntries defines properties: a "__proto__" key would stay a key (it is refused above anyway).
    return Object.fromEntries(out);
  };
}

const str: Field = (v, path) => {
  if (typeof v !== 'string') throw new InvalidArgumentError(`${path} must be a string`);
  return v;
};
const bool: Field = (v, path) => {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${path} must be true or false`);
  return v;
};
const int: Field = (v, path) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidArgumentError(`${path} must be an integer`);
  return v;
};
const uint: Field = (v, path) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${path} must be a non-negative integer`);
  return v;
};
/** Durations are integer nanoseconds (spec §3); a negative one means nothing. */
const duration: Field = (v, path) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${path} must be a non-negative integer number of nanoseconds`);
  return v;
};
const num: Field = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`${path} must be a number`);
  return v;
};
/** Fields shoal neither acts on nor can check more deeply (driver options, credential specs…). */
const anything: Field = (v) => v;
function list(item: Field): Field {
  return (v, path) => {
    if (!Array.isArray(v)) throw new InvalidArgumentError(`${path} must be a list`);
    return v.map((x, i) => item(x, at(path, i)));
  };
}
const strList = list(str);
const strMap: Field = (v, path) => {
  const o = object(v, path);
  for (const [k, x] of Object.entries(o)) if (typeof x !== 'string') throw new InvalidArgumentError(`${at(path, k)} must be a string`);
  return Object.fromEntries(Object.entries(o));
};

const HEALTHCHECK = struct({ Test: strList, Interval: duration, Timeout: duration, StartPeriod: duration, StartInterval: duration, Retries: uint });
const FILE = struct({ Name: str, UID: str, GID: str, Mode: uint });
const CONTAINER_SPEC = struct({
  Image: str,
  Labels: strMap,
  Command: strList,
  Args: strList,
  Hostname: str,
  Env: strList,
  Dir: str,
  User: str,
  Groups: strList,
  Privileges: struct({ CredentialSpec: anything, SELinuxContext: anything, Seccomp: anything, AppArmor: anything, NoNewPrivileges: bool }),
  Init: bool,
  StopSignal: str,
  TTY: bool,
  OpenStdin: bool,
  ReadOnly: bool,
  Mounts: list(struct({ Type: str, Source: str, Target: str, ReadOnly: bool, Consistency: str, BindOptions: anything, VolumeOptions: anything, ImageOptions: anything, TmpfsOptions: anything, ClusterOptions: anything })),
  StopGracePeriod: duration,
  Healthcheck: HEALTHCHECK,
  Hosts: strList,
  DNSConfig: struct({ Nameservers: strList, Search: strList, Options: strList }),
  Secrets: list(struct({ File: FILE, SecretID: str, SecretName: str })),
  Configs: list(struct({ File: FILE, Runtime: anything, ConfigID: str, ConfigName: str })),
  Isolation: str,
  Sysctls: strMap,
  CapabilityAdd: strList,
  CapabilityDrop: strList,
  Ulimits: list(struct({ Name: str, Soft: int, Hard: int })),
  OomScoreAdj: int,
});
const RESOURCES = struct({
  Limits: struct({ NanoCPUs: uint, MemoryBytes: uint, Pids: uint }),
  Reservations: struct({ NanoCPUs: uint, MemoryBytes: uint, GenericResources: anything }),
});
const NETWORKS = list(struct({ Target: str, Aliases: strList, DriverOpts: strMap }));
const TASK_SPEC = struct({
  ContainerSpec: CONTAINER_SPEC,
  PluginSpec: anything,
  NetworkAttachmentSpec: anything,
  Resources: RESOURCES,
  RestartPolicy: struct({ Condition: str, Delay: duration, MaxAttempts: uint, Window: duration }),
  Placement: struct({
    Constraints: strList,
    Preferences: list(struct({ Spread: struct({ SpreadDescriptor: str }) })),
    MaxReplicas: uint,
    Platforms: list(struct({ Architecture: str, OS: str })),
  }),
  Networks: NETWORKS,
  LogDriver: struct({ Name: str, Options: strMap }),
  ForceUpdate: uint,
  Runtime: str,
});
const UPDATE_CONFIG = struct({ Parallelism: uint, Delay: duration, FailureAction: str, Monitor: duration, MaxFailureRatio: num, Order: str });
const SERVICE_SPEC = struct({
  Name: str,
  Labels: strMap,
  TaskTemplate: TASK_SPEC,
  Mode: struct({
    Replicated: struct({ Replicas: anything }),
    Global: struct({}),
    ReplicatedJob: struct({ MaxConcurrent: uint, TotalCompletions: uint }),
    GlobalJob: struct({}),
  }),
  UpdateConfig: UPDATE_CONFIG,
  RollbackConfig: UPDATE_CONFIG,
  // Deprecated in the API (TaskTemplate.Networks replaces it) but still in the type.
  Networks: NETWORKS,
  EndpointSpec: struct({ Mode: str, Ports: list(struct({ Name: str, Protocol: str, TargetPort: anything, PublishedPort: anything, PublishMode: str })) }),
});

// --- What shoal acts on: meaning, beyond type ------------------------------------------------

const ENV_RE = /^[^=\0]+=[^\0]*$/;
/** swarmkit's constraint syntax, limited to the attributes shoal's scheduler reads. */
const CONSTRAINT_RE = /^(node\.id|node\.hostname|node\.role|node\.labels\.[^\s=!]+)\s*(==|!=)\s*\S/;
const RESTART_CONDITIONS = ['none', 'on-failure', 'any'];

function checkTaskSpec(t: Record<string, unknown>): void {
  const container = t['ContainerSpec'] as Record<string, unknown> | undefined;
  if (container === undefined) throw new InvalidArgumentError('TaskTemplate.ContainerSpec is required');
  const image = container['Image'];
  if (typeof image !== 'string' || image === '') throw new InvalidArgumentError('TaskTemplate.ContainerSpec.Image is required');
  checkImage(image);
  for (const [i, e] of ((container['Env'] as string[] | undefined) ?? []).entries()) {
    if (!ENV_RE.test(e)) throw new InvalidArgumentError(`TaskTemplate.ContainerSpec.Env[${i}] must be KEY=VALUE, not ${JSON.stringify(e)}`);
  }
  for (const field of ['Args', 'Command'] as const) {
    for (const [i, a] of ((container[field] as string[] | undefined) ?? []).entries()) {
      if (a.includes('\0')) throw new InvalidArgumentError(`TaskTemplate.ContainerSpec.${field}[${i}] must not contain a NUL character`);
    }
  }
  const health = container['Healthcheck'] as { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number } | undefined;
  if (health) checkHealthcheck(health);
  const restart = t['RestartPolicy'] as { Condition?: string } | undefined;
  if (restart?.Condition !== undefined && restart.Condition !== '' && !RESTART_CONDITIONS.includes(restart.Condition)) {
    throw new InvalidArgumentError(`TaskTemplate.RestartPolicy.Condition must be one of ${RESTART_CONDITIONS.join(', ')}, not ${JSON.stringify(restart.Condition)}`);
  }
  const placement = t['Placement'] as { Constraints?: string[] } | undefined;
  for (const [i, c] of (placement?.Constraints ?? []).entries()) {
    if (!CONSTRAINT_RE.test(c.trim())) {
      throw new InvalidArgumentError(
        `TaskTemplate.Placement.Constraints[${i}] ${JSON.stringify(c)} is not a constraint: use node.id, node.hostname, node.role or node.labels.<key>, then == or !=, then a value`,
      );
    }
  }
  for (const [i, n] of ((t['Networks'] as { Target?: string }[] | undefined) ?? []).entries()) checkNetwork(n, `TaskTemplate.Networks[${i}]`);
}

/** Test is [] (none set), ["NONE"], ["CMD", exe, args…] or ["CMD-SHELL", command] (Docker's forms). */
function checkHealthcheck(h: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number }): void {
  const test = h.Test ?? [];
  const path = 'TaskTemplate.ContainerSpec.Healthcheck';
  const ok =
    test.length === 0 ||
    (test[0] === 'NONE' && test.length === 1) ||
    (test[0] === 'CMD' && test.length >= 2 && test[1] !== '') ||
    (test[0] === 'CMD-SHELL' && test.length === 2 && test[1] !== '');
  if (!ok) throw new InvalidArgumentError(`${path}.Test must be ["NONE"], ["CMD", executable, args...] or ["CMD-SHELL", command], not ${JSON.stringify(test)}`);
  // dockerd's rule: a set interval, timeout or start period is at least 1 ms.
  for (const field of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = h[field];
    if (v !== undefined && v !== 0 && v < 1_000_000) throw new InvalidArgumentError(`${path}.${field} cannot be less than 1ms`);
  }
}

function checkUpdateConfig(c: UpdateConfig, what: string): void {
  if (c.FailureAction !== undefined && !['', 'pause', 'continue', 'rollback'].includes(c.FailureAction)) {
    throw new InvalidArgumentError(`${what}.FailureAction must be pause, continue or rollback, not ${JSON.stringify(c.FailureAction)}`);
  }
  if (c.Order !== undefined && !['', 'stop-first', 'start-first'].includes(c.Order)) {
    throw new InvalidArgumentError(`${what}.Order must be stop-first or start-first, not ${JSON.stringify(c.Order)}`);
  }
  if (c.MaxFailureRatio !== undefined && (c.MaxFailureRatio < 0 || c.MaxFailureRatio > 1)) throw new InvalidArgumentError(`${what}.MaxFailureRatio must be from 0 to 1`);
}

function checkNetwork(n: { Target?: string }, what: string): void {
  if (!n.Target) throw new InvalidArgumentError(`${what}.Target must name a network`);
}

function checkImage(image: string): void {
  if (image.startsWith('/')) {
    if (/[\0\n]/.test(image)) throw new InvalidArgumentError(`invalid image path ${JSON.stringify(image)}`);
    return;
  }
  if (BUILTIN_IMAGES.includes(imageName(image)) && IMAGE_REF_RE.test(image)) return;
  throw new InvalidArgumentError(
    `unknown image ${JSON.stringify(image)}: shoal runs the built-in images (${BUILTIN_IMAGES.join(', ')}) or an executable given by its absolute path`,
  );
}

/** A built-in's reference: the name, an optional `:tag` and an optional `@algo:hex` digest. */
const IMAGE_REF_RE = /^[a-z0-9/]+(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$/;

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
