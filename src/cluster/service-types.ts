/**
 * Services, tasks and networks as the Docker Engine API shows them (spec docker-api-swarm.md
 * §5.3–§5.6), and the messages between the dispatcher (manager) and an agent's executor.
 *
 * Stored records keep the API's shapes (PascalCase, durations in integer nanoseconds, times as
 * RFC 3339 strings), so the API serves them without translation. This file is the contract
 * between the manager (orchestrator, scheduler, dispatcher), the API and the agent: change it
 * with all three in view.
 */
import type { Version } from './types.js';

/** `filters` of a list call, parsed: key → values (spec §1.1, §9.5). */
export type ObjectFilters = Readonly<Record<string, readonly string[]>>;

// ---------------------------------------------------------------------------------------------
// ServiceSpec (request body of create and update, §5.3). Only the fields shoal acts on are
// typed; every other documented field is accepted and stored as sent (the CLI re-sends the
// whole Spec on update and drops what it does not model, §10.10).

export interface HealthcheckSpec {
  /** `["NONE"]`, `["CMD", exe, ...args]` or `["CMD-SHELL", "command"]`; absent: no check. */
  readonly Test?: readonly string[];
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly StartPeriod?: number;
  readonly StartInterval?: number;
  readonly Retries?: number;
}

export interface ContainerSpec {
  /** `shoal/whoami`, `shoal/ping` (built-ins, optional `:tag` / `@digest`) or an absolute path to an executable. */
  readonly Image: string;
  readonly Labels?: Readonly<Record<string, string>>;
  /** Replaces the image's entrypoint (`--entrypoint`). */
  readonly Command?: readonly string[];
  /** Words after the image on the command line. */
  readonly Args?: readonly string[];
  /** "K=V". */
  readonly Env?: readonly string[];
  readonly Dir?: string;
  readonly Hostname?: string;
  readonly StopSignal?: string;
  readonly StopGracePeriod?: number;
  readonly Healthcheck?: HealthcheckSpec;
  readonly TTY?: boolean;
  readonly [other: string]: unknown;
}

export type RestartCondition = 'none' | 'on-failure' | 'any';

export interface RestartPolicy {
  readonly Condition?: RestartCondition;
  /** ns */
  readonly Delay?: number;
  readonly MaxAttempts?: number;
  /** ns */
  readonly Window?: number;
}

export interface Placement {
  /** `node.role==manager`, `node.hostname!=a`, `node.id==…`, `node.labels.k==v`. */
  readonly Constraints?: readonly string[];
  readonly Preferences?: readonly unknown[];
  /** 0: no limit. */
  readonly MaxReplicas?: number;
  readonly Platforms?: readonly { readonly Architecture?: string; readonly OS?: string }[];
}

export interface TaskSpec {
  readonly ContainerSpec: ContainerSpec;
  readonly Resources?: unknown;
  readonly RestartPolicy?: RestartPolicy;
  readonly Placement?: Placement;
  readonly Networks?: readonly { readonly Target: string; readonly Aliases?: readonly string[] }[];
  readonly LogDriver?: unknown;
  readonly ForceUpdate?: number;
  readonly Runtime?: string;
}

export type PortProtocolName = 'tcp' | 'udp' | 'sctp';
export type PublishMode = 'ingress' | 'host';
export type EndpointMode = 'vip' | 'dnsrr';

export interface PortConfig {
  readonly Name?: string;
  readonly Protocol?: PortProtocolName;
  readonly TargetPort: number;
  /** 0 or absent in a spec: auto-assigned from 30000–32767 (ingress mode). */
  readonly PublishedPort?: number;
  readonly PublishMode?: PublishMode;
}

export interface EndpointSpec {
  readonly Mode?: EndpointMode;
  readonly Ports?: readonly PortConfig[];
}

export interface UpdateConfig {
  readonly Parallelism?: number;
  readonly Delay?: number;
  readonly FailureAction?: 'pause' | 'continue' | 'rollback';
  readonly Monitor?: number;
  readonly MaxFailureRatio?: number;
  readonly Order?: 'stop-first' | 'start-first' | '';
}

export type ServiceMode = { readonly Replicated: { readonly Replicas?: number } } | { readonly Global: Record<string, never> };

export interface ServiceSpec {
  readonly Name: string;
  readonly Labels: Readonly<Record<string, string>>;
  readonly TaskTemplate: TaskSpec;
  readonly Mode: ServiceMode;
  readonly UpdateConfig?: UpdateConfig;
  readonly RollbackConfig?: UpdateConfig;
  readonly EndpointSpec?: EndpointSpec;
}

// ---------------------------------------------------------------------------------------------
// Service (§5.4)

/** A resolved port: Protocol and PublishMode filled, PublishedPort assigned. */
export interface EndpointPort {
  readonly Name?: string;
  readonly Protocol: PortProtocolName;
  readonly TargetPort: number;
  readonly PublishedPort: number;
  readonly PublishMode: PublishMode;
}

export interface VirtualIp {
  readonly NetworkID: string;
  /** "100.64.0.130/24" */
  readonly Addr: string;
}

