/**
 * Per-connection TCP settings. Every field has a default (DEFAULT_TCP_CONFIG); a stack takes a
 * partial override and listeners/connects may override again.
 */
export interface TcpConfig {
  /**
   * The MSS we advertise and the most we send (RFC 9293 §3.7.1): the largest TCP payload plus
   * options that fits the interface MTU less 40 bytes of IPv4 and TCP headers. 1410 for the
   * overlay's 1450 MTU.
   */
  readonly mss: number;
  /** Bytes the application may queue for sending before write() is refused (backpressure). */
  readonly sendBufferSize: number;
  /** Bytes of received data held for the application: the most we ever advertise as the window. */
  readonly receiveBufferSize: number;
  /** RFC 6298 §2.1 (1 s), §2.4 (minimum; Linux uses 200 ms), §2.5 (maximum, at least 60 s). */
  readonly initialRtoMs: number;
  readonly minRtoMs: number;
  readonly maxRtoMs: number;
  /** Retransmissions of one segment before the connection fails with ETIMEDOUT. */
  readonly maxRetransmits: number;
  /** Retransmissions of a SYN or SYN-ACK before connect fails with ETIMEDOUT. */
  readonly maxSynRetransmits: number;
  /** TIME-WAIT length (RFC 9293 §3.6 says 2 MSL; short here as issue 3 asks, configurable). */
  readonly timeWaitMs: number;
  /** An orphaned connection (its stream destroyed) waits this long in FIN-WAIT-2 for the peer's FIN. */
  readonly finWait2TimeoutMs: number;
  /** Delayed ACK timeout (RFC 5681 §4.2: under 500 ms); 0 acknowledges every segment at once. */
  readonly delayedAckMs: number;
  /** Nagle's algorithm (RFC 9293 §3.7.4); off by default as issue 3 asks: the mesh relays streams. */
  readonly nagle: boolean;
  /** Keepalive (RFC 9293 §3.8.4): idle time before the first probe; undefined turns it off. */
  readonly keepAliveIdleMs: number | undefined;
  readonly keepAliveIntervalMs: number;
  readonly keepAliveProbes: number;
  /** RFC 7323 window scaling and timestamps, RFC 2018 SACK: offered in our SYN, used if the peer agrees. */
  readonly windowScaling: boolean;
  readonly timestamps: boolean;
  readonly sack: boolean;
  /** Most out-of-order ranges held for reassembly (and SACK ranges tracked as sender). */
  readonly maxOutOfOrderRanges: number;
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  mss: 1410,
  sendBufferSize: 512 * 1024,
  receiveBufferSize: 512 * 1024,
  initialRtoMs: 1000,
  minRtoMs: 200,
  maxRtoMs: 60_000,
  maxRetransmits: 12,
  maxSynRetransmits: 6,
  timeWaitMs: 2_000,
  finWait2TimeoutMs: 60_000,
  delayedAckMs: 40,
  nagle: false,
  keepAliveIdleMs: undefined,
  keepAliveIntervalMs: 15_000,
  keepAliveProbes: 4,
  windowScaling: true,
  timestamps: true,
  sack: true,
  maxOutOfOrderRanges: 32,
};
