/**
 * Private keys never leave the process in debug output: an Envoy Secret's `private_key` (and any generic secret's
 * `secret`) is replaced before config dumps are shown.
 */
const SECRET_FIELDS = new Set(['private_key', 'privateKey', 'generic_secret', 'genericSecret']);

export function redactPrivateKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(redactPrivateKeys) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELDS.has(k) && v ? { inline_string: '[redacted]' } : redactPrivateKeys(v);
  return out as T;
}
