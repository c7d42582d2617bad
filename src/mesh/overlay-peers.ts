/**
 * Overlay forwarding from the endpoint table (ARCHITECTURE.md: "Overlay forwarding entries
 * (MAC → VTEP) come from the same table: no ARP flooding"). For every live row of a remote
 * task, the VTEP learns that the task's MAC (02:42 + its overlay address, Swarm's rule) sits
 * behind the owning node's VTEP, and the interface gets a static neighbour for the address,
 * as Swarm programs its FDB and neighbour table from NetworkDB's peer table.
 *
 * Rows of this node's own tasks are not peers: their addresses are the interface's own
 * (task-listeners.ts adds them).
 */
import { type Ipv4Address, formatIpv4Address, macForIpv4 } from '../wire/address.js';
import type { UdpEndpoint } from '../overlay/datagram.js';
import type { EndpointRow } from './endpoint-codec.js';
import { rowKey } from './endpoint-codec.js';
import type { EndpointTable } from './endpoint-table.js';

/** Where peers are programmed: usually the VTEP's ForwardingTable and the overlay interface (see `overlayPeerTarget`). */
export interface OverlayPeerTarget {
  addPeer(vni: number, overlay: Ipv4Address, vtep: UdpEndpoint): void;
  removePeer(vni: number, overlay: Ipv4Address): void;
}

/**
 * The usual target: the VTEP's forwarding table, plus static neighbours on the interface of
 * the network it serves (interfaces of other VNIs are left alone).
 */
export function overlayPeerTarget(
  fdb: { set(vni: number, mac: number, remote: UdpEndpoint): void; delete(vni: number, mac: number): boolean },
  iface?: { readonly vni?: number; addStaticNeighbor(ip: Ipv4Address): void; readonly neighbors: { delete(ip: Ipv4Address): boolean } },
  ifaceVni?: number,
): OverlayPeerTarget {
  return {
    addPeer: (vni, overlay, vtep) => {
      fdb.set(vni, macForIpv4(overlay), vtep);
      if (iface && (ifaceVni === undefined || ifaceVni === vni)) iface.addStaticNeighbor(overlay);
    },
    removePeer: (vni, overlay) => {
      fdb.delete(vni, macForIpv4(overlay));
      if (iface && (ifaceVni === undefined || ifaceVni === vni)) iface.neighbors.delete(overlay);
    },
  };
}

/**
 * Keeps `target` in step with the table's remote rows, starting with those already there.
 * Returns the function that stops following (it leaves the entries in place).
 * Two rows claiming one overlay address (a task replaced by another): the newest claim wins,
 * and removing the older one does not remove the newer one's entry.
 */
export function syncOverlayPeers(table: EndpointTable, target: OverlayPeerTarget, onError?: (error: unknown, row: EndpointRow) => void): () => void {
  const owner = new Map<string, string>();
  const peerKey = (r: EndpointRow): string => `${r.vni}/${r.overlayAddress}`;
  const add = (r: EndpointRow): void => {
    if (r.node === table.nodeName) return;
    try {
      target.addPeer(r.vni, r.overlayAddress, { address: formatIpv4Address(r.vtepAddress), port: r.vtepPort });
      owner.set(peerKey(r), rowKey(r.service, r.taskId));
    } catch (error) {
      // A full forwarding table (CapacityError): that one task is unreachable, the rest work.
      onError?.(error, r);
    }
  };
  const remove = (r: EndpointRow): void => {
    if (r.node === table.nodeName) return;
    const key = peerKey(r);
    if (owner.get(key) !== rowKey(r.service, r.taskId)) return;
    owner.delete(key);
    target.removePeer(r.vni, r.overlayAddress);
  };
  for (const r of table.endpoints()) add(r);
  return table.subscribe((e) => {
    if (e.type === 'added') add(e.row);
    else if (e.type === 'removed') remove(e.row);
    else if (e.previous && (peerKey(e.previous) !== peerKey(e.row) || e.previous.vtepAddress !== e.row.vtepAddress || e.previous.vtepPort !== e.row.vtepPort)) {
      remove(e.previous);
      add(e.row);
    }
  });
}
