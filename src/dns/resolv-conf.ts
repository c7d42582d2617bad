/**
 * The host's /etc/resolv.conf (resolv.conf(5)), as much as the forwarder needs: nameservers
 * and search domains. Pure: node-resolv-conf.ts reads the file.
 */
import type { UpstreamServer } from './forwarder.js';

export interface ResolvConf {
  /** In file order; IPv4 or IPv6 literals (a `%zone` suffix is kept). */
  readonly nameservers: readonly string[];
  /** The last `search` or `domain` line wins, as in glibc. */
  readonly search: readonly string[];
}

/** Docker's embedded DNS address: never forward to it, or a container's agent would ask itself. */
export const EMBEDDED_DNS_ADDRESS = '127.0.0.11';

const IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
const IPV6 = /^[0-9a-fA-F:.]+(?:%[A-Za-z0-9_.-]+)?$/;

/** Never throws: lines it does not understand are skipped, as the libc resolver skips them. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    // '#' and ';' start comments (resolv.conf(5)).
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args[0] !== undefined && (IPV4.test(args[0]) || (args[0].includes(':') && IPV6.test(args[0])))) {
      nameservers.push(args[0]);
    } else if (keyword === 'search' || keyword === 'domain') {
      search = args.map((d) => d.replace(/\.$/, '')).filter((d) => d.length > 0);
    }
  }
  return { nameservers, search };
}

/**
 * The servers to forward to: resolv.conf's nameservers on port 53, without 127.0.0.11 and
 * without any address this DNS server itself listens on (`own`), which would loop.
 */
export function selectUpstreams(conf: ResolvConf, own: readonly { readonly address: string; readonly port: number }[] = []): UpstreamServer[] {
  const out: UpstreamServer[] = [];
  for (const address of conf.nameservers) {
    if (address === EMBEDDED_DNS_ADDRESS) continue;
    if (own.some((o) => o.address === address && o.port === 53)) continue;
    if (out.some((s) => s.address === address)) continue;
    out.push({ address, port: 53 });
  }
  return out;
}
