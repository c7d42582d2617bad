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

