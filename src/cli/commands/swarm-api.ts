/**
 * What `shoal swarm …` and `shoal node …` share: Docker API calls to an agent's socket (the
 * same routes the docker CLI uses, so shoal's CLI is one more client of that API), errors
 * printed as the docker CLI prints them, and docker's table layout.
 */
import type { Command } from 'commander';
import { apiRequest } from '../api-client.js';

export const API_PREFIX = '/v1.50';

export class ApiCallError extends Error {}

export function socketOf(opts: { apiSocket?: string }): string {
  const socket = opts.apiSocket ?? process.env['SHOAL_API_SOCKET'];
  if (!socket) throw new ApiCallError('no agent to talk to: give --api-socket <path> or set SHOAL_API_SOCKET');
  return socket;
}

/** One Docker API call; an error answer becomes ApiCallError("Error response from daemon: …"). */
export async function call(socket: string, method: string, route: string, body?: unknown): Promise<unknown> {
  const { status, text, json } = await apiRequest(socket, method, `${API_PREFIX}${route}`, body);
  if (status < 200 || status >= 300) {
    const message = (json as { message?: unknown } | undefined)?.message;
    throw new ApiCallError(`Error response from daemon: ${typeof message === 'string' ? message.trim() : text.trim()}`);
  }
  return json;
}

/** Adds --api-socket to a command. */
export function withSocket(cmd: Command): Command {
  return cmd.option('--api-socket <path>', 'unix socket of the agent (default: $SHOAL_API_SOCKET)');
}

/** Runs a verb, printing failures like the docker CLI (message on stderr, exit status 1). */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  };
}

/**
 * docker's tables: Go's tabwriter as the docker CLI sets it up (minwidth 10, padding 3), so a
 * column is as wide as its widest cell plus three spaces, and at least ten; the last unpadded.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(10, 3 + Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('')
      .trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

/** Go's json.MarshalIndent(v, "", "    "), as `docker … inspect` prints. */
export function inspectJson(values: unknown[]): string {
  return `${JSON.stringify(values, null, 4)}\n`;
}

export function capitalise(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1);
}
