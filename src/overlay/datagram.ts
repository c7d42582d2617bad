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
  /**
   * Sets the function called once after each run of datagrams that one turn of the event loop
   * delivered to the message handler: a NIC driver's end of poll (Linux's NAPI, where GRO
   * flushes). Receivers that defer work per datagram (TCP's ACKs, deliveries to streams) finish
   * it there, once per run instead of once per datagram. Absent on sockets that cannot tell
   * where a run ends (the in-memory network delivers one datagram per clock event).
   */
  onBatchEnd?(handler: () => void): void;
  close(): Promise<void>;
}
