import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';

/** A row of `node`'s task `taskId` of service `web`, with overrides. */
export function row(node: string, taskId: string, overrides: Partial<EndpointRow> = {}): EndpointRow {
  return {
    service: 'web',
    taskId,
    slot: 1,
    node,
    overlayAddress: 0x64400005,
    vni: 4096,
    vtepAddress: 0x7f000002,
    vtepPort: 4789,
    hostAddress: 0x7f000001,
    ports: [{ protocol: 'tcp', target: 80, hostPort: 18080 }],
    health: 'healthy',
    ...overrides,
  };
}
