/**
 * The VTEP's view of its UDP socket: just enough to send and receive datagrams. The real one
 * is node-udp.ts (node:dgram); simulations pass an in-memory one.
 */
export interface UdpEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface DatagramSocket {
  /** The address actually bound (port 0 resolves to the chosen port). */
  local(): UdpEndpoint;
  /**
   * Sends one datagram. The socket owns `bytes` from now on: the caller must not reuse the
   * memory (node:dgram may still be reading it after this returns).
   */
  send(bytes: Uint8Array, to: UdpEndpoint): void;
  /** Sets the one receiver of incoming datagrams; `bytes` is valid only during the call unless copied. */
  onMessage(handler: (bytes: Uint8Array, from: UdpEndpoint) => void): void;
  close(): Promise<void>;
}
