/**
 * Validation of request bodies that reach the manager: everything here is untrusted JSON.
 * Each parser returns a Result whose error text the docker CLI prints after
 * "Error response from daemon: ". Zero values in a swarm spec mean "keep"/"default", as the
 * docker CLI sends them (spec §5.1).
 */
import { type Result, err, ok } from '../lib/result.js';
import type { NodeAvailability, NodeDescription, NodeRole, NodeSpec, SwarmSpec } from './types.js';

const MAX_LABELS = 256;
const MAX_LABEL_TEXT = 4096;
const MAX_NAME = 256;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseLabels(v: unknown, what: string): Result<Record<string, string>> {
  if (v === undefined || v === null) return ok({});
  if (!isObject(v)) return err(`${what} must be an object of strings`);
  const entries = Object.entries(v);
  if (entries.length > MAX_LABELS) return err(`${what}: at most ${MAX_LABELS} labels`);
  const out: Record<string, string> = {};
  for (const [k, value] of entries) {
    if (typeof value !== 'string') return err(`${what}: label ${JSON.stringify(k)} must have a string value`);
    if (k === '' || k.length > MAX_LABEL_TEXT || value.length > MAX_LABEL_TEXT) return err(`${what}: label keys must be 1 to ${MAX_LABEL_TEXT} characters`);
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return ok(out);
}

const ROLES: readonly NodeRole[] = ['worker', 'manager'];
const AVAILABILITIES: readonly NodeAvailability[] = ['active', 'pause', 'drain'];

export function parseRole(v: unknown): Result<NodeRole> {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v) ? ok(v as NodeRole) : err(`invalid role ${JSON.stringify(v) ?? 'undefined'}: must be worker or manager`);
}

export function parseAvailability(v: unknown): Result<NodeAvailability> {
  return typeof v === 'string' && (AVAILABILITIES as readonly string[]).includes(v)
    ? ok(v as NodeAvailability)
    : err(`invalid availability ${JSON.stringify(v) ?? 'undefined'}: must be active, pause or drain`);
}

/** A NodeSpec as `docker node update` posts it: `{Labels, Role, Availability[, Name]}`. */
export function parseNodeSpec(body: unknown): Result<NodeSpec> {
  if (!isObject(body)) return err('node spec must be a JSON object');
  const labels = parseLabels(body['Labels'], 'Labels');
  if (!labels.ok) return labels;
  const role = parseRole(body['Role']);
  if (!role.ok) return role;
  const availability = parseAvailability(body['Availability']);
  if (!availability.ok) return availability;
  const name = body['Name'];
  if (name !== undefined && name !== '' && (typeof name !== 'string' || name.length > MAX_NAME)) return err(`Name must be a string of at most ${MAX_NAME} characters`);
  const spec: NodeSpec = { Labels: labels.value, Role: role.value, Availability: availability.value };
  return ok(typeof name === 'string' && name !== '' ? { Name: name, ...spec } : spec);
}

/**
 * Applies a posted swarm Spec to `base`: fields that are absent or zero keep `base`'s value.
 * Refuses wrong types and autolock (not supported).
 */
