/**
 * The agent's settings, from three sources in order of precedence: command-line flags, then
 * environment variables (`SHOAL_ADVERTISE_ADDR` for `--advertise-addr`), then a YAML file
 * (`--config FILE`, keys spelled as the flags: `advertise-addr: 127.0.0.2`), then defaults.
 * Pure: the caller reads the file and passes the environment, so every rule is table-tested.
 */
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from '../lib/errors.js';
import { type Ipv4Address, parseIpv4Address } from '../wire/address.js';
import type { UdpEndpoint } from '../overlay/datagram.js';
import { type OverlayPeer, parseCidr, parseFdbEntry, parsePeer, parseUdpEndpoint } from './overlay-node.js';

export const DEFAULT_DATA_PATH_PORT = 4789;
export const DEFAULT_GOSSIP_PORT = 7946;

export interface AgentSettings {
  readonly nodeName: string;
  readonly advertiseAddr: string;
  readonly listenAddr: string;
  readonly dataPathPort: number;
  readonly gossipPort: number;
  /** Gossip seeds, host[:port] (the gossip port by default). */
  readonly join: readonly string[];
  readonly catalog: string | undefined;
  /** This host's overlay address; derived from the advertise address when absent (see nodeOverlayAddress). */
  readonly overlayAddr: { readonly address: Ipv4Address; readonly prefixLen: number } | undefined;
  readonly peers: readonly OverlayPeer[];
  readonly fdb: readonly { readonly mac: number; readonly underlay: UdpEndpoint }[];
  readonly flood: readonly UdpEndpoint[];
  readonly apiSocket: string | undefined;
  readonly apiTcp: string | undefined;
  readonly dataDir: string | undefined;
  /** Host-side DNS when 127.0.0.11:53 cannot be bound; undefined: `<listen-addr>:8053` (names.ts). */
  readonly dnsAddr: UdpEndpoint | undefined;
  /** Serve the 127.X.Y.Z mirrors of overlay addresses (one agent per host should). */
  readonly mirrors: boolean;
}

/** Every setting: its flag (and YAML key), whether it repeats, and how its text is checked. */
const SETTINGS = {
  nodeName: { flag: 'node-name', list: false },
  advertiseAddr: { flag: 'advertise-addr', list: false },
  listenAddr: { flag: 'listen-addr', list: false },
  dataPathPort: { flag: 'data-path-port', list: false },
  gossipPort: { flag: 'gossip-port', list: false },
  join: { flag: 'join', list: true },
  catalog: { flag: 'catalog', list: false },
  overlayAddr: { flag: 'overlay-addr', list: false },
  peer: { flag: 'peer', list: true },
  fdb: { flag: 'fdb', list: true },
  flood: { flag: 'flood', list: true },
  apiSocket: { flag: 'api-socket', list: false },
  apiTcp: { flag: 'api-tcp', list: false },
  dataDir: { flag: 'data-dir', list: false },
  dnsAddr: { flag: 'dns-addr', list: false },
  mirrors: { flag: 'mirrors', list: false },
} as const;
export type SettingKey = keyof typeof SETTINGS;
export const SETTING_FLAGS: readonly string[] = Object.values(SETTINGS).map((s) => s.flag);

export type RawSettings = Partial<Record<SettingKey, string | readonly string[]>>;

/** `--advertise-addr` → `SHOAL_ADVERTISE_ADDR`. */
export function envName(flag: string): string {
  return `SHOAL_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Reads the YAML config file's text. Throws InvalidArgumentError for bad YAML or unknown keys. */
export function parseConfigFile(text: string, source: string): RawSettings {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new InvalidArgumentError(`${source}: not valid YAML: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidArgumentError(`${source}: must be a mapping of settings`);
  const out: Partial<Record<SettingKey, string | string[]>> = {};
  for (const [key, value] of Object.entries(doc)) {
    const entry = Object.entries(SETTINGS).find(([, s]) => s.flag === key);
    if (!entry) throw new InvalidArgumentError(`${source}: unknown setting ${JSON.stringify(key)} (known: ${SETTING_FLAGS.join(', ')})`);
    const [name, spec] = entry as [SettingKey, (typeof SETTINGS)[SettingKey]];
    if (spec.list && Array.isArray(value)) out[name] = value.map((v) => scalar(v, `${source}: ${key}`));
    else out[name] = scalar(value, `${source}: ${key}`);
  }
  return out;
}

function scalar(value: unknown, where: string): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  throw new InvalidArgumentError(`${where} must be a string or a number`);
}

/** The settings named in the environment (`SHOAL_*`). */
export function settingsFromEnv(env: Readonly<Record<string, string | undefined>>): RawSettings {
  const out: Partial<Record<SettingKey, string>> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingKey, (typeof SETTINGS)[SettingKey]][]) {
    const value = env[envName(spec.flag)];
    if (value !== undefined && value !== '') out[name] = value;
  }
  return out;
}

/**
 * Merges the sources (flags over env over file) and checks every value. Throws
 * InvalidArgumentError naming the setting at fault.
 */
