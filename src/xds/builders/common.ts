/** Small Envoy value builders shared by the resource builders. */
import { durationProto, parseDurationMs } from '../../config/kinds/common.ts';

export type Json = Record<string, unknown>;

/** A Go-style duration string → protobuf Duration; undefined passes through. */
export function duration(text: string | undefined): { seconds: number; nanos: number } | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs(text);
  return ms === undefined ? undefined : durationProto(ms);
}

export const ZERO_DURATION = { seconds: 0, nanos: 0 };

/** Istio's `{value: 12.5}` percent → FractionalPercent with MILLION denominator (numerator = value × 10000). */
export function fractionalPercent(value: number): { numerator: number; denominator: string } {
  return { numerator: Math.round(value * 10_000), denominator: 'MILLION' };
}

/** Legacy integer `percent` fields → FractionalPercent over HUNDRED. */
export function hundredPercent(value: number): { numerator: number; denominator: string } {
  return { numerator: Math.round(value), denominator: 'HUNDRED' };
}

export const adsConfigSource = () => ({ ads: {}, initial_fetch_timeout: ZERO_DURATION, resource_api_version: 'V3' });

/** Drops undefined fields so builders can write `x: cond ? v : undefined`. */
export function compact<T extends Json>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export { jsonToStruct as struct } from '../../proto/struct.ts';
