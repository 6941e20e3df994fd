/**
 * Raw document → validated ConfigObject, or a refusal naming the object and every bad field.
 * Schema errors come from ajv running the kind's TypeBox schema; semantic errors from the kind's `check`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import { fail, formatPath, ok, type FieldError, type Result } from '../shared/errors.ts';
import { parseDurationMs } from './kinds/common.ts';
import type { KindDefinition } from './kinds/kind.ts';
import type { ConfigError, ConfigObject, SourceLocation } from './object.ts';

type Re2Module = { RE2: new (pattern: string, flags: string) => { wrapper?: { delete?: () => void } } };
let re2: Re2Module | undefined;
const re2Verdicts = new Map<string, boolean>();
const RE2_VERDICTS_MAX = 10_000;

/**
 * Is this a valid RE2 pattern (what Envoy and gRPC evaluate)? re2-wasm is loaded on first use (its wasm memory is
 * ~17 MB; configs without regexes never pay it), and its RE2 never frees the compiled pattern it wraps, so we free it
 * and remember verdicts per distinct pattern: re-validating the same config allocates nothing.
 */
export function isValidRe2(pattern: string): boolean {
  const known = re2Verdicts.get(pattern);
  if (known !== undefined) return known;
  re2 ??= createRequire(import.meta.url)('re2-wasm') as Re2Module;
  let valid: boolean;
  try {
    new re2.RE2(pattern, 'u').wrapper?.delete?.();
    valid = true;
  } catch {
    valid = false; // the wrapper of a refused pattern is unreachable here: the memo bounds that leak to distinct patterns
  }
  if (re2Verdicts.size >= RE2_VERDICTS_MAX) re2Verdicts.clear();
  re2Verdicts.set(pattern, valid);
  return valid;
}

const ajv = new Ajv({ allErrors: true, verbose: true, strict: false });
ajv.addFormat('duration', { type: 'string', validate: (s: string) => parseDurationMs(s) !== undefined });
ajv.addFormat('re2', { type: 'string', validate: isValidRe2 });

const compiled = new WeakMap<KindDefinition<any>, ValidateFunction>();
function specValidator(def: KindDefinition<any>): ValidateFunction {
  let fn = compiled.get(def);
  if (!fn) {
    fn = ajv.compile(def.spec);
    compiled.set(def, fn);
  }
  return fn;
}

/** Splits ajv's JSON pointer (`/http/0/timeout`) into path segments. */
function pointerSegments(pointer: string): Array<string | number> {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** One ajv error → one message a user can act on. */
function toFieldError(e: ErrorObject, root: Array<string | number>): FieldError | undefined {
  const at = [...root, ...pointerSegments(e.instancePath)];
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: formatPath([...at, String(p.additionalProperty)]), message: 'unknown field' };
    case 'required':
      return { path: formatPath([...at, String(p.missingProperty)]), message: 'required field is missing' };
    case 'format':
      if (p.format === 'duration') return { path: formatPath(at), message: `invalid duration ${describeValue(e.data)}` };
      if (p.format === 're2') return { path: formatPath(at), message: `invalid RE2 regular expression ${describeValue(e.data)}` };
      return { path: formatPath(at), message: `invalid ${String(p.format)} ${describeValue(e.data)}` };
    case 'enum':
      return {
        path: formatPath(at),
        message: `invalid value ${describeValue(e.data)}; must be one of ${(p.allowedValues as unknown[]).join(', ')}`,
      };
    case 'type':
      return { path: formatPath(at), message: `must be ${String(p.type)}, got ${describeValue(e.data)}` };
    case 'maxProperties':
      return { path: formatPath(at), message: `set at most ${String(p.limit)} of these fields` };
    case 'anyOf':
    case 'oneOf':
      return undefined; // the branch errors say more
    default:
      return { path: formatPath(at), message: `${e.message ?? 'invalid'} (got ${describeValue(e.data)})` };
  }
}

