/**
 * The owner's end of the remote UDP path, the UDP twin of task-listeners.ts: another agent's
 * ingress sends a flow's datagrams over the overlay to a task's overlay address and target
 * port (udp-flows.ts `UdpEndpoints.open`); this agent relays them to the task over kernel UDP,
 * with a kernel socket per overlay peer (so the task's answers map back to that peer), and
 * sends the answers back over the overlay from the task's overlay address and target port.
 *
 * For every routable row this node owns with UDP ports, the overlay UDP port of each target is
 * bound; rows that come, change, stop being routable or go take their bindings and peer flows
 * with them. The task's overlay address itself is added to the interface by
 * OverlayTaskListeners, for every local row.
 *
 * Several local tasks may serve the same target port (two replicas on one node). A layer that
 * reports the address a datagram was sent to (`local`) picks the task by it; without it, the
 * first routable task on the port takes the peer's flow, and the ambiguity is counted.
 *
 * A target port that another user of the overlay's UDP holds (an ingress flow's ephemeral port,
 * for a task serving in 49152–65535) is counted and tried again every UDP_BIND_RETRY_MS.
 *
 * Peer flows are bounded and expire like the ingress's (UdpFlowTable): at the limit a new
 * peer's datagrams are dropped and counted; a flow's queue while its kernel socket opens too.
 */
import type { Clock, Timer } from '../lib/clock.js';
import { Counters } from '../lib/counters.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { type Ipv4Address, formatIpv4Address } from '../wire/address.js';
import type { UdpPeer } from '../netstack/udp.js';
import type { EndpointRow } from './endpoint-codec.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';
import { type Upstream, isRoutable } from './router.js';
import { DEFAULT_MAX_OVERLAY_DATAGRAM, type OverlayUdp, type OverlayUdpSocket, type PendingUdpFlow, type UdpUpstream, UdpFlowTable, attachUpstream, forwardOnFlow } from './udp-flows.js';

export const UDP_TASK_COUNTERS = [
  /** Datagrams from overlay peers relayed toward a task. */
  'mesh_udp_task_rx_datagrams',
  /** Task answers sent back over the overlay. */
  'mesh_udp_task_tx_datagrams',
  /** A datagram to a bound port for an address none of our routable tasks has. */
  'mesh_udp_task_dropped_no_task',
  /** A datagram of a peer flow whose kernel socket was still opening, beyond the flow's queue. */
  'mesh_udp_task_dropped_queue_full',
  /** A peer flow whose kernel socket to the task could not be opened. */
  'mesh_udp_task_dropped_open_fail',
  /** A datagram to a port several local tasks serve, from a layer that does not say which address it was for. */
  'mesh_udp_task_ambiguous',
  /** A task's answer larger than the overlay carries (the overlay never fragments). */
  'mesh_udp_task_dropped_too_big',
  /** A target port another user of the overlay's UDP holds, or keeps (`reservedPorts`: the embedded DNS's 53). */
  'mesh_udp_task_bind_fail',
] as const;
export type UdpTaskCounter = (typeof UDP_TASK_COUNTERS)[number];

/** The embedded DNS's port on the overlay (src/agent/names.ts). */
export const DEFAULT_RESERVED_PORTS: readonly number[] = [53];

/**
 * How often a task port that another user holds is tried again: an ingress flow's ephemeral
 * port (49152–65535, udp-flows.ts) is given back when its flow idles out.
 */
export const UDP_BIND_RETRY_MS = 1000;

export interface UdpTaskListenersOptions {
  readonly table: EndpointTable;
  /** The overlay's UDP (the agent's one UdpLayer). */
  readonly udp: OverlayUdp;
  /** Kernel UDP to a local task (node-upstream.ts `openLocalUdpUpstream`). */
  readonly openLocal: (u: Upstream) => Promise<UdpUpstream>;
  readonly clock: Clock;
  /** Peer flows across every task (default 4096). */
  readonly maxFlows?: number;
  /** Default 30 s, as the ingress's. */
  readonly idleTimeoutMs?: number;
  /** The largest UDP payload the overlay carries: the interface's `maxPayload` less 8. */
  readonly maxDatagramBytes?: number;
  /**
   * Overlay UDP ports never taken for a task (default: 53, the embedded DNS's on every overlay
   * address of the node, which may bind after the first tasks are known).
   */
  readonly reservedPorts?: readonly number[];
  /** Datagrams held per peer flow while its kernel socket opens (default 16). */
  readonly maxPendingDatagrams?: number;
  readonly logger?: Logger;
}

