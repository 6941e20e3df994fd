/**
 * The Helm charts, checked with a real helm binary (test/infra/helm.ts): lint, render with each profile and as a
 * canary revision, the rendered objects that matter (Service ports, webhook selectors, RBAC), the CRDs (one per Istio
 * kind, structural, up to date with src/app/crds.ts) and values.schema.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CRD_FILE, renderCrdYaml } from '../../src/app/crds.ts';
import { istioKinds } from '../../src/config/kinds/istio.ts';
import { parseMeshConfig } from '../../src/config/mesh-config.ts';
import { ensureHelm } from '../infra/helm.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = path.join(ROOT, 'manifests/charts/mizzen');
const GATEWAY = path.join(ROOT, 'manifests/charts/gateway');
const provisioned = ensureHelm();
const HELM = provisioned.helm;
/** helm's own cache/config/data dirs: kept out of the user's home and the repo. */
const HELM_HOME = path.join(os.tmpdir(), 'mizzen-test-helm-home');
if (!HELM) console.warn(`helm tests skipped: ${provisioned.reason}`);

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(HELM as string, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, HELM_CACHE_HOME: HELM_HOME, HELM_CONFIG_HOME: HELM_HOME, HELM_DATA_HOME: HELM_HOME } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function render(chart: string, ...args: string[]): Obj[] {
  const r = helm(['template', 'mizzen', chart, '--namespace', 'istio-system', ...args]);
  expect(r.stderr, r.stderr).not.toMatch(/Error/);
  expect(r.status).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const one = (objs: Obj[], kind: string): Obj => {
  const found = byKind(objs, kind);
  expect(found.map((o) => o.metadata.name), kind).toHaveLength(1);
  return found[0] as Obj;
};
const profile = (name: string) => ['-f', path.join(CHART, 'files', `profile-${name}.yaml`)];

/** Every node of a structural schema has a type, unless it preserves unknown fields or is int-or-string; no $ref. */
function structuralProblems(schema: any, where: string, out: string[]): string[] {
  if ('$ref' in schema) out.push(`${where}: $ref`);
  if (schema.additionalProperties === false) out.push(`${where}: additionalProperties: false`);
  if (schema.type === undefined && !schema['x-kubernetes-preserve-unknown-fields'] && !schema['x-kubernetes-int-or-string']) out.push(`${where}: no type`);
  if (schema.properties && schema.additionalProperties) out.push(`${where}: both properties and additionalProperties`);
  for (const [k, v] of Object.entries(schema.properties ?? {})) structuralProblems(v, `${where}.${k}`, out);
  if (typeof schema.additionalProperties === 'object') structuralProblems(schema.additionalProperties, `${where}.*`, out);
  if (schema.items) structuralProblems(schema.items, `${where}[]`, out);
  for (const k of ['anyOf', 'oneOf', 'allOf', 'not']) if (k in schema) out.push(`${where}: ${k}`);
  return out;
}

describe.skipIf(!HELM)('helm charts (real helm)', () => {
  it('lints both charts with no failures', () => {
    for (const chart of [CHART, GATEWAY]) {
      const r = helm(['lint', chart]);
      expect(r.stdout + r.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(r.status).toBe(0);
    }
    for (const p of ['minimal', 'default', 'demo']) expect(helm(['lint', CHART, ...profile(p)]).status).toBe(0);
  });

  it('takes appVersion from package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')).toContain(`appVersion: "${pkg.version}"`);
  });

  it('ships the CRDs the generator writes (npm run gen:crds)', () => {
    expect(fs.readFileSync(CRD_FILE, 'utf8'), 'manifests/charts/mizzen/crds/crds.yaml is stale: run npm run gen:crds').toBe(renderCrdYaml());
  });

  it('renders one structural CRD per Istio kind, with every served version', () => {
    const crds = byKind(render(CHART, '--include-crds'), 'CustomResourceDefinition');
    expect(crds).toHaveLength(istioKinds.length);
    for (const def of istioKinds) {
      const crd = crds.find((c) => c.metadata.name === `${def.plural}.${def.group}`);
      expect(crd, def.kind).toBeDefined();
      const spec = (crd as Obj).spec;
      expect(spec.names.kind).toBe(def.kind);
      expect(spec.names.categories).toContain('istio-io');
      expect(spec.versions.map((v: any) => v.name)).toEqual([...def.versions]);
      const storage = spec.versions.filter((v: any) => v.storage).map((v: any) => v.name);
      expect(storage).toEqual([def.versions.includes('v1') ? 'v1' : def.versions[0]]);
      for (const v of spec.versions) {
        expect(v.subresources).toEqual({ status: {} });
        expect(structuralProblems(v.schema.openAPIV3Schema, `${def.kind}/${v.name}`, [])).toEqual([]);
      }
    }
    const vs = crds.find((c) => c.spec.names.kind === 'VirtualService') as Obj;
    expect(vs.spec.names.shortNames).toEqual(['vs']);
    expect(vs.spec.names.categories).toEqual(['istio-io', 'networking-istio-io']);
    expect(vs.spec.versions[0].additionalPrinterColumns.map((c: any) => c.name)).toEqual(['Gateways', 'Hosts', 'Age']);
    const ef = crds.find((c) => c.spec.names.kind === 'EnvoyFilter') as Obj;
    const patch = ef.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.configPatches.items.properties.patch;
    expect(patch.properties.value).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    const short = Object.fromEntries(crds.map((c) => [c.spec.names.kind, c.spec.names.shortNames]));
    expect(short).toMatchObject({ DestinationRule: ['dr'], Gateway: ['gw'], ServiceEntry: ['se'], PeerAuthentication: ['pa'], AuthorizationPolicy: ['ap'] });
  });

  it('renders the control plane: Service ports, Deployment flags, RBAC, config maps', () => {
    const objs = render(CHART);
    const svc = one(objs, 'Service');
    expect(svc.metadata.name).toBe('mizzen');
    expect(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort])).toEqual([
      ['grpc-xds', 15010, 15010],
      ['https-dns', 15012, 15012],
      ['https-webhook', 443, 15017],
      ['http-monitoring', 15014, 15014],
    ]);
    const dep = one(objs, 'Deployment');
    const c = dep.spec.template.spec.containers[0];
    expect(c.args[0]).toBe('serve');
    expect(c.args).toEqual(expect.arrayContaining(['--secure-xds-port=15012', '--ca-namespace=istio-system', '--mesh-config=/etc/istio/config/mesh', '--trust-domain=cluster.local']));
    // Kube mode: no config folder; serve reads the cluster with the pod's service account.
    expect(c.args.some((a: string) => a.startsWith('--config') || a.startsWith('--ca-dir'))).toBe(false);
    // The self-signed CA lives in istio-ca-secret: the control plane may write Secrets in its own namespace only.
    const role = one(objs, 'Role');
    expect(role.metadata.namespace).toBe('istio-system');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create', 'update'] }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/ready', port: 15014 });
    expect(dep.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    expect(one(objs, 'ServiceAccount').metadata.name).toBe('mizzen');
    const rules = one(objs, 'ClusterRole').rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    const can = (group: string, resource: string, verb: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [g, r, v] of [['', 'secrets', 'watch'], ['', 'configmaps', 'create'], ['', 'configmaps', 'update'], ['coordination.k8s.io', 'leases', 'update'], ['authentication.k8s.io', 'tokenreviews', 'create'], ['authorization.k8s.io', 'subjectaccessreviews', 'create'], ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'patch'], ['admissionregistration.k8s.io', 'validatingwebhookconfigurations', 'update']] as const) {
      expect(can(g, r, v), `${v} ${g}/${r}`).toBe(true);
    }
    expect(one(objs, 'ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'mizzen', namespace: 'istio-system' }]);
    const cms = Object.fromEntries(byKind(objs, 'ConfigMap').map((m) => [m.metadata.name, m.data]));
    expect(Object.keys(cms).sort()).toEqual(['istio', 'istio-sidecar-injector']);
    expect(cms.istio.mesh).toContain('discoveryAddress: mizzen.istio-system.svc:15012');
    expect(JSON.parse(cms['istio-sidecar-injector'].values).global.proxy.clusterDomain).toBe('cluster.local');
    const hpa = one(objs, 'HorizontalPodAutoscaler');
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([1, 5]);
    expect(byKind(objs, 'PodDisruptionBudget')).toHaveLength(0);
    const test = objs.find((o) => o.metadata.name === 'mizzen-test-ready') as Obj;
    expect(test.metadata.annotations?.['helm.sh/hook']).toBe('test');
    expect(test.spec.containers[0].args.at(-1)).toBe('http://mizzen.istio-system.svc:15014/ready');
  });

  it("renders Istio's injection and validation webhook selectors for the default revision", () => {
    const objs = render(CHART);
    const mwc = one(objs, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.name).toBe('istio-sidecar-injector');
    const hooks = Object.fromEntries(mwc.webhooks.map((w: any) => [w.name, w]));
    expect(Object.keys(hooks)).toEqual(['rev.namespace.sidecar-injector.istio.io', 'rev.object.sidecar-injector.istio.io', 'namespace.sidecar-injector.istio.io', 'object.sidecar-injector.istio.io']);
    for (const w of mwc.webhooks) {
      expect(w.failurePolicy).toBe('Fail');
      expect(w.clientConfig.service).toEqual({ name: 'mizzen', namespace: 'istio-system', path: '/inject', port: 443 });
      expect(w.rules).toEqual([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }]);
    }
    expect(hooks['namespace.sidecar-injector.istio.io'].namespaceSelector.matchExpressions).toEqual([{ key: 'istio-injection', operator: 'In', values: ['enabled'] }]);
    expect(hooks['object.sidecar-injector.istio.io'].objectSelector.matchExpressions).toContainEqual({ key: 'sidecar.istio.io/inject', operator: 'In', values: ['true'] });
    expect(hooks['rev.namespace.sidecar-injector.istio.io'].namespaceSelector.matchExpressions).toContainEqual({ key: 'istio.io/rev', operator: 'In', values: ['default'] });
    const vwc = one(objs, 'ValidatingWebhookConfiguration');
    expect(vwc.metadata.name).toBe('istio-validator-istio-system');
    for (const w of vwc.webhooks) {
      expect(w.failurePolicy).toBe('Ignore');
      expect(w.clientConfig.service.path).toBe('/validate');
      expect(w.rules[0].apiGroups.sort()).toEqual(['extensions.istio.io', 'networking.istio.io', 'security.istio.io', 'telemetry.istio.io']);
    }
    const auto = render(CHART, '--set', 'sidecarInjectorWebhook.enableNamespacesByDefault=true');
    expect(one(auto, 'MutatingWebhookConfiguration').webhooks.map((w: any) => w.name)).toContain('auto.sidecar-injector.istio.io');
  });

  it('renders a canary revision: suffixed names, revision-only selectors', () => {
    const objs = render(CHART, '--set', 'revision=canary');
    expect(one(objs, 'Service').metadata.name).toBe('mizzen-canary');
    expect(one(objs, 'Deployment').spec.selector.matchLabels['istio.io/rev']).toBe('canary');
    expect(byKind(objs, 'ConfigMap').map((m) => m.metadata.name).sort()).toEqual(['istio-canary', 'istio-sidecar-injector-canary']);
    const mwc = one(objs, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.name).toBe('istio-sidecar-injector-canary');
    expect(mwc.webhooks.map((w: any) => w.name)).toEqual(['rev.namespace.sidecar-injector.istio.io', 'rev.object.sidecar-injector.istio.io']);
    for (const w of mwc.webhooks) expect(w.clientConfig.service.name).toBe('mizzen-canary');
    expect(mwc.webhooks[0].namespaceSelector.matchExpressions).toContainEqual({ key: 'istio.io/rev', operator: 'In', values: ['canary'] });
    expect(mwc.webhooks[1].objectSelector.matchExpressions).toContainEqual({ key: 'istio.io/rev', operator: 'In', values: ['canary'] });
    const vwc = one(objs, 'ValidatingWebhookConfiguration');
    expect(vwc.metadata.name).toBe('istio-validator-canary-istio-system');
    expect(vwc.webhooks.map((w: any) => w.objectSelector.matchExpressions)).toEqual([[{ key: 'istio.io/rev', operator: 'In', values: ['canary'] }]]);
  });

  it('renders each profile', () => {
    const minimal = render(CHART, ...profile('minimal'));
    expect(byKind(minimal, 'ValidatingWebhookConfiguration')).toHaveLength(0);
    expect(byKind(minimal, 'HorizontalPodAutoscaler')).toHaveLength(0);
    expect(one(minimal, 'Deployment').spec.replicas).toBe(1);
    expect(byKind(render(CHART, ...profile('default')), 'HorizontalPodAutoscaler')).toHaveLength(1);
    const demo = render(CHART, ...profile('demo'));
    expect(byKind(demo, 'HorizontalPodAutoscaler')).toHaveLength(0);
    expect(one(demo, 'Deployment').spec.template.spec.containers[0].resources.requests).toEqual({ cpu: '10m', memory: '100Mi' });
    const demoMesh = byKind(demo, 'ConfigMap').find((m) => m.metadata.name === 'istio')?.data.mesh;
    expect(demoMesh).toContain('accessLogFile: /dev/stdout');
    // What the chart writes is what `serve --mesh-config` accepts, in every profile.
    for (const p of ['minimal', 'default', 'demo']) {
      const mesh = byKind(render(CHART, ...profile(p)), 'ConfigMap').find((m) => m.metadata.name === 'istio')?.data.mesh;
      const parsed = parseMeshConfig(mesh);
      expect(parsed.ok, `${p}: ${JSON.stringify(parsed)}`).toBe(true);
    }
    const ha = render(CHART, '--set', 'pilot.autoscaleMin=2');
    expect(one(ha, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
  });

  it('rejects values that break values.schema.json', () => {
    const r = helm(['template', 'mizzen', CHART, '--set-string', 'pilot.replicaCount=x']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/schema/i);
    expect(r.stderr).toMatch(/replicaCount/);
    const bad = helm(['template', 'mizzen', CHART, '--set', 'global.imagePullPolicy=Sometimes']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/imagePullPolicy/);
  });

  it('renders the gateway chart: router Deployment, Service 80→8080 and 443→8443, istio=ingressgateway', () => {
    const objs = render(GATEWAY, '--namespace', 'istio-ingress');
    const dep = one(objs, 'Deployment');
    expect(dep.spec.template.spec.containers[0].args).toEqual(['agent', 'router']);
    expect(dep.spec.template.metadata.labels.istio).toBe('ingressgateway');
    const svc = one(objs, 'Service');
    expect(svc.spec.selector.istio).toBe('ingressgateway');
    const ports = svc.spec.ports.map((p: any) => [p.port, p.targetPort]);
    expect(ports).toEqual(expect.arrayContaining([[80, 8080], [443, 8443]]));
    expect(one(objs, 'ServiceAccount').metadata.name).toBe(dep.spec.template.spec.serviceAccountName);
    expect(helm(['template', 'gw', GATEWAY, '--set', 'replicaCount=many']).status).not.toBe(0);
  });
});
