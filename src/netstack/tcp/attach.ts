/**
 * Puts a TCP stack on an overlay interface: the whole seam of stack.ts in one call, so the agent
 * (and interop tests) need not repeat it. Segments from the interface go to the driver; the
 * stack's segments are written straight into a packet buffer with the interface's headroom, so
 * IPv4, Ethernet and VXLAN headers are prepended without a copy.
 */
import type { Clock } from '../../lib/clock.js';
import type { Rng } from '../../lib/rng.js';
import { IpProtocol } from '../../wire/ipv4.js';
import type { OverlayInterface } from '../interface.js';
import type { TcpConfig } from './config.js';
import { TcpDriver, type TcpDriverOptions } from './driver.js';
import { TcpStack } from './stack.js';
import { TcpSockets, type TcpSocketOptions } from './stream.js';

export interface AttachTcpOptions {
  readonly clock: Clock;
  readonly rng: Rng;
  /** Defaults on top of DEFAULT_TCP_CONFIG; `mss` defaults to the interface MTU − 40 (RFC 9293 §3.7.1). */
  readonly config?: Partial<TcpConfig>;
  /** See stack.ts: false only for links whose peers leave checksums to an offload (kernel VXLAN over veth). */
  readonly verifyChecksum?: boolean;
  readonly maxConnections?: number;
  readonly driver?: TcpDriverOptions;
  readonly sockets?: TcpSocketOptions;
}

export interface AttachedTcp {
  readonly stack: TcpStack;
  readonly driver: TcpDriver;
  readonly sockets: TcpSockets;
}

/** Registers TCP (protocol 6) on `iface` and returns the stack, its driver and the socket API. */
export function attachTcp(iface: OverlayInterface, options: AttachTcpOptions): AttachedTcp {
  const stack = new TcpStack({
    rng: options.rng,
    localAddress: iface.address,
    config: { mss: iface.mtu - 40, ...options.config },
    ...(options.verifyChecksum !== undefined ? { verifyChecksum: options.verifyChecksum } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    transmit: (src, dst, segmentLen, write) => {
      const { buf, offset } = iface.allocPacket(segmentLen);
      write(buf, offset);
      iface.sendIpv4(dst, IpProtocol.Tcp, buf, offset, segmentLen, src);
    },
  });
  // A link that delivers datagrams in runs (the VTEP on node:dgram) lets the stack answer a
  // whole run at once: one ACK and one delivery to the reader per run (TcpDriver, batchedReceive).
  const driver = new TcpDriver(stack, options.clock, { batchedReceive: iface.batchedReceive, ...options.driver });
  iface.setProtocolHandler(
    IpProtocol.Tcp,
    (ip, payload) => driver.receive(ip.src, ip.dst, payload),
    () => driver.endReceiveBatch(),
  );
  const sockets = new TcpSockets(driver, options.clock, options.sockets);
  return { stack, driver, sockets };
}
