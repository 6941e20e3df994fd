/**
 * EnvoyFilter `patch.value` (proto3 JSON, written by users) → the builder JSON shape of the Envoy message the patch's
 * applyTo implies (the shape protobufjs `Type.fromObject` takes, see src/proto/encode.ts): proto field names, enum
 * names as strings, wrappers as `{value}`, Duration/Timestamp as `{seconds, nanos}`, Struct as `{fields}`, a nested
 * Any as `{'@type': url, ...fields}`.
 *
 * Parsing follows the proto3 JSON mapping (https://protobuf.dev/programming-guides/json/) as Go's protojson does it,
 * which is what istiod uses (pkg/config/xds BuildXDSObjectFromStruct): a field may be written with its proto name
 * (`connect_timeout`) or its JSON name (`connectTimeout`); durations are strings (`"1s"`); wrappers are plain values;
 * 64-bit integers may be strings; two members of one oneof is an error. Unlike istiod at run time (which drops unknown
 * fields and only warns in validation), an unknown field is an error here: the patch is skipped with a note naming
 * the field, rather than half-applied.
 *
 * Hand-written over the proto root's reflection rather than `proto3-json-serializer`'s fromProto3JSON, because that
 * library looks fields up by exact (here snake_case) name only and drops unknown ones silently — both would have to be
 * handled by walking the types anyway, at which point the conversion itself is the small part.
 *
 * `typed_config` written as `udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct` is kept as a TypedStruct (Envoy
 * unpacks it), but its inner `type_url` must name a known message and its `value` must parse as that message.
 */
import protobuf from 'protobufjs';
import type { EnvoyFilterApplyTo } from '../../config/kinds/envoy-filter.ts';
import { ensureType, messageType } from '../../proto/root.ts';
import { jsonToStruct } from '../../proto/struct.ts';

export type Json = Record<string, unknown>;

/** The Envoy message a patch value is, per applyTo (istiod BuildXDSObjectFromStruct). */
export const APPLY_TO_MESSAGE: Readonly<Partial<Record<EnvoyFilterApplyTo, string>>> = {
  LISTENER: 'envoy.config.listener.v3.Listener',
  LISTENER_FILTER: 'envoy.config.listener.v3.ListenerFilter',
  FILTER_CHAIN: 'envoy.config.listener.v3.FilterChain',
  NETWORK_FILTER: 'envoy.config.listener.v3.Filter',
  HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  ROUTE_CONFIGURATION: 'envoy.config.route.v3.RouteConfiguration',
  VIRTUAL_HOST: 'envoy.config.route.v3.VirtualHost',
  HTTP_ROUTE: 'envoy.config.route.v3.Route',
  CLUSTER: 'envoy.config.cluster.v3.Cluster',
};

export const TYPED_STRUCT_TYPES: ReadonlySet<string> = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);

export type Converted = { ok: true; value: Json } | { ok: false; error: string };

class ValueError extends Error {}

const fail = (path: string, message: string): never => {
  throw new ValueError(`${path}: ${message}`);
};

/** Converts a patch value for an applyTo. The result is verified to encode. */
export function convertPatchValue(applyTo: EnvoyFilterApplyTo, value: unknown, path = 'patch.value'): Converted {
  const name = APPLY_TO_MESSAGE[applyTo];
  if (!name) return { ok: false, error: `applyTo ${applyTo} has no patch value type` };
  return convertMessage(name, value, path);
}

