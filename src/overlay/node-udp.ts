/**
 * The real DatagramSocket over node:dgram. Errors while sending are counted by the caller
 * through onSendError; they never throw out of send() (a full socket buffer is a drop, as in
 * the kernel).
 *
 * Per datagram this adapter costs one send syscall and as little JavaScript as node:dgram
 * allows: underlay addresses are IPv4 literals, so they are "looked up" synchronously instead
 * of through dns.lookup's process.nextTick per send, and one completion callback serves every
 * send. Received datagrams end each event-loop turn with onBatchEnd (see datagram.ts).
 */
import dgram from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIPv4 } from 'node:net';
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

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

/** dgram's lookup hook: IPv4 literals answer at once; anything else goes to dns.lookup. */
function literalLookup(hostname: string, options: LookupOneOptions | number, callback: LookupCallback): void {
  if (isIPv4(hostname)) {
    callback(null, hostname, 4);
    return;
  }
  dnsLookup(hostname, typeof options === 'number' ? { family: options } : options, callback);
}

/** Binds a UDP socket. Throws VtepSocketError when the address cannot be bound. */
export async function openUdpSocket(options: UdpSocketOptions): Promise<DatagramSocket> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
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
  const afterSend = (error: Error | null): void => {
    if (error) onSendError?.(error);
  };
  const bound = socket.address();
  const local: UdpEndpoint = { address: bound.address, port: bound.port };

  let onMessage: (bytes: Uint8Array, from: UdpEndpoint) => void = () => {};
  let onBatchEnd: (() => void) | undefined;
  // libuv reads up to 32 datagrams per readiness event and node emits 'message' for each, with
  // microtasks run in between; setImmediate runs once the poll phase has delivered them all.
  let batchOpen = false;
  const endBatch = (): void => {
    batchOpen = false;
    onBatchEnd?.();
  };
  socket.on('message', (msg, rinfo) => {
    if (!batchOpen) {
      batchOpen = true;
      setImmediate(endBatch);
    }
    onMessage(msg, rinfo); // RemoteInfo is a UdpEndpoint (address, port): no copy per datagram
  });
  return {
    local: () => local,
    send(bytes, to) {
      socket.send(bytes, to.port, to.address, afterSend);
    },
    onMessage(handler) {
      onMessage = handler;
    },
    onBatchEnd(handler) {
      onBatchEnd = handler;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
