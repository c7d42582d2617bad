/**
 * The agent's swarm side in-process (127.0.0.40, 2377 on an ephemeral port): what the agent
 * reads to join the gossip, and a node that resumes its swarm from its data dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterNode } from '../../src/agent/cluster-node.js';
import { silentLogger } from '../../src/lib/logger.js';

describe('ClusterNode', () => {
  let tmp: string;
  const open: ClusterNode[] = [];
  const start = async (): Promise<ClusterNode> => {
    const node = await ClusterNode.start({ dataDir: path.join(tmp, 'data'), nodeName: 'solo', advertiseAddr: '127.0.0.40', logger: silentLogger });
    open.push(node);
    return node;
  };

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'shoal-cluster-node-'));
  });

  afterEach(async () => {
    for (const n of open.splice(0)) await n.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('tells the agent the managers to join the gossip through, on init and after a restart', async () => {
    const node = await start();
    expect(node.managers()).toEqual([]);
    const seen: (readonly string[])[] = [];
    node.onSwarmJoined((m) => seen.push(m));
    const id = await node.init({ ListenAddr: '127.0.0.40:0', AdvertiseAddr: '127.0.0.40:23760' });
    expect(seen).toEqual([['127.0.0.40:23760']]);
    expect(node.swarmHeader()).toBe('active/manager');
    await node.close();
    open.pop();

    const again = await start();
    expect(again.managers()).toEqual(['127.0.0.40:23760']);
    expect((await again.info()).NodeID).toBe(id);
    expect((await again.control().listNodes({})).map((n) => [n.ID, n.Status.State, n.ManagerStatus?.Leader])).toEqual([[id, 'ready', true]]);
    await again.leave(true);
    expect(again.managers()).toEqual([]);
    expect(again.swarmHeader()).toBe('inactive');
  });
});
