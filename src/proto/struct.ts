/**
 * google.protobuf.Struct ⇄ plain JSON. protobufjs defines the well-known types itself with camelCase field names
 * (`stringValue`), whatever the root's keepCase option, so that is the spelling used here. Shared by the ADS codec
 * (node metadata) and the builders (filter metadata).
 */
export type StructValue = Record<string, any>;

/** google.protobuf.Struct (decoded) → plain JSON. */
export function structToJson(struct: { fields?: Record<string, StructValue> } | undefined | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

const present = (x: unknown) => x !== undefined && x !== null;

function valueToJson(v: StructValue): unknown {
  const struct = v.structValue ?? v.struct_value;
  if (present(struct)) return structToJson(struct);
  const list: { values?: StructValue[] } | undefined = v.listValue ?? v.list_value;
  if (list) return (list.values ?? []).map(valueToJson);
  for (const k of ['stringValue', 'string_value', 'numberValue', 'number_value', 'boolValue', 'bool_value']) if (present(v[k])) return v[k];
  return null;
}

/** Plain JSON → a Struct in the shape protobufjs encodes. */
export function jsonToStruct(obj: Record<string, unknown>): { fields: Record<string, StructValue> } {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): StructValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}
