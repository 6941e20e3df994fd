/**
 * A validated config object as the rest of the system sees it: Kubernetes-shaped (apiVersion, kind, metadata, spec),
 * with where it came from so errors and `analyze` can point at the file and line.
 */
export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  /** RFC 3339; file-mode objects without one get the time they were first seen, so "oldest wins" stays stable. */
  creationTimestamp: string;
  generation?: number;
  resourceVersion?: string;
}

export interface SourceLocation {
  file: string;
  /** 1-based line of the document start. */
  line: number;
}

export interface ConfigObject<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  source?: SourceLocation;
}

/** `Kind/namespace/name` — the identity of a config object across versions and sources. */
export type ConfigKey = string;

export function configKey(kind: string, namespace: string, name: string): ConfigKey {
  return `${kind}/${namespace}/${name}`;
}

export function keyOf(obj: Pick<ConfigObject, 'kind' | 'metadata'>): ConfigKey {
  return configKey(obj.kind, obj.metadata.namespace, obj.metadata.name);
}

/** How objects are named in messages: `VirtualService default/reviews`. */
export function describeObject(kind: string, namespace: string | undefined, name: string | undefined): string {
  const ns = namespace ? `${namespace}/` : '';
  return `${kind} ${ns}${name ?? '<unnamed>'}`;
}

/** A refusal: which object, and every field that is wrong. */
export interface ConfigError {
  kind: string;
  namespace?: string;
  name?: string;
  source?: SourceLocation;
  errors: Array<{ path: string; message: string }>;
}

export function formatConfigError(e: ConfigError): string[] {
  const who = describeObject(e.kind, e.namespace, e.name);
  return e.errors.map((f) => (f.path ? `${who}: ${f.path}: ${f.message}` : `${who}: ${f.message}`));
}
