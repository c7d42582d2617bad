import { describe, expect, it } from 'vitest';
import { Sim } from './sim.js';

describe('Memberlist basics', () => {
  it('three nodes join one seed and all see all alive', async () => {
    const sim = new Sim({ seed: 1 });
    await sim.startCluster(3);
    const t = await sim.run(10_000, () => sim.converged());
    expect(t).toBeDefined();
    for (const n of sim.nodes) expect(n.ml.members().map((m) => m.name).sort()).toEqual(['n0', 'n1', 'n2']);
    sim.shutdown();
    sim.clock.advance(1000);
    expect(sim.clock.pendingTimers).toBe(0);
  });
});
