/**
 * EnvoyFilter MERGE on builder JSON, with istiod's semantics (pkg/proto/merge, i.e. Go's proto.Merge plus one
 * exception): every field set in the patch is merged into the generated object — scalars and enums overwrite,
 * messages merge field by field, repeated fields are appended, map entries are replaced by key, setting one member
 * of a oneof clears the others, and a Duration or an Any is replaced whole (Go merges an Any's type_url and bytes as
 * scalars). Filter `typed_config`s are the exception istiod makes at the filter level (MergeAnyWithAny): two Anys of
 * the same type are merged as that message — see mergeAny.
 *
 * Patch values come from value.ts, already in proto3 canonical form (implicit-presence zero values dropped), so a
 * MERGE cannot reset a plain field to its zero value — exactly as in Istio. One deliberate difference: a wrapper
 * written with its zero value (`use_remote_address: false`) does overwrite here; Go's merge finds no populated field
 * inside the wrapper and silently keeps the generated value, which is never what the patch's author meant.
 */
import protobuf from 'protobufjs';
import { ensureType, messageType } from '../../proto/root.ts';
import type { Json } from './value.ts';

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const REPLACED = new Set(['.google.protobuf.Duration', '.google.protobuf.Any']);

/** Merges `src` into `dst` (mutated; it must be a private copy). `src` is not shared with the result. */
export function mergeInto(type: protobuf.Type, dst: Json, src: Json): void {
  for (const [key, value] of Object.entries(src)) {
    if (value === undefined) continue;
    const field = type.fields[key];
    if (!field) {
      dst[key] = structuredClone(value); // not a field (cannot happen for converted values): plain overwrite
      continue;
    }
    const oneof = field.partOf;
    if (oneof) for (const sibling of oneof.fieldsArray) if (sibling.name !== key) delete dst[sibling.name];
    if (field.map) {
      const into = isObject(dst[key]) ? (dst[key] as Json) : (dst[key] = {});
      for (const [k, v] of Object.entries(value as Json)) into[k] = structuredClone(v);
    } else if (field.repeated) {
      dst[key] = [...(Array.isArray(dst[key]) ? (dst[key] as unknown[]) : []), ...structuredClone(value as unknown[])];
    } else if (field.resolvedType instanceof protobuf.Type && !REPLACED.has(field.resolvedType.fullName) && isObject(dst[key])) {
      mergeInto(field.resolvedType, dst[key] as Json, value as Json);
    } else {
      dst[key] = structuredClone(value);
    }
  }
}

/** Merges by message name. */
export function mergeMessage(messageName: string, dst: Json, src: Json): void {
  mergeInto(messageType(messageName), dst, src);
}

export const anyTypeName = (any: unknown): string | undefined => {
  const url = isObject(any) ? any['@type'] : undefined;
  return typeof url === 'string' ? url.slice(url.lastIndexOf('/') + 1) : undefined;
};

/**
 * istiod's MergeAnyWithAny: both Anys unpacked, the patch merged into the generated message, packed again. Returns an
 * error when the types differ (istiod panics inside proto.Merge and loses every patch of the call; here only this
 * patch is skipped).
 */
export function mergeAny(dst: Json, src: Json): string | undefined {
  const dstType = anyTypeName(dst);
  const srcType = anyTypeName(src);
  if (!dstType || !srcType) return 'typed_config has no @type';
  if (dstType !== srcType) return `typed_config is ${srcType} but the generated one is ${dstType}: only the same type can be merged`;
  if (!ensureType(dstType)) return `unknown message type ${dstType}`;
  const { '@type': _, ...fields } = src;
  mergeInto(messageType(dstType), dst, fields);
  return undefined;
}
