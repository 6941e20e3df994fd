/**
 * Which AuthorizationPolicies apply to one workload, grouped by action, with istiod's selection rules
 * (pilot/pkg/model/authorization.go ListAuthorizationPolicies, policyattachment.go ShouldAttachPolicy):
 * - policies are looked up in the mesh root namespace and in the workload's namespace, each oldest first, root first;
 * - a policy without `selector`/`targetRef(s)` applies to every workload of its namespace (root namespace: the mesh);
 *   `selector.matchLabels` must be a subset of the workload's labels (a root-namespace selector applies mesh-wide);
 * - `targetRef(s)` attach only to Kubernetes Gateway API gateway pods (label `gateway.networking.k8s.io/gateway-name`
 *   = the Gateway's name, same namespace as the policy); on any other workload a policy with targetRefs is ignored
 *   altogether, as istiod does (Service/ServiceEntry/GatewayClass targets are for waypoints, which mizzen does not
 *   serve);
 * - `istio.io/dry-run: "true"` (Go strconv.ParseBool) marks a policy whose rules go to the RBAC shadow rules.
 * Pure: reads the proxy only through the view (its namespace and the selectors asked), so the cache key of whatever
 * is built from the result is exactly those reads.
 */
import type { AuthorizationAction, AuthorizationPolicySpec } from '../config/kinds/authorization-policy.ts';
import type { ConfigObject } from '../config/object.ts';
import type { ConfigSnapshot } from './config-store.ts';
import type { ProxyView } from './proxy-view.ts';
import type { PushContext } from './push-context.ts';

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/** One AuthorizationPolicy as the RBAC builder needs it. */
export interface ApplicablePolicy {
  name: string;
  namespace: string;
  /** Defaults applied: ALLOW when unset. */
  action: AuthorizationAction;
  spec: AuthorizationPolicySpec;
  /** `istio.io/dry-run` parsed as istiod does (unparsable values count as false, with a note). */
  dryRun: boolean;
}

/** The policies that apply to a workload, per action, root namespace first, each level oldest first. */
export interface ApplicablePolicies {
  custom: ApplicablePolicy[];
  deny: ApplicablePolicy[];
  allow: ApplicablePolicy[];
  audit: ApplicablePolicy[];
}

export const NO_POLICIES: ApplicablePolicies = Object.freeze({ custom: [], deny: [], allow: [], audit: [] }) as ApplicablePolicies;

export function hasPolicies(p: ApplicablePolicies): boolean {
  return p.custom.length + p.deny.length + p.allow.length + p.audit.length > 0;
}

type PolicyObject = ConfigObject<AuthorizationPolicySpec>;
/** All the model reads of a proxy. */
export type AuthorizationView = Pick<ProxyView, 'namespace' | 'selectedBy'>;

/** Go strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

const describe = (p: PolicyObject) => `AuthorizationPolicy ${p.metadata.namespace}/${p.metadata.name}`;
const targetRefsOf = (s: AuthorizationPolicySpec) => (s.targetRefs?.length ? s.targetRefs : s.targetRef ? [s.targetRef] : []);

/** ShouldAttachPolicy for one policy already known to be in the root namespace or the workload's namespace. */
function attaches(p: PolicyObject, view: AuthorizationView, workloadNamespace: string, note: (m: string) => void): boolean {
  const refs = targetRefsOf(p.spec);
  if (refs.length === 0) {
    const selector = p.spec.selector?.matchLabels;
    return !selector || view.selectedBy(selector);
  }
  // targetRefs: only a Gateway API gateway of the policy's own namespace can be the target.
  for (const ref of refs) {
    const gatewayRef = (ref.group ?? '') === GATEWAY_API_GROUP && ref.kind === 'Gateway';
    if (!gatewayRef) {
      note(`${describe(p)}: targetRef ${ref.kind}/${ref.name} attaches to waypoints only, which mizzen does not serve; the policy applies to no sidecar or gateway`);
      continue;
    }
    if (p.metadata.namespace !== workloadNamespace) continue;
    if (ref.namespace && ref.namespace !== workloadNamespace) continue;
    if (view.selectedBy({ [GATEWAY_NAME_LABEL]: ref.name })) return true;
  }
  return false;
}

/** Policies by namespace (oldest first, the snapshot's order), built once per config snapshot. */
const byNamespaceCache = new WeakMap<ConfigSnapshot, Map<string, PolicyObject[]>>();

function policiesIn(config: ConfigSnapshot, namespace: string): readonly PolicyObject[] {
  let index = byNamespaceCache.get(config);
  if (!index) {
    index = new Map();
    for (const p of config.ofKind<AuthorizationPolicySpec>('AuthorizationPolicy')) {
      const list = index.get(p.metadata.namespace);
      if (list) list.push(p);
      else index.set(p.metadata.namespace, [p]);
    }
    byNamespaceCache.set(config, index);
  }
  return index.get(namespace) ?? [];
}

function toApplicable(p: PolicyObject, note: (m: string) => void): ApplicablePolicy {
  const raw = p.metadata.annotations?.[DRY_RUN_ANNOTATION];
  let dryRun = false;
  if (raw !== undefined) {
    const parsed = parseGoBool(raw);
    if (parsed === undefined) note(`${describe(p)}: cannot parse ${DRY_RUN_ANNOTATION} value "${raw}"; the policy is enforced`);
    dryRun = parsed ?? false;
  }
  return { name: p.metadata.name, namespace: p.metadata.namespace, action: p.spec.action ?? 'ALLOW', spec: p.spec, dryRun };
}

/**
 * The policies that apply to a workload, from a list of candidates (in precedence order: root namespace first, each
 * namespace oldest first). Exposed for callers that index policies themselves; most use authorizationPoliciesFor.
 */
export function selectAuthorizationPolicies(
  candidates: readonly PolicyObject[],
  rootNamespace: string,
  view: AuthorizationView,
  note: (m: string) => void = () => {},
): ApplicablePolicies {
  const namespace = view.namespace();
  const out: ApplicablePolicies = { custom: [], deny: [], allow: [], audit: [] };
  for (const p of candidates) {
    const ns = p.metadata.namespace;
    if (ns !== rootNamespace && ns !== namespace) continue;
    if (!attaches(p, view, namespace, note)) continue;
    const a = toApplicable(p, note);
    switch (a.action) {
      case 'CUSTOM':
        out.custom.push(a);
        break;
      case 'DENY':
        out.deny.push(a);
        break;
      case 'AUDIT':
        out.audit.push(a);
        break;
      default:
        out.allow.push(a);
    }
  }
  return out;
}

/** The AuthorizationPolicies that apply to the proxy's workload (sidecar or gateway pod). */
export function authorizationPoliciesFor(push: PushContext, view: AuthorizationView, note: (m: string) => void = () => {}): ApplicablePolicies {
  const root = push.mesh.rootNamespace;
  const namespace = view.namespace();
  const candidates = root === namespace ? policiesIn(push.config, root) : [...policiesIn(push.config, root), ...policiesIn(push.config, namespace)];
  if (candidates.length === 0) return NO_POLICIES;
  return selectAuthorizationPolicies(candidates, root, view, note);
}
