/**
 * Join targets as operators write them (ML memberlist.go:336-385): `host:port`, `host`,
 * `[v6]:port`, optionally prefixed `name/`. Only IP addresses: DNS belongs to the agent.
 */
import { InvalidArgumentError } from '../lib/errors.js';
import { ipToBytes } from './ip.js';
import type { GossipAddress } from './transport.js';

/** A join target: an address, or text `host:port`, `host` (our port), `[v6]:port` or `name/host:port`. */
export type Seed = string | GossipAddress;

/** `host:port`, with IPv6 in brackets. */
export function formatAddress(a: GossipAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * A join seed: `host:port`, `host` (default port), `[v6]:port`, a bare IPv6, each optionally
 * prefixed `name/` (ML memberlist.go:336-385; the name is not needed to join). Throws
 * InvalidArgumentError for anything that is not an IP address: DNS belongs to the agent.
 */
export function parseSeed(text: string, defaultPort: number): GossipAddress {
  let rest = text.trim();
  const slash = rest.indexOf('/');
  if (slash === 0) throw new InvalidArgumentError(`Empty node name in seed ${JSON.stringify(text)}`);
  if (slash > 0) rest = rest.slice(slash + 1);
  let host: string;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const i = rest.indexOf(':');
    host = rest.slice(0, i);
    const p = rest.slice(i + 1);
    if (!/^\d+$/.test(p)) throw new InvalidArgumentError(`Bad port in seed ${JSON.stringify(text)}`);
    port = Number(p);
  } else {
    host = rest;
  }
  if (!ipToBytes(host)) throw new InvalidArgumentError(`Seed ${JSON.stringify(text)} is not an IP address (resolve names in the agent)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`Bad port in seed ${JSON.stringify(text)}`);
  return { host, port };
}
