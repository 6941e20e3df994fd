/**
 * The validating webhook's decision (`POST /validate` on 15017): an AdmissionReview (admission.k8s.io/v1) for a mesh
 * CRD → allowed, or denied with the same messages `mizzen validate` prints (minus its `file:line: ` prefix), one per
 * line. The object goes through validateDocument() with the kinds file mode loads (allKinds), so the schema, the
 * semantic checks and the wording are the same everywhere (reliability-security.md §3.1 item 2).
 *
 * As istiod's pkg/webhooks/validation/server:
 * - only CREATE and UPDATE are validated; anything else (DELETE, CONNECT) is allowed and counted as
 *   `galley_validation_failed{reason="unsupported_operation"}`;
 * - objects outside networking|security|telemetry|extensions.istio.io are allowed untouched;
 * - an unknown kind in those groups is denied (`unknown_type`); the version does not matter for the lookup (every
 *   served version has the same schema), so a version this build does not list is validated as the kind and warned
 *   about instead of breaking a newer CRD;
 * - the annotation `istio.io/alwaysReject` denies (the readiness dry-run that flips failurePolicy to Fail);
 * - top-level keys other than apiVersion, kind, metadata, spec, status are denied (istiod's checkFields);
 * - what Istio only warns about comes back in `response.warnings`.
 * Not an AdmissionReview at all (no request, no uid): `{ ok: false }`, which the server answers with HTTP 400.
 */
import { Counter, type Registry } from 'prom-client';
import { allKinds } from '../config/kinds/all.ts';
import type { KindDefinition } from '../config/kinds/kind.ts';
import type { KindRegistry } from '../config/kinds/registry.ts';
import { describeObject, formatConfigError } from '../config/object.ts';
import { validateDocument } from '../config/validate.ts';

/** The API groups istiod's validating webhook handles. */
export const VALIDATED_GROUPS: ReadonlySet<string> = new Set(['networking.istio.io', 'security.istio.io', 'telemetry.istio.io', 'extensions.istio.io']);
export const ALWAYS_REJECT_ANNOTATION = 'istio.io/alwaysReject';
const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

/** istiod's `reason` label values (pkg/webhooks/validation/server/monitoring.go). */
export type ValidationFailureReason = 'unsupported_operation' | 'yaml_decode_error' | 'unknown_type' | 'crd_conversion_error' | 'invalid_resource';

export interface ValidationResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  warnings?: string[];
}

export interface ValidationReviewResponse {
  apiVersion: string;
  kind: 'AdmissionReview';
  response: ValidationResponse;
}

/** Labels of istiod's validation metrics: the request's resource (group, version, plural). */
export interface ResourceLabels {
  group: string;
  version: string;
  resource: string;
}

export type ValidationOutcome =
  | { ok: true; review: ValidationReviewResponse; result: 'passed' | 'skipped'; labels: ResourceLabels }
  | { ok: true; review: ValidationReviewResponse; result: 'failed'; reason: ValidationFailureReason; labels: ResourceLabels }
  | { ok: false; error: string };

