/**
 * Starts `shoal agent` as a real process (from the TypeScript sources, through tsx, so tests
 * never run a stale build), optionally inside a network namespace.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Netns, waitForLine } from './netns.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_ENTRY = path.join(ROOT, 'src/cli/main.ts');

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly apiSocket: string;
}

/**
 * `args` are the agent's flags; `--api-socket` must be among them. Resolves once the agent says
 * it is ready. Host-side mirrors (127.64.0.0/10) are off unless `args` turn them on: agents of
 * test files running in parallel would otherwise race for the same mirror addresses.
 */
export async function startAgent(args: readonly string[], options: { netns?: Netns } = {}): Promise<AgentProcess> {
  const argv = ['--import', 'tsx', CLI_ENTRY, 'agent', ...args, ...(args.includes('--mirrors') ? [] : ['--mirrors', 'off'])];
  const env = { ...process.env, SHOAL_LOG_LEVEL: process.env['SHOAL_LOG_LEVEL'] ?? 'warn' };
  const child = options.netns ? options.netns.spawn(process.execPath, argv, env) : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: ROOT });
  const line = await waitForLine(child, (l) => l.startsWith('{"ready":true'));
  const ready = JSON.parse(line) as { api: string };
  return { child, apiSocket: ready.api };
}