interface Task {
  readonly key: string;
  readonly row: EndpointRow;
  /** Target → host port, UDP only. */
  readonly ports: ReadonlyMap<number, number>;
  /** Peer flow keys of this task. */
  readonly flows: Set<string>;
}

interface Binding {
  readonly socket: OverlayUdpSocket;
  /** Task keys served on this port, in the order they came. */
  readonly tasks: Set<string>;
}

export class UdpTaskListeners {
  readonly #o: UdpTaskListenersOptions;
  readonly #log: Logger;
  readonly #counters = new Counters<UdpTaskCounter>(UDP_TASK_COUNTERS);
  readonly #flows: UdpFlowTable<PendingUdpFlow>;
  readonly #tasks = new Map<string, Task>();
  readonly #bindings = new Map<number, Binding>();
  /** Ports held by someone else when their tasks came, with the task keys waiting for them. */
  readonly #unbound = new Map<number, Set<string>>();
  #retry: Timer | undefined;
  readonly #unsubscribe: () => void;

  constructor(options: UdpTaskListenersOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ component: 'udp-task-listeners' });
    this.#flows = new UdpFlowTable({
      clock: options.clock,
      ...(options.maxFlows !== undefined && { maxFlows: options.maxFlows }),
      ...(options.idleTimeoutMs !== undefined && { idleTimeoutMs: options.idleTimeoutMs }),
    });
    for (const r of options.table.endpoints()) this.#sync(r);
    this.#unsubscribe = options.table.subscribe((e) => {
      if (e.type === 'removed') this.#stop(rowKey(e.row.service, e.row.taskId));
      else this.#sync(e.row);
    });
  }

  /** This side's counters and its peer flow table's (`mesh_udp_flows_total`, …), for /metrics with `path="overlay"`. */
  counters(): Record<string, number> {
    return { ...this.#flows.counters.snapshot(), ...this.#counters.snapshot() };
  }

  /** Peer flows open now. */
  get flows(): number {
    return this.#flows.size;
  }

  /** Overlay addresses and UDP ports served now, for tests and debugging. */
  listening(): { address: string; port: number }[] {
    return [...this.#tasks.values()].flatMap((t) => [...t.ports.keys()].filter((p) => this.#bindings.get(p)?.tasks.has(t.key)).map((port) => ({ address: formatIpv4Address(t.row.overlayAddress), port })));
  }

  /** Unbinds every port and ends every peer flow. Idempotent. */
  close(): void {
    this.#unsubscribe();
    this.#retry?.cancel();
    this.#retry = undefined;
    for (const key of [...this.#tasks.keys()]) this.#stop(key);
    this.#flows.close();
  }

  #sync(row: EndpointRow): void {
    if (row.node !== this.#o.table.nodeName) return;
    const key = rowKey(row.service, row.taskId);
    const ports = new Map(row.ports.filter((p) => p.protocol === 'udp').map((p) => [p.target, p.hostPort]));
    const current = this.#tasks.get(key);
    const wanted = isRoutable(row.health) && ports.size > 0;
    if (current && wanted && current.row.overlayAddress === row.overlayAddress && current.row.hostAddress === row.hostAddress && sameMap(current.ports, ports)) {
      this.#tasks.set(key, { ...current, row });
      return;
    }
    this.#stop(key);
    if (!wanted) return;
    const task: Task = { key, row, ports, flows: new Set() };
    this.#tasks.set(key, task);
    for (const target of ports.keys()) this.#bind(target, key);
  }

  #bind(port: number, taskKey: string): void {
    const held = this.#bindings.get(port);
    if (held) {
      held.tasks.add(taskKey);
      return;
    }
    const waiting = this.#unbound.get(port);
    if (waiting) {
      waiting.add(taskKey);
      return;
    }
    if ((this.#o.reservedPorts ?? DEFAULT_RESERVED_PORTS).includes(port)) {
      this.#counters.inc('mesh_udp_task_bind_fail');
      this.#log.warn({ port, task: taskKey }, 'A task’s UDP port is reserved on the overlay: not served there');
      return;
    }
    const error = this.#tryBind(port, new Set([taskKey]));
    if (error === undefined) return;
    this.#counters.inc('mesh_udp_task_bind_fail');
    this.#log.warn({ err: error, port, task: taskKey }, 'Cannot serve a task’s UDP port on the overlay yet: trying again');
    this.#unbound.set(port, new Set([taskKey]));
    this.#armRetry();
  }

  /** Binds `port` for `tasks`; the bind error, if any. */
  #tryBind(port: number, tasks: Set<string>): unknown {
    try {
      const socket = this.#o.udp.bind(port, (data, from, local) => this.#onDatagram(port, data, from, local));
      this.#bindings.set(port, { socket, tasks });
      return undefined;
    } catch (error) {
      return error ?? new Error('Bind failed');
    }
  }

  #armRetry(): void {
    if (this.#retry || this.#unbound.size === 0) return;
    this.#retry = this.#o.clock.setTimer(UDP_BIND_RETRY_MS, () => {
      this.#retry = undefined;
      for (const [port, tasks] of [...this.#unbound]) {
        if (this.#tryBind(port, tasks) !== undefined) continue;
        this.#unbound.delete(port);
        this.#log.info({ port }, 'Serving a task’s UDP port on the overlay now');
      }
      this.#armRetry();
    });
  }

  #stop(key: string): void {
    const task = this.#tasks.get(key);
    if (!task) return;
    this.#tasks.delete(key);
    for (const f of [...task.flows]) this.#flows.delete(f);
    for (const port of task.ports.keys()) {
      const waiting = this.#unbound.get(port);
      waiting?.delete(key);
      if (waiting?.size === 0) this.#unbound.delete(port);
      const b = this.#bindings.get(port);
      if (!b) continue;
      b.tasks.delete(key);
      if (b.tasks.size === 0) {
        this.#bindings.delete(port);
        b.socket.close();
      }
    }
  }

  #taskFor(b: Binding, local: Ipv4Address | undefined): Task | undefined {
    if (local !== undefined) {
      for (const k of b.tasks) {
        const t = this.#tasks.get(k);
        if (t?.row.overlayAddress === local) return t;
      }
      return undefined;
    }
    if (b.tasks.size > 1) this.#counters.inc('mesh_udp_task_ambiguous');
    for (const k of b.tasks) return this.#tasks.get(k);
    return undefined;
  }

  #onDatagram(port: number, data: Uint8Array, from: UdpPeer, local: Ipv4Address | undefined): void {
    const b = this.#bindings.get(port);
    const task = b && this.#taskFor(b, local);
    const hostPort = task?.ports.get(port);
    if (!task || hostPort === undefined) {
      this.#counters.inc('mesh_udp_task_dropped_no_task');
      return;
    }
    this.#counters.inc('mesh_udp_task_rx_datagrams');
    // `data` is valid only during this call; the kernel send is asynchronous.
    const bytes = Buffer.from(data);
    const flowKey = `${task.key}\u0000${port}\u0000${from.address}:${from.port}`;
    const existing = this.#flows.get(flowKey);
    if (existing) {
      if (!forwardOnFlow(existing, bytes, this.#o.maxPendingDatagrams ?? 16)) this.#counters.inc('mesh_udp_task_dropped_queue_full');
      return;
    }
    const flow: PendingUdpFlow = { upstream: undefined, pending: [bytes], closed: false };
    if (
      !this.#flows.add(flowKey, flow, () => {
        flow.closed = true;
        flow.upstream?.close();
        task.flows.delete(flowKey);
      })
    )
      return;
    task.flows.add(flowKey);
    const row = task.row;
    const upstream: Upstream = { key: task.key, local: true, row, host: formatIpv4Address(row.hostAddress), port: hostPort };
    this.#o.openLocal(upstream).then(
      (u) =>
        attachUpstream(flow, u, (answer) => {
          this.#flows.touch(flowKey);
          if (answer.length > (this.#o.maxDatagramBytes ?? DEFAULT_MAX_OVERLAY_DATAGRAM)) {
            this.#counters.inc('mesh_udp_task_dropped_too_big');
            return;
          }
          this.#counters.inc('mesh_udp_task_tx_datagrams');
          b.socket.send(answer, from, row.overlayAddress);
        }),
      (error: unknown) => {
        this.#counters.inc('mesh_udp_task_dropped_open_fail');
        this.#log.debug({ err: error, task: task.key }, 'Cannot open a UDP socket to a local task');
        this.#flows.delete(flowKey);
      },
    );
  }
}

function sameMap(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
