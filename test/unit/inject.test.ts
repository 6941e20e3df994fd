/**
 * Sidecar injection (src/webhook/inject.ts, templates.ts): the decision table of injection-and-proxyless.md A1, the
 * injected pod of A2 for the sidecar and grpc-agent templates, re-injection (A3), probe rewrite, Prometheus merge,
 * and the user's seeds (000 opt-out fragment, 027 Namespace + 028 Deployment).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  deploymentMeta,
  injectionDecision,
  injectPod,
  nativeSidecarsSupported,
  normalizePod,
  resolveInjectorConfig,
  selectorMatches,
  type Container,
  type InjectorConfigInput,
  type InjectRequest,
  type Pod,
} from '../../src/webhook/inject.ts';
import { flagsFromArgs, parseIptablesFlags } from '../../src/iptables/options.ts';
import { parseAppProbers } from '../../src/agent/probes.ts';
import { parsePrometheusAnnotations } from '../../src/agent/status-server.ts';

const SEEDS = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');
const seed = (prefix: string): unknown => {
  const file = fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix));
  if (!file) throw new Error(`no seed ${prefix}`);
  return parseAllDocuments(fs.readFileSync(path.join(SEEDS, file), 'utf8'))[0]!.toJS();
};

interface PodInput {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  containers?: Array<Partial<Container>>;
  initContainers?: Array<Partial<Container>>;
  spec?: Record<string, unknown>;
}
function mkPod(o: PodInput = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name ?? 'web-1',
      namespace: o.namespace ?? 'default',
      ...(o.labels ? { labels: o.labels } : {}),
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: {
      containers: (o.containers ?? [{ name: 'web', image: 'web:1', ports: [{ containerPort: 8080, name: 'http' }] }]) as Container[],
      ...(o.initContainers ? { initContainers: o.initContainers as Container[] } : {}),
      ...o.spec,
    },
  };
}

const cfg = (input: InjectorConfigInput = {}) => resolveInjectorConfig(input);
function inject(pod: unknown, extra: Partial<InjectRequest> = {}) {
  return injectPod({ pod, config: cfg(), ...extra });
}
function injected(pod: unknown, extra: Partial<InjectRequest> = {}): Pod {
  const r = inject(pod, extra);
  if (r.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(r)}`);
  return r.pod;
}
const container = (pod: Pod, name: string): Container | undefined => pod.spec.containers.find((c) => c.name === name) ?? pod.spec.initContainers?.find((c) => c.name === name);
const envOf = (c: Container | undefined): Record<string, unknown> => Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const proxyOf = (pod: Pod) => container(pod, 'istio-proxy')!;
const initArgs = (pod: Pod) => container(pod, 'istio-init')!.args!;
const status = (pod: Pod) => JSON.parse(pod.metadata.annotations!['sidecar.istio.io/status']!);
const decide = (pod: Pod, ns = 'default', nsLabels?: Record<string, string>, input: InjectorConfigInput = {}) => injectionDecision(pod, ns, nsLabels, cfg(input));

describe('A1: whether to inject', () => {
  it('never injects hostNetwork pods or the ignored namespaces, but does inject istio-system', () => {
    expect(decide(mkPod({ spec: { hostNetwork: true } }))).toMatchObject({ inject: false, reason: expect.stringContaining('hostNetwork') });
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']) {
      expect(decide(mkPod({ namespace: ns, labels: { 'sidecar.istio.io/inject': 'true' } }), ns)).toMatchObject({ inject: false, reason: `namespace ${ns} is never injected` });
    }
    expect(decide(mkPod({ namespace: 'istio-system' }), 'istio-system')).toEqual({ inject: true });
  });

  it('reads the pod switch from the annotation, the label winning over it', () => {
    expect(decide(mkPod({ annotations: { 'sidecar.istio.io/inject': 'false' } }))).toEqual({ inject: false, reason: 'annotation sidecar.istio.io/inject=false' });
    expect(decide(mkPod({ labels: { 'sidecar.istio.io/inject': 'false' }, annotations: { 'sidecar.istio.io/inject': 'true' } }))).toEqual({ inject: false, reason: 'label sidecar.istio.io/inject=false' });
    expect(decide(mkPod({ labels: { 'sidecar.istio.io/inject': 'true' }, annotations: { 'sidecar.istio.io/inject': 'false' } }))).toEqual({ inject: true });
    // Any other value: warned about, then the default (policy enabled → inject).
    const warnings: string[] = [];
    expect(injectionDecision(mkPod({ annotations: { 'sidecar.istio.io/inject': 'maybe' } }), 'default', undefined, cfg(), (w) => warnings.push(w))).toEqual({ inject: true });
    expect(warnings[0]).toMatch(/"maybe" is neither true nor false/);
  });

  it('applies neverInjectSelector before alwaysInjectSelector, only when the pod says nothing', () => {
    const selectors: InjectorConfigInput = {
      neverInjectSelector: [{ matchExpressions: [{ key: 'openshift.io/build.name', operator: 'Exists' }] }],
      alwaysInjectSelector: [{ matchLabels: { team: 'a' } }],
    };
    const both = mkPod({ labels: { 'openshift.io/build.name': 'b1', team: 'a' } });
    expect(decide(both, 'default', undefined, selectors)).toEqual({ inject: false, reason: 'pod labels match neverInjectSelector[0]' });
    expect(decide(mkPod({ labels: { 'openshift.io/build.name': 'b1', 'sidecar.istio.io/inject': 'true' } }), 'default', undefined, selectors)).toEqual({ inject: true });
    // Policy disabled: only an explicit true, or alwaysInjectSelector.
    const disabled = { ...selectors, policy: 'disabled' };
    expect(decide(mkPod({ labels: { team: 'a' } }), 'default', undefined, disabled)).toEqual({ inject: true });
    expect(decide(mkPod({ labels: { team: 'b' } }), 'default', undefined, disabled)).toMatchObject({ inject: false, reason: expect.stringContaining('policy is disabled') });
    expect(decide(mkPod({ annotations: { 'sidecar.istio.io/inject': 'true' } }), 'default', undefined, disabled)).toEqual({ inject: true });
    expect(decide(mkPod(), 'default', undefined, { policy: 'sometimes' })).toMatchObject({ inject: false, reason: expect.stringContaining('"sometimes" is neither enabled nor disabled') });
  });

  it('matches label selectors as Kubernetes does; an empty selector matches nothing', () => {
    const labels = { app: 'a', tier: 'web' };
    expect(selectorMatches({}, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { app: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'db'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['web'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'Bogus' }] }, labels)).toBe(false);
  });

  it('applies the webhook selectors for namespace labels and revisions (istio.io/rev)', () => {
    const pod = mkPod();
    expect(decide(pod, 'app', { 'istio-injection': 'enabled' })).toEqual({ inject: true });
    expect(decide(pod, 'app', { 'istio-injection': 'disabled' })).toMatchObject({ inject: false, reason: 'namespace app is labelled istio-injection=disabled' });
    expect(decide(pod, 'app', {})).toMatchObject({ inject: false, reason: expect.stringContaining('opts in') });
    // The legacy label wins over a revision label on the same namespace (it selects the default revision).
    expect(decide(pod, 'app', { 'istio-injection': 'enabled', 'istio.io/rev': 'canary' })).toEqual({ inject: true });
    expect(decide(pod, 'app', { 'istio-injection': 'enabled', 'istio.io/rev': 'canary' }, { revision: 'canary' })).toMatchObject({ inject: false });
    // Namespace revision label.
    expect(decide(pod, 'app', { 'istio.io/rev': 'canary' })).toMatchObject({ inject: false, reason: expect.stringContaining('istio.io/rev=canary') });
    expect(decide(pod, 'app', { 'istio.io/rev': 'canary' }, { revision: 'canary' })).toEqual({ inject: true });
    expect(decide(pod, 'app', { 'istio.io/rev': 'prod' }, { revision: 'canary', revisionTags: ['prod'] })).toEqual({ inject: true });
    expect(decide(pod, 'app', { 'istio.io/rev': 'default' })).toEqual({ inject: true });
    // Pod revision label in an unlabelled namespace.
    const canaryPod = mkPod({ labels: { 'istio.io/rev': 'canary' } });
    expect(decide(canaryPod, 'app', {}, { revision: 'canary' })).toEqual({ inject: true });
    expect(decide(canaryPod, 'app', {})).toMatchObject({ inject: false, reason: expect.stringContaining('pod is labelled istio.io/rev=canary') });
    // The object selector looks at labels only: an annotation alone does not reach the webhook.
    expect(decide(mkPod({ labels: { 'sidecar.istio.io/inject': 'true' } }), 'app', {})).toEqual({ inject: true });
    expect(decide(mkPod({ annotations: { 'sidecar.istio.io/inject': 'true' } }), 'app', {})).toMatchObject({ inject: false });
    // An enabled namespace and a pod label false.
    expect(decide(mkPod({ labels: { 'sidecar.istio.io/inject': 'false' } }), 'app', { 'istio-injection': 'enabled' })).toMatchObject({ inject: false, reason: 'label sidecar.istio.io/inject=false' });
    // enableNamespacesByDefault (the auto. webhook), still never kube-system.
    expect(decide(pod, 'app', {}, { enableNamespacesByDefault: true })).toEqual({ inject: true });
    expect(decide(mkPod({ namespace: 'kube-system' }), 'kube-system', {}, { enableNamespacesByDefault: true })).toMatchObject({ inject: false });
  });

  it('seed 000: the sidecar.istio.io/inject "false" annotation fragment skips injection, even in an enabled namespace', () => {
    const fragment = seed('000-') as { metadata: { annotations: Record<string, string> } };
    const pod = { ...mkPod(), metadata: { name: 'p', ...fragment.metadata } };
    expect(inject(pod)).toEqual({ kind: 'skipped', reason: 'annotation sidecar.istio.io/inject=false' });
    expect(inject(pod, { namespace: 'bookinfo', namespaceLabels: { 'istio-injection': 'enabled' } })).toEqual({ kind: 'skipped', reason: 'annotation sidecar.istio.io/inject=false' });
  });
});

/** Seed 028's pod template as the API server sends it for pod CREATE (generated name, ReplicaSet owner). */
function seedReviewsPod(): Pod {
  const deployment = seed('028-') as { spec: { template: { metadata: Record<string, unknown>; spec: Pod['spec'] } } };
  const t = deployment.spec.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...t.metadata,
      generateName: 'reviews-7c8d9f7b9d-',
      namespace: 'bookinfo',
      labels: { ...(t.metadata.labels as Record<string, string>), 'pod-template-hash': '7c8d9f7b9d' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-7c8d9f7b9d', controller: true }],
    },
    spec: t.spec,
  };
}

