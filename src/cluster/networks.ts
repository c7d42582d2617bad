/**
 * Swarm-scoped overlay networks in the managers' store: the built-in `ingress`, networks made
 * by `docker network create -d overlay`, and the addresses (task addresses and service VIPs)
 * handed out on them.
 *
 * Mirrors swarmkit's controlapi network.go (create, remove, list, resolve, with dockerd's
 * error texts, spec docker-api-swarm.md §2.3, §5.6, §9.5, §9.6) and the network half of its
 * allocator (manager/allocator/network.go). Shoal differs in keeping no allocator state: an
 * allocation reads the store inside the caller's transaction (src/overlay/ipam.ts does the
 * maths), so what is stored is the only truth. Only the overlay driver exists; networks come
 * from 100.64.0.0/10 (ARCHITECTURE.md), and on `ingress` tasks and VIPs take the upper half of
 * the subnet because the agents' own overlay addresses take the lower half
 * (src/agent/config.ts nodeOverlayAddress).
 */
import { CapacityError, ConflictError, FailedPreconditionError, InvalidArgumentError } from '../lib/errors.js';
import {
  DEFAULT_POOL,
  DEFAULT_SUBNET_PREFIX,
  FIRST_VNI,
  MAX_VNI,
  type Subnet,
  allocateAddress,
  allocateSubnet,
  allocateVni,
  formatIpv4Address,
  formatSubnet,
  gatewayOf,
  parseInterfaceAddress,
  parseSubnet,
  subnetContains,
  subnetsOverlap,
} from '../overlay/ipam.js';
import { checkFilterKeys, labelMatches, resolveRef } from './service-spec.js';
import type { NetworkRecord, ObjectFilters, ServiceRecord, TaskRecord } from './service-types.js';
import { TASK_STATES } from './service-types.js';
import type { StoreReader, StoreTx } from './store.js';
import { parseLabels } from './validate.js';

/** The agents' built-in overlay (src/agent/catalog.ts DEFAULT_SUBNET, DEFAULT_VNI): they must agree. */
export const INGRESS_NETWORK_NAME = 'ingress';
export const INGRESS_SUBNET = '100.64.0.0/24';
export const INGRESS_VNI = FIRST_VNI;
/** On ingress, offsets below this are node addresses (nodeOverlayAddress); tasks and VIPs take the rest. */
export const INGRESS_FIRST_TASK_HOST = 128;

/** Docker's option carrying an overlay network's VNI, as a decimal string. */
export const VXLANID_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export const NETWORK_FILTER_KEYS = ['driver', 'id', 'label', 'name', 'scope', 'type'];

/** libnetwork's network name rule (config.go validName), with a length bound. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;
/** A network smaller than this has too few host addresses to be worth creating. */
const MAX_SUBNET_PREFIX = 29;

function networkRecord(
  o: { id: string; name: string; created: string; subnet: Subnet; gateway: number; vni: number; ingress: boolean; internal: boolean; attachable: boolean },
  options: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): NetworkRecord {
  return {
    Name: o.name,
    Id: o.id,
    Created: o.created,
    Scope: 'swarm',
    Driver: 'overlay',
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: formatSubnet(o.subnet), Gateway: formatIpv4Address(o.gateway) }] },
    Internal: o.internal,
    Attachable: o.attachable,
    Ingress: o.ingress,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: null,
    Options: { ...options, [VXLANID_OPTION]: String(o.vni) },
    Labels: labels,
  };
}

/** The `ingress` network `swarm init` creates: the agents' built-in overlay, as a record. */
/**
 * The swarm's address pool from InitRequest (`swarm init --default-addr-pool P
 * --default-addr-pool-mask-length N`): overlay networks are carved from P in /N blocks.
 * shoal takes one pool, inside 100.64.0.0/10 (the host-side mirrors map exactly that range onto
 * 127.64.0.0/10, ARCHITECTURE.md), and N from the pool's own length to /28. Absent or empty
 * values mean the defaults. Throws InvalidArgumentError naming the field.
 */
