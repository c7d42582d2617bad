import { describe, expect, it } from 'vitest';
import { envName, nodeOverlayAddress, parseConfigFile, resolveSettings, settingsFromEnv } from '../../src/agent/config.js';

const ip = (text: string): number => text.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
const resolve = (flags = {}, env = {}, file = {}) => resolveSettings({ flags, env, file }, { nodeName: 'host' });

describe('agent settings', () => {
  it('takes flags over environment over file over defaults', () => {
    const file = parseConfigFile('advertise-addr: 127.0.0.9\ngossip-port: 7000\ndata-path-port: 5000\nnode-name: from-file\n', 'agent.yaml');
    const env = settingsFromEnv({ SHOAL_GOSSIP_PORT: '7100', SHOAL_NODE_NAME: 'from-env', SHOAL_IGNORED: 'x' });
    const s = resolve({ nodeName: 'from-flag' }, env, file);
    expect(s).toMatchObject({ nodeName: 'from-flag', advertiseAddr: '127.0.0.9', listenAddr: '127.0.0.9', gossipPort: 7100, dataPathPort: 5000 });
    expect(resolve({ advertiseAddr: '127.0.0.2' })).toMatchObject({ nodeName: 'host', gossipPort: 7946, dataPathPort: 4789, join: [], catalog: undefined });
  });

  it('accepts join seeds repeated, comma-separated or as a YAML list, filling in the gossip port', () => {
    expect(resolve({ advertiseAddr: '127.0.0.2', join: ['127.0.0.3', '127.0.0.4:8000,127.0.0.5'] }).join).toEqual(['127.0.0.3:7946', '127.0.0.4:8000', '127.0.0.5:7946']);
    const file = parseConfigFile('advertise-addr: 127.0.0.2\ngossip-port: 7001\njoin: [127.0.0.3, 127.0.0.4]\n', 'f');
    expect(resolve({}, {}, file).join).toEqual(['127.0.0.3:7001', '127.0.0.4:7001']);
  });

  it('names the setting at fault', () => {
    expect(() => resolve({})).toThrow(/--advertise-addr is required .*SHOAL_ADVERTISE_ADDR/);
    expect(() => resolve({ advertiseAddr: '127.0.0.256' })).toThrow(/--advertise-addr/);
    expect(() => resolve({ advertiseAddr: '127.0.0.2', gossipPort: '70000' })).toThrow(/--gossip-port: Not a port/);
    expect(() => resolve({ advertiseAddr: '127.0.0.2', join: ['nohost'] })).toThrow(/--join/);
    expect(() => resolve({ advertiseAddr: '127.0.0.2', overlayAddr: '100.64.0.2' })).toThrow(/--overlay-addr/);
    expect(() => parseConfigFile('advertise_addr: 1.2.3.4', 'agent.yaml')).toThrow(/agent.yaml: unknown setting "advertise_addr"/);
    expect(() => parseConfigFile('[1, 2]', 'agent.yaml')).toThrow(/must be a mapping/);
    expect(() => parseConfigFile('a: [', 'agent.yaml')).toThrow(/not valid YAML/);
  });

  it('spells environment variables after the flags', () => {
    expect(envName('advertise-addr')).toBe('SHOAL_ADVERTISE_ADDR');
  });

  it('derives a host overlay address in the lower half of the subnet from the advertise address', () => {
    const cases: [string, string, number, string][] = [
      ['127.0.0.2', '100.64.0.0', 24, '100.64.0.2'],
      ['198.18.0.130', '100.64.0.0', 24, '100.64.0.2'],
      ['198.18.4.9', '100.64.8.0', 22, '100.64.8.9'],
    ];
    for (const [advertise, subnet, len, want] of cases) expect(nodeOverlayAddress(advertise, ip(subnet), len)).toBe(ip(want));
    expect(() => nodeOverlayAddress('127.0.0.128', ip('100.64.0.0'), 24)).toThrow(/give --overlay-addr/);
  });
});
