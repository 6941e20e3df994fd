/**
 * AuthorizationPolicy (security.istio.io): allow/deny/audit/custom access control on workloads. Fields follow istio/api
 * security/v1beta1/authorization.proto; rules follow istio/istio ValidateAuthorizationPolicy and pkg/config/security
 * (ValidateAttribute, CheckValidPathTemplate, ValidateIPs, ValidatePorts).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkPolicySelection, collector, ipSubnetError, type Report } from './checks.ts';
import { Enum, MatchLabelsSelector, Obj, Opt, PolicyTargetReference } from './common.ts';
import { defineKind } from './kind.ts';

const Strings = () => Opt(Type.Array(Type.String()));

export const SourceSchema = Obj({
  principals: Strings(),
  notPrincipals: Strings(),
  requestPrincipals: Strings(),
  notRequestPrincipals: Strings(),
  namespaces: Strings(),
  notNamespaces: Strings(),
  serviceAccounts: Opt(Type.Array(Type.String({ maxLength: 320 }), { maxItems: 16 })),
  notServiceAccounts: Opt(Type.Array(Type.String({ maxLength: 320 }), { maxItems: 16 })),
  ipBlocks: Strings(),
  notIpBlocks: Strings(),
  remoteIpBlocks: Strings(),
  notRemoteIpBlocks: Strings(),
});
export type Source = Static<typeof SourceSchema>;

export const OperationSchema = Obj({
  hosts: Strings(),
  notHosts: Strings(),
  ports: Strings(),
  notPorts: Strings(),
  methods: Strings(),
  notMethods: Strings(),
  paths: Strings(),
  notPaths: Strings(),
});
export type Operation = Static<typeof OperationSchema>;

export const ConditionSchema = Obj({ key: Type.String(), values: Strings(), notValues: Strings() });
export type Condition = Static<typeof ConditionSchema>;

export const RuleSchema = Obj({
  from: Opt(Type.Array(Obj({ source: Opt(SourceSchema) }))),
  to: Opt(Type.Array(Obj({ operation: Opt(OperationSchema) }))),
  when: Opt(Type.Array(ConditionSchema)),
});
export type Rule = Static<typeof RuleSchema>;

export const AUTHZ_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;
export type AuthorizationAction = (typeof AUTHZ_ACTIONS)[number];

export const AuthorizationPolicySpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  targetRef: Opt(PolicyTargetReference()),
  targetRefs: Opt(Type.Array(PolicyTargetReference(), { maxItems: 16 })),
  rules: Opt(Type.Array(RuleSchema, { maxItems: 512 })),
  action: Opt(Enum(AUTHZ_ACTIONS)),
  provider: Opt(Obj({ name: Opt(Type.String()) })),
});
export type AuthorizationPolicySpec = Static<typeof AuthorizationPolicySpecSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Semantic checks

function checkIPs(report: Report, p: string, ips: readonly string[] | undefined): void {
  ips?.forEach((ip, i) => {
    const err = ipSubnetError(ip);
    if (err) report(`${p}[${i}]`, err);
  });
}

function checkPorts(report: Report, p: string, ports: readonly string[] | undefined): void {
  ports?.forEach((port, i) => {
    if (!/^\d+$/.test(port) || Number(port) > 65535) report(`${p}[${i}]`, `bad port "${port}": must be a number in 0..65535`);
  });
}

function checkNoEmpty(report: Report, p: string, values: readonly string[] | undefined): void {
  const i = values?.indexOf('') ?? -1;
  if (i >= 0) report(`${p}[${i}]`, 'empty value not allowed');
}

/** CheckValidPathTemplate: `{*}` (one segment) and `{**}` (the rest, last only) are the only templates. */
function pathTemplateError(path: string): string | undefined {
  const templated = path.includes('{*}') || path.includes('{**}');
  let sawAny = false;
  for (const glob of path.replace(/^\/+|\/+$/g, '').split('/')) {
    if ((glob === '{*}' || glob === '{**}') && sawAny) return `invalid path "${path}": {**} must be the last operator`;
    if (glob === '{*}') continue;
    if (glob === '{**}') {
      sawAny = true;
      continue;
    }
    if (/[{}]/.test(glob)) return `invalid path "${path}": '{' or '}' outside a {*} or {**} template`;
    if (templated && !/^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$/.test(glob)) return `invalid path "${path}": segment "${glob}" is not a valid literal`;
  }
  return undefined;
}

