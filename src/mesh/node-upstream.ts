/**
 * The local upstream connectors: kernel TCP (and UDP) to a task on this node, at its host
 * address and port on loopback. The remote connector — userspace TCP over the overlay to the
 * task's overlay address — lives with the overlay stack and is passed to MeshRouter as
 * `connectRemote` once it exists.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Upstream, UpstreamConnector } from './router.js';
import type { UdpUpstream } from './udp-flows.js';

export interface LocalTcpOptions {
  /** TCP keepalive idle time in ms (0: off). Default 60 s: a dead peer behind a quiet connection is noticed eventually. */
  readonly keepAliveMs?: number;
}

/** Kernel TCP to 127.0.0.1:<hostPort> (or whatever host address the row says). Half-open allowed, Nagle off. */
export function localTcpConnector(options: LocalTcpOptions = {}): UpstreamConnector {
  const keepAliveMs = options.keepAliveMs ?? 60_000;
  return (u: Upstream) =>
    new Promise<Duplex>((resolve, reject) => {
      const socket = connect({ host: u.host, port: u.port, allowHalfOpen: true, noDelay: true, ...(keepAliveMs > 0 && { keepAlive: true, keepAliveInitialDelay: keepAliveMs }) });
      const onError = (error: Error): void => reject(error);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(socket);
      });
    });
}

/** A connected UDP socket to a local task, for one client flow. */
export function openLocalUdpUpstream(u: Upstream): Promise<UdpUpstream> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    let onMessage: ((bytes: Uint8Array) => void) | undefined;
    socket.on('message', (msg) => onMessage?.(msg));
    socket.once('error', reject);
    socket.connect(u.port, u.host, () => {
      socket.off('error', reject);
      // ICMP port unreachable for a connected socket shows up here: the flow just stops answering.
      socket.on('error', () => undefined);
      resolve({
        send: (bytes) => socket.send(bytes),
        onMessage: (handler) => {
          onMessage = handler;
        },
        close: () => {
          try {
            socket.close();
          } catch {
            // Already closed.
          }
        },
      });
    });
  });
}
