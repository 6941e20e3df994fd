/**
 * protoc-gen-validate (PGV) rules, as Envoy's generated C++ validators apply them (validate/validate.proto in the
 * protoc-gen-validate tree; Envoy calls `Validate()` on every message it accepts, MessageUtil::validate). This module
 * reads a field's `(validate.rules)` option once and checks one already-normalised value against it; which values a
 * rule sees (unset, wrapper, oneof member) is decided by the walker in envoy-check.ts.
 *
 * Values arrive normalised: strings as strings, bytes as Uint8Array, every numeric kind as a JS number, enums as
 * their number, Duration and Timestamp as bigint nanoseconds, Any as its type URL.
 */
import { isIP } from 'node:net';
import type protobuf from 'protobufjs';

/** A field's merged `validate.FieldRules` (`{string: {min_len: 1}}`, `{repeated: {items: {...}}}`, …). */
export type Rules = Record<string, any>;
/** `builder`: the builders' protobufjs shape; `json`: proto3 JSON (what Envoy converts a TypedStruct from). */
export type Mode = 'builder' | 'json';
/** What one value is: a scalar type name, an enum, or a message. */
export interface Elem {
  scalar?: string;
  enumT?: protobuf.Enum;
  msgT?: protobuf.Type;
}
/** Reports one violation: the message and the rule (`string.min_len`) it breaks. */
export type Report = (message: string, rule: string) => void;

/**
 * The field's `(validate.rules)` options merged into one object: a field may carry several option statements
 * (`[(validate.rules).string.min_len = 1, (validate.rules).string.max_bytes = 255]`), which protobufjs keeps as
 * separate parsedOptions entries.
 */
export function fieldRules(field: protobuf.Field): Rules | undefined {
  let merged: Rules | undefined;
  for (const opt of (field.parsedOptions ?? []) as Array<Record<string, unknown>>) {
    const r = opt['(validate.rules)'];
    if (r && typeof r === 'object') merged = deepMerge(merged ?? {}, r as Rules);
  }
  return merged;
}

function deepMerge(a: Rules, b: Rules): Rules {
  for (const [k, v] of Object.entries(b)) {
    const cur = a[k];
    a[k] = isPlain(cur) && isPlain(v) ? deepMerge({ ...cur }, v) : v;
  }
  return a;
}

const names = new Map<protobuf.ReflectionObject, string>();

/** A type's full name without the leading dot, memoised: protobufjs recomputes `fullName` from the parents on each read. */
export function nameOf(t: protobuf.ReflectionObject): string {
  let n = names.get(t);
  if (n === undefined) {
    n = t.fullName.slice(1);
    names.set(t, n);
  }
  return n;
}