/** security.ValidateAttribute: the `when` keys Istio knows, and value checks for IP and port keys. */
function conditionKeyError(key: string, values: readonly string[]): string | undefined {
  const mapKey = (prefix: string) => {
    const open = key.indexOf('[');
    return key.startsWith(prefix) && key.endsWith(']') && open > 0 && open < key.length - 2 ? undefined : `bad key "${key}": should have format a[b]`;
  };
  if (key.startsWith('request.headers')) return mapKey('request.headers');
  if (key.startsWith('request.experimental.inline.headers')) return mapKey('request.experimental.inline.headers');
  if (key.startsWith('request.auth.claims')) return mapKey('request.auth.claims');
  if (key.startsWith('experimental.envoy.filters.')) return mapKey('experimental.envoy.filters.');
  if (['source.ip', 'remote.ip', 'destination.ip'].includes(key)) return values.map(ipSubnetError).find(Boolean);
  if (key === 'destination.port') return values.some((v) => !/^\d+$/.test(v) || Number(v) > 65535) ? 'bad port value: must be a number in 0..65535' : undefined;
  if (key === 'source.serviceAccount') {
    const bad = values.find((v) => v.includes('*') || v.split('/').length > 2 || v.split('/').some((s) => s === '') || v.length > 320);
    return bad !== undefined ? `expected 'serviceAccount' or 'namespace/serviceAccount', got "${bad}"` : undefined;
  }
  const plain = ['source.namespace', 'source.principal', 'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'connection.sni'];
  if (plain.includes(key)) return undefined;
  if (key === 'destination.namespace') return 'attribute destination.namespace is replaced by metadata.namespace';
  if (key.startsWith('destination.labels')) return 'attribute destination.labels is replaced by the workload selector';
  return `unknown attribute "${key}"`;
}

const SOURCE_FIELDS = [
  'principals', 'requestPrincipals', 'namespaces', 'ipBlocks', 'remoteIpBlocks', 'serviceAccounts',
  'notPrincipals', 'notRequestPrincipals', 'notNamespaces', 'notIpBlocks', 'notRemoteIpBlocks', 'notServiceAccounts',
] as const;
const OPERATION_FIELDS = ['ports', 'methods', 'paths', 'hosts', 'notPorts', 'notMethods', 'notPaths', 'notHosts'] as const;

function check(spec: AuthorizationPolicySpec): FieldError[] {
  const { errors, report } = collector();
  checkPolicySelection(report, spec);
  const action = spec.action ?? 'ALLOW';
  if (action === 'CUSTOM') {
    if (!spec.rules?.length) report('spec.rules', 'CUSTOM action without rules never triggers; add an empty rule {} to apply it to every request');
    else if (!spec.provider?.name) report('spec.provider.name', 'CUSTOM action needs provider.name');
  } else if (spec.provider) {
    report('spec.provider', `provider can only be used with action CUSTOM, got ${action}`);
  }
  if (action === 'DENY' && !spec.rules?.length) {
    report('spec.rules', 'DENY action without rules never triggers; add an empty rule {} to deny every request');
  }

  spec.rules?.forEach((rule, i) => {
    const rp = `spec.rules[${i}]`;
    if (rule.from && rule.from.length === 0) report(`${rp}.from`, 'from must not be empty');
    rule.from?.forEach((f, j) => {
      const p = `${rp}.from[${j}].source`;
      const src = f.source;
      if (!src) return report(p, 'from.source is required');
      if (!SOURCE_FIELDS.some((k) => src[k]?.length)) report(p, 'from.source must not be empty');
      for (const k of SOURCE_FIELDS) checkNoEmpty(report, `${p}.${k}`, src[k]);
      for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) checkIPs(report, `${p}.${k}`, src[k]);
      // CRD rule: service accounts identify the caller on their own.
      if ((src.serviceAccounts || src.notServiceAccounts) && (src.principals || src.notPrincipals || src.namespaces || src.notNamespaces)) {
        report(p, 'serviceAccounts cannot be combined with principals or namespaces');
      }
      if (action === 'CUSTOM') {
        for (const k of ['namespaces', 'notNamespaces', 'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals'] as const) {
          if (src[k]?.length) report(`${p}.${k}`, `${k} is not supported with action CUSTOM`);
        }
      }
    });
    if (rule.to && rule.to.length === 0) report(`${rp}.to`, 'to must not be empty');
    rule.to?.forEach((t, j) => {
      const p = `${rp}.to[${j}].operation`;
      const op = t.operation;
      if (!op) return report(p, 'to.operation is required');
      if (!OPERATION_FIELDS.some((k) => op[k]?.length)) report(p, 'to.operation must not be empty');
      for (const k of OPERATION_FIELDS) checkNoEmpty(report, `${p}.${k}`, op[k]);
      checkPorts(report, `${p}.ports`, op.ports);
      checkPorts(report, `${p}.notPorts`, op.notPorts);
      for (const k of ['paths', 'notPaths'] as const) {
        op[k]?.forEach((path, n) => {
          const err = pathTemplateError(path);
          if (err) report(`${p}.${k}[${n}]`, err);
        });
      }
    });
    rule.when?.forEach((c, j) => {
      const p = `${rp}.when[${j}]`;
      if (!c.key) return report(`${p}.key`, 'key must not be empty');
      if (!c.values?.length && !c.notValues?.length) return report(p, `at least one of values, notValues must be set for key ${c.key}`);
      checkNoEmpty(report, `${p}.values`, c.values);
      checkNoEmpty(report, `${p}.notValues`, c.notValues);
      const err = conditionKeyError(c.key, [...(c.values ?? []), ...(c.notValues ?? [])]);
      if (err) report(`${p}.key`, err);
      if (action === 'CUSTOM' && (c.key === 'source.namespace' || c.key === 'source.principal' || c.key.startsWith('request.auth.'))) {
        report(`${p}.key`, `${c.key} is not supported with action CUSTOM`);
      }
    });
  });
  return errors;
}

export const authorizationPolicy = defineKind<AuthorizationPolicySpec>({
  group: 'security.istio.io',
  kind: 'AuthorizationPolicy',
  plural: 'authorizationpolicies',
  versions: ['v1', 'v1beta1'],
  namespaced: true,
  spec: AuthorizationPolicySpecSchema,
  check,
});
