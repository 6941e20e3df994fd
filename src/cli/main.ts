#!/usr/bin/env node
/**
 * The `mizzen` command. Flags and environment are read here and nowhere else; everything else takes options.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createIntermediate, initRoot, rotateRoot, signOffline, type ToolResult } from '../app/ca-tool.ts';
import { kubeWiring, loadKubeConfig, type KubeWiring } from '../app/kube.ts';
import { readInjectorDir } from '../app/injector-files.ts';
import { followMeshConfigFile, readMeshConfigFile } from '../app/mesh-config-file.ts';
import { MizzenServer, VERSION } from '../app/server.ts';
import { createLogger } from '../shared/log.ts';
import { parseLabels, renderBootstrap } from '../app/bootstrap.ts';
import { runIptables, type IptablesFlags } from '../app/iptables.ts';
import { runProxyConfig, type ProxyConfigOptions } from './proxy-config.ts';
import { validatePaths } from './validate.ts';
import { parseDurationMs } from '../config/kinds/common.ts';

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
};

/**
 * A control plane allocates megabyte response buffers that die young. A small young generation collects them within
 * milliseconds instead of letting them pile up until an old-space GC: at 2,000 proxies peak RSS drops from ~560 to
 * ~450 MiB at the same push latencies (npm run bench). V8 sizes the young generation at start-up, so `serve` replaces
 * itself once (same pid, same arguments) with the flag; an explicit --max-semi-space-size (or NODE_OPTIONS) wins.
 */
const SERVER_HEAP_FLAG = '--max-semi-space-size=4';
function ensureServerHeapFlags(): void {
  const set = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--max-semi-space-size'));
  if (set || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, SERVER_HEAP_FLAG, ...process.execArgv, ...process.argv.slice(1)], process.env);
}

const keyType = (v: string): 'rsa' | 'ec' => {
  if (v !== 'rsa' && v !== 'ec') throw new InvalidArgumentError('must be rsa or ec');
  return v;
};
const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const nonNegativeNumber = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number ≥ 0');
  return n;
};
/** A Go-style duration (`30m`, `10s`, `500ms`, `0`), as istiod's flags take, in milliseconds. */
const durationMs = (v: string): number => {
  const ms = parseDurationMs(v.trim());
  if (ms === undefined) throw new InvalidArgumentError('must be a duration such as 30m, 10s or 500ms (0 = none)');
  return ms;
};
const collect = (v: string, prev: string[]): string[] => [...prev, v];
/** A usage error: one line, exit code 2. */
const fail = (message: string): never => {
  console.error(`error: ${message}`);
  process.exit(2);
};

/** Runs a `mizzen ca` action: messages to stderr, an error as one line and exit code 1. */
const caAction =
  <O>(fn: (opts: O) => Promise<Pick<ToolResult, 'messages'>>) =>
  async (opts: O) => {
    try {
      for (const m of (await fn(opts)).messages) console.error(m);
    } catch (err) {
      console.error(`error: ${(err as Error).message}`);
      process.exitCode = 1;
    }
  };

interface ServeFlags {
  config?: string;
  kubeconfig?: string;
  context?: string;
  caNamespace: string;
  meshConfig?: string;
  injectDir?: string;
  xdsPort: number;
  monitoringPort: number;
  host: string;
  logLevel: string;
  verifyXds: boolean;
  secureXdsPort: number;
  webhookPort: number;
  caDir?: string;
  pluginCaDir?: string;
  caKeyType: 'rsa' | 'ec';
  trustDomain?: string;
  tokenJwks?: string;
  tokenIssuer?: string;
  tokenAudience: string[];
  defaultCertTtl: number;
  maxCertTtl: number;
  maxNewStreamsPerSecond?: number;
  maxConnectionAge: number;
  maxConnectionAgeGrace: number;
}

const program = new Command();
program.name('mizzen').description('An Istio-compatible service-mesh control plane').version(VERSION);

