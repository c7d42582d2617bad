/**
 * The convergence wait of `shoal service create/update/scale` (spec §7) against a scripted
 * control plane and a manual clock: each poll (GET service, GET up-to-date tasks, GET nodes)
 * sees the next scripted state, and what the user reads is asserted line by line — the
 * verify countdown, a task failure after convergence, a paused update, an early "completed",
 * global services, rollbacks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../src/agent/control-plane.js';
import type { ApiBackend } from '../../src/api/docker.js';
import { type ApiServer, serveApi } from '../../src/api/server.js';
import { type ServiceCliIo, waitOnService } from '../../src/cli/commands/service.js';

interface Poll {
  readonly replicas?: number;
  readonly global?: boolean;
  readonly update?: { State: string; Message: string };
  readonly monitorNs?: number;
  /** [slot or node, desired state, observed state, error?] */
  readonly tasks: readonly (readonly [string | number, string, string, string?])[];
}

const NODES = ['nodeaaaaaaaaaaaaaaaaaaaa1', 'nodeaaaaaaaaaaaaaaaaaaaa2'];

describe('the convergence wait', () => {
  let tmp: string;
  let server: ApiServer;
  let script: readonly Poll[] = [];
  let polls = 0;

  // The poll in progress: getService starts each one.
  const current = (): Poll => script[Math.min(Math.max(polls - 1, 0), script.length - 1)]!;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-progress-'));
    const control: Partial<ControlPlane> = {
      getService: async () => {
        polls++;
        const p = current();
        return {
          ID: 'svc1',
          Version: { Index: 1 },
          Spec: { Name: 'web', Mode: p.global ? { Global: {} } : { Replicated: { Replicas: p.replicas ?? 2 } }, ...(p.monitorNs ? { UpdateConfig: { Monitor: p.monitorNs } } : {}), TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } } },
          ...(p.update ? { UpdateStatus: p.update } : {}),
        } as never;
      },
      listTasks: async () =>
        current().tasks.map(([key, desired, state, err], i) => ({
          ID: `task${i}`,
          ServiceID: 'svc1',
          Slot: typeof key === 'number' ? key : 0,
          NodeID: typeof key === 'string' ? key : NODES[i % 2]!,
          DesiredState: desired,
          Status: { State: state, ...(err ? { Err: err } : {}) },
        })) as never,
      listNodes: async () => NODES.map((ID) => ({ ID, Status: { State: 'ready' } })) as never,
    };
    const backend: ApiBackend = {
      nodeName: 'n',
      cluster: { swarmHeader: () => 'active/manager', info: async () => ({}) as never, control: () => control as ControlPlane, init: async () => '', join: async () => undefined, leave: async () => undefined },
    };
    server = await serveApi(backend, path.join(tmp, 'api.sock'));
  });

  afterAll(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  /** Runs the wait on `s` with a manual clock (each sleep moves it on); returns stdout lines and the error, if any. */
  const wait = async (s: readonly Poll[], tty = false): Promise<{ lines: string[]; error?: string; raw: string }> => {
    script = s;
    polls = 0;
    let now = 0;
    let out = '';
    const io: ServiceCliIo = { out: (t) => void (out += t), err: () => undefined, fail: () => undefined, sleep: async (ms) => void (now += ms), now: () => now, interrupt: new AbortController().signal, tty };
    try {
      await waitOnService(server.socketPath, 'web', io, false);
      return { lines: out.trimEnd().split('\n'), raw: out };
    } catch (error) {
      return { lines: out.trimEnd().split('\n'), error: (error as Error).message, raw: out };
    }
  };
  const BAR = `[${'='.repeat(50)}>]`;

  it('counts down the verify period once converged, then says converged', async () => {
    const { lines } = await wait([
      { tasks: [[1, 'running', 'pending'], [2, 'running', 'assigned']] },
      { tasks: [[1, 'running', 'running'], [2, 'running', 'running']] },
    ]);
    expect(lines).toEqual([
      'overall progress: 0 out of 2 tasks',
      '1/2:',
      '2/2:',
      `1/2: pending   [${'='.repeat(16)}>${' '.repeat(34)}]`,
      `2/2: assigned  [${'='.repeat(22)}>${' '.repeat(28)}]`,
      `1/2: running   ${BAR}`,
      `2/2: running   ${BAR}`,
      'overall progress: 2 out of 2 tasks',
      'verify: Waiting 5 seconds to verify that tasks are stable...',
      'verify: Waiting 4 seconds to verify that tasks are stable...',
      'verify: Waiting 3 seconds to verify that tasks are stable...',
      'verify: Waiting 2 seconds to verify that tasks are stable...',
      'verify: Waiting 1 seconds to verify that tasks are stable...',
      'verify: Service web converged',
    ]);
  });

  it('redraws each line in place on a terminal, leaving docker\'s final screen', async () => {
    const { raw } = await wait(
      [
        { monitorNs: 2e9, tasks: [[1, 'running', 'pending'], [2, 'running', 'assigned']] },
        { monitorNs: 2e9, tasks: [[1, 'running', 'running'], [2, 'running', 'running']] },
      ],
      true,
    );
    expect(raw).toContain('\x1b[');
    expect(screen(raw)).toEqual(['overall progress: 2 out of 2 tasks', `1/2: running   ${BAR}`, `2/2: running   ${BAR}`, 'verify: Service web converged']);
  });

  it('reports a task failure after convergence and starts the verify period again', async () => {
    const running: Poll = { monitorNs: 400e6, tasks: [[1, 'running', 'running'], [2, 'running', 'running']] };
    const { lines } = await wait([running, { ...running, tasks: [[1, 'running', 'running'], [2, 'running', 'failed', 'task: non-zero exit (1)']] }, running]);
    expect(lines).toContain('verify: Detected task failure');
    expect(lines).toContain(`2/2: failed    ${BAR} task: non-zero exit (1)`);
    expect(lines.at(-1)).toBe('verify: Service web converged');
  });

  it('fails on a paused update with the manager\'s message', async () => {
    const { error } = await wait([{ update: { State: 'paused', Message: 'update paused due to failure or early termination of task x' }, tasks: [] }]);
    expect(error).toBe('service update paused: update paused due to failure or early termination of task x');
  });

  it('stops at once when the update completed before convergence was seen (as docker)', async () => {
    const { lines, error } = await wait([{ tasks: [[1, 'running', 'starting']] }, { update: { State: 'completed', Message: 'update completed' }, tasks: [] }]);
    expect(error).toBeUndefined();
    expect(lines).toEqual(['overall progress: 0 out of 2 tasks', '1/2:', '2/2:', `1/2: starting  [${'='.repeat(44)}>${' '.repeat(6)}]`]);
  });

  it('waits for a global service\'s tasks, one bar per node', async () => {
    const { lines } = await wait([
      { global: true, monitorNs: 100e6, tasks: [] },
      { global: true, monitorNs: 100e6, tasks: [[NODES[0]!, 'running', 'running'], [NODES[1]!, 'running', 'preparing']] },
      { global: true, monitorNs: 100e6, tasks: [[NODES[0]!, 'running', 'running'], [NODES[1]!, 'running', 'running']] },
    ]);
    expect(lines.slice(0, 2)).toEqual(['overall progress: waiting for new tasks', 'overall progress: 0 out of 2 tasks']);
    expect(lines).toContain(`${NODES[1]!.slice(0, 12)}: preparing [${'='.repeat(33)}>${' '.repeat(17)}]`);
    expect(lines).toContain('overall progress: 2 out of 2 tasks');
    expect(lines.at(-1)).toBe('verify: Service web converged');
  });

  it('shows a rollback as docker does', async () => {
    const { lines } = await wait([
      { monitorNs: 100e6, update: { State: 'rollback_started', Message: 'manually requested rollback' }, tasks: [[1, 'running', 'running'], [2, 'running', 'starting']] },
      { monitorNs: 100e6, update: { State: 'rollback_started', Message: 'manually requested rollback' }, tasks: [[1, 'running', 'running'], [2, 'running', 'running']] },
    ]);
    expect(lines.slice(0, 2)).toEqual(['rollback: manually requested rollback', 'overall progress: rolling back update: 0 out of 2 tasks']);
    expect(lines).toContain('overall progress: rolling back update: 2 out of 2 tasks');
    expect(lines.at(-1)).toBe('verify: Service web converged');
  });
});

/** What a terminal shows after `text`: lines, `\r`, and the cursor-up/down and clear-line sequences docker uses. */
function screen(text: string): string[] {
  const rows: string[] = [''];
  let row = 0;
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const esc = text[i] === '\x1b' ? /^.\[(\d*)([ABK])/.exec(text.slice(i)) : null;
    if (esc) {
      const n = Number(esc[1] || '1');
      if (esc[2] === 'A') row -= n;
      else if (esc[2] === 'B') row += n;
      else rows[row] = '';
      while (rows.length <= row) rows.push('');
      i += esc[0].length - 1;
      continue;
    }
    const c = text[i]!;
    if (c === '\n') {
      row++;
      col = 0;
      while (rows.length <= row) rows.push('');
    } else if (c === '\r') col = 0;
    else {
      const line = rows[row]!.padEnd(col);
      rows[row] = line.slice(0, col) + c + line.slice(col + 1);
      col++;
    }
  }
  return rows.filter((r, i) => r !== '' || i < rows.length - 1);
}
