import { describe, expect, it } from 'vitest';
import { classifyName, isServiceLabel, isTaskShaped } from '../../src/dns/names.js';
import { MemoryRecords } from '../../src/dns/memory-records.js';
import { formatIpv4, fromMirror, parseIpv4, toMirror, viewOf } from '../../src/dns/records.js';
import { parseResolvConf, selectUpstreams } from '../../src/dns/resolv-conf.js';
import { LengthPrefixedReader, frameMessage } from '../../src/dns/tcp-framing.js';

const labels = (name: string): string[] => (name === '' ? [] : name.split('.'));
const ip = (text: string): number => parseIpv4(text) ?? -1;

describe('classifyName', () => {
  it.each([
    ['web', { kind: 'service', service: 'web' }],
    ['my_svc-2', { kind: 'service', service: 'my_svc-2' }],
    ['tasks.web', { kind: 'tasks', service: 'web' }],
    ['tasks', { kind: 'service', service: 'tasks' }],
    ['web.1.abcdefghijklmnopqrstuvwxy', { kind: 'task', service: 'web', slot: '1', taskId: 'abcdefghijklmnopqrstuvwxy' }],
    ['_80._tcp.web', { kind: 'srv', service: 'web', port: '80', protocol: 'tcp' }],
    ['_dns._udp.resolver', { kind: 'srv', service: 'resolver', port: 'dns', protocol: 'udp' }],
    ['5.1.64.100.in-addr.arpa', { kind: 'reverse', address: 0x64400105 }],
    ['5.1.127.127.in-addr.arpa', { kind: 'reverse', address: 0x7f7f0105 }],
    ['1.64.100.in-addr.arpa', { kind: 'reverse-zone' }],
    ['127.100.in-addr.arpa', { kind: 'reverse-zone' }],
    ['5.1.128.100.in-addr.arpa', { kind: 'other' }],
    ['5.1.63.100.in-addr.arpa', { kind: 'other' }],
    ['1.0.0.127.in-addr.arpa', { kind: 'other' }],
    ['05.1.64.100.in-addr.arpa', { kind: 'other' }],
    ['256.1.64.100.in-addr.arpa', { kind: 'other' }],
    ['example.com', { kind: 'other' }],
    ['', { kind: 'other' }],
    ['-web', { kind: 'other' }],
    ['web-', { kind: 'other' }],
    ['a.b.c.d', { kind: 'other' }],
    ['_80._sctp.web', { kind: 'other' }],
    ['100.in-addr.arpa', { kind: 'other' }],
  ])('%s', (name, shape) => {
    expect(classifyName(labels(name))).toEqual(shape);
  });

  it('never takes a label holding a dot for a service', () => {
    expect(isServiceLabel('a.b')).toBe(false);
    expect(classifyName(['a.b'])).toEqual({ kind: 'other' });
    expect(isServiceLabel('x'.repeat(63))).toBe(true);
    expect(isServiceLabel('x'.repeat(64))).toBe(false);
  });

  it.each([
    ['1', 'abcdefghijklmnopqrstuvwxy', true],
    ['12', 'abcdefghij', true],
    ['n0d3n0d3n0d3n0d3n0d3n0d3n', 'abcdefghijklmnopqrstuvwxy', true],
    ['0', 'abcdefghijklmnopqrstuvwxy', false],
    ['example', 'com', false],
    ['1', 'short', false],
  ])('isTaskShaped(%s, %s) is %s', (slot, taskId, shaped) => {
    expect(isTaskShaped(slot, taskId)).toBe(shaped);
  });
});

describe('addresses', () => {
  it.each([
    ['100.64.0.1', '127.64.0.1'],
    ['100.127.255.254', '127.127.255.254'],
    ['100.100.7.9', '127.100.7.9'],
  ])('mirrors %s as %s and back', (overlay, mirror) => {
    expect(formatIpv4(toMirror(ip(overlay)))).toBe(mirror);
    expect(formatIpv4(fromMirror(ip(mirror)))).toBe(overlay);
  });

  it.each(['100.63.255.255', '100.128.0.0', '10.0.0.1', '127.0.0.1'])('leaves %s, outside the /10s, as it is', (address) => {
    expect(formatIpv4(toMirror(ip(address)))).toBe(address);
    expect(formatIpv4(fromMirror(ip(address)))).toBe(address);
  });

  it('parses only dotted quads', () => {
    expect(parseIpv4('1.2.3.4')).toBe(0x01020304);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('100.64.10.0')).toBe(0x64400a00);
    for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.x', '', '1.2.3.4.', '.1.2.3', '1..2.3', '1.2.3.1000', '1.2.3.-1', ' 1.2.3.4']) {
      expect(parseIpv4(bad)).toBeUndefined();
    }
  });

  it('judges the view by source address', () => {
    expect(viewOf('100.64.3.4')).toBe('overlay');
    expect(viewOf('127.0.0.1')).toBe('host');
    expect(viewOf('::1')).toBe('host');
  });
});

