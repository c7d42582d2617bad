/**
 * The relay: bytes between a downstream connection (the client's) and an upstream one (to the
 * task), in Envoy's words. Works on any `stream.Duplex`, so node:net sockets and the userspace
 * TCP's sockets relay alike (both ends must allow half-open: `allowHalfOpen: true`).
 *
 * - Watermark flow control, as Envoy's: when one side's write buffer is above its high
 *   watermark (`write()` returned false: the socket's own `writableHighWaterMark`), reading the
 *   other side pauses until `'drain'`. Memory per connection stays bounded by the watermarks.
 * - Half-close in each direction: a FIN from one side becomes `end()` on the other, and the
 *   other direction keeps flowing (an HTTP/1.0 client that shuts down its write side still
 *   gets its answer).
 * - A reset (or any error) on one side destroys the other, resetting it when it can
 *   (`resetAndDestroy`), so a client sees its backend's RST rather than a clean FIN.
 * - An idle timeout, off by default: Swarm's silent 900 s IPVS cut of idle connections is a
 *   known complaint, so shoal never cuts a quiet connection unless told to.
 *
 * - Replay (optional, `replay`): the bytes the client sent since the upstream last sent anything
 *   are kept (bounded); when the upstream fails (reset, error, or a close) before a byte of an
 *   answer to them, the relay asks for another upstream and sends them again there, and the
 *   client never sees the failure. See `ReplayPolicy` for when that is safe.
 *
 * `connectWithRetry` chooses an upstream with the balancer and retries a failed connect on
 * another endpoint (bounded), before the client sees anything.
 *
 * Counters are Envoy's TCP proxy and cluster statistics, prefixed `mesh_`.
 */
import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { ConnectionResetError, TimeoutError } from '../lib/errors.js';
import type { Balancer, BalancerEndpoint } from './balancer.js';

export const RELAY_COUNTERS = [
  'mesh_downstream_cx_total',
  'mesh_downstream_cx_destroy',
  'mesh_downstream_cx_rx_bytes_total',
  'mesh_downstream_cx_tx_bytes_total',
  'mesh_downstream_cx_idle_timeout',
  'mesh_downstream_flow_control_paused_reading_total',
  'mesh_downstream_flow_control_resumed_reading_total',
  'mesh_upstream_cx_total',
  'mesh_upstream_cx_connect_fail',
  'mesh_upstream_cx_connect_timeout',
  /** No healthy endpoint: the downstream connection was closed at once. */
  'mesh_upstream_cx_none_healthy',
  /** Every allowed connect attempt failed. */
  'mesh_upstream_cx_connect_attempts_exceeded',
  /** A retry on another endpoint after a failed connect. */
  'mesh_upstream_cx_connect_retry',
  'mesh_upstream_cx_destroy_remote_with_error',
  'mesh_upstream_cx_rx_bytes_total',
  'mesh_upstream_cx_tx_bytes_total',
  'mesh_upstream_flow_control_paused_reading_total',
  'mesh_upstream_flow_control_resumed_reading_total',
  /** The upstream failed before answering: its unanswered bytes were sent again to another (Envoy's `upstream_rq_retry`). */
  'mesh_upstream_rq_replay',
  /** A replay found no other upstream: the client saw the failure after all. */
  'mesh_upstream_rq_replay_failed',
  /** Unanswered bytes outgrew the replay buffer: no replay until the upstream answers. */
  'mesh_upstream_rq_replay_overflow',
  /** The upstream failed with unanswered bytes that were not safe to replay. */
  'mesh_upstream_rq_replay_unsafe',
  /** Relays reset because their upstream's node was declared dead by the gossip. */
  'mesh_upstream_cx_destroy_member_dead',
] as const;

export type RelayCounter = (typeof RELAY_COUNTERS)[number];

export function relayCounters(): Counters<RelayCounter> {
  return new Counters<RelayCounter>(RELAY_COUNTERS);
}