export interface ServiceEndpoint {
  readonly Spec: EndpointSpec;
  readonly Ports?: readonly EndpointPort[];
  readonly VirtualIPs?: readonly VirtualIp[];
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus {
  readonly State: UpdateState;
  readonly StartedAt?: string;
  readonly CompletedAt?: string;
  readonly Message: string;
}

/** A service as stored and as `GET /services/{id}` answers it (ServiceStatus only on list with status=true). */
export interface ServiceRecord {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Spec: ServiceSpec;
  readonly PreviousSpec?: ServiceSpec;
  readonly Endpoint: ServiceEndpoint;
  readonly UpdateStatus?: UpdateStatus | null;
}

export interface ServiceStatus {
  readonly RunningTasks: number;
  readonly DesiredTasks: number;
  readonly CompletedTasks: number;
}

export type ServiceView = ServiceRecord & { readonly ServiceStatus?: ServiceStatus };

// ---------------------------------------------------------------------------------------------
// Task (§5.5)

/** Swarm's task states, in their order (swarmkit api/types.proto TaskState). */
export const TASK_STATES = [
  'new',
  'allocated',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'ready',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'remove',
  'orphaned',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export interface TaskStatus {
  readonly Timestamp: string;
  readonly State: TaskState;
  readonly Message: string;
  readonly Err?: string;
  readonly ContainerStatus?: { readonly ContainerID?: string; readonly PID?: number; readonly ExitCode?: number };
  readonly PortStatus: { readonly Ports?: readonly EndpointPort[] };
}

export interface NetworkAttachment {
  readonly Network: NetworkRecord;
  /** "100.64.0.131/24" */
  readonly Addresses: readonly string[];
}

export interface TaskRecord {
  readonly ID: string;
  readonly Version: Version;
  readonly CreatedAt: string;
  readonly UpdatedAt: string;
  readonly Labels: Readonly<Record<string, string>>;
  /** A copy of the service's TaskTemplate when the task was made (`_up-to-date` compares it). */
  readonly Spec: TaskSpec;
  readonly ServiceID: string;
  /** 1..N for replicated services; 0 for global ones. */
  readonly Slot: number;
  /** Empty until the scheduler assigns it. */
  readonly NodeID: string;
  readonly Status: TaskStatus;
  readonly DesiredState: TaskState;
  readonly NetworksAttachments?: readonly NetworkAttachment[];
}

// ---------------------------------------------------------------------------------------------
// Network (§5.6). Note `Id`, not `ID`.

export interface NetworkRecord {
  readonly Name: string;
  readonly Id: string;
  readonly Created: string;
  readonly Scope: 'swarm';
  readonly Driver: 'overlay';
  readonly EnableIPv4: true;
  readonly EnableIPv6: false;
  readonly IPAM: { readonly Driver: 'default'; readonly Options: null; readonly Config: readonly { readonly Subnet: string; readonly Gateway: string }[] };
  readonly Internal: boolean;
  readonly Attachable: boolean;
  readonly Ingress: boolean;
  readonly ConfigFrom: { readonly Network: string };
  readonly ConfigOnly: false;
  readonly Containers: null;
  /** `com.docker.network.driver.overlay.vxlanid_list`: the VNI, as a decimal string. */
  readonly Options: Readonly<Record<string, string>>;
  readonly Labels: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------
// Dispatcher ↔ agent. The agent long-polls its assignments (a full state, not a delta: the
// executor reconciles to it, so a lost answer costs nothing) and reports task status and log
// lines. Field names PascalCase like the rest of the API.

/** What an agent's executor needs to run one task. */
export interface TaskAssignment {
  readonly TaskID: string;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly Slot: number;
  /** `running`: run it; anything after `running` (shutdown, remove…): stop it. */
  readonly DesiredState: TaskState;
  readonly Spec: TaskSpec;
  /** The service's resolved ports: the task serves every TargetPort (host mode: on PublishedPort). */
  readonly Ports: readonly EndpointPort[];
  /** The task's address on the ingress network, no prefix ("100.64.0.131"). */
  readonly OverlayAddress: string;
}

/** What every agent needs to know of every service: its listeners, VIP and names. */
export interface ServiceRoute {
  readonly ID: string;
  readonly Name: string;
  readonly EndpointMode: EndpointMode;
  /** The VIP on the ingress network, no prefix; absent in dnsrr mode. */
  readonly VirtualIP?: string;
  readonly Ports: readonly EndpointPort[];
  /** The service's labels: what the mesh reads per service (`shoal.proxy-protocol`). */
  readonly Labels?: Readonly<Record<string, string>>;
}

export interface AssignmentSet {
  /** Changes whenever anything in the set changes (the store index it was read at). */
  readonly Index: number;
  readonly Tasks: readonly TaskAssignment[];
  readonly Services: readonly ServiceRoute[];
  /** The ingress network: the agents' overlay (VNI, subnet). */
  readonly Ingress: { readonly Vni: number; readonly Subnet: string };
}

/** An executor's report on one task. State only moves forward (TASK_STATES order). */
export interface TaskStatusUpdate {
  readonly TaskID: string;
  readonly State: TaskState;
  readonly Message: string;
  readonly Err?: string;
  readonly PID?: number;
  readonly ExitCode?: number;
  /** RFC 3339, the agent's clock. */
  readonly Timestamp: string;
}

export interface TaskLogLine {
  readonly TaskID: string;
  readonly Stream: 'stdout' | 'stderr';
  /** RFC 3339 with nanoseconds (Docker's log timestamps). */
  readonly Timestamp: string;
  /** One line, without its newline. */
  readonly Line: string;
}
