/**
 * A strict checker for builder JSON against Envoy's own protos. protobufjs `fromObject` silently drops unknown fields,
 * coerces wrong scalar kinds and encodes an unresolvable Any as empty, so a typo in a builder reaches Envoy as a
 * missing setting; and nothing else applies Envoy's protoc-gen-validate rules before Envoy NACKs. This walks the
 * JSON in the shape the builders produce (snake_case proto names, enum names, wrappers as `{value}`, Duration as
 * `{seconds, nanos}`, Struct as `{fields: {k: {stringValue}}}`, nested Any as `{'@type', …fields}`) against the
 * root's reflection types and returns every violation with its JSON path. TypedStruct payloads are walked in
 * proto3 JSON form, as Envoy converts them (translateOpaqueConfig). Rules themselves live in pgv-rules.ts.
 */
import protobuf from 'protobufjs';
import { checkMapCounts, checkRepeated, checkValue, DURATION_TEXT, fieldRules, nameOf, normalise, quote, wrapperKind, type Elem, type Mode, type Rules } from './pgv-rules.ts';
import { ensureType, messageType } from './root.ts';
import { structToJson } from './struct.ts';

interface FieldPlan extends Elem {
  name: string;
  jsonName: string;
  repeated: boolean;
  map: boolean;
  keyType?: string;
  /** A member of a real or synthetic (proto3 `optional`) oneof: PGV checks its rules only when it is set. */
  presence: boolean;
  rules?: Rules;
}

interface TypePlan {
  name: string;
  fields: FieldPlan[];
  lookup: Map<string, FieldPlan>;
  /** proto3 JSON (lowerCamelCase) names, for TypedStruct payloads. */
  byJson: Map<string, FieldPlan>;
  oneofs: Array<{ name: string; members: string[]; required: boolean }>;
  /** `(validate.disabled)` / `(validate.ignored)`: PGV generates no checks for this message or below it. */
  rulesOff: boolean;
}

const TYPED_STRUCTS = new Set(['xds.type.v3.TypedStruct', 'udpa.type.v1.TypedStruct']);
/** Kept per Type: options are parsed and rules merged once, so checking every resource in every test stays cheap. */
const plans = new Map<protobuf.Type, TypePlan>();

const resolved = new Map<string, protobuf.Type | null>();

/** A message type by full name, loading its package on first use (ensureType); memoised, misses included. */
function typeNamed(name: string): protobuf.Type | undefined {
  let t = resolved.get(name);
  if (t === undefined) {
    t = ensureType(name) ? messageType(name) : null;
    resolved.set(name, t);
  }
  return t ?? undefined;
}

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function planOf(t: protobuf.Type): TypePlan {
  let plan = plans.get(t);
  if (plan) return plan;
  const fields: FieldPlan[] = t.fieldsArray.map((f) => {
    f.resolve();
    const rt = f.resolvedType;
    const rules = fieldRules(f);
    return {
      name: f.name,
      jsonName: (f.options?.json_name as string | undefined) ?? camel(f.name),
      repeated: f.repeated,
      map: f.map,
      ...(f.map ? { keyType: (f as unknown as protobuf.MapField).keyType } : {}),
      ...(rt instanceof protobuf.Type ? { msgT: rt } : rt instanceof protobuf.Enum ? { enumT: rt } : { scalar: f.type }),
      presence: f.partOf !== null,
      ...(rules ? { rules } : {}),
    };
  });
  const opts = t.options ?? {};
  plan = {
    name: nameOf(t),
    fields,
    lookup: new Map(fields.map((f) => [f.name, f])),
    byJson: new Map(fields.map((f) => [f.jsonName, f])),
    oneofs: t.oneofsArray
      .filter((o) => !(o.fieldsArray.length === 1 && o.fieldsArray[0]!.options?.proto3_optional))
      .map((o) => ({ name: o.name, members: o.fieldsArray.map((f) => f.name), required: o.options?.['(validate.required)'] === true })),
    rulesOff: opts['(validate.disabled)'] === true || opts['(validate.ignored)'] === true,
  };
  plans.set(t, plan);
  return plan;
}