/**
 * When the relay may send a client's bytes a second time, to another upstream.
 *
 * The relay keeps the downstream bytes sent since the upstream last sent anything ("unanswered"
 * bytes), up to `maxBytes`. When the upstream then fails — reset, error, or closed (FIN or
 * destroyed) — without a byte of an answer, and replay is allowed, the failed upstream is dropped,
 * `reconnect` gives another one, and the kept bytes (and the client's FIN, if it sent one) go there.
 *
 * - `scope: 'start'`: only while the upstream has never answered at all. The new upstream then
 *   sees exactly the byte stream the old one saw, from its first byte, so this holds for any
 *   protocol in which the client speaks first — except that a task that acted on the bytes and
 *   died before answering has them acted on twice.
 * - `scope: 'http'`: also later in the connection, when the unanswered bytes start with an HTTP/1
 *   request line (an idle keep-alive connection to a task that died or closed it just as the
 *   next request was sent). For ports declared HTTP only. Limits, as nginx's
 *   `proxy_next_upstream … non_idempotent`: a non-idempotent request (POST) that reached the
 *   dead task may run twice; pipelined requests (sent before the previous answer was complete)
 *   are not told apart from one request, so a client that pipelines may get an answer spliced
 *   after a cut-off one; a request body larger than `maxBytes` is never replayed.
 */
export interface ReplayPolicy {
  readonly scope: 'start' | 'http';
  /** Unanswered bytes kept at most (default 64 KiB): beyond it, no replay until the upstream answers. */
  readonly maxBytes?: number;
  /** Replays per downstream connection at most (default 2). */
  readonly maxReplays?: number;
  /**
   * Another upstream for this connection, after the current one failed (`error`: its error,
   * undefined when it closed without one; `answered`: it had answered earlier bytes). Resolves
   * undefined when there is none; never rejects. The relay owns the returned stream.
   */
  readonly reconnect: (failure: { readonly error: Error | undefined; readonly answered: boolean }) => Promise<Duplex | undefined>;
}

export const DEFAULT_REPLAY_MAX_BYTES = 64 * 1024;
export const DEFAULT_MAX_REPLAYS = 2;

export interface RelayOptions {
  readonly counters: Counters<RelayCounter>;
  readonly clock: Clock;
  /** Close both sides after this long without a byte either way; 0 or absent: never. */
  readonly idleTimeoutMs?: number;
  /** Absent: never replay (an upstream failure reaches the client). */
  readonly replay?: ReplayPolicy;
}

export type RelayEnd = 'closed' | 'idle-timeout' | 'downstream-error' | 'upstream-error';

export interface RelayResult {
  readonly end: RelayEnd;
  /** The upstream's error, when it failed (a reset: passive health wants to know). */
  readonly upstreamError?: Error;
  /** Bytes read from the client (and written upstream). */
  readonly downstreamRxBytes: number;
  /** Bytes read from the task (and written to the client). */
  readonly upstreamRxBytes: number;
  /** Upstreams that failed before answering and whose bytes were sent to another (0: none). */
  readonly replays?: number;
}

/** `GET /x HTTP/1.1`: an HTTP/1 method token (RFC 9110 §9: uppercase letters here) and a space. */
function startsHttpRequest(chunk: Uint8Array | undefined): boolean {
  if (!chunk || chunk.length < 2) return false;
  for (let i = 0; i < chunk.length && i < 16; i++) {
    const c = chunk[i]!;
    if (c === 0x20) return i > 0;
    if (c < 0x41 || c > 0x5a) return false;
  }
  return false;
}

const byteLength = (chunk: Uint8Array | string): number => (typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length);

/**
 * Relays until both sides are closed. Resolves (never rejects) with how it ended. Takes over
 * both streams (and every upstream `replay.reconnect` gives): they are destroyed when the relay
 * ends, whatever happened.
 */
