import { describe, expect, it } from 'vitest';
import { DEFAULT_SWARM_SPEC } from '../../src/cluster/manager.js';
import { parseNodeDescription, parseNodeSpec, parseSwarmSpecUpdate } from '../../src/cluster/validate.js';

describe('parseSwarmSpecUpdate', () => {
  it('fills the zero values the docker CLI sends at init with swarmkit defaults', () => {
    // The body `docker swarm init` sends (spec §5.1).
    const body = { Labels: null, Orchestration: {}, Raft: { ElectionTick: 0, HeartbeatTick: 0 }, Dispatcher: {}, CAConfig: {}, TaskDefaults: {}, EncryptionConfig: { AutoLockManagers: false } };
    expect(parseSwarmSpecUpdate(body, DEFAULT_SWARM_SPEC)).toEqual({ ok: true, value: DEFAULT_SWARM_SPEC });
  });

  it('takes the values given and keeps the rest', () => {
    const r = parseSwarmSpecUpdate({ Dispatcher: { HeartbeatPeriod: 2e9 }, Labels: { a: 'b' } }, DEFAULT_SWARM_SPEC);
    expect(r.ok && r.value.Dispatcher.HeartbeatPeriod).toBe(2e9);
    expect(r.ok && r.value.Labels).toEqual({ a: 'b' });
    expect(r.ok && r.value.CAConfig).toEqual(DEFAULT_SWARM_SPEC.CAConfig);
  });

  it.each([
    [[], 'swarm spec must be a JSON object'],
    [{ Name: 'other' }, 'swarm spec must be named "default"'],
    [{ Dispatcher: 5 }, 'Spec.Dispatcher must be an object'],
    [{ Dispatcher: { HeartbeatPeriod: -1 } }, 'Dispatcher.HeartbeatPeriod must be a non-negative integer'],
    [{ Dispatcher: { HeartbeatPeriod: '5s' } }, 'Dispatcher.HeartbeatPeriod must be a non-negative integer'],
    [{ CAConfig: { NodeCertExpiry: 1800e9 } }, 'node certificate expiry must be at least 1h0m0s'],
    [{ EncryptionConfig: { AutoLockManagers: true } }, 'autolock is not supported by shoal yet'],
    [{ Labels: { a: 1 } }, 'Labels: label "a" must have a string value'],
  ])('refuses %j', (body, error) => {
    expect(parseSwarmSpecUpdate(body, DEFAULT_SWARM_SPEC)).toEqual({ ok: false, error });
  });
});

describe('parseNodeSpec', () => {
  it('reads what `docker node update` posts, Name only when set', () => {
    expect(parseNodeSpec({ Labels: {}, Role: 'worker', Availability: 'drain' })).toEqual({ ok: true, value: { Labels: {}, Role: 'worker', Availability: 'drain' } });
    expect(parseNodeSpec({ Name: 'n', Labels: null, Role: 'manager', Availability: 'pause' })).toEqual({ ok: true, value: { Name: 'n', Labels: {}, Role: 'manager', Availability: 'pause' } });
  });

  it('keeps a "__proto__" label as a plain label', () => {
    const r = parseNodeSpec(JSON.parse('{"Labels":{"__proto__":"x"},"Role":"worker","Availability":"active"}'));
    expect(r.ok && Object.keys(r.value.Labels)).toEqual(['__proto__']);
    expect(r.ok && Object.getPrototypeOf(r.value.Labels)).toBe(Object.prototype);
  });

  it.each([
    [null, 'node spec must be a JSON object'],
    [{ Role: 'boss', Availability: 'active' }, 'invalid role "boss": must be worker or manager'],
    [{ Role: 'worker', Availability: 'sleeping' }, 'invalid availability "sleeping": must be active, pause or drain'],
    [{ Role: 'worker' }, 'invalid availability undefined: must be active, pause or drain'],
    [{ Role: 'worker', Availability: 'active', Name: 7 }, 'Name must be a string of at most 256 characters'],
  ])('refuses %j', (body, error) => {
    expect(parseNodeSpec(body)).toEqual({ ok: false, error });
  });
});

describe('parseNodeDescription', () => {
  it('accepts what an agent sends and fixes the plugin list', () => {
    const d = { Hostname: 'h', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 1024 }, Engine: { EngineVersion: '0.1.0', Plugins: [{ Type: 'Evil', Name: 'x' }] } };
    expect(parseNodeDescription(d)).toEqual({ ok: true, value: { ...d, Engine: { EngineVersion: '0.1.0', Labels: {}, Plugins: [{ Type: 'Network', Name: 'overlay' }] } } });
  });

  it('refuses a description without a hostname or with bad resources', () => {
    expect(parseNodeDescription({ Hostname: '' })).toEqual({ ok: false, error: 'Description.Hostname must be a non-empty string' });
    expect(parseNodeDescription({ Hostname: 'h', Platform: { Architecture: 'a', OS: 'b' }, Resources: { NanoCPUs: -1, MemoryBytes: 0 } })).toEqual({ ok: false, error: 'Description.Resources must have NanoCPUs and MemoryBytes' });
  });
});
