/**
 * One node's names, in a network namespace of its own, for test/agent/names-netns.test.ts: a
 * VTEP on the namespace's underlay address (real UDP), the overlay interface 100.64.11.2/24
 * with UDP and TCP, an endpoint table with two local HTTP tasks (127.0.0.1:24420–24421,
 * overlay 100.64.11.130–131, target 24450), a router, and NameService with everything on:
 * DNS on 127.0.0.11:53 (the namespace's own loopback: the default address, bindable as root),
 * DNS on the overlay, the VIP 100.64.11.254 on the overlay, mirrors on 127.64.11.x.
 *
 * Argument: JSON { underlay, vtepPort, kernelUnderlay, kernelMac }. Prints {"ready":true,…}
 * once serving; runs until killed.
 */
import { createServer } from 'node:http';
import { NameService } from '../../src/agent/names.js';
import { RealClock } from '../../src/lib/clock.js';
import { CryptoRng } from '../../src/lib/rng.js';
import { EndpointTable } from '../../src/mesh/endpoint-table.js';
import { localTcpConnector } from '../../src/mesh/node-upstream.js';
import { MeshRouter } from '../../src/mesh/router.js';
import { OverlayInterface } from '../../src/netstack/interface.js';
import { attachTcp } from '../../src/netstack/tcp/attach.js';
import { UdpLayer } from '../../src/netstack/udp.js';
import { ForwardingTable } from '../../src/overlay/forwarding-table.js';
import { openUdpSocket } from '../../src/overlay/node-udp.js';
import { Vtep } from '../../src/overlay/vtep.js';
import { parseIpv4Address, parseMacAddress } from '../../src/wire/address.js';

interface RunnerConfig {
  readonly underlay: string;
  readonly vtepPort: number;
  readonly kernelUnderlay: string;
  readonly kernelMac: string;
}

const VNI = 4096;
const TARGET = 24450;
const must = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const ip = (text: string): number => must(parseIpv4Address(text));

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
  const clock = new RealClock();
  const socket = await openUdpSocket({ address: config.underlay, port: config.vtepPort, recvBufferSize: 4 << 20 });
  const vtep = new Vtep({ socket, fdb: new ForwardingTable() });
  const kernel = { address: config.kernelUnderlay, port: config.vtepPort };
  vtep.fdb.set(VNI, must(parseMacAddress(config.kernelMac)), kernel);
  vtep.fdb.addFlood(VNI, kernel);
  const iface = vtep.attachWith(VNI, (link) => new OverlayInterface({ address: ip('100.64.11.2'), prefixLen: 24, link, clock, mtu: 1450 }));
  const udp = new UdpLayer(iface);
  const tcp = attachTcp(iface, { clock, rng: new CryptoRng() });

  const table = new EndpointTable({ nodeName: 'a', clock });
  for (const [slot, taskId, port, last] of [
    [1, 'k5q3n9x2m7c4v8b1z6a0s3d5f', 24420, 130],
    [2, 'p0o9i8u7y6t5r4e3w2q1a2s3d', 24421, 131],
  ] as const) {
    await new Promise<void>((resolve) => createServer((_req, res) => res.end(JSON.stringify({ task: taskId }))).listen(port, '127.0.0.1', resolve));
    table.upsertLocal({
      service: 'web',
      taskId,
      slot,
      node: 'a',
      overlayAddress: ip(`100.64.11.${last}`),
      vni: VNI,
      vtepAddress: ip(config.underlay),
      vtepPort: config.vtepPort,
      hostAddress: ip('127.0.0.1'),
      ports: [{ protocol: 'tcp', target: TARGET, hostPort: port }],
      health: 'none',
    });
  }
  const router = new MeshRouter({ table, clock, rng: new CryptoRng(), connectLocal: localTcpConnector() });
  const names = await NameService.start({
    table,
    router,
    overlay: { iface, udp, tcpSockets: tcp.sockets, nodeAddress: iface.address },
    dns: { address: '127.0.0.1', port: 24430 },
    mirrors: true,
    clock,
    upstreamResolvers: [],
  });
  names.setServices([{ ID: 'svc1', Name: 'web', EndpointMode: 'vip', VirtualIP: '100.64.11.254', Ports: [{ Protocol: 'tcp', TargetPort: TARGET, PublishedPort: 24451, PublishMode: 'ingress' }] }]);
  await names.mirrors!.settled();
  process.stdout.write(`${JSON.stringify({ ready: true, dns: names.hostDns })}\n`);
  process.on('SIGTERM', () => {
    void names.close().then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