describe('A2: the sidecar template', () => {
  it('seeds 027 + 028: the bookinfo namespace (istio-injection: enabled) gets the reviews pod injected as Istio would', () => {
    const ns = seed('027-') as { metadata: { name: string; labels: Record<string, string> } };
    const r = injectPod({ pod: seedReviewsPod(), namespace: ns.metadata.name, namespaceLabels: ns.metadata.labels, config: cfg() });
    expect(r.kind).toBe('injected');
    const pod = (r as { pod: Pod }).pod;
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['reviews', 'istio-proxy']);
    expect(pod.spec.initContainers!.map((c) => c.name)).toEqual(['istio-init']);
    expect(pod.metadata.labels).toEqual({
      app: 'reviews',
      'pod-template-hash': '7c8d9f7b9d',
      'security.istio.io/tlsMode': 'istio',
      'service.istio.io/canonical-name': 'reviews',
      'service.istio.io/canonical-revision': 'latest',
    });
    expect(pod.metadata.annotations).toMatchObject({
      'istio.io/rev': 'default',
      'kubectl.kubernetes.io/default-container': 'reviews',
      'kubectl.kubernetes.io/default-logs-container': 'reviews',
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/stats/prometheus',
      'prometheus.io/scrape': 'true',
    });
    expect(pod.metadata.annotations!['sidecar.istio.io/status']).toBe(
      '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}',
    );
    // istio-init: Istio's rendered argument list (hello-probes.yaml.injected), as `mizzen istio-iptables` parses it.
    expect(initArgs(pod)).toEqual(['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info']);
    const parsed = flagsFromArgs(initArgs(pod).slice(1));
    expect(parsed.ok && parseIptablesFlags(parsed.value).ok).toBe(true);
    const init = container(pod, 'istio-init')!;
    expect(init.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      readOnlyRootFilesystem: false,
      runAsGroup: 0,
      runAsNonRoot: false,
      runAsUser: 0,
    });
    const proxy = proxyOf(pod);
    expect(proxy.image).toBe('mizzen/proxy:latest');
    expect(proxy.args).toEqual(['agent', 'sidecar', '--domain', '$(POD_NAMESPACE).svc.cluster.local', '--proxyLogLevel=warning', '--proxyComponentLogLevel=misc:error', '--log_output_level=default:info']);
    expect(proxy.ports).toEqual([{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }]);
    expect(proxy.env!.map((e) => e.name)).toEqual([
      'PILOT_CERT_PROVIDER', 'CA_ADDR', 'POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP', 'SERVICE_ACCOUNT', 'HOST_IP', 'ISTIO_CPU_LIMIT', 'PROXY_CONFIG',
      'ISTIO_META_POD_PORTS', 'ISTIO_META_APP_CONTAINERS', 'ISTIO_META_CLUSTER_ID', 'ISTIO_META_NODE_NAME', 'ISTIO_META_INTERCEPTION_MODE',
      'ISTIO_META_WORKLOAD_NAME', 'ISTIO_META_OWNER', 'ISTIO_META_MESH_ID', 'TRUST_DOMAIN',
    ]);
    const env = envOf(proxy);
    expect(env).toMatchObject({
      PILOT_CERT_PROVIDER: 'istiod',
      CA_ADDR: 'istiod.istio-system.svc:15012',
      POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
      INSTANCE_IP: { fieldRef: { fieldPath: 'status.podIP' } },
      ISTIO_CPU_LIMIT: { resourceFieldRef: { resource: 'limits.cpu', divisor: '1' } },
      ISTIO_META_POD_PORTS: '[{"containerPort":9080}]',
      ISTIO_META_APP_CONTAINERS: 'reviews',
      ISTIO_META_CLUSTER_ID: 'Kubernetes',
      ISTIO_META_INTERCEPTION_MODE: 'REDIRECT',
      ISTIO_META_WORKLOAD_NAME: 'reviews',
      ISTIO_META_OWNER: 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews',
      ISTIO_META_MESH_ID: 'cluster.local',
      TRUST_DOMAIN: 'cluster.local',
    });
    expect(JSON.parse(env.PROXY_CONFIG as string)).toMatchObject({ statusPort: 15020, discoveryAddress: 'istiod.istio-system.svc:15012' });
    expect(proxy.readinessProbe).toEqual({ httpGet: { path: '/healthz/ready', port: 15021 }, initialDelaySeconds: 0, periodSeconds: 15, timeoutSeconds: 3, failureThreshold: 4 });
    expect(proxy.startupProbe).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 1, failureThreshold: 600 });
    expect(proxy.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 1337,
      runAsNonRoot: true,
      runAsUser: 1337,
    });
    expect(proxy.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } });
    expect(proxy.volumeMounts!.map((m) => `${m.name}:${m.mountPath}`)).toEqual([
      'workload-socket:/var/run/secrets/workload-spiffe-uds',
      'credential-socket:/var/run/secrets/credential-uds',
      'workload-certs:/var/run/secrets/workload-spiffe-credentials',
      'istiod-ca-cert:/var/run/secrets/istio',
      'istio-data:/var/lib/istio/data',
      'istio-envoy:/etc/istio/proxy',
      'istio-token:/var/run/secrets/tokens',
      'istio-podinfo:/etc/istio/pod',
    ]);
    const volumes = Object.fromEntries(pod.spec.volumes!.map((v) => [v.name, v]));
    expect(volumes['istio-envoy']).toEqual({ name: 'istio-envoy', emptyDir: { medium: 'Memory' } });
    expect(volumes['istio-token']).toEqual({ name: 'istio-token', projected: { sources: [{ serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } }] } });
    expect(volumes['istiod-ca-cert']).toEqual({ name: 'istiod-ca-cert', configMap: { name: 'istio-ca-root-cert' } });
    expect(volumes['istio-podinfo']).toMatchObject({ downwardAPI: { items: [{ path: 'labels' }, { path: 'annotations' }] } });
    // The app container is untouched (no probes to rewrite).
    expect(pod.spec.containers[0]).toEqual(seedReviewsPod().spec.containers[0]);
  });

  it('uses only the annotated proxy resources when any resource annotation is present', () => {
    const pod = injected(mkPod({ annotations: { 'sidecar.istio.io/proxyCPU': '50m', 'sidecar.istio.io/proxyMemoryLimit': '256Mi' } }));
    expect(proxyOf(pod).resources).toEqual({ requests: { cpu: '50m' }, limits: { memory: '256Mi' } });
    expect(container(pod, 'istio-init')!.resources).toEqual({ requests: { cpu: '50m' }, limits: { memory: '256Mi' } });
  });

  it('turns the traffic annotations into istio-init arguments', () => {
    const pod = injected(
      mkPod({
        annotations: {
          'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/8,172.16.0.0/12',
          'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.96.0.1/32',
          'traffic.sidecar.istio.io/includeInboundPorts': '8080,9090',
          'traffic.sidecar.istio.io/excludeInboundPorts': '9999',
          'traffic.sidecar.istio.io/excludeOutboundPorts': '5432',
          'traffic.sidecar.istio.io/includeOutboundPorts': '443',
          'traffic.sidecar.istio.io/excludeInterfaces': 'eth1',
          'sidecar.istio.io/agentLogLevel': 'default:debug',
        },
      }),
    );
    expect(initArgs(pod)).toEqual([
      'istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT',
      '-i', '10.0.0.0/8,172.16.0.0/12', '-x', '10.96.0.1/32', '-b', '8080,9090', '-d', '15090,15021,9999,15020',
      '-q', '443', '-o', '5432', '-c', 'eth1', '--log_output_level=default:debug',
    ]);
    expect(proxyOf(pod).args).toContain('--log_output_level=default:debug');
  });

  it('TPROXY: istio-init -m TPROXY, and the proxy runs as root with NET_ADMIN', () => {
    const pod = injected(mkPod({ annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY' } }));
    expect(initArgs(pod).slice(7, 9)).toEqual(['-m', 'TPROXY']);
    expect(proxyOf(pod).securityContext).toMatchObject({ capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] }, runAsUser: 0, runAsNonRoot: false, runAsGroup: 1337 });
    expect(envOf(proxyOf(pod)).ISTIO_META_INTERCEPTION_MODE).toBe('TPROXY');
  });

  it('interceptionMode NONE: no istio-init; status port 0: no proxy probes and no -d status port', () => {
    const none = injected(mkPod({ annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }));
    expect(none.spec.initContainers).toBeUndefined();
    expect(status(none).initContainers).toBeNull();
    const noStatus = injected(mkPod({ annotations: { 'status.sidecar.istio.io/port': '0' } }));
    expect(proxyOf(noStatus).readinessProbe).toBeUndefined();
    expect(proxyOf(noStatus).startupProbe).toBeUndefined();
    expect(initArgs(noStatus)).toContain('15090,15021');
  });

  it('native sidecars: istio-proxy first among the init containers with restartPolicy Always', () => {
    const base = mkPod({ initContainers: [{ name: 'migrate', image: 'm:1' }] });
    for (const pod of [
      injected(base, { config: cfg({ values: { nativeSidecars: 'true' } }) }),
      injected(base, { nativeSidecarsSupported: true }),
      injected(mkPod({ ...{ initContainers: [{ name: 'migrate', image: 'm:1' }] }, annotations: { 'sidecar.istio.io/nativeSidecar': 'true' } }), { config: cfg({ values: { nativeSidecars: 'false' } }) }),
    ]) {
      expect(pod.spec.initContainers!.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy', 'migrate']);
      expect(pod.spec.containers.map((c) => c.name)).toEqual(['web']);
      expect(proxyOf(pod).restartPolicy).toBe('Always');
      expect(status(pod)).toMatchObject({ initContainers: ['istio-init', 'istio-proxy'], containers: null });
    }
    // auto without support, or the annotation saying false: classic sidecar; istio-init after the user's init containers.
    const classic = injected(base, { nativeSidecarsSupported: false });
    expect(classic.spec.initContainers!.map((c) => c.name)).toEqual(['migrate', 'istio-init']);
    expect(classic.spec.containers.map((c) => c.name)).toEqual(['web', 'istio-proxy']);
    expect(injected(mkPod({ annotations: { 'sidecar.istio.io/nativeSidecar': 'false' } }), { nativeSidecarsSupported: true }).spec.containers.map((c) => c.name)).toEqual(['web', 'istio-proxy']);
  });

  it('holdApplicationUntilProxyStarts (proxy.istio.io/config) puts the proxy first and waits for it; proxyMetadata becomes env', () => {
    const pod = injected(mkPod({ annotations: { 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true\nproxyMetadata:\n  ISTIO_META_DNS_CAPTURE: "true"\n' } }));
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['istio-proxy', 'web']);
    const cmd = (proxyOf(pod).lifecycle as { postStart: { exec: { command: string[] } } }).postStart.exec.command;
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    expect(cmd[2]).toContain('http://localhost:15021/healthz/ready');
    expect(envOf(proxyOf(pod)).ISTIO_META_DNS_CAPTURE).toBe('true');
    expect(envOf(container(pod, 'istio-init')).ISTIO_META_DNS_CAPTURE).toBe('true');
    expect(JSON.parse(envOf(proxyOf(pod)).PROXY_CONFIG as string)).toMatchObject({ holdApplicationUntilProxyStarts: true, proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' } });
  });

  it('merges a user-supplied istio-proxy container over the template and records it in proxy.istio.io/overrides', () => {
    const user = { name: 'istio-proxy', resources: { limits: { memory: '2Gi' } }, env: [{ name: 'EXTRA', value: '1' }] };
    const pod = injected(mkPod({ containers: [user, { name: 'web', image: 'web:1' }] }));
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['web', 'istio-proxy']);
    const proxy = proxyOf(pod);
    expect(proxy.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '2Gi' } });
    expect(envOf(proxy).EXTRA).toBe('1');
    expect(proxy.image).toBe('mizzen/proxy:latest');
    expect(JSON.parse(pod.metadata.annotations!['proxy.istio.io/overrides']!)).toEqual({ containers: [user] });
    expect(envOf(proxy).ISTIO_META_APP_CONTAINERS).toBe('web');
  });

  it('fails, naming the annotation, on invalid annotations and unknown templates', () => {
    const bad = (a: Record<string, string>) => inject(mkPod({ annotations: a }));
    expect(bad({ 'sidecar.istio.io/proxyCPU': 'lots' })).toEqual({ kind: 'failed', message: expect.stringMatching(/^Pod injection failed: annotation sidecar.istio.io\/proxyCPU="lots": must be a resource quantity/) });
    expect(bad({ 'sidecar.istio.io/interceptionMode': 'MAGIC' })).toMatchObject({ kind: 'failed', message: expect.stringContaining('interceptionMode') });
    expect(bad({ 'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0' })).toMatchObject({ kind: 'failed' });
    expect(bad({ 'traffic.sidecar.istio.io/excludeInboundPorts': 'http' })).toMatchObject({ kind: 'failed' });
    expect(bad({ 'proxy.istio.io/config': '[1, 2]' })).toMatchObject({ kind: 'failed', message: expect.stringContaining('proxy.istio.io/config') });
    expect(bad({ 'inject.istio.io/templates': 'sidecar,spire' })).toEqual({ kind: 'failed', message: 'Pod injection failed: requested template "spire" not found; have sidecar, grpc-agent' });
    expect(bad({ 'prometheus.io/port': '15090' })).toMatchObject({ kind: 'failed', message: expect.stringContaining('port the sidecar uses') });
  });

  it('expands template aliases', () => {
    const pod = injected(mkPod({ annotations: { 'inject.istio.io/templates': 'proxyless' } }), { config: cfg({ aliases: { proxyless: ['grpc-agent'] } }) });
    expect(envOf(proxyOf(pod)).ISTIO_META_GENERATOR).toBe('grpc');
  });
});

describe('post-processing: Prometheus merge and probe rewrite', () => {
  it('saves the app scrape settings for the agent and points Prometheus at 15020', () => {
    const pod = injected(mkPod({ annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9100', 'prometheus.io/path': '/m' } }));
    const saved = envOf(proxyOf(pod)).ISTIO_PROMETHEUS_ANNOTATIONS as string;
    expect(JSON.parse(saved)).toEqual({ scrape: 'true', path: '/m', port: '9100' });
    expect(parsePrometheusAnnotations(saved, 15020)).toEqual({ ok: true, value: { port: 9100, path: '/m' } });
    expect(pod.metadata.annotations).toMatchObject({ 'prometheus.io/port': '15020', 'prometheus.io/path': '/stats/prometheus', 'prometheus.io/scrape': 'true' });
    // Opted out of scraping or of merging: untouched.
    const optOuts: Array<Record<string, string>> = [{ 'prometheus.io/scrape': 'false' }, { 'prometheus.istio.io/merge-metrics': 'false', 'prometheus.io/port': '9100' }];
    for (const a of optOuts) {
      const p = injected(mkPod({ annotations: a }));
      expect(envOf(proxyOf(p)).ISTIO_PROMETHEUS_ANNOTATIONS).toBeUndefined();
      expect(p.metadata.annotations!['prometheus.io/path']).toBeUndefined();
    }
    expect(envOf(proxyOf(injected(mkPod(), { config: cfg({ mesh: { enablePrometheusMerge: false } }) }))).ISTIO_PROMETHEUS_ANNOTATIONS).toBeUndefined();
  });

  const probed = () =>
    mkPod({
      containers: [
        {
          name: 'web',
          image: 'web:1',
          ports: [{ containerPort: 8080, name: 'http' }],
          readinessProbe: { httpGet: { path: '/ready', port: 'http', scheme: 'HTTPS', httpHeaders: [{ name: 'X-A', value: '1' }] }, periodSeconds: 5, timeoutSeconds: 2 },
          livenessProbe: { tcpSocket: { port: 8080 }, initialDelaySeconds: 3 },
          startupProbe: { exec: { command: ['true'] } },
        },
        { name: 'api', image: 'api:1', readinessProbe: { grpc: { port: 9000, service: 'api' } }, livenessProbe: { httpGet: { path: '/x', port: 'nope' } } },
      ],
    });

  it('rewrites HTTP, TCP and gRPC probes to the agent and keeps the originals in ISTIO_KUBE_APP_PROBERS', () => {
    const pod = injected(probed());
    const [web, api] = pod.spec.containers;
    expect(web!.readinessProbe).toEqual({ httpGet: { path: '/app-health/web/readyz', port: 15020, scheme: 'HTTP', httpHeaders: [{ name: 'X-A', value: '1' }] }, periodSeconds: 5, timeoutSeconds: 2 });
    expect(web!.livenessProbe).toEqual({ httpGet: { path: '/app-health/web/livez', port: 15020 }, initialDelaySeconds: 3 });
    expect(web!.startupProbe).toEqual({ exec: { command: ['true'] } });
    expect(api!.readinessProbe).toEqual({ httpGet: { path: '/app-health/api/readyz', port: 15020 } });
    // A named port that does not exist cannot be probed by the agent: left alone.
    expect(api!.livenessProbe).toEqual({ httpGet: { path: '/x', port: 'nope' } });
    const json = envOf(proxyOf(pod)).ISTIO_KUBE_APP_PROBERS as string;
    expect(json).toBe(
      '{"/app-health/api/readyz":{"grpc":{"port":9000,"service":"api"}},' +
        '"/app-health/web/livez":{"tcpSocket":{"port":8080}},' +
        '"/app-health/web/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTPS","httpHeaders":[{"name":"X-A","value":"1"}]},"timeoutSeconds":2}}',
    );
    const agent = parseAppProbers(json);
    expect(agent.ok).toBe(true);
  });

  it('leaves probes alone when rewriting is off (annotation or setting)', () => {
    const off = injected({ ...probed(), metadata: { name: 'p', annotations: { 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' } } });
    expect(off.spec.containers[0]!.readinessProbe).toEqual(probed().spec.containers[0]!.readinessProbe);
    expect(envOf(proxyOf(off)).ISTIO_KUBE_APP_PROBERS).toBeUndefined();
    const offBySetting = injected(probed(), { config: cfg({ values: { rewriteAppHTTPProbe: false } }) });
    expect(offBySetting.spec.containers[1]!.readinessProbe).toEqual({ grpc: { port: 9000, service: 'api' } });
  });
});

describe('A3: re-injection is idempotent', () => {
  const cases: Array<[string, Pod, Partial<InjectRequest>]> = [
    ['a plain pod', mkPod(), {}],
    ['the seed reviews pod', seedReviewsPod(), {}],
    ['probes and Prometheus annotations', { ...probed2(), metadata: { name: 'p', annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9100' } } }, {}],
    ['native sidecars with user init containers', mkPod({ initContainers: [{ name: 'migrate', image: 'm' }] }), { nativeSidecarsSupported: true }],
    ['a user istio-proxy override', mkPod({ containers: [{ name: 'web', image: 'w' }, { name: 'istio-proxy', resources: { limits: { cpu: '1' } } }] }), {}],
    ['grpc-agent', mkPod({ annotations: { 'inject.istio.io/templates': 'grpc-agent' } }), {}],
    ['hold application', mkPod({ annotations: { 'proxy.istio.io/config': '{"holdApplicationUntilProxyStarts": true}' } }), {}],
    ['TPROXY and resources', mkPod({ annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY', 'sidecar.istio.io/proxyMemory': '64Mi' } }), {}],
  ];
  function probed2(): Pod {
    return mkPod({ containers: [{ name: 'web', image: 'w', ports: [{ containerPort: 8080, name: 'http' }], readinessProbe: { httpGet: { path: '/r', port: 'http' } }, livenessProbe: { tcpSocket: { port: 8080 } } }] });
  }
  it.each(cases)('%s: injecting the injected pod changes nothing and says it was already injected', (_name, pod, extra) => {
    const once = injected(pod, extra);
    const r = inject(once, extra);
    expect(r).toMatchObject({ kind: 'injected', alreadyInjected: true, changed: false });
    expect(JSON.stringify((r as { pod: Pod }).pod)).toBe(JSON.stringify(once));
  });

  it('after another webhook added a container and a volume: no duplicates, the additions kept', () => {
    const once = injected(mkPod());
    once.spec.containers.push({ name: 'other-sidecar', image: 'o' });
    once.spec.volumes!.push({ name: 'other', emptyDir: {} });
    const twice = injected(once);
    expect(twice.spec.containers.map((c) => c.name)).toEqual(['web', 'other-sidecar', 'istio-proxy']);
    expect(twice.spec.volumes!.map((v) => v.name).filter((n) => n === 'istio-envoy')).toHaveLength(1);
    expect(twice.spec.volumes!.map((v) => v.name)).toContain('other');
    expect(envOf(proxyOf(twice)).ISTIO_META_APP_CONTAINERS).toBe('web,other-sidecar');
    expect(JSON.stringify(injected(twice))).toBe(JSON.stringify(twice));
  });

  it('a changed template setting is picked up on re-injection (stale volumes dropped)', () => {
    const sidecar = injected(mkPod());
    sidecar.metadata.annotations!['inject.istio.io/templates'] = 'grpc-agent';
    const grpc = injected(sidecar);
    const volumes = grpc.spec.volumes!.map((v) => v.name);
    expect(volumes).toContain('istio-xds');
    expect(volumes).not.toContain('istio-envoy');
    expect(grpc.spec.initContainers).toBeUndefined();
  });
});

describe('the grpc-agent template', () => {
  it('runs the agent alone and points the app containers at its gRPC bootstrap', () => {
    const pod = injected(
      mkPod({
        labels: { app: 'echo' },
        annotations: { 'inject.istio.io/templates': 'grpc-agent' },
        containers: [{ name: 'traffic', image: 'echo:1', env: [{ name: 'A', value: '1' }], readinessProbe: { grpc: { port: 7070 } } }],
      }),
    );
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['traffic', 'istio-proxy']);
    expect(pod.spec.initContainers).toBeUndefined();
    expect(pod.metadata.labels!['security.istio.io/tlsMode']).toBeUndefined();
    expect(pod.metadata.labels!['service.istio.io/canonical-name']).toBe('echo');
    expect(pod.metadata.annotations!['sidecar.istio.io/rewriteAppHTTPProbers']).toBe('false');
    const proxy = proxyOf(pod);
    expect(envOf(proxy)).toMatchObject({
      ISTIO_META_GENERATOR: 'grpc',
      OUTPUT_CERTS: '/var/lib/istio/data',
      GRPC_XDS_BOOTSTRAP: '/etc/istio/proxy/grpc-bootstrap.json',
      XDS_ADDR: 'istiod.istio-system.svc:15010',
      DISABLE_ENVOY: 'true',
      ISTIO_META_DNS_CAPTURE: 'false',
      CA_ADDR: 'istiod.istio-system.svc:15012',
      ISTIO_META_APP_CONTAINERS: 'traffic',
    });
    expect(proxy.ports).toEqual([{ containerPort: 15020, protocol: 'TCP', name: 'mesh-metrics' }]);
    expect(proxy.readinessProbe).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15020 } });
    expect(proxy.volumeMounts!.find((m) => m.name === 'istio-xds')!.mountPath).toBe('/etc/istio/proxy');
    const app = pod.spec.containers[0]!;
    expect(app.env).toEqual([
      { name: 'A', value: '1' },
      { name: 'GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT', value: 'true' },
      { name: 'GRPC_XDS_BOOTSTRAP', value: '/etc/istio/proxy/grpc-bootstrap.json' },
    ]);
    expect(app.volumeMounts!.map((m) => m.mountPath)).toEqual(['/var/lib/istio/data', '/etc/istio/proxy', '/var/run/secrets/workload-spiffe-credentials']);
    // No probe rewrite for proxyless: gRPC serves its own health.
    expect(app.readinessProbe).toEqual({ grpc: { port: 7070 } });
    expect(status(pod)).toMatchObject({ containers: ['istio-proxy', 'traffic'], initContainers: null });
    expect(pod.spec.volumes!.find((v) => v.name === 'istio-xds')).toEqual({ name: 'istio-xds', emptyDir: { medium: 'Memory' } });
  });
});

describe('hostile and partial input', () => {
  it('never throws: no pod, no spec, lists of the wrong type', () => {
    for (const bad of [null, 'pod', 42, [], {}, { metadata: 'x', spec: {} }, { spec: { containers: 'web' } }, { spec: { containers: [1] } }]) {
      const r = inject(bad);
      expect(r.kind).toBe('failed');
    }
    // Missing metadata and containers are tolerated (the API server would default or refuse them).
    expect(inject({ spec: {} }).kind).toBe('injected');
    // Labels and annotations of the wrong type are ignored, not trusted.
    expect(inject({ metadata: { labels: { 'sidecar.istio.io/inject': 5 }, annotations: 'x' }, spec: { containers: [{ name: 'a' }] } }).kind).toBe('injected');
    expect(normalizePod({ metadata: { managedFields: [{}] }, spec: {} })).toEqual({ metadata: {}, spec: { containers: [] } });
  });

  it('a corrupt status or overrides annotation is not fatal', () => {
    expect(inject(mkPod({ annotations: { 'sidecar.istio.io/status': '{nope', 'proxy.istio.io/overrides': '[' } })).kind).toBe('injected');
  });
});

describe('workload metadata and native sidecar detection', () => {
  it('derives the owner as GetDeployMetaFromPod', () => {
    expect(deploymentMeta(seedReviewsPod())).toEqual({ name: 'reviews', kind: 'Deployment', apiVersion: 'apps/v1' });
    const job = mkPod({ name: '' });
    job.metadata.generateName = 'backup-29000000-';
    job.metadata.ownerReferences = [{ apiVersion: 'batch/v1', kind: 'Job', name: 'backup-29000000', controller: true }];
    expect(deploymentMeta(job)).toEqual({ name: 'backup', kind: 'CronJob', apiVersion: 'batch/v1' });
    expect(deploymentMeta(mkPod({ name: 'solo' }))).toEqual({ name: 'solo', kind: 'Pod', apiVersion: 'v1' });
    const pod = injected(job);
    expect(envOf(proxyOf(pod)).ISTIO_META_OWNER).toBe('kubernetes://apis/batch/v1/namespaces/default/cronjobs/backup');
    expect(pod.metadata.labels!['service.istio.io/canonical-name']).toBe('backup');
  });

  it('detects native sidecar support from kubelet versions (>= 1.33)', () => {
    const nodes = [{ name: 'a', kubeletVersion: 'v1.33.1' }, { name: 'b', kubeletVersion: 'v1.32.4' }];
    expect(nativeSidecarsSupported(nodes, 'a')).toBe(true);
    expect(nativeSidecarsSupported(nodes, 'b')).toBe(false);
    expect(nativeSidecarsSupported(nodes)).toBe(false);
    expect(nativeSidecarsSupported([nodes[0]!])).toBe(true);
    expect(nativeSidecarsSupported([])).toBe(false);
  });

  it('the mesh config reaches the proxy env (trust domain, mesh id, cluster id, network, revision)', () => {
    const pod = injected(mkPod(), {
      config: cfg({ revision: 'canary', mesh: { trustDomain: 'example.org', meshId: 'm1' }, values: { clusterId: 'c1', network: 'n1', imagePullSecrets: ['regcred'] } }),
    });
    expect(envOf(proxyOf(pod))).toMatchObject({ TRUST_DOMAIN: 'example.org', ISTIO_META_MESH_ID: 'm1', ISTIO_META_CLUSTER_ID: 'c1', ISTIO_META_NETWORK: 'n1', CA_ADDR: 'istiod-canary.istio-system.svc:15012' });
    expect(pod.metadata.labels!['topology.istio.io/network']).toBe('n1');
    expect(pod.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(status(pod)).toMatchObject({ imagePullSecrets: ['regcred'], revision: 'canary' });
    expect(pod.metadata.annotations!['istio.io/rev']).toBe('canary');
  });
});
