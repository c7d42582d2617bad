import { describe, expect, it } from 'vitest';
import {
  INGRESS_NETWORK_NAME,
  INGRESS_SUBNET,
  INGRESS_VNI,
  allocateTaskAddressIn,
  allocateVipIn,
  createNetworkIn,
  ingressNetworkRecord,
  ingressOf,
  listNetworksIn,
  networkVni,
  parseAddressPool,
  removeNetworkIn,
  resolveNetworkIn,
} from '../../src/cluster/networks.js';
import type { NetworkRecord } from '../../src/cluster/service-types.js';
import { DEFAULT_SUBNET, DEFAULT_VNI } from '../../src/agent/catalog.js';
import { CapacityError, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../src/lib/errors.js';
import { FakeTx } from '../helpers/fake-store.js';
import { T0, serviceRecord, taskRecord } from '../helpers/service-records.js';

const INGRESS_ID = 'ingress0000000000000000000';

function swarm(): FakeTx {
  const tx = new FakeTx();
  tx.put('network', INGRESS_ID, ingressNetworkRecord(INGRESS_ID, T0));
  return tx;
}

function creator(): { newId: () => string; now: string } {
  let n = 0;
  return { newId: () => `n${++n}`.padEnd(25, '0'), now: T0 };
}

/** The request `docker network create -d overlay <name>` sends (spec §5.6). */
function cliBody(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Driver: 'overlay',
    Scope: '',
    IPAM: { Driver: 'default', Options: {}, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigOnly: false,
    ConfigFrom: null,
    Options: {},
    Labels: {},
    Name: name,
    ...over,
  };
}

function net(tx: FakeTx, ref: string): NetworkRecord {
  return resolveNetworkIn(tx, ref);
}

describe('ingress', () => {
  it('is the agents’ built-in overlay', () => {
    expect(INGRESS_SUBNET).toBe(DEFAULT_SUBNET);
    expect(INGRESS_VNI).toBe(DEFAULT_VNI);
    expect(INGRESS_NETWORK_NAME).toBe('ingress');
  });

  it('looks like dockerd’s ingress network', () => {
    const r = ingressNetworkRecord(INGRESS_ID, T0);
    expect(r).toMatchObject({
      Name: 'ingress',
      Id: INGRESS_ID,
      Scope: 'swarm',
      Driver: 'overlay',
      Ingress: true,
      IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '100.64.0.0/24', Gateway: '100.64.0.1' }] },
      Options: { 'com.docker.network.driver.overlay.vxlanid_list': '4096' },
      Labels: {},
      ConfigFrom: { Network: '' },
      Containers: null,
    });
    expect(ingressOf(swarm())?.Id).toBe(INGRESS_ID);
    expect(ingressOf(new FakeTx())).toBeUndefined();
  });
});

