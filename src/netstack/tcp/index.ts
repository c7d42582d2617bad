/**
 * shoal's userspace TCP (issue 3). The interface layer needs TcpStack (its three-call seam is
 * documented at the top of stack.ts) and TcpDriver; applications use TcpSockets / TcpSocket.
 */
export { DEFAULT_TCP_CONFIG, type TcpConfig } from './config.js';
export { TcpConnection, type TcpConnectionEvents, type TcpFourTuple, type TcpState } from './connection.js';
export { TcpDriver, type TcpDriverOptions } from './driver.js';
export { TcpListener, TcpStack, type TcpConnectOptions, type TcpCounter, type TcpListenOptions, type TcpStackOptions, type TcpTransmit } from './stack.js';
export { TcpSocket, TcpSockets, type TcpSocketOptions, type TcpStreamConnectOptions } from './stream.js';
export { attachTcp, type AttachTcpOptions, type AttachedTcp } from './attach.js';
