#!/usr/bin/env node
/**
 * The `mizzen` command. Flags and environment are read here and nowhere else; everything else takes options.
 */
import { Command, InvalidArgumentError } from 'commander';
import { MizzenServer, VERSION } from '../app/server.ts';
import { createLogger } from '../shared/log.ts';
import { parseLabels, renderBootstrap } from '../app/bootstrap.ts';
import { runProxyConfig, type ProxyConfigOptions } from './proxy-config.ts';
import { validatePaths } from './validate.ts';

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

const program = new Command();
program.name('mizzen').description('An Istio-compatible service-mesh control plane').version(VERSION);

program
  .command('serve')
  .description('serve xDS for the Istio config in a folder (watched: edits take effect live)')
  .requiredOption('-c, --config <dir>', 'folder of Istio YAML (every *.yaml, multi-document)')
  .option('--xds-port <port>', 'plaintext ADS port', port, 15010)
  .option('--monitoring-port <port>', 'metrics, readiness and debug port', port, 15014)
  .option('--host <address>', 'address to listen on', '0.0.0.0')
  .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.MIZZEN_LOG_LEVEL ?? 'info')
  .option('--verify-xds', 'check every generated resource against the Envoy schema before sending it (slower)', false)
  .action(async (opts: { config: string; xdsPort: number; monitoringPort: number; host: string; logLevel: string; verifyXds: boolean }) => {
    ensureServerHeapFlags();
    const log = createLogger({ level: opts.logLevel });
    const server = new MizzenServer({ configDir: opts.config, host: opts.host, xdsPort: opts.xdsPort, monitoringPort: opts.monitoringPort, log, verifyXds: opts.verifyXds });
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
        },
        opts.output === 'yaml' ? 'yaml' : 'json',
      ),
    );
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

await program.parseAsync(process.argv);
