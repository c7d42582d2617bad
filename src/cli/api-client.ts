/** The CLI's side of the agent API: one HTTP request over the agent's unix socket. */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

/** Where an agent advertising `advertiseAddr` serves its API unless told otherwise. */
export function defaultApiSocket(advertiseAddr: string): string {
  return path.join(process.env['SHOAL_RUN_DIR'] ?? path.join(os.tmpdir(), 'shoal'), `${advertiseAddr}.sock`);
}

/** Where an agent advertising `advertiseAddr` keeps its swarm identity unless told otherwise. */
export function defaultDataDir(advertiseAddr: string): string {
  return path.join(process.env['SHOAL_RUN_DIR'] ?? path.join(os.tmpdir(), 'shoal'), advertiseAddr);
}

/** One request to an agent's API. Rejects when the socket cannot be reached. */
export function apiRequest(socketPath: string, method: string, urlPath: string, body?: unknown): Promise<{ status: number; text: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path: urlPath, headers: payload ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = undefined;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', (error) => reject(new Error(`Cannot reach the agent at ${socketPath}: ${error.message}`)));
    req.end(payload);
  });
}


/**
 * A request whose answer is read as it arrives (`logs --follow`): `onData` gets every chunk.
 * Resolves with the status and, for an error answer, its whole text, once the answer ends;
 * `signal` cuts the request off (then it resolves as if ended).
 */
export function apiStream(
  socketPath: string,
  urlPath: string,
  onData: (chunk: Buffer) => void,
  signal?: AbortSignal,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'GET', path: urlPath }, (res) => {
      const status = res.statusCode ?? 0;
      const errorChunks: Buffer[] = [];
      res.on('data', (c: Buffer) => (status >= 200 && status < 300 ? onData(c) : errorChunks.push(c)));
      res.on('end', () => resolve({ status, text: Buffer.concat(errorChunks).toString('utf8') }));
      res.on('close', () => resolve({ status, text: Buffer.concat(errorChunks).toString('utf8') }));
    });
    req.on('error', (error) => (signal?.aborted ? resolve({ status: 200, text: '' }) : reject(new Error(`Cannot reach the agent at ${socketPath}: ${error.message}`))));
    signal?.addEventListener('abort', () => req.destroy(), { once: true });
    req.end();
  });
}