describe('createNetworkIn', () => {
  it('takes the next /24 after ingress and VNI 4097 for the CLI’s request', () => {
    const tx = swarm();
    const { Id, Warning } = createNetworkIn(tx, cliBody('net1', { Labels: { a: 'b' }, Attachable: true }), creator());
    expect(Warning).toBe('');
    const r = net(tx, 'net1');
    expect(r.Id).toBe(Id);
    expect(r.IPAM.Config).toEqual([{ Subnet: '100.64.1.0/24', Gateway: '100.64.1.1' }]);
    expect(r.Options['com.docker.network.driver.overlay.vxlanid_list']).toBe('4097');
    expect(r).toMatchObject({ Labels: { a: 'b' }, Attachable: true, Internal: false, Ingress: false, Created: T0 });
  });

  it('fills holes and never repeats a subnet or VNI', () => {
    const tx = swarm();
    const c = creator();
    for (const name of ['a', 'b', 'c']) createNetworkIn(tx, cliBody(name), c);
    removeNetworkIn(tx, 'b');
    createNetworkIn(tx, { Name: 'd' }, c);
    const d = net(tx, 'd');
    expect(d.IPAM.Config[0]!.Subnet).toBe('100.64.2.0/24');
    expect(networkVni(d)).toBe(4098);
    const subnets = listNetworksIn(tx, {}).map((n) => n.IPAM.Config[0]!.Subnet);
    expect(new Set(subnets).size).toBe(subnets.length);
  });

  it('honours a subnet inside the pool, a gateway, a subnet size, a pool and a VNI option', () => {
    const tx = swarm();
    createNetworkIn(tx, cliBody('s', { IPAM: { Config: [{ Subnet: '100.64.8.0/22', Gateway: '100.64.8.254' }] } }), creator());
    expect(net(tx, 's').IPAM.Config).toEqual([{ Subnet: '100.64.8.0/22', Gateway: '100.64.8.254' }]);
    createNetworkIn(tx, cliBody('small'), { ...creator(), newId: () => 'small00000000000000000000', subnetSize: 26 });
    expect(net(tx, 'small').IPAM.Config[0]!.Subnet).toBe('100.64.1.0/26');
    createNetworkIn(tx, cliBody('v', { Options: { 'com.docker.network.driver.overlay.vxlanid_list': '5000' } }), { ...creator(), newId: () => 'v0000000000000000000000000' });
    expect(networkVni(net(tx, 'v'))).toBe(5000);
    const other = new FakeTx();
    createNetworkIn(other, cliBody('p'), { ...creator(), pool: '100.100.0.0/16' });
    expect(net(other, 'p').IPAM.Config[0]!.Subnet).toBe('100.100.0.0/24');
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['bridge driver', { Driver: 'bridge' }, /network driver "bridge" is not supported/],
    ['local scope', { Scope: 'local' }, /scope "local" is not supported/],
    ['no name', { Name: '' }, /network name must be set/],
    ['bad name', { Name: 'a b' }, /invalid network name/],
    ['IPv6', { EnableIPv6: true }, /IPv6 is not supported/],
    ['subnet outside the pool', { IPAM: { Config: [{ Subnet: '10.0.9.0/24' }] } }, /outside the overlay address pool 100\.64\.0\.0\/10/],
    ['subnet overlapping ingress', { IPAM: { Config: [{ Subnet: '100.64.0.0/16' }] } }, /overlaps network ingress \(100\.64\.0\.0\/24\)/],
    ['subnet with host bits', { IPAM: { Config: [{ Subnet: '100.64.9.1/24' }] } }, /not a network address/],
    ['gateway outside', { IPAM: { Config: [{ Subnet: '100.64.9.0/24', Gateway: '100.64.10.1' }] } }, /not a host address/],
    ['two subnets', { IPAM: { Config: [{ Subnet: '100.64.9.0/24' }, { Subnet: '100.64.10.0/24' }] } }, /one IPv4 subnet/],
    ['IPRange', { IPAM: { Config: [{ Subnet: '100.64.9.0/24', IPRange: '100.64.9.0/25' }] } }, /IPRange is not supported/],
    ['taken VNI', { Options: { 'com.docker.network.driver.overlay.vxlanid_list': '4096' } }, /VNI 4096 is already used/],
    ['junk VNI', { Options: { 'com.docker.network.driver.overlay.vxlanid_list': '1,2' } }, /must be one VNI/],
    ['Labels not strings', { Labels: { a: 1 } }, /must have a string value/],
    ['Internal not boolean', { Internal: 'yes' }, /Internal must be a boolean/],
  ])('refuses %s with 400 and writes nothing', (_name, over, message) => {
    const tx = swarm();
    let error: unknown;
    try {
      createNetworkIn(tx, cliBody('x', over), creator());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(message);
    expect(tx.list('network')).toHaveLength(1);
  });

  it('refuses a body that is not an object', () => {
    expect(() => createNetworkIn(swarm(), 'net1', creator())).toThrow(InvalidArgumentError);
    expect(() => createNetworkIn(swarm(), null, creator())).toThrow(InvalidArgumentError);
  });

  it('refuses a taken name with 409 as dockerd words it', () => {
    const tx = swarm();
    createNetworkIn(tx, cliBody('net1'), creator());
    expect(() => createNetworkIn(tx, cliBody('net1'), creator())).toThrow(ConflictError);
    expect(() => createNetworkIn(tx, cliBody('net1'), creator())).toThrow('network with name net1 already exists');
    expect(() => createNetworkIn(tx, cliBody('ingress'), creator())).toThrow(ConflictError);
  });

  it('refuses a second ingress network with 409', () => {
    expect(() => createNetworkIn(swarm(), cliBody('in2', { Ingress: true }), creator())).toThrow(/ingress network \(ingress0+\) is already present/);
  });

  it('answers 503 when the pool is full', () => {
    const tx = swarm();
    const c = creator();
    createNetworkIn(tx, cliBody('a'), { ...c, pool: '100.64.0.0/23' });
    let error: unknown;
    try {
      createNetworkIn(tx, cliBody('b'), { ...c, pool: '100.64.0.0/23' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CapacityError);
    expect((error as Error).message).toBe('the overlay address pool 100.64.0.0/23 has no free /24');
  });
});

describe('removeNetworkIn', () => {
  it('removes an unused network by name, ID or prefix', () => {
    const tx = swarm();
    const { Id } = createNetworkIn(tx, cliBody('net1'), creator());
    expect(removeNetworkIn(tx, Id.slice(0, 6)).Name).toBe('net1');
    expect(() => resolveNetworkIn(tx, 'net1')).toThrow(NotFoundError);
  });

  it('refuses ingress', () => {
    const tx = swarm();
    expect(() => removeNetworkIn(tx, 'ingress')).toThrow(FailedPreconditionError);
    expect(ingressOf(tx)).toBeDefined();
  });

  it('refuses while a service refers to it, by ID or by name (§9.6)', () => {
    for (const target of ['byId', 'net1']) {
      const tx = swarm();
      const { Id } = createNetworkIn(tx, cliBody('net1'), creator());
      const s = serviceRecord('svc1', 'web');
      tx.put('service', 'svc1', { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, Networks: [{ Target: target === 'byId' ? Id : target }] } } });
      expect(() => removeNetworkIn(tx, 'net1')).toThrow(FailedPreconditionError);
      expect(() => removeNetworkIn(tx, 'net1')).toThrow('network net1 is in use by service web');
    }
  });

  it('refuses while an unfinished task is attached, and allows it once the task has finished', () => {
    const tx = swarm();
    createNetworkIn(tx, cliBody('net1'), creator());
    const network = net(tx, 'net1');
    tx.put('task', 't1', taskRecord('t1', { attach: { network, addr: '100.64.1.2/24' } }));
    expect(() => removeNetworkIn(tx, 'net1')).toThrow('network net1 is in use by task t1');
    tx.put('task', 't1', taskRecord('t1', { state: 'shutdown', desired: 'shutdown', attach: { network, addr: '100.64.1.2/24' } }));
    expect(removeNetworkIn(tx, 'net1').Name).toBe('net1');
  });

  it('answers 404 for an unknown network', () => {
    expect(() => removeNetworkIn(swarm(), 'nosuch')).toThrow('network nosuch not found');
  });
});

describe('listNetworksIn and resolveNetworkIn', () => {
  function three(): FakeTx {
    const tx = swarm();
    const c = creator();
    createNetworkIn(tx, cliBody('front', { Labels: { tier: 'web' } }), c);
    createNetworkIn(tx, cliBody('back', { Labels: { tier: 'db', x: '' } }), c);
    return tx;
  }
  const names = (l: NetworkRecord[]): string[] => l.map((n) => n.Name);

  it.each<[Record<string, string[]>, string[]]>([
    [{}, ['back', 'front', 'ingress']],
    [{ name: ['r'] }, ['front', 'ingress']],
    [{ name: ['back', 'front'] }, ['back', 'front']],
    [{ id: ['n'] }, ['back', 'front']],
    [{ id: ['ingress0'] }, ['ingress']],
    [{ driver: ['overlay'] }, ['back', 'front', 'ingress']],
    [{ driver: ['bridge'] }, []],
    [{ scope: ['swarm'] }, ['back', 'front', 'ingress']],
    [{ scope: ['local'] }, []],
    [{ label: ['tier'] }, ['back', 'front']],
    [{ label: ['tier=web'] }, ['front']],
    [{ label: ['x='] }, ['back']],
    [{ type: ['custom'] }, ['back', 'front', 'ingress']],
    [{ type: ['builtin'] }, []],
    [{ name: ['front'], label: ['tier=db'] }, []],
  ])('filters %j → %j', (filters, expected) => {
    expect(names(listNetworksIn(three(), filters))).toEqual(expected);
  });

  it('refuses unknown filter keys and types with 400', () => {
    expect(() => listNetworksIn(three(), { nosuch: ['x'] })).toThrow("invalid filter 'nosuch'");
    expect(() => listNetworksIn(three(), { type: ['weird'] })).toThrow(InvalidArgumentError);
  });

  it('resolves by full ID, exact name, then unique ID prefix (§3.5)', () => {
    const tx = three();
    const front = net(tx, 'front');
    expect(resolveNetworkIn(tx, front.Id).Name).toBe('front');
    expect(resolveNetworkIn(tx, front.Id.slice(0, 2)).Name).toBe('front');
    expect(() => resolveNetworkIn(tx, 'n')).toThrow(/ambiguous/);
    expect(() => resolveNetworkIn(tx, 'nosuch')).toThrow(NotFoundError);
    expect(() => resolveNetworkIn(tx, 'nosuch')).toThrow('network nosuch not found');
  });
});

describe('allocateTaskAddressIn and allocateVipIn', () => {
  it('on ingress, hands out the upper half only, with the prefix', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    expect(allocateTaskAddressIn(tx, ingress)).toBe('100.64.0.128/24');
    expect(allocateVipIn(tx, ingress)).toBe('100.64.0.128/24');
  });

  it('on another network, starts after the gateway', () => {
    const tx = swarm();
    createNetworkIn(tx, cliBody('net1'), creator());
    expect(allocateTaskAddressIn(tx, net(tx, 'net1'))).toBe('100.64.1.2/24');
  });

  it('skips addresses of tasks and VIPs on that network, not on others', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    createNetworkIn(tx, cliBody('net1'), creator());
    tx.put('task', 't1', taskRecord('t1', { attach: { network: ingress, addr: '100.64.0.128/24' } }));
    tx.put('task', 't2', taskRecord('t2', { attach: { network: net(tx, 'net1'), addr: '100.64.0.129/24' } }));
    tx.put('service', 's1', serviceRecord('s1', 'web', { Endpoint: { Spec: {}, VirtualIPs: [{ NetworkID: ingress.Id, Addr: '100.64.0.130/24' }] } }));
    expect(allocateTaskAddressIn(tx, ingress)).toBe('100.64.0.129/24');
  });

  it('prefers a never-used address over one a finished task left, and reclaims those when full', () => {
    const tx = swarm();
    createNetworkIn(tx, cliBody('tiny', { IPAM: { Config: [{ Subnet: '100.64.9.0/29' }] } }), creator());
    const tiny = net(tx, 'tiny');
    // /29: hosts .2 to .6 (.0 network, .1 gateway, .7 broadcast).
    tx.put('task', 'dead', taskRecord('dead', { state: 'failed', desired: 'shutdown', attach: { network: tiny, addr: '100.64.9.2/29' } }));
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const addr = allocateTaskAddressIn(tx, tiny);
      got.push(addr);
      tx.put('task', `t${i}`, taskRecord(`t${i}`, { attach: { network: tiny, addr } }));
    }
    expect(got).toEqual(['100.64.9.3/29', '100.64.9.4/29', '100.64.9.5/29', '100.64.9.6/29', '100.64.9.2/29']);
    expect(() => allocateTaskAddressIn(tx, tiny)).toThrow(CapacityError);
    expect(() => allocateTaskAddressIn(tx, tiny)).toThrow('network tiny has no free address');
  });

  it('a task still running with desired state shutdown keeps its address', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    tx.put('task', 't1', taskRecord('t1', { state: 'running', desired: 'shutdown', attach: { network: ingress, addr: '100.64.0.128/24' } }));
    expect(allocateTaskAddressIn(tx, ingress)).toBe('100.64.0.129/24');
  });

  it('`reserved` keeps allocations in one transaction apart before they are written', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    const reserved = new Set<number>();
    const a = allocateTaskAddressIn(tx, ingress, reserved);
    const b = allocateVipIn(tx, ingress, reserved);
    expect([a, b]).toEqual(['100.64.0.128/24', '100.64.0.129/24']);
    expect(reserved.size).toBe(2);
  });

  it('with one `reserved` set, many allocations read the store once per network', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    for (let i = 0; i < 50; i++) tx.put('task', `old${i}`, taskRecord(`old${i}`, { state: 'shutdown', attach: { network: ingress, addr: `100.64.0.${128 + i}/24` } }));
    let taskReads = 0;
    const counting = {
      get: tx.get.bind(tx),
      list: <T>(kind: Parameters<FakeTx['list']>[0]): T[] => {
        if (kind === 'task') taskReads++;
        return tx.list<T>(kind);
      },
    };
    const reserved = new Set<number>();
    const got = Array.from({ length: 80 }, () => allocateTaskAddressIn(counting, ingress, reserved));
    // Fresh addresses first (178 to 254), then those finished tasks left (128 onwards).
    expect(got.slice(0, 2)).toEqual(['100.64.0.178/24', '100.64.0.179/24']);
    expect(got.slice(-2)).toEqual(['100.64.0.129/24', '100.64.0.130/24']);
    expect(new Set(got).size).toBe(80);
    expect(taskReads).toBeLessThanOrEqual(2);
    // A new set (a new transaction) reads the store again and sees what was written since.
    tx.put('task', 'new', taskRecord('new', { attach: { network: ingress, addr: '100.64.0.178/24' } }));
    expect(allocateTaskAddressIn(counting, ingress, new Set())).toBe('100.64.0.179/24');
  });

  it('ingress full after 127 addresses', () => {
    const tx = swarm();
    const ingress = ingressOf(tx)!;
    const reserved = new Set<number>();
    for (let i = 0; i < 127; i++) allocateTaskAddressIn(tx, ingress, reserved);
    expect(() => allocateTaskAddressIn(tx, ingress, reserved)).toThrow('network ingress has no free address');
  });
});