export function parseSwarmSpecUpdate(body: unknown, base: SwarmSpec): Result<SwarmSpec> {
  if (body === undefined || body === null) return ok(base);
  if (!isObject(body)) return err('swarm spec must be a JSON object');
  const section = (key: string): Result<Json> => {
    const v = body[key];
    if (v === undefined || v === null) return ok({});
    return isObject(v) ? ok(v) : err(`Spec.${key} must be an object`);
  };
  const num = (obj: Json, key: string, fallback: number, path: string): Result<number> => {
    const v = obj[key];
    if (v === undefined || v === null || v === 0) return ok(fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return err(`${path} must be a non-negative integer`);
    return ok(v);
  };
  const name = body['Name'];
  if (name !== undefined && name !== null && name !== '' && name !== 'default') return err('swarm spec must be named "default"');
  const labels = body['Labels'] === undefined || body['Labels'] === null ? ok(base.Labels) : parseLabels(body['Labels'], 'Labels');
  if (!labels.ok) return labels;
  const sections: Record<string, Json> = {};
  for (const key of ['Orchestration', 'Raft', 'Dispatcher', 'CAConfig', 'EncryptionConfig', 'TaskDefaults']) {
    const parsed = section(key);
    if (!parsed.ok) return parsed;
    sections[key] = parsed.value;
  }
  const orchestration = sections['Orchestration']!;
  const raft = sections['Raft']!;
  const dispatcher = sections['Dispatcher']!;
  const caConfig = sections['CAConfig']!;
  const encryption = sections['EncryptionConfig']!;
  const taskDefaults = sections['TaskDefaults']!;
  if (encryption['AutoLockManagers'] === true) return err('autolock is not supported by shoal yet');
  const retention = num(orchestration, 'TaskHistoryRetentionLimit', base.Orchestration.TaskHistoryRetentionLimit, 'Orchestration.TaskHistoryRetentionLimit');
  const heartbeat = num(dispatcher, 'HeartbeatPeriod', base.Dispatcher.HeartbeatPeriod, 'Dispatcher.HeartbeatPeriod');
  const expiry = num(caConfig, 'NodeCertExpiry', base.CAConfig.NodeCertExpiry, 'CAConfig.NodeCertExpiry');
  const snapshot = num(raft, 'SnapshotInterval', base.Raft.SnapshotInterval, 'Raft.SnapshotInterval');
  const keepOld = num(raft, 'KeepOldSnapshots', base.Raft.KeepOldSnapshots, 'Raft.KeepOldSnapshots');
  const slow = num(raft, 'LogEntriesForSlowFollowers', base.Raft.LogEntriesForSlowFollowers, 'Raft.LogEntriesForSlowFollowers');
  const election = num(raft, 'ElectionTick', base.Raft.ElectionTick, 'Raft.ElectionTick');
  const beat = num(raft, 'HeartbeatTick', base.Raft.HeartbeatTick, 'Raft.HeartbeatTick');
  for (const r of [retention, heartbeat, expiry, snapshot, keepOld, slow, election, beat]) if (!r.ok) return r;
  const v = (r: Result<number>): number => (r.ok ? r.value : 0);
  // swarmkit refuses node certificates shorter than an hour (ca.MinNodeCertExpiration).
  if (v(expiry) < 3600 * 1e9) return err('node certificate expiry must be at least 1h0m0s');
  return ok({
    Name: 'default',
    Labels: labels.value,
    Orchestration: { TaskHistoryRetentionLimit: v(retention) },
    Raft: { SnapshotInterval: v(snapshot), KeepOldSnapshots: v(keepOld), LogEntriesForSlowFollowers: v(slow), ElectionTick: v(election), HeartbeatTick: v(beat) },
    Dispatcher: { HeartbeatPeriod: v(heartbeat) },
    CAConfig: { NodeCertExpiry: v(expiry) },
    TaskDefaults: Object.keys(taskDefaults).length > 0 ? taskDefaults : base.TaskDefaults,
    EncryptionConfig: { AutoLockManagers: false },
  });
}

/** What a joining node says about itself (over 2377), checked before it is stored. */
export function parseNodeDescription(v: unknown): Result<NodeDescription> {
  if (!isObject(v)) return err('Description must be an object');
  const text = (x: unknown, max = MAX_NAME): x is string => typeof x === 'string' && x.length <= max;
  const count = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  const platform = v['Platform'];
  const resources = v['Resources'];
  const engine = v['Engine'];
  if (!text(v['Hostname']) || v['Hostname'] === '') return err('Description.Hostname must be a non-empty string');
  if (!isObject(platform) || !text(platform['Architecture']) || !text(platform['OS'])) return err('Description.Platform must have Architecture and OS');
  if (!isObject(resources) || !count(resources['NanoCPUs']) || !count(resources['MemoryBytes'])) return err('Description.Resources must have NanoCPUs and MemoryBytes');
  if (!isObject(engine) || !text(engine['EngineVersion'])) return err('Description.Engine must have EngineVersion');
  const labels = parseLabels(engine['Labels'], 'Description.Engine.Labels');
  if (!labels.ok) return labels;
  return ok({
    Hostname: v['Hostname'],
    Platform: { Architecture: platform['Architecture'], OS: platform['OS'] },
    Resources: { NanoCPUs: resources['NanoCPUs'], MemoryBytes: resources['MemoryBytes'] },
    Engine: { EngineVersion: engine['EngineVersion'], Labels: labels.value, Plugins: [{ Type: 'Network', Name: 'overlay' }] },
  });
}
