/**
 * IP address management for overlay networks: subnets carved from a pool, VNIs, and host
 * addresses inside a subnet. Pure maths with no state: the caller passes what is taken and
 * keeps the result (the managers store it in their network, service and task records).
 *
 * Mirrors swarmkit's allocator (manager/allocator/cnmallocator: the default IPAM driver's
 * address pools and the overlay driver's VNI range 4096–16777215) and libnetwork's
 * ipamutils. Shoal differs in keeping no bitmaps: the store's records are the only truth,
 * and each allocation scans them, so nothing can drift from what is stored and a manager that
 * restarts has nothing to rebuild. The default pool is RFC 6598's 100.64.0.0/10 rather than
 * Swarm's 10.0.0.0/8, which collides with LANs (ARCHITECTURE.md "Addresses and ports").
 *
 * Numbers: an address is its unsigned 32-bit value (src/wire/address.ts); sizes and ends are
 * computed with ordinary arithmetic, never with 32-bit bit operations that would overflow.
 */
import { InvalidArgumentError } from '../lib/errors.js';
import { type Ipv4Address, formatIpv4Address, parseIpv4Address } from '../wire/address.js';

/** Re-exported for the managers, which may import this file but not the wire layer. */
export { type Ipv4Address, formatIpv4Address } from '../wire/address.js';

export interface Subnet {
  /** The network address: every host bit zero. */
  readonly base: Ipv4Address;
  readonly prefixLen: number;
}

/** RFC 6598 shared address space: the overlay pool of ARCHITECTURE.md. */
export const DEFAULT_POOL = '100.64.0.0/10';
/** A /24 per network unless the caller asks otherwise. */
export const DEFAULT_SUBNET_PREFIX = 24;
/** The first VNI Swarm's overlay driver hands out; below it are left for the operator. */
export const FIRST_VNI = 4096;
/** VXLAN's VNI is 24 bits (RFC 7348 §5). */
export const MAX_VNI = 0xff_ffff;
/** Host offset of the gateway in every subnet (libnetwork's default: the first host). */
export const GATEWAY_OFFSET = 1;

/** Number of addresses in a subnet of this prefix length. */
function sizeOf(prefixLen: number): number {
  return 2 ** (32 - prefixLen);
}

function lastOf(s: Subnet): number {
  return s.base + sizeOf(s.prefixLen) - 1;
}

/**
 * "a.b.c.d/n" → Subnet.
 * @throws InvalidArgumentError when the text is not a CIDR, or when host bits are set
 *   (`100.64.0.5/24`: the caller meant `100.64.0.0/24`, and guessing would hide a typo).
 */
