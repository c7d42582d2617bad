/** Helpers for real-socket mesh tests on 127.0.0.0/8. */
import { request } from 'node:http';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';

export const LOOPBACK = 0x7f000001;

/** An endpoint row of a task of `service` on `node`, serving target port 80 at 127.0.0.1:hostPort. */
export function taskRow(service: string, taskId: string, node: string, hostPort: number, protocol: 'tcp' | 'udp' = 'tcp'): EndpointRow {
  return {
    service,
    taskId,
    slot: 1,
    node,
    overlayAddress: 0x64400000 + hostPort % 250 + 2,
    vni: 4096,
    vtepAddress: LOOPBACK,
    vtepPort: 4789,
    hostAddress: LOOPBACK,
    ports: [{ protocol, target: 80, hostPort }],
    health: 'none',
  };
}

export function newTable(node = 'n1', clock: ConstructorParameters<typeof EndpointTable>[0]['clock']): EndpointTable {
  return new EndpointTable({ nodeName: node, clock });
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** One GET on a fresh connection (no keep-alive): each request is a new downstream connection. */
export function httpGet(host: string, port: number, path = '/json', timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls `cond` every 10 ms until true, failing after `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