/** Proto3 JSON → builder JSON for a named message type. */
export function convertMessage(messageName: string, json: unknown, path = 'value'): Converted {
  try {
    const type = messageType(messageName);
    const value = message(type, json, path);
    // The result goes to Type.fromObject at encode time; make sure it gets there now, not mid-push.
    type.encode(type.fromObject(value)).finish();
    return { ok: true, value };
  } catch (e) {
    return { ok: false, error: e instanceof ValueError ? e.message : `${path}: ${(e as Error).message}` };
  }
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 40 ? `${s.slice(0, 40)}…` : s}`;
}

const typeName = (t: protobuf.Type | protobuf.Enum) => t.fullName.replace(/^\./, '');

const lowerCamel = (s: string) => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** Per type: every accepted spelling of a field name → the field. */
const fieldIndex = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldsOf(type: protobuf.Type): Map<string, protobuf.Field> {
  let idx = fieldIndex.get(type);
  if (!idx) {
    idx = new Map();
    for (const f of type.fieldsArray) {
      idx.set(f.name, f);
      idx.set(lowerCamel(f.name), f);
      const jsonName = (f.options as Record<string, unknown> | undefined)?.json_name;
      if (typeof jsonName === 'string') idx.set(jsonName, f);
    }
    fieldIndex.set(type, idx);
  }
  return idx;
}

/** Fields with explicit presence keep a zero value; implicit-presence zeros are dropped (proto3 canonical form). */
const hasPresence = (f: protobuf.Field) => f.resolvedType instanceof protobuf.Type || (f.partOf !== null && f.partOf !== undefined);

function isZero(f: protobuf.Field, v: unknown): boolean {
  if (f.resolvedType instanceof protobuf.Enum && typeof v === 'string') return f.resolvedType.values[v] === 0;
  return v === 0 || v === '' || v === false;
}

function message(type: protobuf.Type, json: unknown, path: string): Json {
  const special = WELL_KNOWN[type.fullName];
  if (special) return special(json, path, type);
  if (!isObject(json)) return fail(path, `expected an object for ${typeName(type)}, got ${describe(json)}`);
  if (type.fullName === '.google.protobuf.Any') return anyMessage(json, path);
  const out: Json = {};
  const oneofs = new Map<string, string>();
  for (const [key, raw] of Object.entries(json)) {
    const at = `${path}.${key}`;
    const field = fieldsOf(type).get(key);
    if (!field) return fail(at, `unknown field "${key}" in ${typeName(type)}`);
    if (raw === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue; // null = unset
    if (field.name in out) return fail(at, `field ${field.name} is given twice`);
    const oneof = field.partOf;
    if (oneof && oneof.fieldsArray.length > 1) {
      const other = oneofs.get(oneof.name);
      if (other) return fail(at, `${other} and ${field.name} are both set, but they are one of ${oneof.name}`);
      oneofs.set(oneof.name, field.name);
    }
    if (field.map) {
      out[field.name] = mapValue(field as unknown as protobuf.MapField, raw, at);
    } else if (field.repeated) {
      if (!Array.isArray(raw)) return fail(at, `expected a list, got ${describe(raw)}`);
      if (raw.length > 0) out[field.name] = raw.map((e, i) => single(field, e, `${at}[${i}]`));
    } else {
      const v = single(field, raw, at);
      if (hasPresence(field) || !isZero(field, v)) out[field.name] = v;
    }
  }
  return out;
}

function single(field: protobuf.FieldBase, raw: unknown, path: string): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return message(rt, raw, path);
  if (rt instanceof protobuf.Enum) return enumValue(rt, raw, path);
  return scalar(field.type, raw, path);
}

function mapValue(field: protobuf.MapField, raw: unknown, path: string): Json {
  if (!isObject(raw)) return fail(path, `expected an object (a map), got ${describe(raw)}`);
  const out: Json = {};
  for (const [k, v] of Object.entries(raw)) {
    scalar(field.keyType, field.keyType === 'string' ? k : /^(true|false)$/.test(k) ? k === 'true' : k, `${path}[${k}]`);
    out[k] = single(field, v, `${path}.${k}`);
  }
  return out;
}

function enumValue(e: protobuf.Enum, raw: unknown, path: string): string | number {
  if (e.fullName === '.google.protobuf.NullValue' && raw === null) return 'NULL_VALUE';
  if (typeof raw === 'string') {
    if (raw in e.values) return raw;
    const names = Object.keys(e.values);
    return fail(path, `unknown value "${raw}" for enum ${typeName(e)}${names.length <= 12 ? ` (one of ${names.join(', ')})` : ''}`);
  }
  if (typeof raw === 'number' && Number.isInteger(raw)) return e.valuesById[raw] ?? raw; // proto3 enums are open
  return fail(path, `expected an enum name of ${typeName(e)}, got ${describe(raw)}`);
}

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
};
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function scalar(type: string, raw: unknown, path: string): unknown {
  switch (type) {
    case 'string':
      return typeof raw === 'string' ? raw : fail(path, `expected a string, got ${describe(raw)}`);
    case 'bool':
      return typeof raw === 'boolean' ? raw : fail(path, `expected true or false, got ${describe(raw)}`);
    case 'bytes':
      if (typeof raw === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(raw)) return raw; // base64, as fromObject takes it
      return fail(path, `expected base64 bytes, got ${describe(raw)}`);
    case 'double':
    case 'float': {
      if (typeof raw === 'number') return raw;
      if (typeof raw === 'string' && /^(NaN|-?Infinity)$/.test(raw)) return raw;
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      return Number.isFinite(n) ? n : fail(path, `expected a number, got ${describe(raw)}`);
    }
  }
  const range = INT_RANGES[type];
  if (range || INT64.has(type)) {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n)) return fail(path, `expected an integer (${type}), got ${describe(raw)}`);
    const [min, max] = range ?? (type.startsWith('u') || type === 'fixed64' ? [0, Infinity] : [-Infinity, Infinity]);
    if (n < min || n > max) return fail(path, `${n} is out of range for ${type}`);
    // 64-bit values beyond 2^53 stay strings: fromObject parses them exactly.
    return INT64.has(type) && typeof raw === 'string' && !Number.isSafeInteger(n) ? raw : n;
  }
  return fail(path, `unsupported field type ${type}`);
}

const MAX_DURATION_SECONDS = 315_576_000_000;

function duration(json: unknown, path: string): Json {
  const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!m) return fail(path, `expected a duration like "1s" or "0.250s", got ${describe(json)}`);
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  if (seconds > MAX_DURATION_SECONDS) return fail(path, `duration ${String(json)} is out of range`);
  const nanos = Number((m[3] ?? '').padEnd(9, '0'));
  return { seconds: sign * seconds || 0, nanos: sign * nanos || 0 };
}

function timestamp(json: unknown, path: string): Json {
  const m = typeof json === 'string' ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(json) : null;
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms)) return fail(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
  return { seconds: Math.floor(ms / 1000), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function fieldMask(json: unknown, path: string): Json {
  if (typeof json !== 'string') return fail(path, `expected a field mask string, got ${describe(json)}`);
  return { paths: json === '' ? [] : json.split(',').map(snake) };
}

function wrapper(json: unknown, path: string, type: protobuf.Type): Json {
  const field = type.fields.value as protobuf.Field;
  if (isObject(json) || Array.isArray(json)) return fail(path, `expected a plain value for ${typeName(type)}, got ${describe(json)}`);
  return { value: scalar(field.type, json, path) };
}

/** Types with their own JSON form (proto3 JSON mapping table). */
const WELL_KNOWN: Record<string, (json: unknown, path: string, type: protobuf.Type) => Json> = {
  '.google.protobuf.Duration': duration,
  '.google.protobuf.Timestamp': timestamp,
  '.google.protobuf.FieldMask': fieldMask,
  '.google.protobuf.Struct': (json, path) => (isObject(json) ? jsonToStruct(json) : fail(path, `expected an object, got ${describe(json)}`)),
  '.google.protobuf.Value': (json) => jsonToStruct({ v: json }).fields.v as Json,
  '.google.protobuf.ListValue': (json, path) =>
    Array.isArray(json) ? (jsonToStruct({ v: json }).fields.v as Json).listValue as Json : fail(path, `expected a list, got ${describe(json)}`),
  ...Object.fromEntries(
    ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((w) => [`.google.protobuf.${w}Value`, wrapper]),
  ),
};

/** `{"@type": url, ...fields}` → the same, with the fields converted for the named type. */
function anyMessage(json: Json, path: string): Json {
  const url = json['@type'];
  if (typeof url !== 'string' || url === '') return fail(path, 'an Any needs "@type": "type.googleapis.com/<message>"');
  const name = url.slice(url.lastIndexOf('/') + 1);
  checkTypeName(name, `${path}.@type`);
  const inner = messageType(name);
  const { '@type': _, ...rest } = json;
  let body: Json;
  if (WELL_KNOWN[inner.fullName]) {
    // A well-known type inside an Any is written {"@type": …, "value": <its JSON form>}.
    if (Object.keys(rest).some((k) => k !== 'value')) return fail(path, `an Any of ${name} takes only "value"`);
    body = message(inner, rest.value, `${path}.value`);
  } else {
    body = message(inner, rest, path);
  }
  if (TYPED_STRUCT_TYPES.has(name)) checkTypedStruct(rest, path);
  return { '@type': url.includes('/') ? url : `type.googleapis.com/${url}`, ...body };
}

/**
 * The type must exist, and not be an Envoy v2 API type: the proto tree still ships some (envoy.config.filter.*.v2),
 * but Envoy rejects them (istiod drops such patches, having no v2 protos).
 */
function checkTypeName(name: string, path: string): void {
  if (/^envoy\..*\.v2(alpha\d*)?\./.test(name)) fail(path, `${name} is an Envoy v2 API type, which Envoy no longer accepts; use its v3 type`);
  if (!ensureType(name)) fail(path, `unknown message type ${name}`);
}

/** A TypedStruct's inner type must exist and its value must be that message, or Envoy NACKs the whole resource. */
function checkTypedStruct(raw: Json, path: string): void {
  const url = raw.type_url ?? raw.typeUrl;
  if (typeof url !== 'string' || url === '') fail(path, 'a TypedStruct needs type_url');
  const name = (url as string).slice((url as string).lastIndexOf('/') + 1);
  checkTypeName(name, `${path}.type_url`);
  message(messageType(name), raw.value ?? {}, `${path}.value`);
}