export function parseSubnet(cidr: string): Subnet {
  const slash = cidr.indexOf('/');
  const prefixText = slash < 0 ? '' : cidr.slice(slash + 1);
  if (slash < 0 || !/^(0|[1-9]\d?)$/.test(prefixText) || Number(prefixText) > 32) {
    throw new InvalidArgumentError(`Invalid subnet ${JSON.stringify(cidr)}: expected a.b.c.d/n with n from 0 to 32`);
  }
  const address = parseIpv4Address(cidr.slice(0, slash));
  if (!address.ok) throw new InvalidArgumentError(`Invalid subnet ${JSON.stringify(cidr)}: ${address.error}`);
  const prefixLen = Number(prefixText);
  const size = sizeOf(prefixLen);
  const base = address.value - (address.value % size);
  if (base !== address.value) {
    throw new InvalidArgumentError(`Invalid subnet ${JSON.stringify(cidr)}: not a network address (did you mean ${formatIpv4Address(base)}/${prefixLen}?)`);
  }
  return { base, prefixLen };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIpv4Address(s.base)}/${s.prefixLen}`;
}

export function subnetContains(s: Subnet, addr: Ipv4Address): boolean {
  return addr >= s.base && addr <= lastOf(s);
}

/** True when the two subnets share at least one address (for CIDR blocks: one contains the other). */
export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  return a.base <= lastOf(b) && b.base <= lastOf(a);
}

/** The gateway address of a subnet (its first host), as Docker reports it in IPAM.Config. */
export function gatewayOf(s: Subnet): Ipv4Address {
  return s.base + GATEWAY_OFFSET;
}

/**
 * The first subnet of `prefixLen` inside `pool` that overlaps none of `taken`, lowest address
 * first; undefined when the pool is full or `prefixLen` is shorter than the pool's.
 * Runs in O(n log n) over `taken`, whatever the size of the pool.
 * @throws InvalidArgumentError when prefixLen is not an integer from 0 to 32.
 */
export function allocateSubnet(pool: Subnet, prefixLen: number, taken: readonly Subnet[]): Subnet | undefined {
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) throw new InvalidArgumentError(`Invalid subnet size /${prefixLen}: expected 0 to 32`);
  if (prefixLen < pool.prefixLen) return undefined;
  const size = sizeOf(prefixLen);
  const poolLast = lastOf(pool);
  const blocks = taken.filter((t) => subnetsOverlap(t, pool)).sort((a, b) => a.base - b.base);
  let cursor = pool.base;
  for (const block of blocks) {
    if (cursor + size - 1 < block.base) break;
    // The candidate overlaps this block (or the block lies behind it): move past its end,
    // aligned to the size, since a CIDR block starts at a multiple of its size.
    const next = Math.ceil((lastOf(block) + 1) / size) * size;
    if (next > cursor) cursor = next;
  }
  if (cursor + size - 1 > poolLast) return undefined;
  return { base: cursor, prefixLen };
}

/**
 * The lowest VNI ≥ `first` not in `taken`, up to 2^24 − 1; undefined when all are taken.
 * Steps at most taken.size + 1 times.
 * @throws InvalidArgumentError when `first` is not a valid VNI (1 to 2^24 − 1).
 */
export function allocateVni(taken: ReadonlySet<number>, first = FIRST_VNI): number | undefined {
  if (!Number.isInteger(first) || first < 1 || first > MAX_VNI) throw new InvalidArgumentError(`Invalid first VNI ${first}: expected 1 to ${MAX_VNI}`);
  for (let vni = first; vni <= MAX_VNI; vni++) if (!taken.has(vni)) return vni;
  return undefined;
}

export interface AddressOptions {
  /** The lowest host offset to hand out (default 2: after the gateway). Ingress uses 128: below it are node addresses. */
  readonly firstHost?: number;
  /** The highest host offset to hand out (default: the one before broadcast). */
  readonly lastHost?: number;
}

/**
 * The lowest free host address of `subnet`: never the network address, the broadcast address
 * or the gateway (offset 1); `taken` holds absolute addresses. Undefined when none is free
 * (a /31 or /32 has no host addresses at all). Steps at most taken.size + 1 times.
 */
export function allocateAddress(subnet: Subnet, taken: ReadonlySet<number>, options: AddressOptions = {}): Ipv4Address | undefined {
  const size = sizeOf(subnet.prefixLen);
  const first = Math.max(options.firstHost ?? GATEWAY_OFFSET + 1, GATEWAY_OFFSET + 1);
  const last = Math.min(options.lastHost ?? size - 2, size - 2);
  for (let offset = first; offset <= last; offset++) {
    const addr = subnet.base + offset;
    if (!taken.has(addr)) return addr;
  }
  return undefined;
}

/**
 * "100.64.0.131/24" (an interface address, as task attachments and VIPs store them) → the
 * address and its prefix; undefined when the text is not one. Host bits may be set here.
 */
export function parseInterfaceAddress(text: string): { readonly address: Ipv4Address; readonly prefixLen: number } | undefined {
  const slash = text.indexOf('/');
  const prefixText = slash < 0 ? '32' : text.slice(slash + 1);
  if (!/^(0|[1-9]\d?)$/.test(prefixText) || Number(prefixText) > 32) return undefined;
  const address = parseIpv4Address(slash < 0 ? text : text.slice(0, slash));
  return address.ok ? { address: address.value, prefixLen: Number(prefixText) } : undefined;
}