program
  .command('serve')
  .description('serve xDS for the Istio config in a folder (watched: edits take effect live) or in a Kubernetes cluster')
  .option('-c, --config <dir>', 'folder of Istio YAML (every *.yaml, multi-document)')
  .option('--kubeconfig <file>', 'read the cluster instead of a folder: Istio CRDs, Services, EndpointSlices, Pods, Nodes, Secrets')
  .option('--context <name>', 'kubeconfig context (default: its current-context)')
  .option('--mesh-config <file>', "MeshConfig YAML (or the istio ConfigMap): outboundTrafficPolicy, trustDomain, extensionProviders, defaultProviders, …")
  .option('--inject-dir <dir>', "the injector's installed settings: a folder with `values` (JSON) and `config` (YAML), the istio-sidecar-injector ConfigMap mounted as files")
  .option('--ca-namespace <ns>', "kube mode: namespace of the CA's istio-ca-secret", process.env.POD_NAMESPACE ?? 'istio-system')
  .option('--xds-port <port>', 'plaintext ADS port', port, 15010)
  .option('--monitoring-port <port>', 'metrics, readiness and debug port', port, 15014)
  .option('--host <address>', 'address to listen on', '0.0.0.0')
  .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.MIZZEN_LOG_LEVEL ?? 'info')
  .option('--verify-xds', 'check every generated resource against the Envoy schema before sending it (slower)', false)
  .option('--secure-xds-port <port>', 'TLS port: ADS and the Istio CA (needs --ca-dir or --plugin-ca-dir)', port, 15012)
  .option('--webhook-port <port>', 'HTTPS port of the sidecar injection webhook (served with the CA)', port, 15017)
  .option('--ca-dir <dir>', "mizzen's own CA: folder for ca-cert.pem, ca-key.pem (0600), root-cert.pem; a root is created on first start")
  .option('--plugin-ca-dir <dir>', 'plug-in CA (the cacerts Secret): ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem; wins over --ca-dir')
  .option('--ca-key-type <type>', 'key type of a newly created root: rsa (2048) or ec (P-256)', keyType, 'rsa')
  .option('--trust-domain <domain>', "SPIFFE trust domain of issued identities (default: the mesh config's, else cluster.local)")
  .option('--token-jwks <file|url>', 'JWKS of the workload token issuer (bearer-token authentication without Kubernetes)')
  .option('--token-issuer <iss>', 'issuer (iss) of those tokens, e.g. https://kubernetes.default.svc.cluster.local')
  .option('--token-audience <aud>', 'accepted token audience (repeatable; default istio-ca)', collect, [])
  .option('--default-cert-ttl <seconds>', 'workload certificate TTL when a CSR asks for none', positiveInt, 24 * 3600)
  .option('--max-cert-ttl <seconds>', 'longest workload certificate TTL granted', positiveInt, 90 * 24 * 3600)
  .option(
    '--max-new-streams-per-second <n>',
    "new xDS streams admitted per second; others wait up to 1 s, then get RESOURCE_EXHAUSTED and retry (istiod's PILOT_MAX_REQUESTS_PER_SECOND; default min(15 + 5 × cores, 100); 0 = unlimited)",
    nonNegativeNumber,
  )
  .addOption(
    new Option('--max-connection-age <duration>', 'xDS connections get a GOAWAY after this age, ±10 %, so reconnecting proxies spread over replicas (0 = never)')
      .argParser(durationMs)
      .default(30 * 60_000, '30m'),
  )
  .addOption(
    new Option('--max-connection-age-grace <duration>', 'after that GOAWAY, how long the streams have before the connection is closed')
      .argParser(durationMs)
      .default(10_000, '10s'),
  )
  .action(async (opts: ServeFlags) => {
    ensureServerHeapFlags();
    const log = createLogger({ level: opts.logLevel });
    // In a pod without --config, the cluster is the source (in-cluster service account), as for istiod.
    const kubeMode = opts.kubeconfig !== undefined || (opts.config === undefined && process.env.KUBERNETES_SERVICE_HOST !== undefined);
    if (opts.config !== undefined && opts.kubeconfig !== undefined) fail('serve: give --config DIR or --kubeconfig FILE, not both');
    if (!kubeMode && opts.config === undefined) fail('serve: give --config DIR (a folder of Istio YAML) or --kubeconfig FILE');
    let kube: KubeWiring | undefined;
    let mesh: ReturnType<typeof readMeshConfigFile>['mesh'] = {};
    try {
      if (opts.meshConfig) {
        const read = readMeshConfigFile(opts.meshConfig);
        mesh = read.mesh;
        if (read.unused.length > 0) log.info({ fields: read.unused }, 'mesh config fields mizzen does not use');
      }
      const access = { ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) };
      if (kubeMode) kube = kubeWiring(loadKubeConfig(access), { log: log.child({ scope: 'kube' }), namespace: opts.caNamespace, ...(process.env.POD_NAME ? { identity: process.env.POD_NAME } : {}) });
    } catch (err) {
      fail(`serve: ${(err as Error).message}`);
    }
    // Kube mode always runs the CA: its root lives in the istio-ca-secret Secret unless a folder or plug-in CA is given.
    const caEnabled = opts.caDir !== undefined || opts.pluginCaDir !== undefined || kube !== undefined;
    const trustDomain = opts.trustDomain ?? mesh.trustDomain ?? 'cluster.local';
    let injector: ReturnType<typeof readInjectorDir> | undefined;
    try {
      if (opts.injectDir) injector = readInjectorDir(opts.injectDir, mesh.defaultConfig as Parameters<typeof readInjectorDir>[1]);
    } catch (err) {
      fail(`serve: ${(err as Error).message}`);
    }
    const server = new MizzenServer({
      ...(kube ? { source: kube.source } : { configDir: opts.config }),
      mesh: { ...mesh, trustDomain },
      ...(injector ? { injector } : {}),
      ...(kube ? { trustBundleWriters: kube.trustBundleWriters, statusSink: kube.statusSink, statusElection: kube.statusElection } : {}),
      host: opts.host,
      xdsPort: opts.xdsPort,
      monitoringPort: opts.monitoringPort,
      log,
      verifyXds: opts.verifyXds,
      secureXdsPort: opts.secureXdsPort,
      webhookPort: opts.webhookPort,
      ...(opts.maxNewStreamsPerSecond !== undefined ? { maxNewStreamsPerSecond: opts.maxNewStreamsPerSecond } : {}),
      maxConnectionAgeMs: opts.maxConnectionAge,
      maxConnectionAgeGraceMs: opts.maxConnectionAgeGrace,
      ...(caEnabled
        ? {
            ca: {
              trustDomain,
              ...(opts.caDir ? { caDir: opts.caDir } : {}),
              ...(opts.pluginCaDir ? { pluginDir: opts.pluginCaDir } : {}),
              ...(kube && !opts.caDir && !opts.pluginCaDir ? { store: kube.caStore } : {}),
              ...(kube ? { tokenReview: kube.tokenReview } : {}),
              keyType: opts.caKeyType,
              ...(opts.tokenJwks ? { tokenJwks: opts.tokenJwks } : {}),
              ...(opts.tokenIssuer ? { tokenIssuer: opts.tokenIssuer } : {}),
              ...(opts.tokenAudience.length > 0 ? { tokenAudiences: opts.tokenAudience } : {}),
              defaultTtlSec: opts.defaultCertTtl,
              maxTtlSec: opts.maxCertTtl,
            },
          }
        : {}),
    });
    const shutdown = async (signal: string) => {
      log.info({ signal }, 'shutting down');
      await server.stop();
      process.exit(0);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    try {
      await server.start();
    } catch (err) {
      log.fatal({ err }, 'mizzen could not start');
      process.exit(1);
    }
    if (opts.meshConfig) followMeshConfigFile(opts.meshConfig, (read) => server.updateMesh(opts.trustDomain ? { ...read.mesh, trustDomain: opts.trustDomain } : read.mesh), log.child({ scope: 'mesh' }));
  });