export function relay(downstream: Duplex, firstUpstream: Duplex, options: RelayOptions): Promise<RelayResult> {
  const { counters, clock, replay } = options;
  const maxReplayBytes = replay?.maxBytes ?? DEFAULT_REPLAY_MAX_BYTES;
  const maxReplays = replay?.maxReplays ?? DEFAULT_MAX_REPLAYS;
  return new Promise((resolve) => {
    let upstream = firstUpstream;
    let end: RelayEnd | undefined;
    let upstreamError: Error | undefined;
    let downstreamRxBytes = 0;
    let upstreamRxBytes = 0;
    let lastActivity = clock.now();
    let idleTimer: Timer | undefined;
    let downClosed = downstream.destroyed;
    let upClosed = upstream.destroyed;
    let downEnded = false;
    let upEnded = false;
    let resolved = false;
    // Replay state: downstream bytes since the upstream last answered, whether they still fit,
    // whether any upstream ever answered, and whether a reconnect is under way.
    let unanswered: Uint8Array[] = [];
    let unansweredBytes = 0;
    let retaining = replay !== undefined;
    let answered = false;
    let replays = 0;
    let reconnecting = false;
    // Downstream paused because the upstream's write buffer is full (undone by its 'drain').
    let downWaiting: (() => void) | undefined;
    let detachUpstream: () => void = () => undefined;

    const finish = (): void => {
      if (resolved || reconnecting || !downClosed || !upClosed) return;
      resolved = true;
      idleTimer?.cancel();
      counters.inc('mesh_downstream_cx_destroy');
      resolve({ end: end ?? 'closed', ...(upstreamError && { upstreamError }), downstreamRxBytes, upstreamRxBytes, ...(replays > 0 && { replays }) });
    };
    const touch = (): void => {
      lastActivity = clock.now();
    };

    // ---- the downstream: attached once -----------------------------------------------------
    downstream.on('error', () => {
      end ??= 'downstream-error';
      resetOrDestroy(upstream);
    });
    downstream.on('close', () => {
      downClosed = true;
      // Closed before both directions finished: nothing more can flow, so neither can the rest.
      if (!(downEnded && upEnded) && !upstream.destroyed) upstream.destroy();
      finish();
    });
    downstream.on('data', (chunk: Uint8Array | string) => {
      const n = byteLength(chunk);
      downstreamRxBytes += n;
      counters.inc('mesh_downstream_cx_rx_bytes_total', n);
      counters.inc('mesh_upstream_cx_tx_bytes_total', n);
      touch();
      if (retaining) {
        if (unansweredBytes + n <= maxReplayBytes) {
          // node:net and the userspace TCP hand out a fresh buffer per chunk: keeping it is safe.
          unanswered.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
          unansweredBytes += n;
        } else {
          retaining = false;
          unanswered = [];
          unansweredBytes = 0;
          counters.inc('mesh_upstream_rq_replay_overflow');
        }
      }
      writeUp(chunk);
    });
    const onDownEnd = (): void => {
      downEnded = true;
      if (!reconnecting && !upstream.destroyed && !upstream.writableEnded) upstream.end();
    };
    // A side that ended before the relay began (a client that closed while its upstream was being
    // connected) emitted 'end' to nobody, and will not again: pass its half-close on now.
    if (downstream.readableEnded) onDownEnd();
    else downstream.on('end', onDownEnd);

    function writeUp(chunk: Uint8Array | string): void {
      const to = upstream;
      if (reconnecting || to.destroyed || to.writableEnded) return;
      if (!to.write(chunk) && !downWaiting) {
        downstream.pause();
        counters.inc('mesh_downstream_flow_control_paused_reading_total');
        const onDrain = (): void => {
          downWaiting = undefined;
          counters.inc('mesh_downstream_flow_control_resumed_reading_total');
          downstream.resume();
        };
        downWaiting = () => to.off('drain', onDrain);
        to.once('drain', onDrain);
      }
    }

    // ---- the upstream: attached once per upstream (a replay attaches the next one) ---------
    const canReplay = (): boolean => {
      if (!replay || replays >= maxReplays || !retaining || unansweredBytes === 0) return false;
      return !answered || (replay.scope === 'http' && startsHttpRequest(unanswered[0]));
    };

    /** The current upstream failed (error, FIN or close) before answering: replay, or report false. */
    const tryReplay = (error: Error | undefined): boolean => {
      // The client went (or the idle timeout fired): there is nobody to replay for.
      if (end !== undefined || downClosed || downstream.destroyed) return false;
      if (!canReplay()) {
        if (replay && unansweredBytes > 0) counters.inc('mesh_upstream_rq_replay_unsafe');
        return false;
      }
      replays++;
      counters.inc('mesh_upstream_rq_replay');
      const failed = upstream;
      detachUpstream();
      failed.on('error', () => undefined);
      resetOrDestroy(failed);
      reconnecting = true;
      downWaiting?.();
      downWaiting = undefined;
      downstream.pause();
      void replay!.reconnect({ error, answered }).then((next) => {
        reconnecting = false;
        if (next && downClosed) {
          // The client went meanwhile: nothing failed but its patience.
          next.destroy();
          upClosed = true;
          finish();
          return;
        }
        if (!next || next.destroyed || downClosed) {
          next?.destroy();
          counters.inc('mesh_upstream_rq_replay_failed');
          end ??= 'upstream-error';
          upstreamError ??= error ?? new ConnectionResetError('Upstream closed before answering, and no other upstream could take the request');
          upClosed = true;
          if (downClosed) finish();
          else resetOrDestroy(downstream);
          return;
        }
        upstream = next;
        upClosed = next.destroyed;
        upEnded = false;
        attachUpstream(next);
        for (const chunk of unanswered) {
          counters.inc('mesh_upstream_cx_tx_bytes_total', chunk.length);
          next.write(chunk);
        }
        if (downEnded) next.end();
        downstream.resume();
      });
      return true;
    };

    function attachUpstream(up: Duplex): void {
      let upWaiting: (() => void) | undefined;
      let failedOnce = false;
      const onError = (error: Error): void => {
        if (failedOnce) return;
        failedOnce = true;
        counters.inc('mesh_upstream_cx_destroy_remote_with_error');
        if (tryReplay(error)) return;
        end ??= 'upstream-error';
        upstreamError ??= error;
        resetOrDestroy(downstream);
      };
      const onData = (chunk: Uint8Array | string): void => {
        const n = byteLength(chunk);
        upstreamRxBytes += n;
        counters.inc('mesh_upstream_cx_rx_bytes_total', n);
        counters.inc('mesh_downstream_cx_tx_bytes_total', n);
        touch();
        answered = true;
        if (replay) {
          // An answer: what was sent before it is no longer the client's to resend.
          unanswered = [];
          unansweredBytes = 0;
          retaining = true;
        }
        if (downstream.destroyed || downstream.writableEnded) return;
        if (!downstream.write(chunk) && !upWaiting) {
          up.pause();
          counters.inc('mesh_upstream_flow_control_paused_reading_total');
          const onDrain = (): void => {
            upWaiting = undefined;
            counters.inc('mesh_upstream_flow_control_resumed_reading_total');
            up.resume();
          };
          upWaiting = () => downstream.off('drain', onDrain);
          downstream.once('drain', onDrain);
        }
      };
      const onEnd = (): void => {
        // A FIN with a request unanswered is a failure to answer it (HTTP: RFC 9112 §9.6's
        // keep-alive race; any protocol: a task that died). Otherwise it is the answer's end.
        if (!failedOnce && unansweredBytes > 0 && tryReplay(undefined)) {
          failedOnce = true;
          return;
        }
        upEnded = true;
        if (!downstream.destroyed && !downstream.writableEnded) downstream.end();
      };
      const onClose = (): void => {
        if (!failedOnce && !upEnded && unansweredBytes > 0 && tryReplay(undefined)) {
          failedOnce = true;
          return;
        }
        upClosed = true;
        if (!(downEnded && upEnded) && !downstream.destroyed) downstream.destroy();
        finish();
      };
      up.on('error', onError);
      up.on('data', onData);
      up.on('end', onEnd);
      up.on('close', onClose);
      detachUpstream = () => {
        up.off('error', onError);
        up.off('data', onData);
        up.off('end', onEnd);
        up.off('close', onClose);
        upWaiting?.();
        upWaiting = undefined;
      };
    }
    attachUpstream(upstream);

    const idleMs = options.idleTimeoutMs ?? 0;
    if (idleMs > 0) {
      // One timer per connection, re-armed for the remainder rather than reset per chunk.
      const arm = (delay: number): void => {
        idleTimer = clock.setTimer(delay, () => {
          const quiet = clock.now() - lastActivity;
          if (quiet < idleMs) {
            arm(idleMs - quiet);
            return;
          }
          end ??= 'idle-timeout';
          counters.inc('mesh_downstream_cx_idle_timeout');
          downstream.destroy();
          upstream.destroy();
        });
      };
      arm(idleMs);
    }
    if (downClosed || upClosed) {
      // One side was gone before we started: take the other down too.
      downstream.destroy();
      upstream.destroy();
      finish();
    }
  });
}

