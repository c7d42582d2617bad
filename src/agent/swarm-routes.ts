/**
 * The swarm's services as the routing mesh takes them: every port a service publishes in
 * ingress mode (Swarm's routing mesh; host-mode ports are the task's own) becomes a listener
 * on every node. A port named `http` is declared HTTP, which lets the relay replay a request
 * its upstream never answered (router.ts `appProtocol`).
 */
import type { ServiceRoute } from '../cluster/service-types.js';
import type { PublishedPort } from '../mesh/router.js';
import type { MeshService } from './node-mesh.js';

export function swarmMeshServices(routes: readonly ServiceRoute[]): MeshService[] {
  return routes.map((r) => ({
    name: r.Name,
    ports: r.Ports.flatMap((p): PublishedPort[] =>
      p.PublishMode === 'ingress' && (p.Protocol === 'tcp' || p.Protocol === 'udp')
        ? [{ service: r.Name, protocol: p.Protocol, published: p.PublishedPort, target: p.TargetPort, ...(p.Name === 'http' && { appProtocol: 'http' as const }) }]
        : [],
    ),
  }));
}
