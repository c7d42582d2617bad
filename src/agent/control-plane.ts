/**
 * The control calls the Docker API makes on a manager (swarm, nodes, and from issue 8 services,
 * tasks, networks, logs): answered by the leader's Manager in process (`localControl`), or
 * forwarded by another manager to the leader over mTLS as `{Method, Args}` and checked there
 * like any other untrusted input (`callControl`).
 */
import { InvalidArgumentError } from '../lib/errors.js';
import type { Manager, NodeFilters } from '../cluster/manager.js';
import type { NodeView, SwarmView } from '../cluster/types.js';

/** The control calls the Docker API makes on a manager; the leader answers them, other managers forward them. */
export interface ControlPlane {
  swarm(): Promise<SwarmView>;
  updateSwarm(version: number, spec: unknown, rotate: { worker: boolean; manager: boolean }): Promise<void>;
  listNodes(filters: NodeFilters): Promise<NodeView[]>;
  getNode(ref: string): Promise<NodeView>;
  updateNode(ref: string, version: number, spec: unknown): Promise<void>;
  removeNode(ref: string, force: boolean): Promise<void>;
}


export function localControl(manager: Manager): ControlPlane {
  return {
    swarm: async () => manager.swarm(),
    updateSwarm: (version, spec, rotate) => manager.updateSwarm(version, spec, rotate),
    listNodes: async (filters) => manager.listNodes(filters),
    getNode: async (ref) => manager.getNode(ref),
    updateNode: (ref, version, spec) => manager.updateNode(ref, version, spec),
    removeNode: (ref, force) => manager.removeNode(ref, force),
  };
}

/** A forwarded control call, checked like any other untrusted input. */
export async function callControl(control: ControlPlane, method: unknown, args: unknown): Promise<unknown> {
  if (!Array.isArray(args)) throw new InvalidArgumentError('Args must be an array');
  const str = (v: unknown): string => {
    if (typeof v !== 'string') throw new InvalidArgumentError('expected a string argument');
    return v;
  };
  const int = (v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidArgumentError('expected an integer argument');
    return v;
  };
  switch (method) {
    case 'swarm':
      return control.swarm();
    case 'updateSwarm': {
      const rotate = asObject(args[2], 'rotate');
      return control.updateSwarm(int(args[0]), args[1], { worker: rotate['worker'] === true, manager: rotate['manager'] === true });
    }
    case 'listNodes': {
      const filters = asObject(args[0] ?? {}, 'filters');
      const clean: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(filters)) clean[k] = Array.isArray(v) ? v.map(str) : [];
      return control.listNodes(clean);
    }
    case 'getNode':
      return control.getNode(str(args[0]));
    case 'updateNode':
      return control.updateNode(str(args[0]), int(args[1]), args[2]);
    case 'removeNode':
      return control.removeNode(str(args[0]), args[1] === true);
    default:
      throw new InvalidArgumentError(`unknown control method ${JSON.stringify(method)}`);
  }
}


/** The control plane of a manager that does not hold the store: every call forwarded to the leader. */
export function forwardingControl(forward: (method: string, args: unknown[]) => Promise<unknown>): ControlPlane {
  return {
    swarm: () => forward('swarm', []) as Promise<SwarmView>,
    updateSwarm: (version, spec, rotate) => forward('updateSwarm', [version, spec, rotate]) as Promise<void>,
    listNodes: (filters) => forward('listNodes', [filters]) as Promise<NodeView[]>,
    getNode: (ref) => forward('getNode', [ref]) as Promise<NodeView>,
    updateNode: (ref, version, spec) => forward('updateNode', [ref, version, spec]) as Promise<void>,
    removeNode: (ref, force) => forward('removeNode', [ref, force]) as Promise<void>,
  };
}

export function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}
