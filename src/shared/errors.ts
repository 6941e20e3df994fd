/**
 * Stable error codes, carried in every log line that reports one (see docs/errors.md). Validation never throws: it
 * returns a Result. Errors turn into gRPC statuses or HTTP codes only at the edges.
 */
export const ErrorCode = {
  ConfigInvalid: 'MZ1001',
  ConfigUnknownKind: 'MZ1002',
  ConfigUnsupportedVersion: 'MZ1003',
  ConfigParse: 'MZ1004',
  ConfigSource: 'MZ1005',
  ProxyBadNode: 'MZ2001',
  XdsUnknownType: 'MZ2002',
  XdsGeneration: 'MZ2003',
  ProxyUnauthenticated: 'MZ2004',
  ProxyIdentityMismatch: 'MZ2005',
  JwksFetch: 'MZ3001',
  Internal: 'MZ9000',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A problem with one field of one config object. `path` is `spec.http[0].timeout` style. */
export interface FieldError {
  path: string;
  message: string;
}

export type Result<T, E = FieldError[]> = { ok: true; value: T } | { ok: false; errors: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const fail = <E>(errors: E): { ok: false; errors: E } => ({ ok: false, errors });

/** Formats a path segment list the way users read it: `spec.http[0].match[1].uri`. */
export function formatPath(segments: ReadonlyArray<string | number>): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}