/**
 * Resets a connection when it can: node:net's `resetAndDestroy`, or the userspace TCP socket's
 * `connection.abort()` (a RST, RFC 9293 §3.10.5), so a reset crosses the overlay as a reset and
 * the far relay's passive health sees ECONNRESET rather than a clean FIN. Otherwise destroys.
 */
function resetOrDestroy(s: Duplex): void {
  if (s.destroyed) return;
  const r = (s as { resetAndDestroy?: () => void }).resetAndDestroy;
  if (typeof r === 'function') {
    try {
      r.call(s);
      return;
    } catch {
      // Not a connected TCP socket after all: a plain destroy below.
    }
  }
  const conn = (s as { connection?: { abort?: () => void } }).connection;
  if (typeof conn?.abort === 'function') conn.abort();
  s.destroy();
}

export interface ConnectWithRetryOptions<E extends BalancerEndpoint> {
  /** The usable endpoints now (healthy, reachable by some connector). */
  readonly endpoints: readonly E[];
  /** Keys not to try (already failed for this downstream connection). */
  readonly exclude?: ReadonlySet<string>;
  readonly balancer: Balancer;
  /** Opens a connection to `endpoint`; resolves once it is connected. */
  readonly connect: (endpoint: E) => Promise<Duplex>;
  /** Endpoints tried at most for one downstream connection (Envoy's retry budget, `max_connect_attempts`). */
  readonly maxAttempts: number;
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  readonly counters: Counters<RelayCounter>;
}

