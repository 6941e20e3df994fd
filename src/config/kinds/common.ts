/**
 * Building blocks shared by the Istio kind schemas. Field names follow the Istio API (istio/api protos, JSON names).
 * Every object schema refuses unknown fields: a typo must be an error, not silently ignored config.
 */
import { Type, type TProperties, type TSchema, type ObjectOptions } from '@sinclair/typebox';

/** An object that refuses unknown fields. */
export const Obj = <T extends TProperties>(props: T, options: ObjectOptions = {}) =>
  Type.Object(props, { additionalProperties: false, ...options });

export const Opt = <T extends TSchema>(schema: T) => Type.Optional(schema);

/** A map with string keys (labels, headers, …). */
export const StringMap = () => Type.Record(Type.String(), Type.String());

/**
 * A duration as Istio accepts it: Go syntax (`1h2m`, `300ms`, `1.5s`). Checked by the `duration` format registered in
 * ../validate.ts, which reports `invalid duration "soon"`.
 */
export const Duration = () => Type.String({ format: 'duration' });

/** A regular expression in RE2 syntax (what Envoy and gRPC evaluate); checked by the `re2` format. */
export const Regex = () => Type.String({ format: 're2' });

export const UInt32 = (options: { minimum?: number; maximum?: number } = {}) =>
  Type.Integer({ minimum: 0, maximum: 4294967295, ...options });
export const Int32 = () => Type.Integer({ minimum: -2147483648, maximum: 2147483647 });
export const PortNumber = () => Type.Integer({ minimum: 0, maximum: 65535 });

/** A string enum, listed as Istio spells the values. */
export const Enum = <const T extends readonly string[]>(values: T) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });

/** `{value: 12.5}` — istio.networking.v1alpha3.Percent. */
export const Percent = () => Obj({ value: Type.Number({ minimum: 0, maximum: 100 }) });

/** istio.networking.v1alpha3.StringMatch: exactly one of exact, prefix, regex. */
export const StringMatch = () =>
  Obj({ exact: Opt(Type.String()), prefix: Opt(Type.String()), regex: Opt(Regex()) }, { maxProperties: 1 });

export const WorkloadSelector = () => Obj({ labels: Opt(StringMap()) });

/** istio.type.v1beta1.WorkloadSelector (security/telemetry kinds): `{matchLabels}`. */
export const MatchLabelsSelector = () => Obj({ matchLabels: Opt(StringMap()) });

export const PolicyTargetReference = () =>
  Obj({ group: Opt(Type.String()), kind: Type.String(), name: Type.String(), namespace: Opt(Type.String()) });

export const PortSelector = () => Obj({ number: Opt(PortNumber()) });

// ---------------------------------------------------------------------------------------------------------------
// Durations: parsing shared by validation and translation.

const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration into milliseconds; undefined when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  if (text === '0') return 0;
  if (text.length === 0) return undefined;
  DURATION_PART.lastIndex = 0;
  let total = 0;
  let pos = 0;
  for (;;) {
    const m = DURATION_PART.exec(text);
    if (!m) break;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = DURATION_PART.lastIndex;
  }
  return pos === text.length ? total : undefined;
}

/** A protobuf Duration object for Envoy (`{seconds, nanos}`). */
export function durationProto(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return { seconds, nanos };
}
