import { describe, expect, it } from 'vitest';
import { type VipService, mirrorOf, planMirrors, vipPorts } from '../../src/mesh/mirror-listeners.js';
import { formatIpv4Address } from '../../src/wire/address.js';
import { row } from './table-fixtures.js';

const IP = (text: string): number => text.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const WEB: VipService = { name: 'web', vip: IP('100.64.9.254'), tcpPorts: [80] };

const show = (plan: ReturnType<typeof planMirrors>): string[] =>
  plan.listeners.map((l) => `${formatIpv4Address(l.address)}:${l.port} ${l.target.kind} ${l.target.service}${l.target.kind === 'task' ? `/${l.target.taskId}` : ''}`);

describe('mirrorOf', () => {
  it.each([
    ['100.64.0.1', '127.64.0.1'],
    ['100.127.255.254', '127.127.255.254'],
    ['100.64.9.254', '127.64.9.254'],
  ])('%s has the mirror %s', (overlay, mirror) => {
    expect(formatIpv4Address(mirrorOf(IP(overlay))!)).toBe(mirror);
  });

  it.each(['100.63.255.255', '100.128.0.0', '10.0.0.1', '127.64.0.1'])('%s is outside 100.64.0.0/10 and has no mirror', (address) => {
    expect(mirrorOf(IP(address))).toBeUndefined();
  });
});

describe('planMirrors', () => {
  it('listens on the VIP for every TCP port of the service and its tasks, and on each task address for its own ports', () => {
    const rows = [
      row('n1', 't1', { overlayAddress: IP('100.64.9.130'), ports: [{ protocol: 'tcp', target: 80, hostPort: 18001 }, { protocol: 'tcp', target: 8080, hostPort: 18002 }, { protocol: 'udp', target: 53, hostPort: 18003 }] }),
      row('n2', 't2', { overlayAddress: IP('100.64.9.131'), ports: [{ protocol: 'tcp', target: 80, hostPort: 18001 }] }),
    ];
    expect(show(planMirrors([WEB], rows))).toEqual([
      '127.64.9.254:80 vip web',
      '127.64.9.254:8080 vip web',
      '127.64.9.130:80 task web/t1',
      '127.64.9.130:8080 task web/t1',
      '127.64.9.131:80 task web/t2',
    ]);
  });

  it('gives a dnsrr service (no VIP) task mirrors only, and skips the nodes’ own lb rows and addresses without a mirror', () => {
    const rows = [
      row('n1', 't1', { service: 'db', overlayAddress: IP('100.64.9.140'), ports: [{ protocol: 'tcp', target: 5432, hostPort: 18001 }] }),
      row('n1', 'n1', { service: 'lb-ingress', overlayAddress: IP('100.64.9.2'), ports: [{ protocol: 'tcp', target: 1, hostPort: 1 }] }),
      row('n1', 't9', { service: 'db', overlayAddress: IP('10.0.0.9'), ports: [{ protocol: 'tcp', target: 5432, hostPort: 18002 }] }),
    ];
    expect(show(planMirrors([], rows, { skipServices: new Set(['lb-ingress']) }))).toEqual(['127.64.9.140:5432 task db/t1']);
  });

  it('keeps VIPs first when the limit is reached, and counts what is left out', () => {
    const rows = Array.from({ length: 5 }, (_, i) => row('n1', `t${i}`, { overlayAddress: IP(`100.64.9.${130 + i}`) }));
    const plan = planMirrors([WEB, { name: 'api', vip: IP('100.64.9.253'), tcpPorts: [81] }], rows, { maxListeners: 3 });
    expect(show(plan)).toEqual(['127.64.9.253:81 vip api', '127.64.9.254:80 vip web', '127.64.9.130:80 task web/t0']);
    expect(plan.overLimit).toBe(4);
  });

  it('lets a VIP win over a task at the same address and port (IPAM never allocates one, but a bad route must not open twice)', () => {
    const rows = [row('n1', 't1', { overlayAddress: IP('100.64.9.254') })];
    expect(show(planMirrors([WEB], rows))).toEqual(['127.64.9.254:80 vip web']);
  });
});

describe('vipPorts', () => {
  it('unites the declared ports with the rows’ TCP targets, sorted, without duplicates or nonsense', () => {
    const rows = [row('n1', 't1', { ports: [{ protocol: 'tcp', target: 9000, hostPort: 1 }, { protocol: 'udp', target: 53, hostPort: 2 }] })];
    expect(vipPorts({ ...WEB, tcpPorts: [80, 80, 0, 70000] }, rows)).toEqual([80, 9000]);
  });
});