program
  .command('validate')
  .description('validate Istio YAML files or folders; exits 1 when any object is refused')
  .argument('<paths...>', 'files or folders')
  .action(async (paths: string[]) => {
    const report = await validatePaths(paths);
    for (const line of report.lines) console.error(line);
    const summary = `${report.accepted} accepted, ${report.refused} refused, ${report.ignored} not Istio or registry kinds (ignored)`;
    if (report.refused > 0) {
      console.error(summary);
      process.exit(1);
    }
    console.log(summary);
  });

program
  .command('analyze')
  .description(
    "analyze Istio YAML for problems as istioctl analyze does (Istio's IST codes) plus mizzen's anti-pattern checks (MZA codes, docs/analyzers.md), in files or a live cluster (--kubeconfig). Exit 79 when an Error is found (in every output format), 65 when a document cannot be parsed",
  )
  .argument('[paths...]', 'YAML files or folders (folders are read recursively)')
  .option('-o, --output <format>', 'log, json or yaml', 'log')
  .option('-n, --namespace <ns>', 'report only on this namespace; also the namespace of objects that name none (default: all namespaces; objects without one are in default)')
  .option('-A, --all-namespaces', 'report on all namespaces (the default in file mode)')
  .option('-S, --suppress <code=resource>', 'suppress a code on a resource, e.g. "IST0102=Namespace frod" or "MZA0004=VirtualService *" (repeatable; * is a wildcard)', collect, [])
  .option('--failure-threshold <level>', 'the level (Info, Warning, Error) at which to exit 79', 'Error')
  .option('--output-threshold <level>', 'the lowest level (Info, Warning, Error) printed', 'Info')
  .option('-L, --list-analyzers', 'list the analyzers and their codes', false)
  .option('--ignore-unknown', "don't complain about documents that are not Kubernetes objects", false)
  .option('-k, --use-kube [bool]', 'analyze the live cluster of the default kubeconfig when no files are given (istioctl compatible)')
  .option('--kubeconfig <file>', 'analyze the live cluster: Istio CRDs, Services, Pods, Namespaces and workload templates (never Secrets)')
  .action(async (paths: string[], opts: import('../app/analyze.ts').AnalyzeFlags) => {
    const { runAnalyze } = await import('../app/analyze.ts');
    const r = await runAnalyze(paths, opts, process.cwd());
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('bootstrap')
  .description('print the Envoy bootstrap an injected proxy starts with')
  .requiredOption('--pod <name>', 'pod name')
  .option('-n, --namespace <ns>', 'pod namespace', 'default')
  .option('--ip <address>', 'pod IP', '10.0.0.1')
  .option('--type <type>', 'sidecar or router (gateway)', 'sidecar')
  .option('--labels <k=v,...>', 'pod labels', '')
  .option('--service-account <name>', 'pod service account', 'default')
  .option('--cluster-id <id>', 'Kubernetes cluster id', 'Kubernetes')
  .option('--domain-suffix <suffix>', 'cluster domain', 'cluster.local')
  .option('--xds-address <host:port>', 'mizzen TLS xDS address', 'mizzen.istio-system.svc:15012')
  .option('--via-agent', 'reach the control plane through the agent local xDS socket (as istio-proxy does)', false)
  .option('--sotw', 'state-of-the-world ADS instead of delta', false)
  .option('--plain-envoy', 'the proxy is plain Envoy without Istio\'s proxy extensions (mizzen\'s proxy image)', process.env.PROXY_EXTENSIONS === 'envoy')
  .option('-o, --output <format>', 'json or yaml', 'json')
  .action((opts: Record<string, string | boolean>) => {
    const type = opts.type === 'router' ? 'router' : opts.type === 'sidecar' ? 'sidecar' : undefined;
    if (!type) throw new InvalidArgumentError('--type must be sidecar or router');
    const xdsAddress = String(opts.xdsAddress);
    process.stdout.write(
      renderBootstrap(
        {
          proxyType: type,
          podName: String(opts.pod),
          namespace: String(opts.namespace),
          ip: String(opts.ip),
          domainSuffix: String(opts.domainSuffix),
          labels: parseLabels(String(opts.labels)),
          serviceAccount: String(opts.serviceAccount),
          clusterId: String(opts.clusterId),
          xdsAddress,
          xdsSan: xdsAddress.slice(0, xdsAddress.lastIndexOf(':')),
          delta: !opts.sotw,
          viaAgent: opts.viaAgent === true,
          istioVersion: VERSION,
          ...(opts.plainEnvoy === true ? { proxyExtensions: 'envoy' as const } : {}),
        },
        opts.output === 'yaml' ? 'yaml' : 'json',
      ),
    );
  });

program
  .command('iptables')
  .alias('istio-iptables')
  .description("set up the sidecar's traffic capture as istio-init does (istio-iptables flags; unset flags fall back to env, e.g. ISTIO_INBOUND_PORTS)")
  .option('-p, --envoy-port <port>', 'outbound capture port (default 15001)')
  .option('-z, --inbound-capture-port <port>', 'inbound capture port (default 15006)')
  .option('-e, --inbound-tunnel-port <port>', 'HBONE tunnel port, never captured (default 15008)')
  .option('-u, --proxy-uid <uids>', 'uid(s) of the proxy, never captured (default: uid of ENVOY_USER, else 1337)')
  .option('-g, --proxy-gid <gids>', 'gid(s) of the proxy (default: the uids)')
  .option('-m, --istio-inbound-interception-mode <mode>', 'REDIRECT or TPROXY (default REDIRECT)')
  .option('-t, --istio-inbound-tproxy-mark <mark>', 'TPROXY packet mark (default 1337)')
  .option('-r, --istio-inbound-tproxy-route-table <table>', 'TPROXY routing table (default 133)')
  .option('-b, --istio-inbound-ports <ports>', 'inbound ports to capture: "*" or a list; empty: none')
  .option('-d, --istio-local-exclude-ports <ports>', 'inbound ports not captured when -b is "*" (the injector passes 15090,15021,15020)')
  .option('-c, --istio-exclude-interfaces <nics>', 'interfaces never captured')
  .option('-i, --istio-service-cidr <cidrs>', 'outbound destinations to capture: "*" or CIDRs; empty: none')
  .option('-x, --istio-service-exclude-cidr <cidrs>', 'outbound destinations never captured')
  .option('-q, --istio-outbound-ports <ports>', 'outbound ports always captured')
  .option('-o, --istio-local-outbound-ports-exclude <ports>', 'outbound ports never captured')
  .option('-k, --kube-virt-interfaces <nics>', 'virtual interfaces whose inbound traffic is treated as outbound')
  .option('--redirect-dns [bool]', 'capture DNS to the agent on 15053 (default: ISTIO_META_DNS_CAPTURE)')
  .option('--capture-all-dns [bool]', 'with --redirect-dns: all of port 53, not only the resolv.conf servers')
  .option('--drop-invalid [bool]', 'drop conntrack-INVALID packets (default: INVALID_DROP)')
  .option('--dual-stack [bool]', 'IPv6 rules when the pod has any IPv6 address (default: ISTIO_AGENT_DUAL_STACK)')
  .option('-n, --dry-run [bool]', 'print the rules, apply nothing')
  .option('--skip-rule-apply [bool]', 'print the rules, apply nothing')
  .option('--force-apply', 'accepted for compatibility (rules are always applied)')
  .option('--log_output_level <levels>', 'accepted for compatibility (the injector passes it)')
  .option('--log_as_json', 'accepted for compatibility')
  .action((opts: IptablesFlags) => {
    const r = runIptables(opts, process.env);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('proxy-config')
  .alias('pc')
  .description("print one proxy's listeners, routes, clusters, endpoints or secrets, as istioctl proxy-config does")
  .argument('<type>', 'listeners, routes, clusters, endpoints, secrets or all')
  .argument('<proxy>', 'pod as <pod>.<namespace> (or <pod> -n <ns>), or a full node id sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local')
  .option('-c, --config <dir>', 'offline: translate the Istio YAML in this folder for the proxy')
  .option('--server <url>', 'online: ask a running mizzen serve (its monitoring port, e.g. http://127.0.0.1:15014)')
  .option('-n, --namespace <ns>', 'pod namespace')
  .option('--type <type>', 'offline: sidecar or router (gateway)', 'sidecar')
  .option('--labels <k=v,...>', 'offline: describe a proxy with these labels that has no Pod object in the folder')
  .option('--ip <address>', 'offline: the proxy IP (default: the Pod status.podIP, else 10.0.0.1)')
  .option('-o, --output <format>', 'table, json or yaml (private keys are redacted)', 'table')
  .option('--address <address>', 'listeners, endpoints: only this address')
  .option('--port <port>', 'listeners, clusters, endpoints: only this port', port)
  .option('--fqdn <host>', 'clusters: only names containing this')
  .option('--subset <name>', 'clusters: only this subset')
  .option('--direction <dir>', 'clusters: inbound or outbound')
  .option('--name <name>', 'routes: only this route configuration')
  .option('--cluster <name>', 'endpoints: only this cluster')
  .option('--status <status>', 'endpoints: only this health status (HEALTHY, UNHEALTHY, ...)')
  .action(async (type: string, proxy: string, opts: ProxyConfigOptions) => {
    const r = await runProxyConfig(type, proxy, opts);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('explain')
  .description('every decision the mesh makes for one request (route, cluster, policies, mTLS, authorization, JWT), read from the config the source and destination proxies are sent')
  .requiredOption('-c, --config <dir>', 'the Istio YAML folder (with the Kubernetes Services, Pods, EndpointSlices) to translate')
  .option('--from <pod.namespace>', 'the source: a Pod of the config folder')
  .option('--from-namespace <ns>', 'the source namespace, for a source without a Pod object')
  .option('--from-labels <k=v,...>', 'the source labels (without a Pod object, or instead of its labels)')
  .option('--from-sa <name>', 'the source service account (default: the Pod\'s, else default)')
  .option('--from-ip <address>', 'the source IP (default: the Pod IP, else 10.0.0.1)')
  .option('--proxyless', 'the source is a proxyless gRPC client (default: from the Pod\'s inject.istio.io/templates)')
  .requiredOption('--to <host:port>', 'the destination as the application names it, e.g. reviews:9080')
  .option('-X, --method <method>', 'HTTP method (default GET; POST for proxyless gRPC)')
  .option('--path <path>', 'request path with query (a gRPC method for proxyless: /pkg.Service/Method)', '/')
  .option('-H, --header <name: value>', 'request header (repeatable)', collect, [])
  .option('--tls', 'the application itself speaks TLS to the host (routing by SNI)', false)
  .option('-o, --output <format>', 'text or json', 'text')
  .action(async ({ config, ...opts }: { config: string; output: string } & import('../app/explain.ts').ExplainOptions) => {
    const { runExplain } = await import('../app/explain.ts');
    const r = await runExplain(config, opts);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('diff')
  .description('dry run of a config change: per proxy in scope, the xDS resources it would add, change (path: old → new) or remove; identical changes grouped')
  .argument('[files...]', 'the change: YAML whose objects are added or replace the object of the same kind/namespace/name')
  .requiredOption('-c, --config <dir>', 'the mesh as it is: folder of Istio YAML (as serve reads it)')
  .option('--delete <file|Kind/ns/name>', 'remove the objects named in this YAML file (kind, namespace, name), or one Kind/namespace/name (repeatable)', collect, [])
  .option('--proxy <proxy>', 'also evaluate this proxy: a node id sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local or <pod>.<namespace> (repeatable)', collect, [])
  .option('--namespaces [ns,...]', 'also one representative sidecar per namespace: these, or every namespace in the config')
  .option('-o, --output <format>', 'text or json', 'text')
  .action(async (files: string[], opts: { config: string; delete: string[]; proxy: string[]; namespaces?: string | boolean; output: string }) => {
    const { runDiff } = await import('../app/diff.ts');
    const namespaces = typeof opts.namespaces === 'string' ? opts.namespaces.split(',').map((s) => s.trim()).filter(Boolean) : opts.namespaces === true;
    const r = await runDiff({ config: opts.config, files, delete: opts.delete, proxy: opts.proxy, namespaces, output: opts.output });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('proxy-status')
  .alias('ps')
  .description("istioctl's proxy-status for a running mizzen serve: each connected proxy's subscribed types and whether each is SYNCED, STALE or NACKED, plus the config objects some proxy rejected")
  .option('--server <url>', 'the monitoring port of mizzen serve', 'http://127.0.0.1:15014')
  .option('-o, --output <format>', 'table or json', 'table')
  .action(async (opts: { server: string; output: string }) => {
    const { runProxyStatus } = await import('../app/proxy-status.ts');
    const r = await runProxyStatus(opts);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

program
  .command('kube-inject')
  .description('inject the sidecar into the Pods and workload pod templates of Kubernetes YAML, offline, as istioctl kube-inject does')
  .requiredOption('-f, --filename <file>', 'input YAML, multi-document (- for stdin)')
  .option('-o, --output <file>', 'write the result to this file instead of stdout')
  .option('--meshConfigFile <file>', 'MeshConfig YAML (or the istio ConfigMap): trustDomain, meshId, defaultConfig, enablePrometheusMerge')
  .option('--inject-dir <dir>', 'the installed injector settings (the istio-sidecar-injector ConfigMap as files `values` and `config`), as serve reads them')
  .option('--revision <rev>', 'the control-plane revision to inject for')
  .option('--proxy-image <image>', `image of istio-proxy and istio-init (default: the --inject-dir values, else mizzen/proxy:${VERSION})`)
  .option('--native-sidecars', 'istio-proxy as a native sidecar (an init container with restartPolicy Always; Kubernetes >= 1.29)', false)
  .action(async (opts: { filename: string; output?: string; meshConfigFile?: string; injectDir?: string; revision?: string; proxyImage?: string; nativeSidecars: boolean }) => {
    const { runKubeInject } = await import('../app/kube-inject.ts');
    const r = runKubeInject({ ...opts, ...(!opts.proxyImage && !opts.injectDir ? { proxyImage: `mizzen/proxy:${VERSION}` } : {}) });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  });

const ca = program.command('ca').description('plug-in CA tooling (root, per-cluster intermediates, root rotation) and offline signing; see certs/README.md');
ca.command('init-root')
  .description('create a root CA (root-cert.pem, root-key.pem) for a plug-in CA hierarchy; keep it offline')
  .requiredOption('--dir <dir>', 'output folder')
  .option('--key-type <type>', 'rsa (4096-bit) or ec (P-256)', keyType, 'rsa')
  .option('--org <name>', 'subject organisation', 'Istio')
  .option('--ttl-days <days>', 'validity in days', positiveInt, 3650)
  .option('--force', 'overwrite existing files', false)
  .action(caAction((o: { dir: string; keyType: 'rsa' | 'ec'; org: string; ttlDays: number; force: boolean }) => initRoot(o)));
ca.command('intermediate')
  .description("create a cluster's plug-in CA (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem) signed by the root")
  .requiredOption('--root-dir <dir>', 'folder from init-root')
  .requiredOption('--out <dir>', 'output folder (then: kubectl create secret generic cacerts -n istio-system --from-file=<dir>)')
  .requiredOption('--cluster <name>', 'cluster name (the L= of the intermediate)')
  .option('--key-type <type>', 'rsa (4096-bit) or ec (P-256)', keyType, 'rsa')
  .option('--ttl-days <days>', 'validity in days', positiveInt, 730)
  .option('--force', 'overwrite existing files', false)
  .action(caAction((o: { rootDir: string; out: string; cluster: string; keyType: 'rsa' | 'ec'; ttlDays: number; force: boolean }) => createIntermediate(o)));
ca.command('rotate-root')
  .description('renew a root from its existing key (a --ca-dir or an init-root folder); root-cert.pem becomes new + old')
  .requiredOption('--dir <dir>', 'CA folder')
  .option('--ttl-days <days>', 'validity of the new root in days', positiveInt, 3650)
  .action(caAction((o: { dir: string; ttlDays: number }) => rotateRoot(o)));
ca.command('sign')
  .description('sign a CSR offline for the given identities; prints the chain (leaf, intermediates, roots)')
  .requiredOption('--dir <dir>', 'CA folder (--ca-dir or a cacerts set)')
  .requiredOption('--csr <file>', 'PEM CSR')
  .requiredOption('--identity <uri>', 'URI SAN, e.g. spiffe://cluster.local/ns/default/sa/default (repeatable)', collect, [])
  .option('--ttl <seconds>', 'certificate lifetime (default 24 h)', positiveInt)
  .option('-o, --out <file>', 'write the chain to a file instead of stdout')
  .action(
    caAction(async (o: { dir: string; csr: string; identity: string[]; ttl?: number; out?: string }) => {
      const r = await signOffline({ dir: o.dir, csr: o.csr, identities: o.identity, ...(o.ttl ? { ttlSec: o.ttl } : {}) });
      if (o.out) fs.writeFileSync(o.out, r.chain);
      else process.stdout.write(r.chain);
      return r;
    }),
  );

program
  .command('agent')
  .description('the workload agent of an istio-proxy container: certificates over SDS, Envoy (started, restarted, drained), status port 15020')
  .argument('[type]', 'sidecar or router (gateway)', 'sidecar')
  .option('--status-port <port>', 'status port: /healthz/ready, /app-health/..., /stats/prometheus (default: PROXY_CONFIG statusPort, else 15020)', port)
  .option('--envoy-binary <path>', 'the envoy executable (default: ENVOY_BINARY, else PROXY_CONFIG binaryPath, else /usr/local/bin/envoy)')
  .option('--bootstrap <file>', 'start Envoy with this bootstrap instead of writing <configPath>/envoy-rev.json')
  .option('--domain <domain>', 'pod DNS domain <ns>.svc.<suffix>, as the injector passes it (sets the cluster domain suffix)')
  .option('--proxyLogLevel <level>', "Envoy's log level, optionally with component levels: warning, or info,misc:error", 'warning')
  .option('--proxyComponentLogLevel <levels>', "Envoy's component log levels when --proxyLogLevel names none", 'misc:error')
  .option('--concurrency <n>', 'Envoy worker threads, 0 = all cores (default: PROXY_CONFIG concurrency, else the CPU limit)', (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
    return n;
  })
  .option('--log_output_level <levels>', "Istio's agent log levels (default:info,...): the default scope's level is the agent's")
  .option('--log-level <level>', 'agent log level: trace, debug, info, warn, error', process.env.MIZZEN_LOG_LEVEL ?? 'info')
  .action(async (type: string, opts: { statusPort?: number; envoyBinary?: string; bootstrap?: string; domain?: string; proxyLogLevel: string; proxyComponentLogLevel: string; concurrency?: number; log_output_level?: string; logLevel: string }) => {
    const { resolveAgentOptions, startAgent } = await import('../app/agent.ts');
    const istioLevel = /(?:^|,)default:(debug|info|warn|error|none)(?:,|$)/.exec(opts.log_output_level ?? '')?.[1];
    const log = createLogger({ level: istioLevel === 'none' ? 'silent' : (istioLevel ?? opts.logLevel) });
    const { log_output_level: _ignored, logLevel: _level, ...flags } = opts;
    const resolved = resolveAgentOptions(process.env, { ...flags, type }, process.cwd(), log);
    if (!resolved.ok) {
      for (const e of resolved.errors) console.error(`error: ${e}`);
      process.exit(1);
    }
    let agent: Awaited<ReturnType<typeof startAgent>>;
    try {
      agent = await startAgent(resolved.value);
    } catch (err) {
      log.fatal({ err }, 'the agent could not start');
      console.error(`error: ${(err as Error).message}`);
      process.exit(1);
    }
    process.once('SIGINT', () => void agent.shutdown('SIGINT'));
    process.once('SIGTERM', () => void agent.shutdown('SIGTERM'));
    const result = await agent.done;
    if (result.message) console.error(`error: ${result.message}`);
    process.exit(result.code);
  });

await program.parseAsync(process.argv);
