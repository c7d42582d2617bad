/**
 * The swarm objects as the Docker Engine API shows them (spec docker-api-swarm.md §5.1, §5.2):
 * PascalCase field names, durations in integer nanoseconds, times as RFC 3339 strings.
 * Stored records keep exactly these shapes so that the API serves them without translation.
 */

export type NodeRole = 'worker' | 'manager';
export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeState = 'unknown' | 'down' | 'ready' | 'disconnected';
export type Reachability = 'unknown' | 'unreachable' | 'reachable';

export interface Version {
  readonly Index: number;
}

export interface NodeSpec {
  readonly Name?: string;
  readonly Labels: Readonly<Record<string, string>>;
  readonly Role: NodeRole;
  readonly Availability: NodeAvailability;
}

export interface NodeDescription {
  readonly Hostname: string;
  readonly Platform: { readonly Architecture: string; readonly OS: string };
  readonly Resources: { readonly NanoCPUs: number; readonly MemoryBytes: number };
  readonly Engine: { readonly EngineVersion: string; readonly Labels?: Readonly<Record<string, string>>; readonly Plugins: readonly { Type: string; Name: string }[] };
}

/** A node as stored: everything but the live status and the manager status, which the manager computes. */
export interface NodeRecord {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: NodeSpec;
  readonly Description: NodeDescription;
  /** The node's address as seen by managers (no port). */
  readonly Addr: string;
  /** For managers: the address:port of their 2377 listener. */
  readonly ManagerAddr?: string;
}

/** A node as the API answers it. */
export interface NodeView {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: NodeSpec;
  readonly Description: NodeDescription & { readonly TLSInfo: TlsInfo };
  readonly Status: { readonly State: NodeState; readonly Message?: string; readonly Addr: string };
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability: Reachability; readonly Addr: string };
}

export interface TlsInfo {
  readonly TrustRoot: string;
  readonly CertIssuerSubject: string;
  readonly CertIssuerPublicKey: string;
}

export interface SwarmSpec {
  readonly Name: string;
  readonly Labels: Readonly<Record<string, string>>;
  readonly Orchestration: { readonly TaskHistoryRetentionLimit: number };
  readonly Raft: {
    readonly SnapshotInterval: number;
    readonly KeepOldSnapshots: number;
    readonly LogEntriesForSlowFollowers: number;
    readonly ElectionTick: number;
    readonly HeartbeatTick: number;
  };
  readonly Dispatcher: { readonly HeartbeatPeriod: number };
  readonly CAConfig: { readonly NodeCertExpiry: number };
  readonly TaskDefaults: Readonly<Record<string, unknown>>;
  readonly EncryptionConfig: { readonly AutoLockManagers: boolean };
}

export interface JoinTokens {
  readonly Worker: string;
  readonly Manager: string;
}

/** The cluster object as stored, CA key included (swarmkit keeps it in the raft store too). */
export interface ClusterRecord {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: SwarmSpec;
  readonly JoinTokens: JoinTokens;
  readonly RootCA: { readonly CertPem: string; readonly KeyPem: string };
  readonly DefaultAddrPool: readonly string[];
  readonly SubnetSize: number;
  readonly DataPathPort: number;
  /** The node that made the swarm and holds the store: the leader. */
  readonly LeaderID: string;
}

/** `GET /swarm`. */
export interface SwarmView {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: SwarmSpec;
  readonly TLSInfo: TlsInfo;
  readonly RootRotationInProgress: boolean;
  readonly DefaultAddrPool: readonly string[];
  readonly SubnetSize: number;
  readonly DataPathPort: number;
  readonly JoinTokens: JoinTokens;
}

/** Nanoseconds per millisecond: the API's durations are integer nanoseconds. */
export const NS_PER_MS = 1_000_000;
