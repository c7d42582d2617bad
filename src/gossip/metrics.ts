/**
 * The gossip layer's counters (CONVENTIONS.md §10): traffic, and every reason a datagram or
 * stream is dropped, one counter per reason, so hostile or broken peers show up by cause.
 */
import { type MemberlistWireError, MEMBERLIST_WIRE_ERRORS } from '../wire/memberlist/messages.js';

/** `gossip_rx_dropped_<reason>` for a codec refusal ('bad-crc' → gossip_rx_dropped_bad_crc). */
export function wireDropCounter(e: MemberlistWireError): string {
  return `gossip_rx_dropped_${e.replaceAll('-', '_')}`;
}

const WIRE_DROP_COUNTERS = MEMBERLIST_WIRE_ERRORS.map(wireDropCounter);

/** Counter names (CONVENTIONS.md §10), fixed so a snapshot always has the same keys. */
export const GOSSIP_COUNTERS: readonly string[] = [
  'gossip_rx_packets',
  'gossip_tx_packets',
  'gossip_rx_streams',
  'gossip_tx_streams',
  'gossip_rx_messages',
  ...WIRE_DROP_COUNTERS,
  /** A ping naming another node (ML net.go:489-493). */
  'gossip_rx_dropped_wrong_node',
  /** An address field that is not 4 or 16 bytes. */
  'gossip_rx_dropped_bad_address',
  /** A well-formed message where it makes no sense (an ack as a stream request, pushPull over UDP …). */
  'gossip_rx_dropped_unexpected_type',
  /** A message about a node that our table is too full to add. */
  'gossip_rx_dropped_table_full',
  /** An incoming push/pull over the concurrency bound. */
  'gossip_stream_dropped_busy',
  /** A stream that did not finish within its deadline. */
  'gossip_stream_timeout',
  /** A push/pull refused because protocol versions are incompatible (spec §9). */
  'gossip_pushpull_incompatible',
  'gossip_pushpull_completed',
  'gossip_address_conflicts',
  'gossip_probes',
  'gossip_probes_failed',
  'gossip_refutations',
];