export function parseAddressPool(pools: unknown, subnetSize: unknown): { pool: string; subnetSize: number } {
  const list = pools === undefined || pools === null ? [] : pools;
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string')) throw new InvalidArgumentError('DefaultAddrPool must be a list of subnets');
  if (list.length > 1) throw new InvalidArgumentError('shoal takes one default address pool, not several');
  const pool = parseSubnet((list[0] as string | undefined) ?? DEFAULT_POOL);
  const range = parseSubnet(DEFAULT_POOL);
  if (pool.prefixLen < range.prefixLen || !subnetContains(range, pool.base)) {
    throw new InvalidArgumentError(`DefaultAddrPool ${formatSubnet(pool)} must lie inside ${DEFAULT_POOL}: the host-side mirrors 127.64.0.0/10 map exactly that range`);
  }
  const size = subnetSize === undefined || subnetSize === null || subnetSize === 0 ? DEFAULT_SUBNET_PREFIX : subnetSize;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < pool.prefixLen || size > 28) {
    throw new InvalidArgumentError(`SubnetSize must be an integer from ${pool.prefixLen} (the pool's length) to 28`);
  }
  return { pool: formatSubnet(pool), subnetSize: size };
}

export function ingressNetworkRecord(id: string, created: string): NetworkRecord {
  const subnet = parseSubnet(INGRESS_SUBNET);
  return networkRecord(
    { id, name: INGRESS_NETWORK_NAME, created, subnet, gateway: gatewayOf(subnet), vni: INGRESS_VNI, ingress: true, internal: false, attachable: false },
    {},
    {},
  );
}

export function ingressOf(reader: StoreReader): NetworkRecord | undefined {
  return reader.list<NetworkRecord>('network').find((n) => n.Ingress);
}

/** A stored network's subnet; undefined for a record without a usable one (never written by this file). */
export function networkSubnet(network: NetworkRecord): Subnet | undefined {
  const text = network.IPAM.Config[0]?.Subnet;
  if (text === undefined) return undefined;
  try {
    return parseSubnet(text);
  } catch {
    return undefined;
  }
}

/** A stored network's VNI; undefined when its option is missing or junk. */
export function networkVni(network: NetworkRecord): number | undefined {
  const text = network.Options[VXLANID_OPTION];
  if (text === undefined || !/^[1-9]\d{0,7}$/.test(text)) return undefined;
  const vni = Number(text);
  return vni <= MAX_VNI ? vni : undefined;
}

export interface CreateNetworkOptions {
  readonly newId: () => string;
  /** RFC 3339. */
  readonly now: string;
  /** The pool subnets are carved from (default 100.64.0.0/10). */
  readonly pool?: string;
  /** Prefix length of an allocated subnet (default 24). */
  readonly subnetSize?: number;
}

/**
 * `POST /networks/create` (NetworkCreateRequest, spec §5.6) inside a store transaction.
 * Throws InvalidArgumentError (400) for a body shoal cannot honour (another driver, local
 * scope, IPv6, a subnet outside the pool or overlapping another network, a taken VNI),
 * ConflictError (409) for a taken name or a second ingress network, CapacityError (503) when
 * the pool or the VNI range is full.
 */
