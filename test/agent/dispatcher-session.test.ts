/**
 * The agent's dispatcher session against a scripted link (the manager's side is tested in
 * test/cluster/dispatcher.test.ts; the whole path in test/interop/docker-services.test.ts):
 * each new set reaches the executor once, a failing manager is polled again without losing the
 * tasks, leaving the swarm stops everything, and reports survive a manager that is down.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DispatcherLink } from '../../src/agent/cluster-node.js';
import { DispatcherSession, EMPTY_ASSIGNMENTS } from '../../src/agent/dispatcher-session.js';
import type { AssignmentSet, TaskLogLine, TaskStatusUpdate } from '../../src/cluster/service-types.js';
import { silentLogger } from '../../src/lib/logger.js';

const set = (index: number, tasks: string[]): AssignmentSet => ({
  ...EMPTY_ASSIGNMENTS,
  Index: index,
  Tasks: tasks.map((id) => ({ TaskID: id, ServiceID: 's', ServiceName: 'web', Slot: 1, DesiredState: 'running', Spec: { ContainerSpec: { Image: 'shoal/whoami' } }, Ports: [], OverlayAddress: '100.64.0.130' })),
});

/** A link whose polls answer from a queue of scripted outcomes; once it is empty, polls wait until aborted. */
function scriptedLink(outcomes: (AssignmentSet | Error)[]): DispatcherLink & { polls: number[]; reports: TaskStatusUpdate[][]; lines: TaskLogLine[][]; failReports: boolean } {
  const link = {
    nodeId: 'node1',
    polls: [] as number[],
    reports: [] as TaskStatusUpdate[][],
    lines: [] as TaskLogLine[][],
    failReports: false,
    waitAssignments: (since: number, _timeoutMs: number, signal?: AbortSignal): Promise<AssignmentSet> => {
      link.polls.push(since);
      const next = outcomes.shift();
      if (next instanceof Error) return Promise.reject(next);
      if (next) return Promise.resolve(next);
      return new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    },
    reportStatus: async (updates: readonly TaskStatusUpdate[]): Promise<void> => {
      if (link.failReports) throw new Error('manager down');
      link.reports.push([...updates]);
    },
    appendLogs: async (lines: readonly TaskLogLine[]): Promise<void> => {
      if (link.failReports) throw new Error('manager down');
      link.lines.push([...lines]);
    },
  };
  return link;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`never: ${what}`);
}

const update = (id: string, state: TaskStatusUpdate['State']): TaskStatusUpdate => ({ TaskID: id, State: state, Message: state, Timestamp: '2026-12-07T00:00:00.000Z' });

describe('DispatcherSession', () => {
  const sessions: DispatcherSession[] = [];
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.close()));
  });

  it('hands each new set to the executor once, and polls from the last Index it saw', async () => {
    const link = scriptedLink([set(3, ['a']), set(3, ['a']), set(5, ['a', 'b'])]);
    const seen: AssignmentSet[] = [];
    const session = new DispatcherSession({ link: () => link, onAssignments: (s) => seen.push(s), logger: silentLogger });
    sessions.push(session);
    session.start();
    await until(() => link.polls.length === 4, 'four polls');
    expect(seen.map((s) => s.Index)).toEqual([3, 5]);
    expect(link.polls).toEqual([-1, 3, 3, 5]);
  });

  it('keeps the tasks when the manager cannot be reached, and polls again', async () => {
    const link = scriptedLink([set(1, ['a']), new Error('manager down'), set(2, ['a', 'b'])]);
    const seen: AssignmentSet[] = [];
    const session = new DispatcherSession({ link: () => link, onAssignments: (s) => seen.push(s), logger: silentLogger });
    sessions.push(session);
    session.start();
    await until(() => seen.length === 2, 'the set after the failure');
    expect(seen.map((s) => s.Tasks.map((t) => t.TaskID))).toEqual([['a'], ['a', 'b']]);
  });

  it('hands an empty set to the executor when the node leaves the swarm', async () => {
    let link: DispatcherLink | undefined = scriptedLink([set(1, ['a'])]);
    const seen: AssignmentSet[] = [];
    const session = new DispatcherSession({ link: () => link, onAssignments: (s) => seen.push(s), logger: silentLogger });
    sessions.push(session);
    session.start();
    await until(() => seen.length === 1, 'the first set');
    link = undefined;
    await until(() => seen.length === 2, 'the empty set');
    expect(seen[1]!.Tasks).toEqual([]);
  });

  it('sends status reports and log lines in batches, and again after the manager comes back', async () => {
    const link = scriptedLink([]);
    const session = new DispatcherSession({ link: () => link, onAssignments: () => undefined, logger: silentLogger });
    sessions.push(session);
    session.start();
    session.report(update('a', 'starting'));
    session.report(update('a', 'running'));
    session.logs([{ TaskID: 'a', Stream: 'stdout', Timestamp: '2026-12-07T00:00:00.000000000Z', Line: 'hello' }]);
    await until(() => link.reports.length === 1 && link.lines.length === 1, 'the first batch');
    expect(link.reports[0]!.map((u) => u.State)).toEqual(['starting', 'running']);
    link.failReports = true;
    session.report(update('b', 'failed'));
    await new Promise((r) => setTimeout(r, 200));
    link.failReports = false;
    await until(() => link.reports.length === 2, 'the report kept while the manager was down');
    expect(link.reports[1]!.map((u) => `${u.TaskID}:${u.State}`)).toEqual(['b:failed']);
  });
});
