/**
 * Memberlist's timers and sizes, and its LAN profile (ML config.go:273-308; spec §13): the
 * defaults a serf agent runs with, so shoal's failure detection has serf's proven timings.
 */
import { DEFAULT_VSN } from '../wire/memberlist/messages.js';

/** Timers and sizes; every duration in ms. Field names follow memberlist's Config (ML config.go). */
export interface MemberlistConfig {
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly gossipIntervalMs: number;
  readonly gossipNodes: number;
  readonly suspicionMult: number;
  readonly suspicionMaxTimeoutMult: number;
  readonly retransmitMult: number;
  readonly pushPullIntervalMs: number;
  readonly indirectChecks: number;
  readonly awarenessMaxMultiplier: number;
  readonly gossipToTheDeadTimeMs: number;
  readonly tcpTimeoutMs: number;
  readonly disableTcpPings: boolean;
  readonly enableCompression: boolean;
  readonly udpBufferSize: number;
  readonly deadNodeReclaimTimeMs: number;
  readonly gossipVerifyIncoming: boolean;
  readonly gossipVerifyOutgoing: boolean;
  /** [PMin, PMax, PCur, DMin, DMax, DCur]; serf 0.9.4's agent values by default (spec §9). */
  readonly vsn: readonly number[];
  /** Rows in the member table at most (CONVENTIONS.md §7). */
  readonly maxNodes: number;
  /** Queued broadcasts at most, per queue (memberlist's and the user's). */
  readonly maxQueuedBroadcasts: number;
  /** Concurrent incoming push/pulls served at most (`maxPushPullRequests`, ML net.go:76). */
  readonly maxConcurrentPushPulls: number;
  /**
   * How often to try a push/pull with one failed member (0 = never). memberlist alone never
   * talks to a dead node again, so a healed partition would stay split; serf adds this loop
   * (`ReconnectInterval`, SERF serf/serf.go reconnect(), spec §13) and shoal, which runs no serf,
   * does the same.
   */
  readonly reconnectIntervalMs: number;
  /** How long a failed member is remembered for reconnects (serf's `ReconnectTimeout`, 24 h). */
  readonly reconnectTimeoutMs: number;
}

/** memberlist's DefaultLANConfig (ML config.go:273-308; spec §13). */
export const LAN_CONFIG: MemberlistConfig = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  indirectChecks: 3,
  awarenessMaxMultiplier: 8,
  gossipToTheDeadTimeMs: 30_000,
  tcpTimeoutMs: 10_000,
  disableTcpPings: false,
  enableCompression: true,
  udpBufferSize: 1400,
  deadNodeReclaimTimeMs: 0,
  gossipVerifyIncoming: true,
  gossipVerifyOutgoing: true,
  vsn: DEFAULT_VSN,
  maxNodes: 16_384,
  maxQueuedBroadcasts: 4096,
  maxConcurrentPushPulls: 128,
  reconnectIntervalMs: 30_000,
  reconnectTimeoutMs: 24 * 3600_000,
};