export function resolveSettings(sources: { flags: RawSettings; env: RawSettings; file: RawSettings }, defaults: { nodeName: string }): AgentSettings {
  const pick = (key: SettingKey): string | readonly string[] | undefined => sources.flags[key] ?? sources.env[key] ?? sources.file[key];
  const one = (key: SettingKey): string | undefined => {
    const v = pick(key);
    return Array.isArray(v) ? v[v.length - 1] : (v as string | undefined);
  };
  // Lists accept repeated flags, YAML lists, or one comma-separated string (`--join a,b`).
  const list = (key: SettingKey): string[] => {
    const v = pick(key);
    const items = v === undefined ? [] : Array.isArray(v) ? v : [v as string];
    return items.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  };
  const checked = <T>(key: SettingKey, parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      throw new InvalidArgumentError(`--${SETTINGS[key].flag}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  const advertiseAddr = one('advertiseAddr');
  if (advertiseAddr === undefined) throw new InvalidArgumentError(`--advertise-addr is required (or ${envName('advertise-addr')}, or advertise-addr in --config)`);
  checked('advertiseAddr', () => ipv4(advertiseAddr));
  const listenAddr = one('listenAddr') ?? advertiseAddr;
  checked('listenAddr', () => ipv4(listenAddr));
  const dataPathPort = checked('dataPathPort', () => port(one('dataPathPort') ?? String(DEFAULT_DATA_PATH_PORT)));
  const gossipPort = checked('gossipPort', () => port(one('gossipPort') ?? String(DEFAULT_GOSSIP_PORT)));
  const overlayText = one('overlayAddr');
  return {
    nodeName: one('nodeName') ?? defaults.nodeName,
    advertiseAddr,
    listenAddr,
    dataPathPort,
    gossipPort,
    join: list('join').map((seed) => checked('join', () => seedText(seed, gossipPort))),
    catalog: one('catalog'),
    overlayAddr: overlayText === undefined ? undefined : checked('overlayAddr', () => parseCidr(overlayText)),
    peers: list('peer').map((p) => checked('peer', () => parsePeer(p, DEFAULT_DATA_PATH_PORT))),
    fdb: list('fdb').map((f) => checked('fdb', () => parseFdbEntry(f, DEFAULT_DATA_PATH_PORT))),
    flood: list('flood').map((f) => checked('flood', () => parseUdpEndpoint(f, DEFAULT_DATA_PATH_PORT))),
    apiSocket: one('apiSocket'),
    apiTcp: one('apiTcp'),
    dataDir: one('dataDir'),
    dnsAddr: one('dnsAddr') === undefined ? undefined : checked('dnsAddr', () => dnsEndpoint(one('dnsAddr')!)),
    mirrors: checked('mirrors', () => onOff(one('mirrors') ?? 'on')),
  };
}

function ipv4(text: string): Ipv4Address {
  const r = parseIpv4Address(text);
  if (!r.ok) throw new InvalidArgumentError(r.error);
  return r.value;
}

function port(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new InvalidArgumentError(`Not a port: ${JSON.stringify(text)}`);
  return n;
}

function dnsEndpoint(text: string): UdpEndpoint {
  const endpoint = parseUdpEndpoint(text, 53);
  if (endpoint.port === 0) throw new InvalidArgumentError(`Not a port in ${JSON.stringify(text)}`);
  return endpoint;
}

function onOff(text: string): boolean {
  if (['on', 'true', '1', 'yes'].includes(text)) return true;
  if (['off', 'false', '0', 'no'].includes(text)) return false;
  throw new InvalidArgumentError(`Expected on or off, got ${JSON.stringify(text)}`);
}

/** A gossip seed as host:port, the gossip port filled in when absent. */
function seedText(text: string, defaultPort: number): string {
  const endpoint = parseUdpEndpoint(text, defaultPort);
  if (endpoint.port === 0) throw new InvalidArgumentError(`Not a port in ${JSON.stringify(text)}`);
  return `${endpoint.address}:${endpoint.port}`;
}

/**
 * This host's overlay address when none is configured, until IPAM (issue 6) hands them out:
 * the network's base plus the advertise address's last octet, kept in the lower half of the
 * subnet (the upper half is for tasks, see catalog.ts). 127.0.0.2 → 100.64.0.2 on 100.64.0.0/24.
 * Two hosts whose addresses share a last octet collide: give one `--overlay-addr`.
 * Throws InvalidArgumentError when the subnet's lower half cannot hold the octet.
 */
export function nodeOverlayAddress(advertiseAddr: string, subnet: Ipv4Address, prefixLen: number): Ipv4Address {
  const half = 2 ** (32 - prefixLen) / 2;
  const octet = ipv4(advertiseAddr) & 0xff;
  const host = half > 256 ? octet : octet % half;
  if (host === 0) throw new InvalidArgumentError(`Cannot derive an overlay address from ${advertiseAddr} in a /${prefixLen}: give --overlay-addr`);
  return (subnet + host) >>> 0;
}
