/**
 * Minimal service and task records for tests of the manager's pieces (networks, dispatcher):
 * every field the contract requires, with overrides for what a test is about.
 */
import type { NetworkRecord, ServiceRecord, TaskRecord, TaskState } from '../../src/cluster/service-types.js';

export const T0 = '2026-01-01T00:00:00.000Z';

export function serviceRecord(id: string, name: string, over: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: T0,
    UpdatedAt: T0,
    Spec: { Name: name, Labels: {}, TaskTemplate: { ContainerSpec: { Image: 'shoal/whoami' } }, Mode: { Replicated: { Replicas: 1 } } },
    Endpoint: { Spec: {} },
    ...over,
  };
}

export function taskRecord(
  id: string,
  o: { serviceId?: string; nodeId?: string; slot?: number; state?: TaskState; desired?: TaskState; attach?: { network: NetworkRecord; addr: string } },
): TaskRecord {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: T0,
    UpdatedAt: T0,
    Labels: {},
    Spec: { ContainerSpec: { Image: 'shoal/whoami' } },
    ServiceID: o.serviceId ?? 'svc1',
    Slot: o.slot ?? 1,
    NodeID: o.nodeId ?? 'node1',
    Status: { Timestamp: T0, State: o.state ?? 'running', Message: '', PortStatus: {} },
    DesiredState: o.desired ?? 'running',
    ...(o.attach ? { NetworksAttachments: [{ Network: o.attach.network, Addresses: [o.attach.addr] }] } : {}),
  };
}
