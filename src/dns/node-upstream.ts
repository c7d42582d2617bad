/**
 * The forwarder's real UpstreamTransport: one unconnected UDP socket per address family on an
 * ephemeral port for every upstream query (the forwarder's random IDs tell them apart), and a
 * fresh TCP connection per truncated answer (RFC 7766 §5). Timeouts are the forwarder's job
 * (it cancels); nothing here keeps a timer.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { DnsSocketError } from '../lib/errors.js';
import type { TcpExchange, UpstreamServer, UpstreamTransport } from './forwarder.js';
import { LengthPrefixedReader, frameMessage } from './tcp-framing.js';

export interface NodeUpstreamOptions {
  /** Local address for upstream UDP (default: any). */
  readonly bindAddress?: string;
  /** Called for socket errors that are not any one query's (counted by the caller). */
  readonly onError?: (error: Error) => void;
}

/** Opens the UDP socket(s). Throws DnsSocketError when the IPv4 socket cannot be bound. */
export async function openUpstreamTransport(options: NodeUpstreamOptions = {}): Promise<UpstreamTransport> {
  let handler: (message: Uint8Array, from: UpstreamServer) => void = () => {};
  const sockets = new Map<'udp4' | 'udp6', dgram.Socket>();
  const tcpSockets = new Set<net.Socket>();

  const open = async (type: 'udp4' | 'udp6', address: string | undefined): Promise<dgram.Socket> => {
    const socket = dgram.createSocket({ type });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(new DnsSocketError(`Cannot bind upstream ${type} socket: ${error.message}`, { cause: error }));
      socket.once('error', onError);
      socket.bind({ address, port: 0 }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.on('error', (error) => options.onError?.(error));
    socket.on('message', (msg, rinfo) => handler(msg, { address: rinfo.address, port: rinfo.port }));
    sockets.set(type, socket);
    return socket;
  };

  await open('udp4', options.bindAddress);
  let udp6: Promise<dgram.Socket | undefined> | undefined;

  return {
    sendUdp(message, server) {
      const send = (socket: dgram.Socket | undefined): void => {
        socket?.send(message, server.port, server.address, (error) => {
          if (error) options.onError?.(error);
        });
      };
      if (!net.isIPv6(server.address)) {
        send(sockets.get('udp4'));
        return;
      }
      // IPv6 only when resolv.conf names an IPv6 server; a host without IPv6 just loses those queries.
      udp6 ??= open('udp6', undefined).catch((error: unknown) => {
        options.onError?.(error instanceof Error ? error : new DnsSocketError(String(error)));
        return undefined;
      });
      void udp6.then(send);
    },
    onUdpMessage(h) {
      handler = h;
    },
    queryTcp(message, server): TcpExchange {
      const socket = net.connect({ host: server.address, port: server.port });
      tcpSockets.add(socket);
      const reader = new LengthPrefixedReader();
      const response = new Promise<Uint8Array>((resolve, reject) => {
        socket.on('connect', () => socket.write(frameMessage(message)));
        socket.on('data', (chunk) => {
          const [first] = reader.push(chunk);
          if (first) {
            resolve(first);
            socket.destroy();
          }
        });
        socket.on('error', (error) => reject(new DnsSocketError(`Upstream TCP ${server.address}:${server.port}: ${error.message}`, { cause: error })));
        socket.on('close', () => {
          tcpSockets.delete(socket);
          reject(new DnsSocketError(`Upstream TCP ${server.address}:${server.port} closed without an answer`));
        });
      });
      // The forwarder may cancel before anyone awaits: never an unhandled rejection.
      response.catch(() => {});
      return { response, cancel: () => socket.destroy() };
    },
    async close() {
      for (const socket of tcpSockets) socket.destroy();
      await Promise.all([...sockets.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      sockets.clear();
    },
  };
}