export interface ValidateContext {
  /** Default: every kind file mode reads. */
  kinds?: KindRegistry;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** Things Istio accepts with a warning (it refuses none of them), as `response.warnings`. */
function warningsFor(def: KindDefinition<any>, spec: unknown): string[] {
  const out: string[] = [];
  if (def.group === 'networking.istio.io' && def.kind === 'VirtualService' && isRecord(spec) && Array.isArray(spec.http)) {
    spec.http.forEach((route: unknown, i) => {
      if (!isRecord(route) || !isRecord(route.fault)) return;
      const { abort, delay } = route.fault;
      if (isRecord(abort) && abort.httpStatus === undefined && abort.grpcStatus === undefined && abort.http2Error === undefined) {
        out.push(`spec.http[${i}].fault.abort: no error type (httpStatus, grpcStatus) is set; the abort is ignored`);
      }
      if (isRecord(delay) && delay.fixedDelay === undefined && delay.exponentialDelay === undefined) {
        out.push(`spec.http[${i}].fault.delay: no delay type (fixedDelay) is set; the delay is ignored`);
      }
    });
  }
  return out;
}

/** One AdmissionReview → the validating webhook's answer. Pure; never throws. */
export function reviewValidation(body: unknown, ctx: ValidateContext = {}): ValidationOutcome {
  if (!isRecord(body) || !isRecord(body.request)) return { ok: false, error: 'not an AdmissionReview: no request' };
  const request = body.request;
  if (typeof request.uid !== 'string' || request.uid === '') return { ok: false, error: 'not an AdmissionReview: request.uid is missing' };
  const uid = request.uid;
  const reviewVersion = typeof body.apiVersion === 'string' && body.apiVersion.startsWith('admission.k8s.io/') ? body.apiVersion : 'admission.k8s.io/v1';
  const reqKind = isRecord(request.kind) ? request.kind : {};
  const reqResource = isRecord(request.resource) ? request.resource : {};
  const labels: ResourceLabels = { group: str(reqResource.group) || str(reqKind.group), version: str(reqResource.version) || str(reqKind.version), resource: str(reqResource.resource) };
  const answer = (response: Omit<ValidationResponse, 'uid'>): ValidationReviewResponse => ({ apiVersion: reviewVersion, kind: 'AdmissionReview', response: { uid, ...response } });
  const allow = (result: 'passed' | 'skipped', warnings: string[] = []): ValidationOutcome => ({
    ok: true,
    review: answer({ allowed: true, ...(warnings.length > 0 ? { warnings } : {}) }),
    result,
    labels,
  });
  const deny = (reason: ValidationFailureReason, message: string, warnings: string[] = []): ValidationOutcome => ({
    ok: true,
    review: answer({ allowed: false, status: { code: 400, message }, ...(warnings.length > 0 ? { warnings } : {}) }),
    result: 'failed',
    reason,
    labels,
  });

  try {
    const operation = str(request.operation);
    const object = request.object;
    // The object's own apiVersion/kind, as istiod decodes it; the request's kind when the object lacks them.
    const objApiVersion = isRecord(object) && typeof object.apiVersion === 'string' ? object.apiVersion : '';
    const fromRequest = str(reqKind.group) ? `${str(reqKind.group)}/${str(reqKind.version)}` : str(reqKind.version);
    const apiVersion = objApiVersion || fromRequest;
    const kind = (isRecord(object) && typeof object.kind === 'string' && object.kind) || str(reqKind.kind);
    const { group, version } = splitApiVersion(apiVersion);
    if (!VALIDATED_GROUPS.has(group)) return allow('skipped');
    // Allowed, but counted as istiod counts it: failed, reason unsupported_operation.
    if (operation !== 'CREATE' && operation !== 'UPDATE') return { ok: true, review: answer({ allowed: true }), result: 'failed', reason: 'unsupported_operation', labels };
    if (!isRecord(object)) return deny('yaml_decode_error', `${describeObject(kind || 'object', str(request.namespace), str(request.name))}: no object in the request`);

    const kinds = ctx.kinds ?? allKinds;
    const def = kinds.all().find((d) => d.group === group && d.kind === kind);
    const namespace = str(request.namespace) || 'default';
    if (!def) {
      const found = kinds.find(apiVersion, kind);
      const message = found && 'error' in found ? found.error : `unrecognized type ${apiVersion}, Kind=${kind}`;
      const meta = isRecord(object.metadata) ? object.metadata : {};
      return deny('unknown_type', `${describeObject(kind || 'object', str(meta.namespace) || namespace, str(meta.name) || undefined)}: ${kind ? 'apiVersion' : 'kind'}: ${message}`);
    }
    const warnings: string[] = [];
    // Every version has the same schema: a version this build does not list (a newer CRD) is validated as the kind.
    const servedVersion = def.versions.includes(version) ? version : def.versions[0]!;
    if (servedVersion !== version) warnings.push(`${kind} ${apiVersion} is not known to this control plane; validated as ${group}/${servedVersion}`);
    const doc = { ...object, apiVersion: `${group}/${servedVersion}`, kind };
    const result = validateDocument(doc, kinds, { defaultNamespace: namespace, now: () => new Date(0).toISOString() });
    if (!result) return deny('unknown_type', `unrecognized type ${apiVersion}, Kind=${kind}`, warnings);
    if (!result.ok) return deny('invalid_resource', formatConfigError(result.errors).join('\n'), warnings);

    const obj = result.value;
    const who = describeObject(kind, obj.metadata.namespace || undefined, obj.metadata.name);
    if (Object.hasOwn(obj.metadata.annotations, ALWAYS_REJECT_ANNOTATION)) {
      return deny('invalid_resource', `${who}: metadata.annotations: ${JSON.stringify(ALWAYS_REJECT_ANNOTATION)} annotation found, rejecting`, warnings);
    }
    const extra = Object.keys(object).filter((k) => !TOP_LEVEL_FIELDS.has(k));
    if (extra.length > 0) return deny('invalid_resource', extra.map((k) => `${who}: ${k}: unknown field`).join('\n'), warnings);
    warnings.push(...warningsFor(def, obj.spec).map((w) => `${who}: ${w}`));
    return allow('passed', warnings);
  } catch (err) {
    // E.g. an object nested deeply enough to exhaust the stack: refused, never a crash of the webhook.
    return deny('crd_conversion_error', `error decoding configuration: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface ValidationMetrics {
  passed: Counter<'group' | 'version' | 'resource'>;
  failed: Counter<'group' | 'version' | 'resource' | 'reason'>;
  httpError: Counter<'status'>;
}

/** istiod's validation metrics (pkg/webhooks/validation/server/monitoring.go), registered once per registry. */
export function validationMetrics(registry: Registry): ValidationMetrics {
  const get = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
  return {
    passed: get('galley_validation_passed', 'Resource is valid.', ['group', 'version', 'resource']),
    failed: get('galley_validation_failed', 'Resource validation failed.', ['group', 'version', 'resource', 'reason']),
    httpError: get('galley_validation_http_error', 'Resource validation http serve errors.', ['status']),
  };
}

/** Counts one outcome the way istiod does (a DELETE is allowed but counted as failed, reason unsupported_operation). */
export function recordValidation(metrics: ValidationMetrics, outcome: ValidationOutcome): void {
  if (!outcome.ok) {
    metrics.httpError.inc({ status: '400' });
    return;
  }
  if (outcome.result === 'passed') metrics.passed.inc({ ...outcome.labels });
  else if (outcome.result === 'failed') metrics.failed.inc({ ...outcome.labels, reason: outcome.reason });
}
