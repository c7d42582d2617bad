/**
 * The seam between the gossip and the endpoint table: a memberlist Delegate (src/gossip/
 * memberlist.ts) made of the table's methods, and the table's MeshReplication made of the
 * memberlist's user broadcast queue. The agent composes it with any other delegate it needs.
 *
 * ```ts
 * const table = new EndpointTable({ nodeName, clock });
 * const ml = Memberlist.create({ name: nodeName, ..., delegate: meshGossipDelegate(table) });
 * table.setReplication(meshReplicationOf(ml));
 * ```
 */
import type { Delegate, MemberEvent } from '../gossip/memberlist.js';
import type { EndpointTable, MeshReplication } from './endpoint-table.js';

export type MeshDelegate = Required<Pick<Delegate, 'notifyMsg' | 'localState' | 'mergeRemoteState' | 'notifyEvent'>>;

/**
 * The table as a memberlist delegate: user messages and push/pull state go to the table;
 * `dead` and `leave` drop the member's rows at once (NetworkDB does the same on a node's
 * failure or leave); `join` and `alive` let its rows in again.
 */
export function meshGossipDelegate(table: EndpointTable): MeshDelegate {
  return {
    notifyMsg: (payload) => table.notifyMsg(payload),
    localState: (join) => table.localState(join),
    mergeRemoteState: (state, join) => table.mergeRemoteState(state, join),
    notifyEvent: (event: MemberEvent) => {
      switch (event.type) {
        case 'dead':
        case 'leave':
          table.memberDead(event.member.name);
          break;
        case 'join':
        case 'alive':
          table.memberAlive(event.member.name);
          break;
        case 'update':
        case 'suspect':
          // A suspect member may refute; its endpoints stay until it is declared dead
          // (the passive health of the balancer covers the meantime).
          break;
        default: {
          const never: never = event.type;
          throw new Error(`unreachable: ${String(never)}`);
        }
      }
    },
  };
}

/** The memberlist's user broadcast queue, as the table's replication. */
export function meshReplicationOf(ml: { queueBroadcast(payload: Uint8Array, name?: string): void }): MeshReplication {
  return { broadcast: (payload, name) => ml.queueBroadcast(payload, name) };
}