function schemaErrors(fn: ValidateFunction, root: Array<string | number>): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of fn.errors ?? []) {
    const fe = toFieldError(e, root);
    if (!fe) continue;
    const k = `${fe.path}\0${fe.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(fe);
    }
  }
  return out;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface KindLookup {
  find(apiVersion: string, kind: string): { def: KindDefinition<any> } | { error: string } | undefined;
}

export interface ValidateOptions {
  /** Namespace for objects that name none (kubectl's default). */
  defaultNamespace: string;
  /** creationTimestamp for objects that carry none. */
  now: () => string;
  source?: SourceLocation;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function stringMap(v: unknown, path: string, errors: FieldError[]): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) {
    errors.push({ path, message: 'must be a map of strings' });
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') errors.push({ path: formatPath([...path.split('.'), k]), message: `must be string, got ${describeValue(val)}` });
    else out[k] = val;
  }
  return out;
}

/**
 * Validates one parsed document. `undefined` means "not a kind mizzen handles" (a Deployment, a Kiali CR): the caller
 * decides whether that is worth a note.
 */
export function validateDocument(
  raw: unknown,
  kinds: KindLookup,
  options: ValidateOptions,
): Result<ConfigObject, ConfigError> | undefined {
  const source = options.source;
  if (!isRecord(raw)) {
    return fail({ kind: 'document', source, errors: [{ path: '', message: 'not a YAML mapping' }] });
  }
  const apiVersion = raw.apiVersion;
  const kind = raw.kind;
  const meta = isRecord(raw.metadata) ? raw.metadata : undefined;
  const name = typeof meta?.name === 'string' ? meta.name : undefined;
  const namespace = typeof meta?.namespace === 'string' && meta.namespace ? meta.namespace : options.defaultNamespace;
  // An empty kind is as good as none: a refusal must still name what it refused.
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || kind === '') {
    return fail({ kind: typeof kind === 'string' && kind ? kind : 'document', name, namespace, source, errors: [{ path: typeof apiVersion !== 'string' ? 'apiVersion' : 'kind', message: 'required field is missing' }] });
  }
  const found = kinds.find(apiVersion, kind);
  if (!found) return undefined;
  if ('error' in found) return fail({ kind, name, namespace, source, errors: [{ path: 'apiVersion', message: found.error }] });
  const def = found.def;

  const errors: FieldError[] = [];
  if (!meta) errors.push({ path: 'metadata', message: 'required field is missing' });
  if (!name) errors.push({ path: 'metadata.name', message: 'required field is missing' });
  else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    errors.push({ path: 'metadata.name', message: `invalid name ${describeValue(name)}: must be a lowercase RFC 1123 subdomain` });
  }
  if (def.namespaced && meta && typeof meta.namespace === 'string' && meta.namespace && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(meta.namespace)) {
    errors.push({ path: 'metadata.namespace', message: `invalid namespace ${describeValue(meta.namespace)}` });
  }
  const labels = stringMap(meta?.labels, 'metadata.labels', errors);
  const annotations = stringMap(meta?.annotations, 'metadata.annotations', errors);

  // `spec: {}` and a missing spec mean the same for Istio kinds (an empty AuthorizationPolicy is "allow nothing").
  let spec: unknown;
  if (def.wholeObject) {
    const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = raw;
    spec = rest;
  } else {
    spec = raw.spec === undefined || raw.spec === null ? {} : raw.spec;
  }
  const validator = specValidator(def);
  if (!validator(spec)) errors.push(...schemaErrors(validator, def.wholeObject ? [] : ['spec']));
  else if (def.check) errors.push(...def.check(spec, { name: name ?? '', namespace }));

  if (errors.length > 0) return fail({ kind, name, namespace, source, errors });
  const created = typeof meta?.creationTimestamp === 'string' ? meta.creationTimestamp : options.now();
  return ok({
    apiVersion,
    kind,
    metadata: {
      name: name as string,
      namespace: def.namespaced ? namespace : '',
      labels,
      annotations,
      creationTimestamp: created,
      ...(typeof meta?.generation === 'number' ? { generation: meta.generation } : {}),
      ...(typeof meta?.resourceVersion === 'string' ? { resourceVersion: meta.resourceVersion } : {}),
    },
    spec,
    ...(source ? { source } : {}),
  });
}
