/**
 * Placement as a table: spread, the filters in swarmkit's order, and the "no suitable node"
 * explanations a user reads in `docker service ps`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type NodeInfo, constraintMet, parseConstraint, schedule } from '../../src/cluster/scheduler.js';
import type { EndpointPort, ServiceRecord, TaskRecord, TaskState } from '../../src/cluster/service-types.js';
import { InvalidArgumentError } from '../../src/lib/errors.js';
import { PROPERTY_RUNS } from '../helpers/fuzz.js';

const T = '2026-11-25T12:00:00.000Z';

function node(id: string, over: Partial<NodeInfo> = {}): NodeInfo {
  return { ID: id, Hostname: `host-${id}`, Role: 'worker', Availability: 'active', State: 'ready', Labels: {}, EngineLabels: {}, Platform: { OS: 'linux', Architecture: 'x86_64' }, ...over };
}

function service(id: string, placement: { Constraints?: string[]; MaxReplicas?: number } = {}, ports: EndpointPort[] = []): ServiceRecord {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: T,
    UpdatedAt: T,
    Spec: { Name: id, Labels: {}, Mode: { Replicated: { Replicas: 1 } }, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' }, Placement: placement } },
    Endpoint: { Spec: {}, Ports: ports },
  };
}

function task(id: string, serviceId: string, nodeId = '', state: TaskState = 'pending', desired: TaskState = 'running'): TaskRecord {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: T,
    UpdatedAt: T,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'shoal/whoami' } },
    ServiceID: serviceId,
    Slot: 1,
    NodeID: nodeId,
    Status: { Timestamp: T, State: state, Message: '', PortStatus: {} },
    DesiredState: desired,
  };
}

const services = (...s: ServiceRecord[]): Map<string, ServiceRecord> => new Map(s.map((x) => [x.ID, x]));

describe('schedule', () => {
  it('spreads a service over the nodes: 1/1/1, then the node with fewest tasks overall', () => {
    const placed = schedule({
      pending: [task('t1', 's'), task('t2', 's'), task('t3', 's'), task('t4', 's')],
      tasks: [task('other', 'x', 'b', 'running')],
      services: services(service('s'), service('x')),
      nodes: [node('a'), node('b'), node('c')],
    });
    // a and c have no tasks; b runs one of x: the first three go a, c, b; the fourth to a (ties → lowest ID, fewest overall).
    expect(placed).toEqual([
      { taskId: 't1', nodeId: 'a' },
      { taskId: 't2', nodeId: 'c' },
      { taskId: 't3', nodeId: 'b' },
      { taskId: 't4', nodeId: 'a' },
    ]);
  });

  it('counts only tasks that occupy a node (ended or shut down ones free it)', () => {
    const placed = schedule({
      pending: [task('t1', 's')],
      tasks: [task('old1', 's', 'a', 'failed'), task('old2', 's', 'a', 'running', 'shutdown'), task('live', 's', 'b', 'running')],
      services: services(service('s')),
      nodes: [node('a'), node('b')],
    });
    expect(placed).toEqual([{ taskId: 't1', nodeId: 'a' }]);
  });

  it.each([
    { what: 'constraints no node meets', constraints: ['node.labels.zone==eu'], nodes: [node('a'), node('b'), node('c')], err: 'no suitable node (scheduling constraints not satisfied on 3 nodes)' },
    { what: 'one node', constraints: ['node.role==manager'], nodes: [node('a')], err: 'no suitable node (scheduling constraints not satisfied on 1 node)' },
    {
      what: 'a drained node, then constraints',
      constraints: ['node.hostname==nowhere'],
      nodes: [node('a', { Availability: 'drain' }), node('b'), node('c')],
      err: 'no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 2 nodes)',
    },
    { what: 'down and paused nodes', constraints: [], nodes: [node('a', { State: 'down' }), node('b', { Availability: 'pause' })], err: 'no suitable node (2 nodes not available for new tasks)' },
    { what: 'no nodes at all', constraints: [], nodes: [], err: 'no suitable node' },
  ])('leaves a task pending with swarmkit’s explanation: $what', ({ constraints, nodes, err }) => {
    expect(schedule({ pending: [task('t1', 's')], tasks: [], services: services(service('s', { Constraints: constraints })), nodes })).toEqual([{ taskId: 't1', error: err }]);
  });

  it('honours constraints on role, hostname, id, node and engine labels, == and !=', () => {
    const nodes = [node('a', { Role: 'manager' }), node('b', { Labels: { zone: 'eu' } }), node('c', { EngineLabels: { disk: 'ssd' } })];
    const place = (constraints: string[]): string[] =>
      schedule({ pending: [task('t', 's')], tasks: [], services: services(service('s', { Constraints: constraints })), nodes }).map((p) => ('nodeId' in p ? p.nodeId : p.error));
    expect(place(['node.role==manager'])).toEqual(['a']);
    expect(place(['node.role!=manager', 'node.hostname!=host-b'])).toEqual(['c']);
    expect(place(['node.id==b'])).toEqual(['b']);
    expect(place(['node.labels.zone==EU'])).toEqual(['b']);
    expect(place(['node.labels.zone!=eu', 'node.role==worker'])).toEqual(['c']);
    expect(place(['engine.labels.disk==ssd'])).toEqual(['c']);
    expect(place(['something.else==x'])).toEqual(['no suitable node (scheduling constraints not satisfied on 3 nodes)']);
  });

  it('refuses more than MaxReplicas of a service per node', () => {
    const placed = schedule({
      pending: [task('t1', 's'), task('t2', 's'), task('t3', 's')],
      tasks: [],
      services: services(service('s', { MaxReplicas: 1 })),
      nodes: [node('a'), node('b')],
    });
    expect(placed).toEqual([
      { taskId: 't1', nodeId: 'a' },
      { taskId: 't2', nodeId: 'b' },
      { taskId: 't3', error: 'no suitable node (max replicas per node limit exceed)' },
    ]);
  });

  it('never puts two tasks publishing the same host-mode port on one node', () => {
    const hostPort: EndpointPort = { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' };
    const placed = schedule({
      pending: [task('t2', 's'), task('t3', 's')],
      tasks: [task('t1', 's', 'a', 'running')],
      services: services(service('s', {}, [hostPort])),
      nodes: [node('a'), node('b')],
    });
    expect(placed).toEqual([
      { taskId: 't2', nodeId: 'b' },
      { taskId: 't3', error: 'no suitable node (host-mode port already in use on 2 nodes)' },
    ]);
  });

  it('places a task with a preset node (global) only there', () => {
    const t = { ...task('g', 's'), NodeID: 'b' };
    expect(schedule({ pending: [t], tasks: [], services: services(service('s')), nodes: [node('a'), node('b')] })).toEqual([{ taskId: 'g', nodeId: 'b' }]);
    expect(schedule({ pending: [t], tasks: [], services: services(service('s')), nodes: [node('a'), node('b', { State: 'down' })] })).toEqual([
      { taskId: 'g', error: 'no suitable node (1 node not available for new tasks)' },
    ]);
  });
});

describe('schedule (properties)', () => {
  it('spreads any number of one service’s tasks over equal nodes within one of each other', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 40 }), (nodeCount, taskCount) => {
        const nodes = Array.from({ length: nodeCount }, (_, i) => node(`n${i}`));
        const pending = Array.from({ length: taskCount }, (_, i) => task(`t${i}`, 's'));
        const placed = schedule({ pending, tasks: [], services: services(service('s')), nodes });
        const counts = new Map(nodes.map((n) => [n.ID, 0]));
        for (const p of placed) if ('nodeId' in p) counts.set(p.nodeId, counts.get(p.nodeId)! + 1);
        expect(placed.every((p) => 'nodeId' in p)).toBe(true);
        expect(Math.max(...counts.values()) - Math.min(...counts.values())).toBeLessThanOrEqual(1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseConstraint', () => {
  it.each([
    ['node.role==manager', { key: 'node.role', operator: '==', value: 'manager' }],
    ['node.labels.zone != eu-west', { key: 'node.labels.zone', operator: '!=', value: 'eu-west' }],
  ])('parses %s', (text, expected) => {
    expect(parseConstraint(text)).toEqual(expected);
  });

  it.each(['node.role=manager', 'node.role', '==manager', 'node.role==', 'node role==x', 'a==b==c'])('refuses %j', (text) => {
    expect(() => parseConstraint(text)).toThrow(InvalidArgumentError);
  });

  it('either parses or throws InvalidArgumentError, never anything else', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const c = parseConstraint(text);
          expect(typeof constraintMet(c, node('a'))).toBe('boolean');
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidArgumentError);
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});