/** Every violation in `json` as a `path: problem` line; empty when Envoy would accept it. */
export function checkEnvoyResource(messageName: string, json: unknown): string[] {
  const out: string[] = [];
  const t = typeNamed(messageName);
  if (!t) return [`(root): unknown message type ${messageName}`];
  checkMessage(t, json, '', 'builder', true, false, out);
  return out;
}

const at = (path: string) => path || '(root)';
const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
const present = (v: unknown) => v !== undefined && v !== null;

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${quote(v)}`;
}

const INT_RANGES: Record<string, [number, number]> = {};
for (const t of ['int32', 'sint32', 'sfixed32']) INT_RANGES[t] = [-(2 ** 31), 2 ** 31 - 1];
for (const t of ['uint32', 'fixed32']) INT_RANGES[t] = [0, 2 ** 32 - 1];
for (const t of ['int64', 'sint64', 'sfixed64']) INT_RANGES[t] = [-(2 ** 63), 2 ** 63];
for (const t of ['uint64', 'fixed64']) INT_RANGES[t] = [0, 2 ** 64];
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/i;

/**
 * Whether a value has the JSON kind of a scalar type (or, in proto3 JSON mode, of a well-known type with a special
 * JSON form). protobufjs would coerce instead: `"abc"` to a uint32 becomes 0, 1.5 becomes 1, `"true"` a true bool.
 * 64-bit integers may be decimal strings (protobufjs parses them with Long); proto3 JSON also quotes 32-bit ones.
 */
function scalarProblem(type: string, v: unknown, mode: Mode): string | undefined {
  const expected = (what: string) => `expected ${what}, got ${kindOf(v)}`;
  switch (type) {
    case 'string':
      return typeof v === 'string' ? undefined : expected('a string');
    case 'bool':
      return typeof v === 'boolean' ? undefined : expected('a bool');
    case 'bytes':
      return v instanceof Uint8Array || (typeof v === 'string' && BASE64.test(v)) ? undefined : expected('bytes (base64 text or Uint8Array)');
    case 'double':
    case 'float':
      return typeof v === 'number' || (mode === 'json' && typeof v === 'string' && (/^(NaN|-?Infinity)$/.test(v) || !Number.isNaN(Number(v)))) ? undefined : expected(`a number (${type})`);
    case 'google.protobuf.Duration':
      return typeof v === 'string' && DURATION_TEXT.test(v) ? undefined : expected('a duration like "1.5s"');
    case 'google.protobuf.Timestamp':
      return typeof v === 'string' && RFC3339.test(v) && !Number.isNaN(Date.parse(v)) ? undefined : expected('an RFC 3339 timestamp');
    case 'google.protobuf.FieldMask':
      return typeof v === 'string' ? undefined : expected('a field mask string');
    case 'google.protobuf.Struct':
      return isObject(v) ? undefined : expected('an object');
    case 'google.protobuf.ListValue':
      return Array.isArray(v) ? undefined : expected('a list');
  }
  const wrapped = wrapperKind(type);
  if (wrapped) return scalarProblem(wrapped, v, mode);
  const range = INT_RANGES[type];
  if (!range) return undefined; // google.protobuf.Value: any JSON
  const n = typeof v === 'string' && (mode === 'json' || type.endsWith('64')) && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) return expected(`an integer (${type})`);
  if (n < range[0] || n > range[1]) return `${quote(v)} is out of range for ${type}`;
  return undefined;
}

function checkMessage(t: protobuf.Type, v: unknown, path: string, mode: Mode, rulesOn: boolean, allowType: boolean, out: string[]): void {
  const name = nameOf(t);
  if (name === 'google.protobuf.Any') return checkAny(v, path, mode, out);
  if (mode === 'json' && (name.startsWith('google.protobuf.') && name !== 'google.protobuf.Empty')) {
    const problem = scalarProblem(name, v, 'json');
    if (problem) out.push(`${at(path)}: ${problem}`);
    else if (name === 'google.protobuf.Duration' && String(v).startsWith('-')) out.push(`${at(path)}: Envoy expects a positive duration`);
    return;
  }
  if (!isObject(v)) {
    out.push(`${at(path)}: expected an object (${name}), got ${kindOf(v)}`);
    return;
  }
  const plan = planOf(t);
  const rules = rulesOn && !plan.rulesOff;
  checkKeys(plan, v, path, mode, allowType, out);
  for (const f of plan.fields) {
    const raw = fieldValue(v, f, mode);
    const p = join(path, f.name);
    const skip = f.rules?.message?.skip === true; // PGV: do not validate this embedded message
    if (present(raw)) checkField(f, raw, p, mode, rules && !skip, out);
    if (rules && f.rules) applyRules(f, raw, p, mode, out);
  }
  for (const o of plan.oneofs) {
    const set = o.members.filter((m) => present(fieldValue(v, plan.lookup.get(m)!, mode)));
    if (set.length > 1) out.push(`${at(path)}: more than one member of oneof ${o.name} set: ${set.join(', ')}`);
    if (rules && o.required && set.length === 0) out.push(`${at(path)}: one of ${o.members.join(', ')} must be set (validate.required oneof ${o.name})`);
  }
  if (name === 'google.protobuf.Duration') checkDurationRange(v, path, out);
  if (TYPED_STRUCTS.has(name)) checkTypedStruct(v, path, mode, out);
}

function fieldValue(v: Record<string, unknown>, f: FieldPlan, mode: Mode): unknown {
  const raw = v[f.name];
  return mode === 'json' && !present(raw) ? v[f.jsonName] : raw;
}

/** Unknown keys. Builders use the proto (snake_case) names only; proto3 JSON also takes lowerCamelCase ones. */
function checkKeys(plan: TypePlan, v: Record<string, unknown>, path: string, mode: Mode, allowType: boolean, out: string[]): void {
  const byJson = mode === 'json' ? plan.byJson : undefined;
  const unknown: string[] = [];
  for (const [k, val] of Object.entries(v)) {
    if (val === undefined || (k === '@type' && allowType)) continue;
    if (plan.lookup.has(k)) continue;
    const f = byJson?.get(k);
    if (f && present(v[f.name])) out.push(`${join(path, k)}: the same field as ${f.name}, set twice`);
    if (!f) unknown.push(k);
  }
  if (unknown.length === 0) return;
  if (plan.name === 'google.protobuf.Struct' && mode === 'builder') {
    // protobufjs reads only `fields`; a plain JSON object here is encoded as an empty Struct.
    out.push(`${at(path)}: google.protobuf.Struct must be written as {fields: {key: {stringValue: …}}}; plain keys are dropped: ${unknown.join(', ')}`);
    return;
  }
  for (const k of unknown) {
    const alt = [camel(k), snake(k)].find((a) => a !== k && plan.lookup.has(a));
    // The well-known types are protobufjs's own definitions, with camelCase names whatever the root's keepCase.
    out.push(`${join(path, k)}: unknown field of ${plan.name}${alt ? ` (the field is spelled ${alt})` : ''}`);
  }
}

/** Structural check of one present field value, recursing into messages, lists and maps. */
function checkField(f: FieldPlan, raw: unknown, path: string, mode: Mode, rulesOn: boolean, out: string[]): void {
  if (f.map) {
    if (!isObject(raw)) {
      out.push(`${path}: expected an object (map<${f.keyType}, ${f.msgT?.name ?? f.enumT?.name ?? f.scalar}>), got ${kindOf(raw)}`);
      return;
    }
    const skipValues = f.rules?.map?.values?.message?.skip === true;
    for (const [k, val] of Object.entries(raw)) {
      const p = `${path}[${JSON.stringify(k)}]`;
      const keyProblem = scalarProblem(f.keyType!, mapKey(f.keyType!, k), mode);
      if (keyProblem) out.push(`${p}: map key ${keyProblem}`);
      if (present(val)) checkElem(f, val, p, mode, rulesOn && !skipValues, out);
      else out.push(`${p}: map values cannot be ${val}`);
    }
  } else if (f.repeated) {
    if (!Array.isArray(raw)) {
      out.push(`${path}: expected a list, got ${kindOf(raw)}`);
      return;
    }
    const skipItems = f.rules?.repeated?.items?.message?.skip === true;
    raw.forEach((item, i) => {
      if (present(item)) checkElem(f, item, `${path}[${i}]`, mode, rulesOn && !skipItems, out);
      else out.push(`${path}[${i}]: list items cannot be ${item}`);
    });
  } else {
    checkElem(f, raw, path, mode, rulesOn, out);
  }
}

/** JSON map keys are strings; integer and bool keys are written as their text. */
function mapKey(keyType: string, k: string): unknown {
  if (keyType === 'string') return k;
  if (keyType === 'bool') return k === 'true' ? true : k === 'false' ? false : k;
  return /^-?\d+$/.test(k) ? Number(k) : k;
}

function checkElem(e: Elem, v: unknown, path: string, mode: Mode, rulesOn: boolean, out: string[]): void {
  if (e.msgT) return checkMessage(e.msgT, v, path, mode, rulesOn, false, out);
  if (e.enumT) {
    if (typeof v === 'string') {
      if (e.enumT.values[v] === undefined) out.push(`${path}: unknown enum value ${quote(v)} for ${nameOf(e.enumT)}`);
    } else if (typeof v === 'number' && Number.isInteger(v)) {
      if (e.enumT.valuesById[v] === undefined) out.push(`${path}: ${v} is not a defined value of enum ${nameOf(e.enumT)}`);
    } else {
      out.push(`${path}: expected an enum name of ${nameOf(e.enumT)}, got ${kindOf(v)}`);
    }
    return;
  }
  const problem = scalarProblem(e.scalar!, v, mode);
  if (problem) out.push(`${path}: ${problem}`);
}

/**
 * An Any: `{'@type': url, …fields of the message}` (builder), or raw `{type_url, value: bytes}`. Envoy unpacks and
 * validates every typed config it accepts (MessageUtil::anyConvertAndValidate), so rules apply inside again even
 * under a disabled or skipped parent.
 */
function checkAny(v: unknown, path: string, mode: Mode, out: string[]): void {
  if (!isObject(v)) {
    out.push(`${at(path)}: expected an object (google.protobuf.Any), got ${kindOf(v)}`);
    return;
  }
  const url = v['@type'];
  if (url === undefined) {
    if (mode === 'builder' && ('type_url' in v || 'value' in v)) checkMessage(typeNamed('google.protobuf.Any')!, v, path, mode, true, false, out);
    else out.push(`${at(path)}: Any has no @type`);
    return;
  }
  if (typeof url !== 'string' || !url.includes('/')) {
    out.push(`${join(path, '@type')}: expected a type URL (type.googleapis.com/<message>), got ${kindOf(url)}`);
    return;
  }
  const name = url.slice(url.lastIndexOf('/') + 1);
  const inner = typeNamed(name);
  if (!inner) {
    out.push(`${at(path)}: cannot resolve @type ${url}`);
    return;
  }
  if (mode === 'json' && name.startsWith('google.protobuf.') && name !== 'google.protobuf.Empty' && name !== 'google.protobuf.Any') {
    // proto3 JSON: an Any holding a well-known type with a special JSON form carries it in `value`.
    for (const k of Object.keys(v)) if (k !== '@type' && k !== 'value') out.push(`${join(path, k)}: unknown field of an Any holding ${name}`);
    checkMessage(inner, v.value, join(path, 'value'), mode, true, false, out);
    return;
  }
  checkMessage(inner, v, path, mode, true, true, out);
}

/** Envoy refuses negative and out-of-range durations (source/common/protobuf/utility.cc, validateDuration). */
function checkDurationRange(v: Record<string, unknown>, path: string, out: string[]): void {
  const seconds = Number(v.seconds ?? 0);
  const nanos = Number(v.nanos ?? 0);
  if (seconds < 0 || nanos < 0) out.push(`${at(path)}: Envoy expects a positive duration`);
  else if (nanos > 999_999_999 || seconds > 315_576_000_000) out.push(`${at(path)}: duration out of range`);
}

/**
 * TypedStruct (xds.type.v3 / udpa.type.v1): `value` is a Struct that Envoy converts, as proto3 JSON, into the message
 * named by `type_url` and then validates. Builders write the Struct in protobufjs form; it is walked as plain JSON.
 */
function checkTypedStruct(v: Record<string, unknown>, path: string, mode: Mode, out: string[]): void {
  const url = v.type_url;
  if (typeof url !== 'string' || url === '') {
    out.push(`${join(path, 'type_url')}: a TypedStruct needs the type URL of the message in value`);
    return;
  }
  const inner = typeNamed(url.slice(url.lastIndexOf('/') + 1));
  if (!inner) {
    out.push(`${join(path, 'type_url')}: cannot resolve ${url}`);
    return;
  }
  const value = v.value;
  const plain = !isObject(value) ? {} : mode === 'builder' ? structToJson(value as { fields?: Record<string, any> }) : value;
  checkMessage(inner, plain, join(path, 'value'), 'json', true, false, out);
}

/**
 * PGV rules of one field, on the value Envoy would see: an absent scalar is its proto3 default (so `min_len: 1` fails
 * on a missing string), an absent list or map is empty, a wrapper's rules apply to `.value` only when the wrapper is
 * set, Duration/Timestamp/Any rules only when set (besides `required`), and a oneof member's rules only when it is
 * the member set (PGV's generated switch on the oneof case).
 */
function applyRules(f: FieldPlan, raw: unknown, path: string, mode: Mode, out: string[]): void {
  const r = f.rules!;
  const report = (p: string) => (msg: string, rule: string) => out.push(`${p}: ${msg} (validate.rules ${rule})`);
  if (f.map) {
    const entries = isObject(raw) ? Object.entries(raw) : [];
    const m = r.map;
    if (!m || (m.ignore_empty && entries.length === 0)) return;
    checkMapCounts(m, entries.length, report(path));
    for (const [k, val] of entries) {
      const p = `${path}[${JSON.stringify(k)}]`;
      if (m.no_sparse && f.msgT && !present(val)) report(p)('map values must not be unset', 'map.no_sparse');
      if (m.keys) applySingle(m.keys, { scalar: f.keyType! }, mapKey(f.keyType!, k), true, p, mode, out);
      if (m.values) applySingle(m.values, f, val, present(val), p, mode, out);
    }
  } else if (f.repeated) {
    const items = Array.isArray(raw) ? raw : [];
    const rep = r.repeated;
    if (!rep || (rep.ignore_empty && items.length === 0)) return;
    checkRepeated(rep, items, (item) => normalise(f, item, mode), report(path));
    if (rep.items) items.forEach((item, i) => applySingle(rep.items, f, item, present(item), `${path}[${i}]`, mode, out));
  } else if (!(f.presence && !present(raw))) {
    applySingle(r, f, raw, present(raw), path, mode, out);
  }
}

const DEFAULTS: Record<string, unknown> = { string: '', bool: false, bytes: new Uint8Array(0) };

/** One value (a singular field, a list item, a map key or value) against a FieldRules object. */
function applySingle(r: Rules, e: Elem, raw: unknown, isSet: boolean, path: string, mode: Mode, out: string[]): void {
  const report = (msg: string, rule: string) => out.push(`${path}: ${msg} (validate.rules ${rule})`);
  if (e.msgT) {
    const name = nameOf(e.msgT);
    const special = name === 'google.protobuf.Duration' ? 'duration' : name === 'google.protobuf.Timestamp' ? 'timestamp' : name === 'google.protobuf.Any' ? 'any' : undefined;
    if (!isSet) {
      if (r.message?.required) report('value is required', 'message.required');
      else if (special && r[special]?.required) report('value is required', `${special}.required`);
      return;
    }
    const kind = special ?? wrapperKind(name);
    if (kind && r[kind]) checkValue(kind, r[kind], normalise(e, raw, mode), report);
    return;
  }
  const kind = e.enumT ? 'enum' : e.scalar!;
  if (!r[kind]) return;
  const value = isSet ? normalise(e, raw, mode) : (DEFAULTS[kind] ?? 0);
  checkValue(kind, r[kind], value, report, e.enumT);
}
