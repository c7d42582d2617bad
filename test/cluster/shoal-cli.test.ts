/**
 * `shoal swarm …` and `shoal node …` against real agents on 127.0.0.49 (manager, 2377 on
 * 23779) and 127.0.0.40 (worker), unique to this file: the same verbs, columns and messages
 * as docker's, and a worker removed with `node rm --force` that finds itself out of the swarm.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, CLI_ENTRY, startAgent } from '../helpers/agent.js';
import { stopProcess } from '../helpers/netns.js';

const DATA_PATH_PORT = 23787;

describe('shoal swarm and node verbs', () => {
  let tmp: string;
  const agents: AgentProcess[] = [];
  const sock = (n: number): string => path.join(tmp, `${n}.sock`);

  const shoal = (n: number, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args, '--api-socket', sock(n)], { timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? 1 : 0, stdout, stderr }),
      );
    });

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-cli-swarm-'));
    for (const n of [49, 40]) {
      const a = await startAgent([
        '--node-name', `cli-${n}`, '--advertise-addr', `127.0.0.${n}`, '--data-path-port', String(DATA_PATH_PORT),
        '--overlay-addr', `100.64.2.${n}/24`, '--api-socket', sock(n), '--data-dir', path.join(tmp, `data-${n}`),
      ]);
      a.child.stdout?.resume();
      a.child.stderr?.resume();
      agents.push(a);
    }
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => stopProcess(a.child)));
    await rm(tmp, { recursive: true, force: true });
  });

  it('init, join-token, join, node ls, update, inspect, rm, leave', async () => {
    const init = await shoal(49, ['swarm', 'init', '--advertise-addr', '127.0.0.49', '--listen-addr', '127.0.0.49:23779', '--dispatcher-heartbeat', '2']);
    expect(init.stderr).toBe('');
    expect(init.stdout).toMatch(/^Swarm initialized: current node \([0-9a-z]{25}\) is now a manager\.\n\nTo add a worker to this swarm, run the following command:\n\n {4}shoal swarm join --token SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} 127\.0\.0\.49:23779\n\n/);

    const token = (await shoal(49, ['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
    expect(token).toMatch(/^SWMTKN-1-/);
    expect((await shoal(40, ['swarm', 'join', '--token', token, '--listen-addr', '127.0.0.40:23778', '127.0.0.49:23779'])).stdout).toBe('This node joined a swarm as a worker.\n');

    const ls = (await shoal(49, ['node', 'ls'])).stdout.split('\n');
    expect(ls[0]).toBe('ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION');
    expect(ls[1]).toMatch(/^[0-9a-z]{25}\s+cli-40\s+Ready\s+Active\s+0\.1\.0$/);
    expect(ls[2]).toMatch(/^[0-9a-z]{25} \*\s+cli-49\s+Ready\s+Active\s+Leader\s+0\.1\.0$/);

    expect((await shoal(49, ['node', 'update', '--availability', 'pause', '--label-add', 'disk=ssd', 'cli-40'])).stdout).toBe('cli-40\n');
    const [inspected] = JSON.parse((await shoal(49, ['node', 'inspect', 'cli-40'])).stdout) as { Spec: unknown }[];
    expect(inspected?.Spec).toEqual({ Labels: { disk: 'ssd' }, Role: 'worker', Availability: 'pause' });
    const missing = await shoal(49, ['node', 'update', '--label-rm', 'nope', 'cli-40']);
    expect(missing).toMatchObject({ code: 1, stderr: "key nope doesn't exist in node's labels\n" });

    const fromWorker = await shoal(40, ['node', 'ls']);
    expect(fromWorker.code).toBe(1);
    expect(fromWorker.stderr).toMatch(/^Error response from daemon: This node is not a swarm manager\. Worker nodes can't be used/);

    expect((await shoal(49, ['swarm', 'update', '--task-history-limit', '3'])).stdout).toBe('Swarm updated.\n');
    const [swarm] = JSON.parse((await shoal(49, ['swarm', 'inspect'])).stdout) as { Spec: { Dispatcher: { HeartbeatPeriod: number }; Orchestration: unknown }; TLSInfo: { TrustRoot: string } }[];
    expect(swarm?.Spec.Dispatcher.HeartbeatPeriod).toBe(2_000_000_000);
    expect(swarm?.Spec.Orchestration).toEqual({ TaskHistoryRetentionLimit: 3 });
    expect((await shoal(49, ['swarm', 'ca'])).stdout).toBe(swarm?.TLSInfo.TrustRoot);

    // A live worker removed by force learns it at its next heartbeat and leaves the swarm.
    expect((await shoal(49, ['node', 'rm', 'cli-40'])).stderr).toMatch(/^Error response from daemon: node [0-9a-z]{25} is not down and can't be removed\n$/);
    expect((await shoal(49, ['node', 'rm', '--force', 'cli-40'])).stdout).toBe('cli-40\n');
    let left = await shoal(40, ['swarm', 'leave']);
    for (let i = 0; i < 20 && left.code === 0; i++) {
      // Until the worker has heard, `swarm leave` still works; once it has, it is refused.
      left = await shoal(40, ['swarm', 'leave']);
    }
    expect(left.stderr).toBe('Error response from daemon: This node is not part of a swarm\n');

    expect((await shoal(49, ['swarm', 'leave', '--force'])).stdout).toBe('Node left the swarm.\n');
  });
});
