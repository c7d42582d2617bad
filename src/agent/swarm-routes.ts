/**
 * The swarm's services as the routing mesh takes them: every port a service publishes in
 * ingress mode (Swarm's routing mesh; host-mode ports are the task's own) becomes a listener
 * on every node. A port named `http` or `http-*` is declared HTTP, which lets the relay replay
 * a request its upstream never answered; the service label `shoal.proxy-protocol=v1|v2` makes
 * the ingress node send a PROXY header carrying the client's address (router.ts).
 */
import type { ServiceRoute } from '../cluster/service-types.js';
import { PROXY_PROTOCOL_LABEL, type PublishedPort, appProtocolOfPortName, proxyProtocolOfLabel } from '../mesh/router.js';
import type { MeshService } from './node-mesh.js';

export function swarmMeshServices(routes: readonly ServiceRoute[]): MeshService[] {
  return routes.map((r) => {
    const proxyProtocol = proxyProtocolOfLabel(r.Labels?.[PROXY_PROTOCOL_LABEL]);
    return {
      name: r.Name,
      ports: r.Ports.flatMap((p): PublishedPort[] => {
        if (p.PublishMode !== 'ingress' || (p.Protocol !== 'tcp' && p.Protocol !== 'udp')) return [];
        const appProtocol = p.Protocol === 'tcp' ? appProtocolOfPortName(p.Name) : undefined;
        return [
          {
            service: r.Name,
            protocol: p.Protocol,
            published: p.PublishedPort,
            target: p.TargetPort,
            ...(appProtocol && { appProtocol }),
            ...(proxyProtocol && p.Protocol === 'tcp' && { proxyProtocol }),
          },
        ];
      }),
    };
  });
}
