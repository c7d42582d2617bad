/**
 * Gossip membership events drive node status through MembershipLiveness: dead or left → down
 * at once, alive or joined → ready, suspect → unchanged (Lifeguard: a suspect may refute).
 */
import { describe, expect, it } from 'vitest';
import { MembershipLiveness } from '../../src/agent/cluster-liveness.js';
import { generateNodeKey } from '../../src/cluster/ca.js';
import { Manager } from '../../src/cluster/manager.js';
import { MemoryStore } from '../../src/cluster/store.js';
import type { MemberEvent } from '../../src/gossip/memberlist.js';
import { ManualClock } from '../../src/lib/clock.js';
import { SeededRng } from '../../src/lib/rng.js';

const key = generateNodeKey();
const description = { Hostname: '', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 1e9, MemoryBytes: 1e9 }, Engine: { EngineVersion: '0.1.0', Plugins: [] } };

function event(type: MemberEvent['type'], name: string, host: string): MemberEvent {
  return { type, member: { name, address: { host, port: 7946 } } } as unknown as MemberEvent;
}

describe('MembershipLiveness', () => {
  it('moves a worker down and up with the gossip, and ignores suspicion', async () => {
    const clock = new ManualClock();
    const manager = new Manager({ store: new MemoryStore(), clock, wallClock: () => 1.7e12, rng: new SeededRng(3) });
    await manager.init({ self: { hostname: 'm', addr: '127.0.0.1', managerAddr: '127.0.0.1:2377', description: { ...description, Hostname: 'm' } }, publicKeyPem: key.publicKeyPem });
    const liveness = new MembershipLiveness();
    manager.attachLiveness(liveness);
    const w = (await manager.join({ token: manager.swarm().JoinTokens.Worker, publicKeyPem: key.publicKeyPem, self: { hostname: 'w', addr: '127.0.0.2', managerAddr: '127.0.0.2:2377', description: { ...description, Hostname: 'w' } } })).nodeId;
    const state = (): string => manager.getNode(w).Status.State;

    liveness.notifyEvent(event('suspect', 'w', '127.0.0.2'));
    expect(state()).toBe('ready');
    liveness.notifyEvent(event('dead', 'w', '127.0.0.2'));
    expect(state()).toBe('down');
    liveness.notifyEvent(event('alive', 'w', '127.0.0.2'));
    expect(state()).toBe('down'); // up again in the gossip: ready with its next heartbeat
    manager.heartbeat({ nodeId: w, role: 'worker', clusterId: manager.clusterId });
    expect(state()).toBe('ready');
    liveness.notifyEvent(event('leave', 'w', '127.0.0.2'));
    expect(state()).toBe('down');
    liveness.notifyEvent(event('join', 'other', '127.0.0.9'));
    expect(state()).toBe('down');
    manager.close();
  });
});