describe('parseAddressPool (swarm init --default-addr-pool, --default-addr-pool-mask-length)', () => {
  it.each([
    [undefined, undefined, { pool: '100.64.0.0/10', subnetSize: 24 }],
    [[], 0, { pool: '100.64.0.0/10', subnetSize: 24 }],
    [['100.80.0.0/12'], 26, { pool: '100.80.0.0/12', subnetSize: 26 }],
    [['100.64.0.0/16'], 16, { pool: '100.64.0.0/16', subnetSize: 16 }],
  ])('%j /%j → %j', (pools, size, want) => {
    expect(parseAddressPool(pools, size)).toEqual(want);
  });

  it.each([
    [['10.0.0.0/8'], 24, /must lie inside 100\.64\.0\.0\/10/],
    [['100.0.0.0/8'], 24, /must lie inside/],
    [['100.80.0.0/12', '100.96.0.0/12'], 24, /one default address pool/],
    [['100.80.0.5/12'], 24, /not a network address/],
    [['100.80.0.0/12'], 8, /SubnetSize must be an integer from 12/],
    [['100.80.0.0/12'], 30, /to 28/],
    ['100.80.0.0/12', 24, /list of subnets/],
    [['100.80.0.0/12'], '24', /SubnetSize/],
  ])('refuses %j /%j', (pools, size, message) => {
    expect(() => parseAddressPool(pools, size)).toThrow(InvalidArgumentError);
    expect(() => parseAddressPool(pools, size)).toThrow(message);
  });
});
