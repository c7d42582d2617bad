// The import rules of ARCHITECTURE.md ("Layers and folders"): imports point downwards only,
// no cycles, and only the composition root (agent, api, cli) or a file named node-*.ts
// (a socket adapter the agent passes down) touches node's I/O modules or timers.
// One deliberate difference from ARCHITECTURE.md's table: cli may import agent, because
// `shoal agent` starts the agent in the CLI's process; every other verb is an API client.
// One narrow exception for cluster: it may import src/overlay/ipam.ts (and nothing else of
// overlay), because IPAM is pure maths (subnets, VNIs, addresses; no I/O, no state) that the
// managers need to allocate networks, VIPs and task addresses in their store.
const allowed = {
  lib: [],
  wire: ['lib'],
  netstack: ['wire', 'lib'],
  overlay: ['wire', 'netstack', 'lib'],
  gossip: ['wire', 'lib'],
  mesh: ['overlay', 'netstack', 'gossip', 'wire', 'lib'],
  dns: ['lib'],
  cluster: ['lib'],
  agent: ['lib', 'wire', 'netstack', 'overlay', 'gossip', 'mesh', 'dns', 'cluster', 'api'],
  api: ['cluster', 'agent', 'lib'],
  cli: ['api', 'agent', 'lib'],
};
const layers = Object.keys(allowed);

/** Single files a layer may import from a layer it otherwise may not (see the note above). */
const allowedFiles = {
  cluster: ['^src/overlay/ipam\\.ts$'],
};

const layerRules = layers.map((from) => ({
  name: `layer-${from}`,
  comment: `src/${from} may import only: ${[...allowed[from], ...(allowedFiles[from] ?? [])].join(', ') || 'nothing of ours'}`,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: {
    path: `^src/(${layers.filter((l) => l !== from && !allowed[from].includes(l)).join('|')})/`,
    ...(allowedFiles[from] ? { pathNot: allowedFiles[from] } : {}),
  },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-cycles',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'io-only-in-adapters',
      comment: 'Below src/agent, I/O goes through injected transports; adapters are named node-*.ts',
      severity: 'error',
      from: { path: '^src/(lib|wire|netstack|overlay|gossip|mesh|dns|cluster)/', pathNot: '/node-[^/]+\\.ts$' },
      to: { dependencyTypes: ['core'], path: '^(node:)?(dgram|net|tls|fs|fs/promises|child_process|http|https|timers)$' },
    },
    {
      name: 'src-not-from-test',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|native-bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
