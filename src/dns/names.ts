/**
 * Swarm's name shapes, as pure functions over a question's lowercased labels. Which shape a
 * name has decides where it is answered: from the records, authoritatively (NXDOMAIN when it
 * does not exist), or by the host's resolvers.
 */
import { isMirrorAddress, isOverlayAddress } from './records.js';

export type NameShape =
  /** `<service>` */
  | { readonly kind: 'service'; readonly service: string }
  /** `tasks.<service>`: every healthy task (Swarm). */
  | { readonly kind: 'tasks'; readonly service: string }
  /** `<service>.<slot>.<taskId>`: Swarm's task (container) name. */
  | { readonly kind: 'task'; readonly service: string; readonly slot: string; readonly taskId: string }
  /** `_<port or name>._<proto>.<service>` (RFC 2782 form). */
  | { readonly kind: 'srv'; readonly service: string; readonly port: string; readonly protocol: 'tcp' | 'udp' }
  /** `d.c.b.a.in-addr.arpa` for an overlay or mirror address (RFC 1035 §3.5). */
  | { readonly kind: 'reverse'; readonly address: number }
  /**
   * A name inside the reverse zones we own (64–127.100.in-addr.arpa, 64–127.127.in-addr.arpa)
   * with fewer than four octets: an empty non-terminal, so NODATA, never NXDOMAIN (RFC 8020).
   */
  | { readonly kind: 'reverse-zone' }
  | { readonly kind: 'other' };

/**
 * swarmkit's rule for service names (`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`, at most 63
 * characters): one DNS label, so a name with a dot in a label never matches a service.
 */
const SERVICE_LABEL = /^[a-z0-9](?:[-_]*[a-z0-9]+)*$/;
export function isServiceLabel(label: string): boolean {
  return label.length <= 63 && SERVICE_LABEL.test(label);
}

/** A replica slot (decimal) or a global task's node ID, and a task ID, as Swarm forms them. */
const SLOT_LABEL = /^(?:[1-9][0-9]{0,9}|[a-z0-9]{25})$/;
const TASK_ID_LABEL = /^[a-z0-9]{10,64}$/;

/**
 * Whether `<service>.<slot>.<taskId>` looks enough like a task name to be answered NXDOMAIN
 * when no such task exists. `web.example.com` with a service `web` does not (slot `example`),
 * so it is forwarded instead of being shadowed.
 */
export function isTaskShaped(slot: string, taskId: string): boolean {
  return SLOT_LABEL.test(slot) && TASK_ID_LABEL.test(taskId);
}

const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

export function classifyName(labels: readonly string[]): NameShape {
  const n = labels.length;
  if (n >= 3 && labels[n - 1] === 'arpa' && labels[n - 2] === 'in-addr') return classifyReverse(labels);
  if (n === 1) return isServiceLabel(labels[0]!) ? { kind: 'service', service: labels[0]! } : { kind: 'other' };
  if (n === 2 && labels[0] === 'tasks' && isServiceLabel(labels[1]!)) return { kind: 'tasks', service: labels[1]! };
  if (n === 3) {
    const [a, b, c] = labels as [string, string, string];
    if (a.length > 1 && a.startsWith('_') && (b === '_tcp' || b === '_udp') && isServiceLabel(c)) {
      return { kind: 'srv', service: c, port: a.slice(1), protocol: b === '_tcp' ? 'tcp' : 'udp' };
    }
    if (isServiceLabel(a)) return { kind: 'task', service: a, slot: b, taskId: c };
  }
  return { kind: 'other' };
}

/** in-addr.arpa names list the octets backwards (RFC 1035 §3.5). */
function classifyReverse(labels: readonly string[]): NameShape {
  const octets = labels.slice(0, -2).reverse();
  if (octets.length > 4 || octets.length < 2) return { kind: 'other' };
  const values: number[] = [];
  for (const label of octets) {
    if (!OCTET.test(label)) return { kind: 'other' };
    const v = Number(label);
    if (v > 255) return { kind: 'other' };
    values.push(v);
  }
  const [a, b] = values as [number, number];
  // Only the /10s we own; everything else (127.0.0.1, the LAN) belongs to the host's resolvers.
  const probe = ((a << 24) | (b << 16)) >>> 0;
  if (!isOverlayAddress(probe) && !isMirrorAddress(probe)) return { kind: 'other' };
  if (values.length < 4) return { kind: 'reverse-zone' };
  const address = ((a << 24) | (b << 16) | (values[2]! << 8) | values[3]!) >>> 0;
  return { kind: 'reverse', address };
}
