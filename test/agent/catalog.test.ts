import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readdirSync } from 'node:fs';
import { CatalogError } from '../../src/lib/errors.js';
import { catalogTaskRow, loadCatalog, parseCatalog, parseDuration, publishedPorts, tasksOf } from '../../src/agent/catalog.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const GOOD = `
network:
  subnet: 100.64.1.0/24
  vni: 4097
services:
  web:
    image: shoal/whoami
    environment: { GREETING: hi, DEBUG: 1 }
    ports:
      - "8080:80"
      - { published: 8053, target: 53, protocol: udp }
    healthcheck: { type: http, path: /health, interval: 1m30s, timeout: 500ms, retries: 2, start_period: 5s }
  legacy:
    ports: ["9090:9000/tcp"]
nodes:
  a:
    - service: web
      replicas: 2
    - service: legacy
      address: 127.0.0.1:9000
  b:
    - service: web
      command: [node, server.js]
      environment: { GREETING: hello }
  c: []
`;

describe('parseCatalog', () => {
  it('reads services, published ports, health checks and every node task, with slots and overlay addresses', () => {
    const c = parseCatalog(GOOD);
    expect(c.network).toEqual({ subnet: 0x64400100, prefixLen: 24, vni: 4097 });
    expect(c.nodes).toEqual(['a', 'b', 'c']);
    expect(publishedPorts(c)).toEqual([
      { service: 'web', protocol: 'tcp', published: 8080, target: 80 },
      { service: 'web', protocol: 'udp', published: 8053, target: 53 },
      { service: 'legacy', protocol: 'tcp', published: 9090, target: 9000 },
    ]);
    const web = c.services[0]!;
    expect(web.healthcheck).toEqual({ kind: 'http', path: '/health', intervalMs: 90_000, timeoutMs: 500, retries: 2, startPeriodMs: 5000 });
    expect(web.argv?.at(-1)).toMatch(/whoami\.(ts|js)$/);
    expect(c.tasks.map((t) => [t.taskId, t.node, t.slot, t.overlayAddress - 0x64400100, t.run.kind])).toEqual([
      ['web.1', 'a', 1, 128, 'command'],
      ['web.2', 'a', 2, 129, 'command'],
      ['legacy.1', 'a', 1, 130, 'address'],
      ['web.3', 'b', 3, 131, 'command'],
    ]);
    const b = tasksOf(c, 'b')[0]!;
    expect(b.run).toEqual({ kind: 'command', argv: ['node', 'server.js'], environment: { GREETING: 'hello', DEBUG: '1' } });
    expect(tasksOf(c, 'c')).toEqual([]);
  });

  it('reads app_protocol and proxy_protocol from the long port syntax', () => {
    const c = parseCatalog('services:\n  w:\n    ports:\n      - { published: 80, target: 8080, app_protocol: http, proxy_protocol: v2 }\n      - { published: 81, target: 8081, app_protocol: grpc }\n      - "82:8082"\n');
    expect(c.services[0]!.ports).toEqual([
      { service: 'w', protocol: 'tcp', published: 80, target: 8080, appProtocol: 'http', proxyProtocol: 'v2' },
      { service: 'w', protocol: 'tcp', published: 81, target: 8081 },
      { service: 'w', protocol: 'tcp', published: 82, target: 8082 },
    ]);
  });

  it('builds the endpoint row of a local task', () => {
    const c = parseCatalog(GOOD);
    const row = catalogTaskRow(c, c.tasks[0]!, { hostAddress: 0x7f000001, hostPorts: new Map([[80, 18001], [53, 18001]]), vtepAddress: 0x7f000002, vtepPort: 4789 });
    expect(row).toEqual({
      service: 'web',
      taskId: 'web.1',
      slot: 1,
      node: 'a',
      overlayAddress: 0x64400180,
      vni: 4097,
      vtepAddress: 0x7f000002,
      vtepPort: 4789,
      hostAddress: 0x7f000001,
      ports: [
        { protocol: 'tcp', target: 80, hostPort: 18001 },
        { protocol: 'udp', target: 53, hostPort: 18001 },
      ],
      health: 'starting',
    });
  });

  it.each([
    ['not YAML', 'services: [', /not valid YAML/],
    ['no services', 'nodes: {}', /services: missing/],
    ['a typo at the top', 'services: {}\nnode: {}', /unknown key "node"/],
    ['a bad service name', 'services: { "-x": {} }', /services\.-x: a service name/],
    ['an unknown image', 'services: { w: { image: nginx } }', /unknown image "nginx".*shoal\/whoami/],
    ['image and command', 'services: { w: { image: shoal/whoami, command: [x] } }', /not both/],
    ['a shell-form command', 'services: { w: { command: "node x.js" } }', /exec form/],
    ['a bad port string', 'services: { w: { ports: ["8080"] } }', /ports\[0\]: "8080" is not/],
    ['a port out of range', 'services: { w: { ports: [{ published: 70000, target: 80 }] } }', /ports\[0\]\.published: must be a port/],
    ['a port published twice', 'services: { a: { ports: ["80:1"] }, b: { ports: ["80:2"] } }', /80\/tcp is already published by service a/],
    ['host mode publishing', 'services: { w: { ports: [{ published: 80, target: 80, mode: host }] } }', /only ingress/],
    ['a PROXY protocol version that does not exist', 'services: { w: { ports: [{ published: 80, target: 80, proxy_protocol: v3 }] } }', /proxy_protocol: must be v1 or v2/],
    ['PROXY protocol on UDP', 'services: { w: { ports: [{ published: 80, target: 80, protocol: udp, proxy_protocol: v1 }] } }', /TCP ports only/],
    ['HTTP on UDP', 'services: { w: { ports: [{ published: 80, target: 80, protocol: udp, app_protocol: http }] } }', /http is for TCP/],
    ['a bad duration', 'services: { w: { healthcheck: { interval: 5 } } }', /interval: 5 is not a duration/],
    ['a path on a tcp check', 'services: { w: { healthcheck: { path: /x } } }', /only an http check/],
    ['an unknown service on a node', 'services: { w: {} }\nnodes: { a: [ { service: x } ] }', /no service "x" in services \(have: w\)/],
    ['a node that is not a list', 'services: { w: {} }\nnodes: { a: { service: w } }', /nodes\.a: must be a list/],
    ['nothing to run', 'services: { w: { ports: ["80:80"] } }\nnodes: { a: [ { service: w } ] }', /no image or command to run/],
    ['replicas with an address', 'services: { w: { ports: ["80:80"] } }\nnodes: { a: [ { service: w, address: "127.0.0.1:1", replicas: 2 } ] }', /no `replicas`/],
    ['a bad address', 'services: { w: { ports: ["80:80"] } }\nnodes: { a: [ { service: w, address: "localhost:1" } ] }', /is not an IPv4 address and port/],
    ['zero replicas', 'services: { w: { image: shoal/whoami } }\nnodes: { a: [ { service: w, replicas: 0 } ] }', /replicas: must be an integer/],
    ['a subnet with host bits', 'network: { subnet: 100.64.0.1/24 }\nservices: {}', /did you mean 100\.64\.0\.0\/24/],
    ['too many tasks for the subnet', 'network: { subnet: 100.64.0.0/28 }\nservices: { w: { image: shoal/whoami } }\nnodes: { a: [ { service: w, replicas: 8 } ] }', /more tasks than the upper half/],
  ])('refuses %s with a clear error', (_what, yaml, message) => {
    expect(() => parseCatalog(yaml, 'x.yaml')).toThrow(CatalogError);
    expect(() => parseCatalog(yaml, 'x.yaml')).toThrow(message);
  });

  it('names the file in its errors', async () => {
    await expect(loadCatalog('/nonexistent/shoal.yaml')).rejects.toThrow(/Cannot read catalog \/nonexistent\/shoal\.yaml/);
    expect(() => parseCatalog('services: 1', 'demo.yaml')).toThrow(/^demo\.yaml: services: must be a mapping/);
  });

  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['1h', 3_600_000],
    ['2', undefined],
    ['s', undefined],
    ['-1s', undefined],
  ])('parses the duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('every catalog shipped in compose/ is valid', async () => {
    const files = readdirSync(path.join(ROOT, 'compose')).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) await expect(loadCatalog(path.join(ROOT, 'compose', f))).resolves.toBeDefined();
  });
});