export interface ConnectedUpstream<E> {
  readonly endpoint: E;
  readonly socket: Duplex;
  /** Endpoints that failed before this one. */
  readonly failedAttempts: number;
}

/**
 * Connects to an upstream, retrying on other endpoints. The endpoint returned is acquired in
 * the balancer (call `balancer.release(endpoint.key)` when the connection ends). A failed
 * endpoint is ejected (passive health). Resolves undefined when no endpoint could be
 * connected, having counted why (`none_healthy` or `connect_attempts_exceeded`); never rejects.
 */
export async function connectWithRetry<E extends BalancerEndpoint>(o: ConnectWithRetryOptions<E>): Promise<ConnectedUpstream<E> | undefined> {
  const tried = new Set<string>(o.exclude);
  let failures = 0;
  for (let attempt = 0; attempt < o.maxAttempts; attempt++) {
    const endpoint = o.balancer.choose(o.endpoints, tried);
    if (!endpoint) break;
    if (attempt > 0) o.counters.inc('mesh_upstream_cx_connect_retry');
    tried.add(endpoint.key);
    o.balancer.acquire(endpoint.key);
    o.counters.inc('mesh_upstream_cx_total');
    try {
      const socket = await withTimeout(o.connect(endpoint), o.connectTimeoutMs, o.clock);
      o.balancer.reportSuccess(endpoint.key);
      return { endpoint, socket, failedAttempts: failures };
    } catch (error) {
      failures++;
      o.balancer.release(endpoint.key);
      o.balancer.reportFailure(endpoint.key);
      o.counters.inc(error instanceof TimeoutError ? 'mesh_upstream_cx_connect_timeout' : 'mesh_upstream_cx_connect_fail');
    }
  }
  o.counters.inc(failures === 0 ? 'mesh_upstream_cx_none_healthy' : 'mesh_upstream_cx_connect_attempts_exceeded');
  return undefined;
}

/** Races a connect against the clock; a connection that arrives too late is destroyed. */
function withTimeout(p: Promise<Duplex>, ms: number, clock: Clock): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = clock.setTimer(ms, () => {
      if (done) return;
      done = true;
      reject(new TimeoutError(`Upstream connect timed out after ${ms} ms`));
    });
    p.then(
      (s) => {
        if (done) {
          s.destroy();
          return;
        }
        done = true;
        timer.cancel();
        resolve(s);
      },
      (error: unknown) => {
        if (done) return;
        done = true;
        timer.cancel();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
