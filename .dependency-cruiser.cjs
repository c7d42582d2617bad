// The import rules of ARCHITECTURE.md ("Layers and folders"): imports point downwards only,
// no cycles, and only the composition root (agent, api, cli) or a file named node-*.ts
// (a socket adapter the agent passes down) touches node's I/O modules or timers.
// One deliberate difference from ARCHITECTURE.md's table: cli may import agent, because
// `shoal agent` starts the agent in the CLI's process; every other verb is an API client.
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

const layerRules = layers.map((from) => ({
  name: `layer-${from}`,
  comment: `src/${from} may import only: ${allowed[from].join(', ') || 'nothing of ours'}`,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: {
    path: `^src/(${layers.filter((l) => l !== from && !allowed[from].includes(l)).join('|')})/`,
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
