/**
 * Lifeguard's point (Lifeguard §I, §V): with local health awareness and suspicion confirmations,
 * ordinary packet loss does not make healthy members flap to dead. A file of its own because it
 * runs ten simulated minutes per seed.
 */
import { describe, expect, it } from 'vitest';
import { Sim, forSeeds, seeds, simTimeout } from './sim.js';

describe('simulation: lossy network', () => {
  it('at 5 % packet loss no live node is ever declared dead over 10 simulated minutes', async () => {
    await forSeeds(seeds(300), async (seed) => {
      const sim = new Sim({ seed, network: { lossRate: 0.05 } });
      await sim.startCluster(30);
      await sim.run(600_000, () => false, 1000);
      const dead = sim.nodes.flatMap((n) => n.events.filter((e) => e.type === 'dead').map((e) => `${n.name} declared ${e.member.name} dead`));
      expect(dead).toEqual([]);
      expect(sim.converged()).toBe(true);
      // The loss was real: probes failed and suspicions were raised and refuted along the way.
      expect(sim.net.stats.packetsLost).toBeGreaterThan(0.04 * sim.net.stats.packetsSent);
      sim.shutdown();
    });
  }, simTimeout(3_000));
});
