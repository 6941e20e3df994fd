/**
 * What Istio's injector does after the templates are rendered (inject.go postProcessPod / reorderPod): the template
 * containers merged into the pod (strategic merge, user overrides kept), the Prometheus annotation merge, the probe
 * rewrite to the agent's status port, the injection status annotation, and the container order.
 */
import type { Container, Pod, StringMap } from './kube-types.ts';
import { env, INIT, isRecord, parseBool, podAnnotations, PROXY, proxyContainer, TEMPLATES, type TemplateContext } from './templates.ts';

/** Strategic-merge keys of the lists inside a container (k8s.io/api core/v1 patchMergeKey). */
const MERGE_KEYS: Record<string, string> = { env: 'name', volumeMounts: 'mountPath', ports: 'containerPort', volumeDevices: 'devicePath' };

/** A strategic merge patch of `patch` over `base` (maps merge, keyed lists merge by key, anything else is replaced). */
export function strategicMerge(base: unknown, patch: unknown, field?: string): unknown {
  if (isRecord(base) && isRecord(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = Object.hasOwn(base, k) ? strategicMerge(base[k], v, k) : structuredClone(v);
    return out;
  }
  const key = field !== undefined ? MERGE_KEYS[field] : undefined;
  if (key && Array.isArray(base) && Array.isArray(patch)) {
    const out = base.map((b: unknown) => structuredClone(b));
    for (const item of patch) {
      const i = isRecord(item) ? out.findIndex((b) => isRecord(b) && b[key] === item[key]) : -1;
      if (i >= 0) out[i] = strategicMerge(out[i], item);
      else out.push(structuredClone(item));
    }
    return out;
  }
  return structuredClone(patch);
}

interface Injected {
  initContainers: string[];
  containers: string[];
  volumes: string[];
  imagePullSecrets: string[];
}
interface Overrides {
  containers: Container[];
  initContainers: Container[];
}

/** Lays one container over its list: merged in place with the user's same-named container (whose fields win), else appended. */
function placeContainer(pod: Pod, field: 'containers' | 'initContainers', t: Container, ctx: TemplateContext, overrides: Overrides): void {
  const list = (pod.spec[field] ??= []);
  const i = list.findIndex((c) => c.name === t.name);
  let user = i >= 0 ? list[i] : undefined;
  if (!user && ctx.native && field === 'initContainers' && t.name === PROXY) {
    // A user's istio-proxy tweaks in `containers` move with the proxy into initContainers.
    const j = pod.spec.containers.findIndex((c) => c.name === PROXY);
    if (j >= 0) user = pod.spec.containers.splice(j, 1)[0];
  }
  const merged = user ? (strategicMerge(strategicMerge(user, t), user) as Container) : t;
  if (user) overrides[field].push(structuredClone(user));
  if (i >= 0) list[i] = merged;
  else list.push(merged);
}

function byName<T extends { name: string }>(list: T[], item: T): void {
  const i = list.findIndex((x) => isRecord(x) && x.name === item.name);
  if (i >= 0) list[i] = strategicMerge(list[i], item) as T;
  else list.push(item);
}

/** Renders every template over the pod, then istiod's post-processing (postProcessPod). Mutates `pod`. */
export function finishPod(pod: Pod, templates: string[], ctx: TemplateContext): void {
  const injected: Injected = { initContainers: [], containers: [], volumes: [], imagePullSecrets: [] };
  const overrides: Overrides = { containers: [], initContainers: [] };
  for (const name of templates) {
    const t = TEMPLATES[name]!(pod, ctx);
    pod.metadata.labels = { ...(isRecord(pod.metadata.labels) ? pod.metadata.labels : {}), ...t.labels };
    pod.metadata.annotations = { ...(isRecord(pod.metadata.annotations) ? pod.metadata.annotations : {}), ...t.annotations };
    for (const c of t.initContainers) {
      placeContainer(pod, 'initContainers', c, ctx, overrides);
      injected.initContainers.push(c.name);
    }
    for (const c of t.containers) {
      placeContainer(pod, 'containers', c, ctx, overrides);
      injected.containers.push(c.name);
    }
    for (const vol of t.volumes) {
      byName((pod.spec.volumes ??= []), vol);
      injected.volumes.push(vol.name);
    }
    for (const s of t.imagePullSecrets) {
      byName((pod.spec.imagePullSecrets ??= []), s);
      injected.imagePullSecrets.push(s.name);
    }
  }
  // Volumes and pull secrets a previous injection added that no template adds any more.
  const stale = (prev: string[] | undefined, now: string[]) => (x: unknown) => !(isRecord(x) && prev?.includes(x.name as string) && !now.includes(x.name as string));
  if (pod.spec.volumes) pod.spec.volumes = pod.spec.volumes.filter(stale(ctx.previous?.volumes, injected.volumes));
  if (pod.spec.imagePullSecrets) pod.spec.imagePullSecrets = pod.spec.imagePullSecrets.filter(stale(ctx.previous?.imagePullSecrets, injected.imagePullSecrets));
  if (pod.spec.initContainers?.length === 0) delete pod.spec.initContainers;

  const proxy = proxyContainer(pod);
  if (proxy) {
    proxy.env = Array.isArray(proxy.env) ? proxy.env : [];
    applyPrometheusMerge(pod, ctx, proxy);
    applyProbeRewrite(pod, ctx, proxy);
  }
  const annotations = pod.metadata.annotations as StringMap;
  const listOrNull = (l: string[]) => (l.length > 0 ? [...new Set(l)] : null);
  annotations['sidecar.istio.io/status'] = JSON.stringify({
    initContainers: listOrNull(injected.initContainers),
    containers: listOrNull(injected.containers),
    volumes: listOrNull(injected.volumes),
    imagePullSecrets: listOrNull(injected.imagePullSecrets),
    revision: ctx.config.revision,
  });
  Object.assign(annotations, ctx.config.injectedAnnotations);
  if (overrides.containers.length > 0 || overrides.initContainers.length > 0) {
    annotations['proxy.istio.io/overrides'] = JSON.stringify({
      ...(overrides.containers.length > 0 ? { containers: overrides.containers } : {}),
      ...(overrides.initContainers.length > 0 ? { initContainers: overrides.initContainers } : {}),
    });
  }
  const network = ctx.config.values.network;
  if (network && pod.metadata.labels!['topology.istio.io/network'] === undefined) pod.metadata.labels!['topology.istio.io/network'] = network;
  reorder(pod, ctx);
}

/** reorderPod: istio-proxy last (first when holding the app); init containers so iptables never blocks the user's. */
function reorder(pod: Pod, ctx: TemplateContext): void {
  const spec = pod.spec;
  const proxies = spec.containers.filter((c) => c.name === PROXY);
  const rest = spec.containers.filter((c) => c.name !== PROXY);
  spec.containers = ctx.hold ? [...proxies, ...rest] : [...rest, ...proxies];
  if (!spec.initContainers) return;
  const pick = (n: string) => spec.initContainers!.filter((c) => c.name === n);
  const user = spec.initContainers.filter((c) => c.name !== INIT && c.name !== PROXY && c.name !== 'istio-validation');
  spec.initContainers = ctx.native
    ? [...pick('istio-validation'), ...pick(INIT), ...pick(PROXY), ...user]
    : [...pick('istio-validation'), ...user, ...pick(INIT), ...pick(PROXY)];
}

const PROM = { scrape: 'prometheus.io/scrape', path: 'prometheus.io/path', port: 'prometheus.io/port' } as const;
/** Ports the sidecar itself listens on; an app scrape port there would scrape the proxy (or loop). */
const RESERVED_PORTS = new Set([15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090]);

/**
 * applyPrometheusMerge: the app's scrape settings go to ISTIO_PROMETHEUS_ANNOTATIONS and the pod is scraped on the
 * agent's merged endpoint. On re-injection the user's settings are first restored from the previous proxy.
 */
function applyPrometheusMerge(pod: Pod, ctx: TemplateContext, proxy: Container): void {
  const ann = pod.metadata.annotations as StringMap;
  const target = String(ctx.statusPort);
  if (ctx.previous && ann[PROM.port] === target && ann[PROM.path] === '/stats/prometheus') {
    for (const k of Object.values(PROM)) delete ann[k];
    let saved: unknown;
    try {
      saved = ctx.previous.prometheusAnnotations ? JSON.parse(ctx.previous.prometheusAnnotations) : undefined;
    } catch {
      saved = undefined;
    }
    if (isRecord(saved)) for (const k of ['scrape', 'path', 'port'] as const) if (typeof saved[k] === 'string' && saved[k] !== '') ann[PROM[k]] = saved[k];
  }
  if ((ann[PROM.scrape] ?? '').trim().toLowerCase() === 'false' || ctx.statusPort === 0) return;
  const mergeAnnotation = ann['prometheus.istio.io/merge-metrics'];
  if (!(mergeAnnotation !== undefined ? parseBool(mergeAnnotation) : ctx.config.mesh.enablePrometheusMerge)) return;
  if (ann[PROM.port] === target) return;
  const scrape = { scrape: ann[PROM.scrape] ?? '', path: ann[PROM.path] ?? '', port: ann[PROM.port] ?? '' };
  if (scrape.port !== '') {
    const p = Number(scrape.port);
    if (!/^\d+$/.test(scrape.port) || p < 1 || p > 65535) throw new Error(`annotation ${PROM.port}=${JSON.stringify(scrape.port)} is not a port`);
    if (RESERVED_PORTS.has(p)) throw new Error(`annotation ${PROM.port}=${p} is a port the sidecar uses; scrape the application on its own port`);
  }
  if (scrape.scrape !== '' || scrape.path !== '' || scrape.port !== '') proxy.env!.push(env('ISTIO_PROMETHEUS_ANNOTATIONS', JSON.stringify(scrape)));
  for (const k of Object.values(PROM)) delete ann[k];
  ann[PROM.port] = target;
  ann[PROM.path] = '/stats/prometheus';
  ann[PROM.scrape] = 'true';
}

const PROBES = [['readinessProbe', 'readyz'], ['livenessProbe', 'livez'], ['startupProbe', 'startupz']] as const;

/** The probe's action for the agent (KubeAppProbe JSON, named ports resolved), or undefined if it cannot be rewritten. */
function originalAction(probe: Record<string, any>, ports: Map<string, number>): Record<string, unknown> | undefined {
  const port = (p: unknown): number | undefined => (typeof p === 'number' ? p : typeof p === 'string' ? ports.get(p) : undefined);
  const timeout = typeof probe.timeoutSeconds === 'number' ? { timeoutSeconds: probe.timeoutSeconds } : {};
  const h = probe.httpGet;
  if (isRecord(h)) {
    const p = port(h.port);
    if (p === undefined) return undefined;
    const httpGet: Record<string, unknown> = {};
    for (const [k, val] of [['path', h.path], ['port', p], ['host', h.host], ['scheme', h.scheme], ['httpHeaders', h.httpHeaders]] as const) if (val !== undefined) httpGet[k] = val;
    return { httpGet, ...timeout };
  }
  if (isRecord(probe.tcpSocket)) {
    const p = port(probe.tcpSocket.port);
    return p === undefined ? undefined : { tcpSocket: { port: p, ...(typeof probe.tcpSocket.host === 'string' ? { host: probe.tcpSocket.host } : {}) }, ...timeout };
  }
  const g = probe.grpc;
  if (isRecord(g) && typeof g.port === 'number') return { grpc: { port: g.port, ...(typeof g.service === 'string' ? { service: g.service } : {}) }, ...timeout };
  return undefined;
}

/**
 * applyRewrite (app_probe.go): httpGet/tcpSocket/grpc probes of app containers become httpGet on the status port at
 * /app-health/<container>/<readyz|livez|startupz>; the originals go to ISTIO_KUBE_APP_PROBERS (keys sorted, as Go's
 * json.Marshal writes a map). Probes already rewritten keep the action the previous proxy recorded.
 */
function applyProbeRewrite(pod: Pod, ctx: TemplateContext, proxy: Container): void {
  const setting = podAnnotations(pod)['sidecar.istio.io/rewriteAppHTTPProbers'];
  if (!(setting !== undefined ? parseBool(setting) : ctx.config.values.rewriteAppHTTPProbe) || ctx.statusPort === 0) return;
  let old: Record<string, unknown> = {};
  try {
    const parsed: unknown = ctx.previous?.appProbers ? JSON.parse(ctx.previous.appProbers) : {};
    if (isRecord(parsed)) old = parsed;
  } catch {
    // Unreadable: such probes are left as they are, without an entry.
  }
  const probers: Record<string, unknown> = {};
  for (const c of pod.spec.containers) {
    if (c.name === PROXY || typeof c.name !== 'string') continue;
    const ports = new Map<string, number>();
    for (const p of Array.isArray(c.ports) ? c.ports : []) if (isRecord(p) && typeof p.name === 'string' && typeof p.containerPort === 'number') ports.set(p.name, p.containerPort);
    for (const [field, kind] of PROBES) {
      const probe = c[field];
      if (!isRecord(probe)) continue;
      const path = `/app-health/${c.name}/${kind}`;
      if (isRecord(probe.httpGet) && probe.httpGet.port === ctx.statusPort && probe.httpGet.path === path) {
        if (old[path] !== undefined) probers[path] = old[path];
        continue;
      }
      const action = originalAction(probe, ports);
      if (!action) continue;
      probers[path] = action;
      const { tcpSocket: _t, grpc: _g, httpGet, ...rest } = probe;
      const scheme = isRecord(httpGet) && typeof httpGet.scheme === 'string' ? { scheme: httpGet.scheme === 'HTTPS' ? 'HTTP' : httpGet.scheme } : {};
      c[field] = { httpGet: { ...(isRecord(httpGet) ? httpGet : {}), path, port: ctx.statusPort, ...scheme }, ...rest };
    }
  }
  const keys = Object.keys(probers).sort();
  if (keys.length > 0) proxy.env!.push(env('ISTIO_KUBE_APP_PROBERS', JSON.stringify(Object.fromEntries(keys.map((k) => [k, probers[k]])))));
}
