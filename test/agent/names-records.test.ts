/**
 * MeshDnsRecords through the real resolver (no sockets): what a client would be answered for
 * a table and a set of routes, and that the answer follows the table at once. catalogRoutes'
 * VIPs for catalog-mode agents.
 */
import { describe, expect, it } from 'vitest';
import { MeshDnsRecords } from '../../src/agent/dns-records.js';
import { catalogRoutes } from '../../src/agent/names.js';
import { parseCatalog } from '../../src/agent/catalog.js';
import type { ServiceRoute } from '../../src/cluster/service-types.js';
import { DnsResolver } from '../../src/dns/resolver.js';
import { ManualClock } from '../../src/lib/clock.js';
import { CatalogError } from '../../src/lib/errors.js';
import { SeededRng } from '../../src/lib/rng.js';
import type { EndpointRow } from '../../src/mesh/endpoint-codec.js';
import { encodeRows } from '../../src/mesh/endpoint-codec.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { HOST_CLIENT, OVERLAY_CLIENT, answersOf, decode, query, rrs } from '../dns/fixtures.js';
import { row } from '../mesh/table-fixtures.js';

const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const T1 = 'k5q3n9x2m7c4v8b1z6a0s3d5f';
const T2 = 'p0o9i8u7y6t5r4e3w2q1a2s3d';
const T3 = 'l1k2j3h4g5f6d7s8a9z0x1c2v';

const WEB: ServiceRoute = {
  ID: 'svc1',
  Name: 'web',
  EndpointMode: 'vip',
  VirtualIP: '100.64.9.254',
  Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress', Name: 'http' }],
};
const DB: ServiceRoute = { ID: 'svc2', Name: 'db', EndpointMode: 'dnsrr', Ports: [] };

function task(node: string, taskId: string, overrides: Partial<EndpointRow>): EndpointRow {
  return row(node, taskId, { ports: [{ protocol: 'tcp', target: 80, hostPort: 24401 }], health: 'none', ...overrides });
}

function setup(options: { cached?: boolean } = {}) {
  const clock = new ManualClock();
  const table = new EndpointTable({ nodeName: 'n1', clock });
  const records = new MeshDnsRecords(table);
  records.setServices([WEB, DB]);
  // With the answer cache, answers must still follow the table at once (the time never moves here).
  const resolver = new DnsResolver({ records, rng: new SeededRng(1), ...(options.cached && { answerCache: { clock } }) });
  table.upsertLocal(task('n1', T1, { slot: 1, overlayAddress: IP('100.64.9.130') }));
  // A remote node's task arrives as a broadcast, as over the gossip.
  table.notifyMsg(encodeRows([{ row: task('n2', T2, { slot: 2, overlayAddress: IP('100.64.9.131') }), version: 1, deleted: false }]));
  table.upsertLocal(task('n1', T3, { service: 'db', slot: 1, overlayAddress: IP('100.64.9.140'), ports: [{ protocol: 'tcp', target: 5432, hostPort: 24402 }] }));
  table.upsertLocal(row('n1', 'n1', { service: 'lb-ingress', slot: 0, overlayAddress: IP('100.64.9.2'), ports: [], health: 'none' }));
  const ask = (name: string, type: Parameters<typeof query>[1] = 'A', client = HOST_CLIENT) => {
    const outcome = resolver.handle(query(name, type), client);
    if (outcome.kind !== 'response') throw new Error(`expected a local answer for ${name}, got ${outcome.kind}`);
    return decode(outcome.bytes);
  };
  return { table, records, ask };
}

