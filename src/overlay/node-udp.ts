/**
 * The real DatagramSocket over node:dgram. Errors while sending are counted by the caller
 * through onSendError; they never throw out of send() (a full socket buffer is a drop, as in
 * the kernel).
 */
import dgram from 'node:dgram';
import { VtepSocketError } from '../lib/errors.js';
import type { DatagramSocket, UdpEndpoint } from './datagram.js';

export interface UdpSocketOptions {
  readonly address: string;
  readonly port: number;
  /** SO_RCVBUF: node drops datagrams when the receiver falls behind (MACHINE-NOTES.md). */
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
  readonly onSendError?: (error: Error) => void;
}

/** Binds a UDP socket. Throws VtepSocketError when the address cannot be bound. */
export async function openUdpSocket(options: UdpSocketOptions): Promise<DatagramSocket> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(new VtepSocketError(`Cannot bind UDP ${options.address}:${options.port}: ${error.message}`, { cause: error }));
    socket.once('error', onError);
    socket.bind({ address: options.address, port: options.port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  if (options.recvBufferSize) socket.setRecvBufferSize(options.recvBufferSize);
  if (options.sendBufferSize) socket.setSendBufferSize(options.sendBufferSize);
  const onSendError = options.onSendError;
  socket.on('error', (error) => onSendError?.(error));
  const bound = socket.address();
  const local: UdpEndpoint = { address: bound.address, port: bound.port };
  return {
    local: () => local,
    send(bytes, to) {
      socket.send(bytes, to.port, to.address, (error) => {
        if (error) onSendError?.(error);
      });
    },
    onMessage(handler) {
      socket.removeAllListeners('message');
      socket.on('message', (msg, rinfo) => handler(msg, { address: rinfo.address, port: rinfo.port }));
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
