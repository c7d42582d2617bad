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
 * `connectWithRetry` chooses an upstream with the balancer and retries a failed connect on
 * another endpoint (bounded), before the client sees anything.
 *
 * Counters are Envoy's TCP proxy and cluster statistics, prefixed `mesh_`.
 */
import type { Duplex } from 'node:stream';
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { TimeoutError } from '../lib/errors.js';
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
] as const;

export type RelayCounter = (typeof RELAY_COUNTERS)[number];

export function relayCounters(): Counters<RelayCounter> {
  return new Counters<RelayCounter>(RELAY_COUNTERS);
}

export interface RelayOptions {
  readonly counters: Counters<RelayCounter>;
  readonly clock: Clock;
  /** Close both sides after this long without a byte either way; 0 or absent: never. */
  readonly idleTimeoutMs?: number;
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
}

/**
 * Relays until both sides are closed. Resolves (never rejects) with how it ended. Takes over
 * both streams: they are destroyed when the relay ends, whatever happened.
 */
export function relay(downstream: Duplex, upstream: Duplex, options: RelayOptions): Promise<RelayResult> {
  const { counters, clock } = options;
  return new Promise((resolve) => {
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

    const finish = (): void => {
      if (!downClosed || !upClosed) return;
      idleTimer?.cancel();
      counters.inc('mesh_downstream_cx_destroy');
      resolve({ end: end ?? 'closed', ...(upstreamError && { upstreamError }), downstreamRxBytes, upstreamRxBytes });
    };

    const fail = (which: 'downstream' | 'upstream', error: Error | undefined): void => {
      end ??= which === 'downstream' ? 'downstream-error' : 'upstream-error';
      if (which === 'upstream' && error) {
        upstreamError ??= error;
        counters.inc('mesh_upstream_cx_destroy_remote_with_error');
      }
      resetOrDestroy(which === 'downstream' ? upstream : downstream);
    };

    downstream.on('error', (error: Error) => fail('downstream', error));
    upstream.on('error', (error: Error) => fail('upstream', error));
    downstream.on('close', () => {
      downClosed = true;
      // Closed before both directions finished: nothing more can flow, so neither can the rest.
      if (!(downEnded && upEnded) && !upstream.destroyed) upstream.destroy();
      finish();
    });
    upstream.on('close', () => {
      upClosed = true;
      if (!(downEnded && upEnded) && !downstream.destroyed) downstream.destroy();
      finish();
    });

    const touch = (): void => {
      lastActivity = clock.now();
    };
    pipe(downstream, upstream, {
      onBytes: (n) => {
        downstreamRxBytes += n;
        counters.inc('mesh_downstream_cx_rx_bytes_total', n);
        counters.inc('mesh_upstream_cx_tx_bytes_total', n);
        touch();
      },
      onPaused: () => counters.inc('mesh_downstream_flow_control_paused_reading_total'),
      onResumed: () => counters.inc('mesh_downstream_flow_control_resumed_reading_total'),
      onEnd: () => {
        downEnded = true;
      },
    });
    pipe(upstream, downstream, {
      onBytes: (n) => {
        upstreamRxBytes += n;
        counters.inc('mesh_upstream_cx_rx_bytes_total', n);
        counters.inc('mesh_downstream_cx_tx_bytes_total', n);
        touch();
      },
      onPaused: () => counters.inc('mesh_upstream_flow_control_paused_reading_total'),
      onResumed: () => counters.inc('mesh_upstream_flow_control_resumed_reading_total'),
      onEnd: () => {
        upEnded = true;
      },
    });

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

interface PipeHooks {
  onBytes(n: number): void;
  onPaused(): void;
  onResumed(): void;
  onEnd(): void;
}

function pipe(from: Duplex, to: Duplex, hooks: PipeHooks): void {
  let waiting = false;
  from.on('data', (chunk: Uint8Array | string) => {
    hooks.onBytes(typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length);
    if (to.destroyed || to.writableEnded) return;
    if (!to.write(chunk) && !waiting) {
      waiting = true;
      from.pause();
      hooks.onPaused();
      to.once('drain', () => {
        waiting = false;
        hooks.onResumed();
        from.resume();
      });
    }
  });
  const onEnd = (): void => {
    hooks.onEnd();
    if (!to.destroyed && !to.writableEnded) to.end();
  };
  // A side that ended before the relay began (a client that closed while its upstream was being
  // connected) emitted 'end' to nobody, and will not again: pass its half-close on now.
  if (from.readableEnded) onEnd();
  else from.on('end', onEnd);
}

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
  s.destroy();
}

export interface ConnectWithRetryOptions<E extends BalancerEndpoint> {
  /** The usable endpoints now (healthy, reachable by some connector). */
  readonly endpoints: readonly E[];
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
  const tried = new Set<string>();
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