describe('MeshDnsRecords over the endpoint table', () => {
  it('answers a vip service with its VIP: the mirror for host clients, the overlay address for overlay clients', () => {
    const { ask } = setup();
    expect(answersOf(ask('web'))).toEqual(['127.64.9.254']);
    expect(answersOf(ask('web', 'A', OVERLAY_CLIENT))).toEqual(['100.64.9.254']);
  });

  it('answers tasks.<service>, a dnsrr service and task names with task addresses, local and remote alike', () => {
    const { ask } = setup();
    expect((answersOf(ask('tasks.web')) as string[]).sort()).toEqual(['127.64.9.130', '127.64.9.131']);
    expect(answersOf(ask('db', 'A', OVERLAY_CLIENT))).toEqual(['100.64.9.140']);
    expect(answersOf(ask(`web.2.${T2}`))).toEqual(['127.64.9.131']);
  });

  it('answers PTR for the VIP and for tasks, in both address forms', () => {
    const { ask } = setup();
    expect(answersOf(ask('254.9.64.127.in-addr.arpa', 'PTR'), 'PTR')).toEqual(['web']);
    expect(answersOf(ask('130.9.64.100.in-addr.arpa', 'PTR', OVERLAY_CLIENT), 'PTR')).toEqual([`web.1.${T1}`]);
  });

  it('answers SRV by port number and by port name, and for a port only the rows declare', () => {
    const { ask } = setup();
    const srv = rrs(ask('_80._tcp.web', 'SRV').answers).map((a) => (a.data as { port: number; target: string }).target).sort();
    expect(srv).toEqual([`web.1.${T1}`, `web.2.${T2}`]);
    expect(rrs(ask('_http._tcp.web', 'SRV').answers)).toHaveLength(2);
    expect(rrs(ask('_5432._tcp.db', 'SRV').answers)).toHaveLength(1);
  });

  it('never answers the nodes’ own lb-ingress rows, and answers NXDOMAIN for names that do not exist', () => {
    const { ask } = setup();
    expect(ask('lb-ingress').rcode).toBe('NXDOMAIN');
    expect(ask('2.9.64.100.in-addr.arpa', 'PTR').rcode).toBe('NXDOMAIN');
    expect(ask('nosuch').rcode).toBe('NXDOMAIN');
    expect(ask(`web.9.${'a'.repeat(25)}`).rcode).toBe('NXDOMAIN');
  });

  it.each([false, true])('follows the table at once (answer cache %s): an unhealthy task leaves the answers, a new one joins, a deleted one goes', (cached) => {
    const { table, ask } = setup({ cached });
    expect((answersOf(ask('tasks.web')) as string[]).sort()).toEqual(['127.64.9.130', '127.64.9.131']);
    table.setHealth('web', T1, 'unhealthy');
    expect(answersOf(ask('tasks.web'))).toEqual(['127.64.9.131']);
    expect(ask('130.9.64.100.in-addr.arpa', 'PTR').rcode).toBe('NXDOMAIN');
    table.upsertLocal(task('n1', 'z9x8c7v6b5n4m3l2k1j0h9g8f', { slot: 3, overlayAddress: IP('100.64.9.132') }));
    expect((answersOf(ask('tasks.web')) as string[]).sort()).toEqual(['127.64.9.131', '127.64.9.132']);
    table.setHealth('web', T1, 'healthy');
    table.deleteLocal('web', 'z9x8c7v6b5n4m3l2k1j0h9g8f');
    expect((answersOf(ask('tasks.web')) as string[]).sort()).toEqual(['127.64.9.130', '127.64.9.131']);
    expect(ask('132.9.64.100.in-addr.arpa', 'PTR').rcode).toBe('NXDOMAIN');
  });

  it('answers a service whose rows came before its route as dnsrr, then by VIP once the route arrives', () => {
    const { table, records, ask } = setup();
    table.upsertLocal(task('n1', 'q1w2e3r4t5y6u7i8o9p0a1s2d', { service: 'api', overlayAddress: IP('100.64.9.150') }));
    expect(answersOf(ask('api'))).toEqual(['127.64.9.150']);
    records.setServices([WEB, DB, { ID: 'svc3', Name: 'API', EndpointMode: 'vip', VirtualIP: '100.64.9.252/24', Ports: [] }]);
    expect(answersOf(ask('api'))).toEqual(['127.64.9.252']);
    expect(answersOf(ask('252.9.64.127.in-addr.arpa', 'PTR'), 'PTR')).toEqual(['api']);
    records.setServices([WEB]);
    expect(ask('db').rcode).toBe('NOERROR'); // its rows still exist: dnsrr until they go
    table.deleteLocal('db', T3);
    expect(ask('db').rcode).toBe('NXDOMAIN');
  });

  it('writes catalog task IDs and global slots as DNS labels', () => {
    const { table, ask } = setup();
    table.upsertLocal(task('n1', 'whoami.1', { service: 'whoami', slot: 1, overlayAddress: IP('100.64.9.160') }));
    table.upsertLocal(task('n1', 'mon.node-1', { service: 'mon', slot: 0, overlayAddress: IP('100.64.9.161') }));
    expect(answersOf(ask('whoami.1.whoami-1'))).toEqual(['127.64.9.160']);
    expect(answersOf(ask('161.9.64.100.in-addr.arpa', 'PTR'), 'PTR')).toEqual(['mon.n1.mon-node-1']);
  });
});

describe('catalogRoutes', () => {
  it('gives every catalog service a VIP from the top of the subnet down, skipping task addresses', () => {
    const catalog = parseCatalog(`
network: { subnet: 100.64.9.0/28 }
services:
  web: { image: shoal/whoami, ports: ["24450:80"] }
  api: { image: shoal/whoami }
nodes:
  n1:
    - { service: web, replicas: 5 }
`);
    // /28: tasks take .8 upward (.8–.12), VIPs .14 downward; the broadcast .15 is never used.
    const routes = catalogRoutes(catalog);
    expect(routes.map((r) => [r.Name, r.EndpointMode, r.VirtualIP])).toEqual([
      ['web', 'vip', '100.64.9.14'],
      ['api', 'vip', '100.64.9.13'],
    ]);
    expect(routes[0]!.Ports).toEqual([{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 24450, PublishMode: 'ingress' }]);
  });

  it('never gives a VIP an address a task holds: a catalog whose upper half cannot hold tasks and VIPs is refused', () => {
    const full = parseCatalog(`
network: { subnet: 100.64.9.0/28 }
services:
  web: { image: shoal/whoami }
  api: { image: shoal/whoami }
nodes:
  n1:
    - { service: web, replicas: 6 }
`);
    expect(() => catalogRoutes(full)).toThrow(CatalogError);
    expect(() => catalogRoutes(full)).toThrow(/no room for a VIP for service api/);
    const tight = parseCatalog(`
network: { subnet: 100.64.9.0/28 }
services:
  web: { image: shoal/whoami }
nodes:
  n1:
    - { service: web, replicas: 7 }
`);
    // Tasks .8–.14 fill the upper half: .14 is a task's, so no VIP fits.
    expect(() => catalogRoutes(tight)).toThrow(/no room for a VIP for service web/);
  });
});
