/**
 * The import rules of docs/architecture.md, enforced in `npm run lint` (and so in `npm test`).
 * Type-only imports of the config kinds are allowed into the model: they are the Istio API's types (the schemas'
 * single source of truth), not I/O.
 */
const IO_MODULES = ['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http', 'https', 'node:https', 'child_process', 'node:child_process'];

module.exports = {
  forbidden: [
    // Type-only edges are erased at run time, so they cannot form a load-time cycle.
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } },
    {
      name: 'model-is-pure',
      comment: 'model imports only shared (and the Istio API types); never sources, gRPC, fastify or Kubernetes.',
      severity: 'error',
      from: { path: '^src/model/' },
      to: {
        pathNot: ['^src/model/', '^src/shared/', '^src/config/kinds/', '^src/config/object\\.ts$'],
        dependencyTypesNot: ['core'],
      },
    },
    {
      name: 'model-kinds-type-only',
      severity: 'error',
      from: { path: '^src/model/' },
      to: { path: ['^src/config/'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'model-no-io',
      severity: 'error',
      from: { path: '^src/model/' },
      to: { dependencyTypes: ['core', 'npm'], pathNot: [] },
    },
    {
      name: 'generators-are-pure',
      comment:
        'generators and builders import model, proto and shared only: no I/O, no env, no gRPC. proto/root only to ask whether an extension type exists (it loads the pinned proto tree once).',
      severity: 'error',
      from: { path: '^src/xds/(generators|builders)/' },
      to: {
        pathNot: ['^src/xds/(generators|builders|envoy-filter)/', '^src/model/', '^src/proto/(types|struct|root)\\.ts$', '^src/shared/', '^src/config/kinds/'],
      },
    },
    {
      name: 'envoy-filter-is-pure',
      comment:
        'EnvoyFilter patching is pure like the generators, but reads the Envoy schema (proto root, strict checker) to parse users\' patch values.',
      severity: 'error',
      from: { path: '^src/xds/envoy-filter/' },
      to: {
        pathNot: ['^src/xds/(envoy-filter|builders)/', '^src/model/', '^src/proto/(types|struct|root|envoy-check|pgv-rules|encode)\\.ts$', '^src/shared/', '^src/config/kinds/', '^src/config/object\\.ts$'],
        dependencyTypesNot: ['core', 'npm'],
      },
    },
    {
      name: 'protocol-knows-no-istio',
      comment: 'the ADS protocol layer imports proto and shared only.',
      severity: 'error',
      from: { path: '^src/xds/protocol/' },
      to: { path: '^src/', pathNot: ['^src/xds/protocol/', '^src/proto/', '^src/shared/'] },
    },
    {
      name: 'no-io-in-pure-layers',
      severity: 'error',
      from: { path: '^src/(model|xds/generators|xds/builders|xds/envoy-filter)/' },
      to: { path: IO_MODULES.map((m) => `^${m.replace('/', '\\/')}$`) },
    },
    {
      name: 'ca-and-webhook-never-import-xds',
      severity: 'error',
      from: { path: '^src/(ca|webhook)/' },
      to: { path: '^src/xds/' },
    },
    {
      name: 'agent-is-workload-side',
      comment:
        'the workload agent (mizzen agent) runs in the pod: it may use shared, proto, the bootstrap builder, the client-side CA helpers (CSR, keys, the service client) and the config kinds types, never the control plane (generators, app, model).',
      severity: 'error',
      from: { path: '^src/agent/' },
      to: {
        path: '^src/',
        pathNot: ['^src/agent/', '^src/shared/', '^src/proto/', '^src/xds/builders/bootstrap\\.ts$', '^src/ca/(csr|keys|service)\\.ts$', '^src/config/kinds/'],
      },
    },
    {
      name: 'only-app-composes',
      comment: 'only app (and cli through app) may import across every layer.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/app/', '^src/cli/'] },
      to: { path: '^src/(app|cli)/' },
    },
    {
      name: 'iptables-imports-only-shared',
      comment: 'the istio-init traffic capture (mizzen iptables) knows nothing of the mesh model or xDS.',
      severity: 'error',
      from: { path: '^src/iptables/' },
      to: { path: '^src/', pathNot: ['^src/iptables/', '^src/shared/'] },
    },
    {
      name: 'iptables-rules-are-pure',
      severity: 'error',
      from: { path: '^src/iptables/(options|rules|cidr)\\.ts$' },
      to: { dependencyTypes: ['core', 'npm'] },
    },
    {
      name: 'analyze-is-pure',
      comment:
        'the analyzers of mizzen analyze read only the config kinds, the model and shared (and the yaml parser for line numbers): file contents in, messages out; src/app/analyze.ts does the I/O.',
      severity: 'error',
      from: { path: '^src/analyze/' },
      to: { path: '^src/', pathNot: ['^src/analyze/', '^src/config/kinds/', '^src/config/object\\.ts$', '^src/model/', '^src/shared/'] },
    },
    {
      name: 'analyze-no-io',
      severity: 'error',
      from: { path: '^src/analyze/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'explain-is-pure',
      comment:
        'explain reads decoded xDS resources (and the Istio API types, to name a VirtualService rule): no model, generators, app, I/O or gRPC.',
      severity: 'error',
      from: { path: '^src/explain/' },
      to: {
        pathNot: ['^src/explain/', '^src/shared/', '^src/config/kinds/'],
        dependencyTypesNot: ['core', 'npm'],
      },
    },
    {
      name: 'explain-kinds-type-only',
      severity: 'error',
      from: { path: '^src/explain/' },
      to: { path: ['^src/config/'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'explain-no-io',
      comment: 'node:net is allowed only for BlockList/isIP (CIDR arithmetic in the RBAC evaluator), never sockets.',
      severity: 'error',
      from: { path: '^src/explain/' },
      to: { path: IO_MODULES.filter((m) => !/net$/.test(m)).map((m) => `^${m.replace('/', '\\/')}$`) },
    },
    {
      name: 'cli-is-thin',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/', pathNot: ['^src/cli/', '^src/app/', '^src/config/', '^src/shared/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