const isPlain = (v: unknown): v is Rules => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (x: unknown): unknown[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Quotes a value for a message, cut short so one bad blob cannot flood the report. */
export function quote(v: unknown): string {
  const s = typeof v === 'bigint' ? String(v) : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

// ---- numbers, durations, timestamps: one range check (PGV's gt/gte/lt/lte, including exclusive ranges) ----

const NANOS = 1_000_000_000n;

/** `{seconds, nanos}` (how protobufjs parses a Duration/Timestamp option value) → bigint nanoseconds. */
function nanosOf(d: unknown): bigint {
  const o = (d ?? {}) as { seconds?: unknown; nanos?: unknown };
  return BigInt(Math.trunc(Number(o.seconds ?? 0))) * NANOS + BigInt(Math.trunc(Number(o.nanos ?? 0)));
}

function formatDuration(n: bigint): string {
  const sign = n < 0n ? '-' : '';
  const abs = n < 0n ? -n : n;
  const frac = (abs % NANOS).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / NANOS}${frac ? `.${frac}` : ''}s`;
}

const formatTimestamp = (n: bigint) => new Date(Number(n / 1_000_000n)).toISOString();

/**
 * PGV range semantics: with only lower or only upper bounds the value must satisfy them; with both, `upper > lower`
 * means "inside the range" and `upper <= lower` means "outside it" (validate.proto: "If the value of Lt is less than
 * Gt, the range is reversed").
 */
function checkRange<T extends number | bigint>(kind: string, r: Rules, v: T, conv: (x: unknown) => T, fmt: (x: T) => string, report: Report): void {
  if (r.const !== undefined && v !== conv(r.const)) report(`must equal ${fmt(conv(r.const))}, got ${fmt(v)}`, `${kind}.const`);
  const loX = r.gt !== undefined;
  const hiX = r.lt !== undefined;
  const lo = loX ? conv(r.gt) : r.gte !== undefined ? conv(r.gte) : undefined;
  const hi = hiX ? conv(r.lt) : r.lte !== undefined ? conv(r.lte) : undefined;
  const loOk = lo === undefined || (loX ? v > lo : v >= lo);
  const hiOk = hi === undefined || (hiX ? v < hi : v <= hi);
  const rule = `${kind}.${['gt', 'gte', 'lt', 'lte'].filter((k) => r[k] !== undefined).join('/')}`;
  if (lo !== undefined && hi !== undefined) {
    if (hi > lo) {
      if (!(loOk && hiOk)) report(`must be inside range ${loX ? '(' : '['}${fmt(lo)}, ${fmt(hi)}${hiX ? ')' : ']'}, got ${fmt(v)}`, rule);
    } else if (!(loOk || hiOk)) {
      report(`must be outside range ${hiX ? '[' : '('}${fmt(hi)}, ${fmt(lo)}${loX ? ']' : ')'}, got ${fmt(v)}`, rule);
    }
  } else if (!loOk) {
    report(`must be greater than ${loX ? '' : 'or equal to '}${fmt(lo!)}, got ${fmt(v)}`, rule);
  } else if (!hiOk) {
    report(`must be less than ${hiX ? '' : 'or equal to '}${fmt(hi!)}, got ${fmt(v)}`, rule);
  }
  const inList = list(r.in).map(conv);
  if (inList.length > 0 && !inList.includes(v)) report(`must be one of [${inList.map(fmt).join(', ')}], got ${fmt(v)}`, `${kind}.in`);
  const notIn = list(r.not_in).map(conv);
  if (notIn.includes(v)) report(`must not be one of [${notIn.map(fmt).join(', ')}], got ${fmt(v)}`, `${kind}.not_in`);
}

const NUMERIC_KINDS = new Set(['float', 'double', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);

// ---- strings ----

/** PGV's header regexes (validate.proto KnownRegex; `strict: false` allows anything but NUL, CR and LF). */
const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const regexCache = new Map<string, RegExp | null>();

/** RE2 patterns compiled as JS regexes (close enough for Envoy's simple patterns); null when JS cannot compile one. */
function regex(pattern: string): RegExp | null {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(pattern, 'u');
    } catch {
      try {
        re = new RegExp(pattern);
      } catch {
        re = null;
      }
    }
    regexCache.set(pattern, re);
  }
  return re;
}

/** PGV's hostname: at most 253 characters, dot-separated labels of 1–63 letters, digits and inner hyphens. */
function isHostname(s: string): boolean {
  const h = s.endsWith('.') ? s.slice(0, -1) : s;
  if (h.length === 0 || h.length > 253) return false;
  return h.split('.').every((l) => /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(l));
}

function isUri(s: string, ref: boolean): boolean {
  try {
    if (ref) new URL(s, 'http://base.invalid/');
    else new URL(s);
    return true;
  } catch {
    return false;
  }
}

const WELL_KNOWN: Record<string, [test: (s: string) => boolean, what: string]> = {
  email: [(s) => /^[^@\s<>]+@[^@\s]+$/.test(s) && isHostname(s.slice(s.lastIndexOf('@') + 1)), 'an email address'],
  hostname: [isHostname, 'a hostname'],
  ip: [(s) => isIP(s) !== 0, 'an IP address'],
  ipv4: [(s) => isIP(s) === 4, 'an IPv4 address'],
  ipv6: [(s) => isIP(s) === 6, 'an IPv6 address'],
  uri: [(s) => isUri(s, false), 'an absolute URI'],
  uri_ref: [(s) => isUri(s, true), 'a URI reference'],
  address: [(s) => isIP(s) !== 0 || isHostname(s), 'an IP address or hostname'],
  uuid: [(s) => UUID.test(s), 'a UUID'],
};

function checkString(r: Rules, v: string, report: Report): void {
  if (r.ignore_empty && v === '') return;
  // PGV counts runes (code points), not UTF-16 units; surrogate pairs are rare, so count them only when present.
  const chars = /[\uD800-\uDFFF]/.test(v) ? [...v].length : v.length;
  const bytes = r.len_bytes !== undefined || r.min_bytes !== undefined || r.max_bytes !== undefined ? Buffer.byteLength(v, 'utf8') : 0;
  if (r.const !== undefined && v !== r.const) report(`must equal ${quote(r.const)}, got ${quote(v)}`, 'string.const');
  if (r.len !== undefined && chars !== Number(r.len)) report(`must be exactly ${plural(Number(r.len), 'character')} long`, 'string.len');
  if (r.min_len !== undefined && chars < Number(r.min_len)) report(`at least ${plural(Number(r.min_len), 'character')} required`, 'string.min_len');
  if (r.max_len !== undefined && chars > Number(r.max_len)) report(`at most ${plural(Number(r.max_len), 'character')} allowed, got ${chars}`, 'string.max_len');
  if (r.len_bytes !== undefined && bytes !== Number(r.len_bytes)) report(`must be exactly ${plural(Number(r.len_bytes), 'byte')} long`, 'string.len_bytes');
  if (r.min_bytes !== undefined && bytes < Number(r.min_bytes)) report(`at least ${plural(Number(r.min_bytes), 'byte')} required`, 'string.min_bytes');
  if (r.max_bytes !== undefined && bytes > Number(r.max_bytes)) report(`at most ${plural(Number(r.max_bytes), 'byte')} allowed, got ${bytes}`, 'string.max_bytes');
  if (r.pattern !== undefined) {
    const re = regex(String(r.pattern));
    if (re && !re.test(v)) report(`${quote(v)} does not match pattern ${quote(r.pattern)}`, 'string.pattern');
  }
  if (r.prefix !== undefined && !v.startsWith(r.prefix)) report(`must start with ${quote(r.prefix)}, got ${quote(v)}`, 'string.prefix');
  if (r.suffix !== undefined && !v.endsWith(r.suffix)) report(`must end with ${quote(r.suffix)}, got ${quote(v)}`, 'string.suffix');
  if (r.contains !== undefined && !v.includes(r.contains)) report(`must contain ${quote(r.contains)}, got ${quote(v)}`, 'string.contains');
  if (r.not_contains !== undefined && v.includes(r.not_contains)) report(`must not contain ${quote(r.not_contains)}, got ${quote(v)}`, 'string.not_contains');
  const inList = list(r.in);
  if (inList.length > 0 && !inList.includes(v)) report(`must be one of ${quote(inList)}, got ${quote(v)}`, 'string.in');
  if (list(r.not_in).includes(v)) report(`must not be one of ${quote(list(r.not_in))}, got ${quote(v)}`, 'string.not_in');
  for (const [key, [test, what]] of Object.entries(WELL_KNOWN)) {
    if (r[key] === true && !test(v)) report(`${quote(v)} is not ${what}`, `string.${key}`);
  }
  const wk = r.well_known_regex;
  if (wk === 'HTTP_HEADER_NAME' || wk === 1 || wk === 'HTTP_HEADER_VALUE' || wk === 2) {
    const name = wk === 'HTTP_HEADER_NAME' || wk === 1;
    const strict = r.strict !== false; // validate.proto: `optional bool strict = 25 [default = true]`
    const re = strict ? (name ? HEADER_NAME_STRICT : HEADER_VALUE_STRICT) : HEADER_LOOSE;
    if (!re.test(v)) {
      const why = strict ? (name ? 'RFC 7230 token' : 'no control characters') : 'no NUL, CR or LF';
      report(`${quote(v)} is not a valid HTTP header ${name ? 'name' : 'value'} (${why})`, 'string.well_known_regex');
    }
  }
}

// ---- bytes ----

function checkBytes(r: Rules, v: Uint8Array, report: Report): void {
  if (r.ignore_empty && v.length === 0) return;
  const buf = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const asBytes = (x: unknown) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from(x as Uint8Array));
  if (r.const !== undefined && !buf.equals(asBytes(r.const))) report('must equal the const value', 'bytes.const');
  if (r.len !== undefined && v.length !== Number(r.len)) report(`must be exactly ${plural(Number(r.len), 'byte')} long`, 'bytes.len');
  if (r.min_len !== undefined && v.length < Number(r.min_len)) report(`at least ${plural(Number(r.min_len), 'byte')} required`, 'bytes.min_len');
  if (r.max_len !== undefined && v.length > Number(r.max_len)) report(`at most ${plural(Number(r.max_len), 'byte')} allowed, got ${v.length}`, 'bytes.max_len');
  if (r.pattern !== undefined) {
    const re = regex(String(r.pattern));
    if (re && !re.test(buf.toString('utf8'))) report(`does not match pattern ${quote(r.pattern)}`, 'bytes.pattern');
  }
  if (r.prefix !== undefined && buf.indexOf(asBytes(r.prefix)) !== 0) report('must start with the prefix bytes', 'bytes.prefix');
  if (r.suffix !== undefined) {
    const s = asBytes(r.suffix);
    if (buf.length < s.length || !buf.subarray(buf.length - s.length).equals(s)) report('must end with the suffix bytes', 'bytes.suffix');
  }
  if (r.contains !== undefined && buf.indexOf(asBytes(r.contains)) < 0) report('must contain the given bytes', 'bytes.contains');
  if (r.in !== undefined && !list(r.in).some((x) => buf.equals(asBytes(x)))) report('must be one of the allowed values', 'bytes.in');
  if (list(r.not_in).some((x) => buf.equals(asBytes(x)))) report('must not be one of the refused values', 'bytes.not_in');
  if (r.ip && v.length !== 4 && v.length !== 16) report('must be an IP address (4 or 16 bytes)', 'bytes.ip');
  if (r.ipv4 && v.length !== 4) report('must be an IPv4 address (4 bytes)', 'bytes.ipv4');
  if (r.ipv6 && v.length !== 16) report('must be an IPv6 address (16 bytes)', 'bytes.ipv6');
}

// ---- enums, any ----

function checkEnum(r: Rules, v: number, enumT: protobuf.Enum | undefined, report: Report): void {
  const name = (n: number) => enumT?.valuesById[n] ?? String(n);
  if (r.const !== undefined && v !== Number(r.const)) report(`must equal ${name(Number(r.const))}, got ${name(v)}`, 'enum.const');
  if (r.defined_only && enumT && enumT.valuesById[v] === undefined) report(`${v} is not a defined value of ${nameOf(enumT)}`, 'enum.defined_only');
  const inList = list(r.in).map(Number);
  if (inList.length > 0 && !inList.includes(v)) report(`must be one of [${inList.map(name).join(', ')}], got ${name(v)}`, 'enum.in');
  const notIn = list(r.not_in).map(Number);
  if (notIn.includes(v)) report(`must not be one of [${notIn.map(name).join(', ')}], got ${name(v)}`, 'enum.not_in');
}

function checkAnyUrl(r: Rules, typeUrl: string, report: Report): void {
  const inList = list(r.in);
  if (inList.length > 0 && !inList.includes(typeUrl)) report(`type must be one of ${quote(inList)}, got ${quote(typeUrl)}`, 'any.in');
  if (list(r.not_in).includes(typeUrl)) report(`type must not be one of ${quote(list(r.not_in))}, got ${quote(typeUrl)}`, 'any.not_in');
}

/**
 * Checks one normalised value against the rules of its kind (`kind` is the FieldRules member: `string`, `uint32`,
 * `enum`, `duration`, …). Presence rules (`message.required`, `duration.required`, …) are the walker's business.
 */
export function checkValue(kind: string, r: Rules | undefined, v: unknown, report: Report, enumT?: protobuf.Enum): void {
  if (!r) return;
  if (NUMERIC_KINDS.has(kind)) {
    if (typeof v !== 'number' || (r.ignore_empty && v === 0)) return;
    checkRange(kind, r, v, Number, String, report);
  } else if (kind === 'string') {
    if (typeof v === 'string') checkString(r, v, report);
  } else if (kind === 'bytes') {
    if (v instanceof Uint8Array) checkBytes(r, v, report);
  } else if (kind === 'bool') {
    if (r.const !== undefined && v !== r.const) report(`must equal ${r.const}, got ${v}`, 'bool.const');
  } else if (kind === 'enum') {
    if (typeof v === 'number') checkEnum(r, v, enumT, report);
  } else if (kind === 'duration') {
    if (typeof v === 'bigint') checkRange('duration', r, v, nanosOf, formatDuration, report);
  } else if (kind === 'timestamp') {
    // lt_now / gt_now / within depend on the clock; Envoy's protos use none of them.
    if (typeof v === 'bigint') checkRange('timestamp', r, v, nanosOf, formatTimestamp, report);
  } else if (kind === 'any') {
    if (typeof v === 'string') checkAnyUrl(r, v, report);
  }
}

/** min/max counts and uniqueness of a repeated field (validate.proto RepeatedRules). */
export function checkRepeated(r: Rules, items: readonly unknown[], normalised: (item: unknown) => unknown, report: Report): void {
  if (r.min_items !== undefined && items.length < Number(r.min_items)) report(`at least ${plural(Number(r.min_items), 'item')} required`, 'repeated.min_items');
  if (r.max_items !== undefined && items.length > Number(r.max_items)) report(`at most ${plural(Number(r.max_items), 'item')} allowed, got ${items.length}`, 'repeated.max_items');
  if (r.unique) {
    const seen = new Set<string>();
    for (const item of items) {
      const n = normalised(item);
      const key = n instanceof Uint8Array ? Buffer.from(n).toString('base64') : typeof n === 'bigint' ? `${n}n` : JSON.stringify(n);
      if (seen.has(key)) {
        report(`items must be unique, ${quote(n)} repeats`, 'repeated.unique');
        break;
      }
      seen.add(key);
    }
  }
}

/** min/max pair counts of a map field (validate.proto MapRules); keys/values/no_sparse are per entry, in the walker. */
export function checkMapCounts(r: Rules, pairs: number, report: Report): void {
  if (r.min_pairs !== undefined && pairs < Number(r.min_pairs)) report(`at least ${plural(Number(r.min_pairs), 'pair')} required`, 'map.min_pairs');
  if (r.max_pairs !== undefined && pairs > Number(r.max_pairs)) report(`at most ${plural(Number(r.max_pairs), 'pair')} allowed, got ${pairs}`, 'map.max_pairs');
}

// ---- normalisation: a JSON value (builder or proto3 JSON form) → what the rules compare ----

const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** The scalar kind a wrapper message wraps (`google.protobuf.UInt32Value` → `uint32`), else undefined. */
export const wrapperKind = (messageName: string): string | undefined => WRAPPERS[messageName];

export const DURATION_TEXT = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** A proto3 JSON duration (`"1.5s"`) → bigint nanoseconds. */
function parseDuration(s: string): bigint | undefined {
  const m = DURATION_TEXT.exec(s);
  if (!m) return undefined;
  const n = BigInt(m[2]!) * NANOS + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -n : n;
}

/** A proto3 JSON timestamp (RFC 3339) → bigint nanoseconds since the epoch. */
function parseTimestamp(s: string): bigint | undefined {
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) return undefined;
  const frac = /\.(\d{1,9})/.exec(s)?.[1] ?? '';
  return BigInt(Math.floor(ms / 1000)) * NANOS + BigInt(frac.padEnd(9, '0'));
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);

/** A present value as the rules see it; undefined when malformed (the walker reports that separately). */
export function normalise(e: Elem, v: unknown, mode: Mode): unknown {
  if (v === undefined || v === null) return undefined;
  if (e.msgT) {
    const name = nameOf(e.msgT);
    if (name === 'google.protobuf.Duration') return typeof v === 'string' ? parseDuration(v) : isObj(v) ? nanosOf(v) : undefined;
    if (name === 'google.protobuf.Timestamp') return typeof v === 'string' ? parseTimestamp(v) : isObj(v) ? nanosOf(v) : undefined;
    if (name === 'google.protobuf.Any') return isObj(v) ? (v['@type'] ?? v.type_url) : undefined;
    const kind = WRAPPERS[name];
    if (!kind) return v;
    const inner = mode === 'json' ? v : isObj(v) ? v.value : undefined;
    // A set wrapper without `value` holds the default, and PGV checks it like any set wrapper.
    return inner === undefined || inner === null ? (kind === 'string' ? '' : kind === 'bool' ? false : kind === 'bytes' ? new Uint8Array(0) : 0) : normalise({ scalar: kind }, inner, mode);
  }
  if (e.enumT) return typeof v === 'string' ? e.enumT.values[v] : typeof v === 'number' ? v : undefined;
  switch (e.scalar) {
    case 'string':
      return typeof v === 'string' ? v : undefined;
    case 'bool':
      return typeof v === 'boolean' ? v : undefined;
    case 'bytes':
      return v instanceof Uint8Array ? v : typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'base64')) : undefined;
    default: {
      const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
      return Number.isNaN(n) && v !== 'NaN' ? undefined : n;
    }
  }
}
