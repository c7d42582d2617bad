/**
 * One TCP stream exchange as memberlist has them (ML net.go:210-305, 845-1258): exactly one
 * message read per direction (push/pull, ping, ack, user, err), under one deadline
 * (TCPTimeout, or what is left of a probe). The bytes are framed by the wire layer's
 * StreamReader; this file decides when a session is over and reports that exactly once.
 */
import type { Timer } from '../lib/clock.js';
import { GossipProtocolError, TimeoutError } from '../lib/errors.js';
import type { MemberlistWireError } from '../wire/memberlist/messages.js';
import { type StreamMessage, type StreamReaderOptions, StreamReader } from '../wire/memberlist/stream.js';
import { wireDropCounter } from './metrics.js';
import { formatAddress } from './seed.js';
import type { Stream } from './transport.js';

export interface StreamSessionHandlers {
  /** False when we only send (a TCP user message): the peer closing is then success. Default true. */
  readonly expectReply?: boolean;
  /** The message; return 'close' to close now, 'wait-close' after writing a reply (the peer closes). */
  onMessage(m: StreamMessage): 'close' | 'wait-close';
  /** The peer's bytes did not decode; the session then waits for the peer to close (or the deadline). */
  onReadError?(error: MemberlistWireError): void;
  /** Exactly once, when the stream is over: without an error after a complete exchange. */
  onDone(error?: Error): void;
}

export interface StreamSessionOptions {
  readonly reader: StreamReaderOptions;
  readonly deadlineMs: number;
  /** A timer from the owner's clock, cancelled by the owner's shutdown. */
  after(ms: number, fn: () => void): Timer;
  cancel(timer: Timer): void;
  /** Counts a drop by counter name (`gossip_rx_dropped_<reason>`, `gossip_stream_timeout`). */
  count(name: string): void;
}

/**
 * Reads one message from `stream` and hands it over; the handler says whether to close now or
 * wait for the peer to close after our reply. Every path ends in exactly one `onDone`, and the
 * deadline bounds them all. Takes over the stream's handlers.
 */
export function runStreamSession(stream: Stream, options: StreamSessionOptions, handlers: StreamSessionHandlers): void {
  const reader = new StreamReader(options.reader);
  const expectReply = handlers.expectReply ?? true;
  let finished = false;
  /** A message arrived, or a read failed and we answered: only the peer's close is awaited now. */
  let settled = false;
  let settledError: Error | undefined;
  const finish = (error?: Error): void => {
    if (finished) return;
    finished = true;
    options.cancel(deadline);
    stream.destroy();
    handlers.onDone(error);
  };
  const deadline = options.after(Math.max(0, options.deadlineMs), () => {
    // After our reply we only linger for the peer to read it and close: not a timeout.
    if (settled) {
      finish(settledError);
      return;
    }
    options.count('gossip_stream_timeout');
    finish(new TimeoutError(`Stream with ${formatAddress(stream.remote)} timed out`));
  });
  const judge = (r: ReturnType<StreamReader['push']>): void => {
    if (r.status === 'incomplete' || settled || finished) return;
    settled = true;
    if (r.status === 'error') {
      options.count(wireDropCounter(r.error));
      settledError = new GossipProtocolError(`Bad stream from ${formatAddress(stream.remote)}: ${r.error}`);
      // Answering with the reason (ML net.go:229-247) means letting the peer read it first.
      if (handlers.onReadError) handlers.onReadError(r.error);
      else finish(settledError);
      return;
    }
    if (handlers.onMessage(r.message) === 'close') finish();
  };
  const peerClosed = (error?: Error): void => {
    if (settled) finish(settledError);
    else if (!expectReply && !error) finish();
    else finish(error ?? new GossipProtocolError(`${formatAddress(stream.remote)} closed the stream without a reply`));
  };
  stream.setHandlers({
    onData: (chunk) => judge(reader.push(chunk)),
    onEnd: () => {
      if (!settled && reader.buffered > 0) judge(reader.end());
      if (!finished) peerClosed();
    },
    onClose: (error) => {
      if (!finished) peerClosed(error);
    },
  });
}
