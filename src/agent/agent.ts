/**
 * The composition root of one host (ARCHITECTURE.md): today the overlay presence (VTEP and
 * interface); gossip, the mesh, DNS and the executor join here as their issues land.
 * Only this folder touches real time, sockets and files.
 */
import { RealClock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { parseIpv4Address } from '../wire/address.js';
import type { Logger } from '../lib/logger.js';
import { renderCounters } from '../lib/metrics.js';
import type { UdpEndpoint } from '../overlay/datagram.js';
import { type OverlayNodeConfig, OverlayNode } from './overlay-node.js';
import { ClusterNode } from './cluster-node.js';

export interface AgentConfig {
  readonly nodeName: string;
  readonly overlay: OverlayNodeConfig;
  /** The swarm side (issue 7): where membership is kept, and the address 2377 binds by default. */
  readonly cluster: { readonly dataDir: string; readonly advertiseAddr: string };
}

export class Agent {
  readonly config: AgentConfig;
  readonly overlay: OverlayNode;
  readonly cluster: ClusterNode;

  private constructor(config: AgentConfig, overlay: OverlayNode, cluster: ClusterNode) {
    this.config = config;
    this.overlay = overlay;
    this.cluster = cluster;
  }

  /** Starts every part of the agent. Throws VtepSocketError when the data path port cannot be bound. */
  static async start(config: AgentConfig, logger: Logger): Promise<Agent> {
    const overlay = await OverlayNode.start(config.overlay, { clock: new RealClock(), logger });
    const cluster = await ClusterNode.start({ ...config.cluster, nodeName: config.nodeName, logger });
    logger.info({ node: config.nodeName }, 'agent started');
    return new Agent(config, overlay, cluster);
  }

  vtepAddress(): UdpEndpoint {
    return this.overlay.vtep.local();
  }

  /** Pings an overlay address from this host's interface. Throws InvalidArgumentError for a bad address. */
  pingOverlay(address: string, options: { count: number; intervalMs: number; timeoutMs: number }): ReturnType<OverlayNode['ping']> {
    const parsed = parseIpv4Address(address);
    if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
    return this.overlay.ping(parsed.value, options);
  }

  /** Every counter of every component, in Prometheus text format. */
  metrics(): string {
    const labels = { node: this.config.nodeName };
    return (
      renderCounters(this.overlay.vtep.counters.snapshot(), labels) +
      renderCounters(this.overlay.iface.counters.snapshot(), labels) +
      renderCounters(this.cluster.counters(), labels)
    );
  }

  async close(): Promise<void> {
    await this.cluster.close();
    await this.overlay.close();
  }
}