export function createNetworkIn(tx: StoreTx, body: unknown, o: CreateNetworkOptions): { Id: string; Warning: string } {
  const b = objectOf(body, 'network create request');
  const name = b['Name'];
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('network name must be set');
  if (!NAME_RE.test(name)) throw new InvalidArgumentError(`invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  const driver = optionalString(b['Driver'], 'Driver');
  if (driver !== '' && driver !== 'overlay') throw new InvalidArgumentError(`network driver ${JSON.stringify(driver)} is not supported: shoal has swarm-scoped overlay networks only (-d overlay)`);
  const scope = optionalString(b['Scope'], 'Scope');
  if (scope !== '' && scope !== 'swarm') throw new InvalidArgumentError(`network scope ${JSON.stringify(scope)} is not supported: overlay networks are swarm-scoped`);
  if (b['EnableIPv6'] === true) throw new InvalidArgumentError('IPv6 is not supported on shoal overlay networks');
  if (b['ConfigOnly'] === true) throw new InvalidArgumentError('config-only networks are not supported');
  const configFrom = b['ConfigFrom'];
  if (configFrom !== undefined && configFrom !== null && optionalString(objectOf(configFrom, 'ConfigFrom')['Network'], 'ConfigFrom.Network') !== '') {
    throw new InvalidArgumentError('config-from networks are not supported');
  }
  const internal = optionalBoolean(b['Internal'], 'Internal');
  const attachable = optionalBoolean(b['Attachable'], 'Attachable');
  const ingress = optionalBoolean(b['Ingress'], 'Ingress');
  const labels = parseLabels(b['Labels'], 'Labels');
  if (!labels.ok) throw new InvalidArgumentError(labels.error);
  const options = parseLabels(b['Options'], 'Options');
  if (!options.ok) throw new InvalidArgumentError(options.error);

  const networks = tx.list<NetworkRecord>('network');
  if (networks.some((n) => n.Name === name)) throw new ConflictError(`network with name ${name} already exists`);
  const existingIngress = networks.find((n) => n.Ingress);
  if (ingress && existingIngress) throw new ConflictError(`ingress network (${existingIngress.Id}) is already present`);

  const pool = parseSubnet(o.pool ?? DEFAULT_POOL);
  const takenSubnets = networks.map(networkSubnet).filter((s): s is Subnet => s !== undefined);
  const { subnet, gateway } = requestedSubnet(b['IPAM'], pool, networks) ?? allocatedSubnet(pool, o.subnetSize ?? DEFAULT_SUBNET_PREFIX, takenSubnets);
  const takenVnis = new Set(networks.map(networkVni).filter((v): v is number => v !== undefined));
  const vni = requestedVni(options.value[VXLANID_OPTION], takenVnis) ?? allocateVni(takenVnis);
  if (vni === undefined) throw new CapacityError('no free VXLAN network identifier');

  const id = o.newId();
  tx.put('network', id, networkRecord({ id, name, created: o.now, subnet, gateway, vni, ingress, internal, attachable }, options.value, labels.value));
  return { Id: id, Warning: '' };
}

/** The subnet of `IPAM.Config[0]` when the request names one; undefined to allocate one. */
function requestedSubnet(ipam: unknown, pool: Subnet, networks: readonly NetworkRecord[]): { subnet: Subnet; gateway: number } | undefined {
  if (ipam === undefined || ipam === null) return undefined;
  const i = objectOf(ipam, 'IPAM');
  const driver = optionalString(i['Driver'], 'IPAM.Driver');
  if (driver !== '' && driver !== 'default') throw new InvalidArgumentError(`IPAM driver ${JSON.stringify(driver)} is not supported`);
  const config = i['Config'];
  if (config === undefined || config === null) return undefined;
  if (!Array.isArray(config)) throw new InvalidArgumentError('IPAM.Config must be an array');
  if (config.length === 0) return undefined;
  if (config.length > 1) throw new InvalidArgumentError('IPAM.Config: one IPv4 subnet per network is supported');
  const c = objectOf(config[0], 'IPAM.Config[0]');
  if (optionalString(c['IPRange'], 'IPAM.Config[0].IPRange') !== '') throw new InvalidArgumentError('IPAM.Config[0].IPRange is not supported');
  const aux = c['AuxiliaryAddresses'];
  if (aux !== undefined && aux !== null && Object.keys(objectOf(aux, 'IPAM.Config[0].AuxiliaryAddresses')).length > 0) {
    throw new InvalidArgumentError('IPAM.Config[0].AuxiliaryAddresses is not supported');
  }
  const subnetText = optionalString(c['Subnet'], 'IPAM.Config[0].Subnet');
  const gatewayText = optionalString(c['Gateway'], 'IPAM.Config[0].Gateway');
  if (subnetText === '') {
    if (gatewayText !== '') throw new InvalidArgumentError('IPAM.Config[0].Gateway needs a Subnet');
    return undefined;
  }
  const subnet = parseSubnet(subnetText);
  if (subnet.prefixLen < pool.prefixLen || !subnetContains(pool, subnet.base)) {
    throw new InvalidArgumentError(`subnet ${subnetText} is outside the overlay address pool ${formatSubnet(pool)}`);
  }
  if (subnet.prefixLen > MAX_SUBNET_PREFIX) throw new InvalidArgumentError(`subnet ${subnetText} is too small: at most /${MAX_SUBNET_PREFIX}`);
  for (const other of networks) {
    const s = networkSubnet(other);
    if (s && subnetsOverlap(s, subnet)) throw new InvalidArgumentError(`subnet ${subnetText} overlaps network ${other.Name} (${formatSubnet(s)})`);
  }
  let gateway = gatewayOf(subnet);
  if (gatewayText !== '') {
    const g = parseInterfaceAddress(gatewayText);
    const last = subnet.base + 2 ** (32 - subnet.prefixLen) - 1;
    if (!g || gatewayText.includes('/') || !subnetContains(subnet, g.address) || g.address === subnet.base || g.address === last) {
      throw new InvalidArgumentError(`gateway ${JSON.stringify(gatewayText)} is not a host address of ${subnetText}`);
    }
    gateway = g.address;
  }
  return { subnet, gateway };
}

function allocatedSubnet(pool: Subnet, prefixLen: number, taken: readonly Subnet[]): { subnet: Subnet; gateway: number } {
  const subnet = allocateSubnet(pool, prefixLen, taken);
  if (!subnet) throw new CapacityError(`the overlay address pool ${formatSubnet(pool)} has no free /${prefixLen}`);
  return { subnet, gateway: gatewayOf(subnet) };
}

function requestedVni(text: string | undefined, taken: ReadonlySet<number>): number | undefined {
  if (text === undefined) return undefined;
  const vni = /^[1-9]\d{0,7}$/.test(text) ? Number(text) : 0;
  if (vni < 1 || vni > MAX_VNI) throw new InvalidArgumentError(`${VXLANID_OPTION} must be one VNI from 1 to ${MAX_VNI}, not ${JSON.stringify(text)}`);
  if (taken.has(vni)) throw new InvalidArgumentError(`VNI ${vni} is already used by another network`);
  return vni;
}

/**
 * `DELETE /networks/{id}`: removes the network and returns what was removed.
 * Throws NotFoundError for an unknown ref, FailedPreconditionError (400) for `ingress` (the
 * routing mesh runs on it), while a service refers to the network, or while a task that is not
 * finished is attached to it (swarmkit controlapi removeNetwork).
 */
export function removeNetworkIn(tx: StoreTx, ref: string): NetworkRecord {
  const network = resolveNetworkIn(tx, ref);
  if (network.Ingress) throw new FailedPreconditionError(`network ${network.Name} is the ingress network and cannot be removed: the routing mesh runs on it`);
  for (const service of tx.list<ServiceRecord>('service')) {
    const targets = service.Spec.TaskTemplate.Networks ?? [];
    if (targets.some((t) => t.Target === network.Id || t.Target === network.Name)) {
      throw new FailedPreconditionError(`network ${network.Name} is in use by service ${service.Spec.Name}`);
    }
  }
  for (const task of tx.list<TaskRecord>('task')) {
    if (!taskHolds(task) || stateIndex(task.DesiredState) > RUNNING) continue;
    if ((task.NetworksAttachments ?? []).some((a) => a.Network.Id === network.Id)) {
      throw new FailedPreconditionError(`network ${network.Name} is in use by task ${task.ID}`);
    }
  }
  tx.delete('network', network.Id);
  return network;
}

/**
 * `GET /networks` with filters (§9.5): `name` substring, `id` prefix, `driver`, `scope`,
 * `label` (`k` or `k=v`), `type` (`custom` or `builtin`; every swarm network is custom, as
 * dockerd counts only bridge, host and none as built-in). Sorted by name.
 * Throws InvalidArgumentError `invalid filter '<key>'` for another key.
 */
export function listNetworksIn(reader: StoreReader, filters: ObjectFilters): NetworkRecord[] {
  checkFilterKeys(filters, NETWORK_FILTER_KEYS);
  for (const t of filters['type'] ?? []) if (t !== 'custom' && t !== 'builtin') throw new InvalidArgumentError(`invalid filter: 'type'='${t}'`);
  const any = (values: readonly string[] | undefined, test: (v: string) => boolean): boolean => !values || values.length === 0 || values.some(test);
  return reader
    .list<NetworkRecord>('network')
    .filter(
      (n) =>
        any(filters['name'], (v) => n.Name.includes(v)) &&
        any(filters['id'], (v) => n.Id.startsWith(v)) &&
        any(filters['driver'], (v) => v === n.Driver) &&
        any(filters['scope'], (v) => v === n.Scope) &&
        any(filters['label'], (v) => labelMatches(n.Labels, v)) &&
        any(filters['type'], (v) => v === 'custom'),
    )
    .sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
}

/** Full ID, exact name, then unique ID prefix (§3.5). Throws NotFoundError `network <ref> not found`, InvalidArgumentError when ambiguous. */
export function resolveNetworkIn(reader: StoreReader, ref: string): NetworkRecord {
  return resolveRef(
    reader.list<NetworkRecord>('network'),
    ref,
    'network',
    (n) => n.Id,
    (n) => n.Name,
  );
}

const RUNNING = TASK_STATES.indexOf('running');

function stateIndex(state: string): number {
  return (TASK_STATES as readonly string[]).indexOf(state);
}

/** A task holds its addresses until it has finished (swarmkit's allocator frees them when the task is dead). */
function taskHolds(task: TaskRecord): boolean {
  const i = stateIndex(task.Status?.State);
  return i >= 0 && i <= RUNNING;
}

/**
 * The addresses on `network` that are in use: every attachment of a task that has not
 * finished, every service VIP, the gateway. With `history`, also the addresses of finished
 * tasks still on record, so a fresh address is preferred over one a dead task just left (its
 * endpoint may still be in some agent's table for a moment).
 */
function takenOn(reader: StoreReader, network: NetworkRecord, history: boolean): Set<number> {
  const taken = new Set<number>();
  const add = (text: string): void => {
    const a = parseInterfaceAddress(text);
    if (a) taken.add(a.address);
  };
  for (const task of reader.list<TaskRecord>('task')) {
    if (!history && !taskHolds(task)) continue;
    for (const attachment of task.NetworksAttachments ?? []) if (attachment.Network?.Id === network.Id) for (const a of attachment.Addresses ?? []) add(a);
  }
  for (const service of reader.list<ServiceRecord>('service')) for (const vip of service.Endpoint?.VirtualIPs ?? []) if (vip.NetworkID === network.Id) add(vip.Addr);
  const gateway = network.IPAM.Config[0]?.Gateway;
  if (gateway !== undefined) add(gateway);
  return taken;
}

/** What one scan of the store found taken on one network: with finished tasks' addresses, and without. */
interface Scan {
  readonly reader: StoreReader;
  readonly history: ReadonlySet<number>;
  readonly live: ReadonlySet<number>;
}

/**
 * Scans kept per `reserved` set and network: a transaction that allocates many addresses
 * (a scale to 100 replicas) reads the store once per network instead of once per address;
 * reading every task record for each address cost seconds at a thousand tasks.
 */
const scans = new WeakMap<Set<number>, Map<string, Scan>>();

function scanOf(reader: StoreReader, network: NetworkRecord, reserved: Set<number> | undefined): Scan {
  const byNetwork = reserved ? scans.get(reserved) : undefined;
  const cached = byNetwork?.get(network.Id);
  if (cached && cached.reader === reader) return cached;
  const scan: Scan = { reader, history: takenOn(reader, network, true), live: takenOn(reader, network, false) };
  if (reserved) {
    if (byNetwork) byNetwork.set(network.Id, scan);
    else scans.set(reserved, new Map([[network.Id, scan]]));
  }
  return scan;
}

function allocateOn(reader: StoreReader, network: NetworkRecord, reserved: Set<number> | undefined): string {
  const subnet = networkSubnet(network);
  if (!subnet) throw new CapacityError(`network ${network.Name} has no free address`);
  const options = network.Ingress ? { firstHost: INGRESS_FIRST_TASK_HOST } : {};
  const scan = scanOf(reader, network, reserved);
  for (const base of [scan.history, scan.live]) {
    const taken = new Set(base);
    for (const r of reserved ?? []) taken.add(r);
    const addr = allocateAddress(subnet, taken, options);
    if (addr !== undefined) {
      reserved?.add(addr);
      return `${formatIpv4Address(addr)}/${subnet.prefixLen}`;
    }
  }
  throw new CapacityError(`network ${network.Name} has no free address`);
}

/**
 * A free address for a task on `network`, with the prefix ("100.64.0.131/24", the form of
 * NetworkAttachment.Addresses). Taken: the addresses of unfinished tasks and of every service
 * VIP on the network, and `reserved` (addresses handed out earlier in the same transaction but
 * not yet written; the result is added to it). Pass one `reserved` set for every allocation of
 * one transaction: the first call with it scans the store for each network, later calls trust
 * that scan plus the set, so an address written in between other than through the set is not
 * seen. On ingress, offsets 128 to 254 only.
 * Throws CapacityError `network <name> has no free address`.
 */
export function allocateTaskAddressIn(reader: StoreReader, network: NetworkRecord, reserved?: Set<number>): string {
  return allocateOn(reader, network, reserved);
}

/** A free VIP for a service on `network`, with the prefix (the form of VirtualIp.Addr); as allocateTaskAddressIn. */
export function allocateVipIn(reader: StoreReader, network: NetworkRecord, reserved?: Set<number>): string {
  return allocateOn(reader, network, reserved);
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, what: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new InvalidArgumentError(`${what} must be a string`);
  return value;
}

function optionalBoolean(value: unknown, what: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new InvalidArgumentError(`${what} must be a boolean`);
  return value;
}
