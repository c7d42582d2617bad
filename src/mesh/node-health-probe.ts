/**
 * The real health probes (health.ts `Probe`): a TCP connect, or an HTTP/1.1 GET that must
 * answer 2xx or 3xx (Docker's `curl -f` convention). Both release their socket when the
 * checker aborts them.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Probe, ProbeTarget } from './health.js';

export const nodeProbe: Probe = (target: ProbeTarget, signal: AbortSignal): Promise<void> =>
  target.kind === 'tcp' ? tcpProbe(target, signal) : httpProbe(target, signal);

function tcpProbe(target: ProbeTarget, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(error);
    });
  });
}

function httpProbe(target: ProbeTarget, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: target.host, port: target.port, path: target.path, method: 'GET', signal, agent: false, headers: { 'user-agent': 'shoal-health' } }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 400) resolve();
      else reject(new Error(`HTTP ${status}`));
    });
    req.once('error', reject);
    req.end();
  });
}