describe('MemoryRecords', () => {
  it('indexes services and tasks by name and address, case-insensitively, and forgets removed ones', () => {
    const r = new MemoryRecords();
    r.setService({ name: 'Web', endpointMode: 'vip', vip: '100.64.0.2', ports: [] });
    r.setTask({ service: 'WEB', slot: '1', taskId: 'ABCDEFGHIJKLMNOPQRSTUVWXY', address: '100.64.0.3', healthy: true });
    expect(r.service('web')?.vip).toBe('100.64.0.2');
    expect(r.tasks('web').map((t) => t.taskId)).toEqual(['abcdefghijklmnopqrstuvwxy']);
    expect(r.byAddress('100.64.0.2')?.kind).toBe('vip');
    expect(r.byAddress('100.64.0.3')?.kind).toBe('task');
    r.setService({ name: 'web', endpointMode: 'vip', vip: '100.64.0.9', ports: [] });
    expect(r.byAddress('100.64.0.2')).toBeUndefined();
    r.removeTask('abcdefghijklmnopqrstuvwxy');
    expect(r.tasks('web')).toEqual([]);
    expect(r.byAddress('100.64.0.3')).toBeUndefined();
    r.removeService('web');
    expect(r.service('web')).toBeUndefined();
    expect(r.byAddress('100.64.0.9')).toBeUndefined();
    expect(() => r.setTask({ service: 'web', slot: '1', taskId: 'x', address: 'nope', healthy: true })).toThrow(/Bad task address/);
  });
});

describe('resolv.conf', () => {
  const text = [
    '# generated by NetworkManager',
    'search corp.example lab.example.',
    'nameserver 10.255.255.53',
    'nameserver 127.0.0.11',
    'nameserver 127.0.0.53 ; systemd-resolved',
    'nameserver fd00::53',
    'nameserver not-an-address',
    'nameserver 10.255.255.53',
    'options ndots:2 timeout:1',
    '',
  ].join('\n');

  it('reads nameservers and search domains, skipping what it does not understand', () => {
    expect(parseResolvConf(text)).toEqual({
      nameservers: ['10.255.255.53', '127.0.0.11', '127.0.0.53', 'fd00::53', '10.255.255.53'],
      search: ['corp.example', 'lab.example'],
    });
    expect(parseResolvConf('domain a.example\nsearch b.example\n').search).toEqual(['b.example']);
    expect(parseResolvConf('')).toEqual({ nameservers: [], search: [] });
  });

  it('never forwards to 127.0.0.11 or to our own listening address, and drops duplicates', () => {
    const upstreams = selectUpstreams(parseResolvConf(text), [{ address: '127.0.0.53', port: 53 }]);
    expect(upstreams).toEqual([
      { address: '10.255.255.53', port: 53 },
      { address: 'fd00::53', port: 53 },
    ]);
    expect(selectUpstreams(parseResolvConf(text), [{ address: '127.0.0.53', port: 5353 }]).map((s) => s.address)).toContain('127.0.0.53');
  });
});

describe('TCP framing (RFC 7766 §8)', () => {
  it('reassembles messages split anywhere and pipelined back to back', () => {
    const messages = [new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7), new Uint8Array(0), new Uint8Array([9])];
    const stream = Buffer.concat(messages.map((m) => frameMessage(m)));
    for (const split of [1, 2, 3, 7, 64, stream.length]) {
      const reader = new LengthPrefixedReader();
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += split) out.push(...reader.push(stream.subarray(i, i + split)));
      expect(out.map((m) => Buffer.from(m).toString('hex'))).toEqual(messages.map((m) => Buffer.from(m).toString('hex')));
      expect(reader.buffered).toBe(0);
    }
  });

  it('owns what it returns: the caller reusing its chunk changes nothing', () => {
    const reader = new LengthPrefixedReader();
    const chunk = Buffer.from(frameMessage(new Uint8Array([5, 6])));
    const partial = reader.push(chunk.subarray(0, 3));
    chunk.fill(0);
    expect(partial).toEqual([]);
    const [message] = reader.push(new Uint8Array([6]));
    expect(Array.from(message ?? [])).toEqual([5, 6]);
  });

  it('refuses to frame more than 65535 bytes', () => {
    expect(() => frameMessage(new Uint8Array(65536))).toThrow(RangeError);
  });
});
