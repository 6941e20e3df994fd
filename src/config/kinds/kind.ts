import type { TSchema } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';

/**
 * Everything mizzen knows about one config kind. The TypeBox `spec` schema is the single source of truth: the
 * TypeScript type (`Static<typeof schema>`), runtime validation (ajv) and, later, the CRD's openAPIV3Schema all come
 * from it. `check` holds the semantic rules a schema cannot say (valid regexes, weights that add up, …).
 */
export interface KindDefinition<Spec = unknown> {
  group: string;
  kind: string;
  /** Lower-case plural, as in the CRD (`virtualservices`). */
  plural: string;
  /** Served API versions, newest first. Istio serves the same schema in all of them. */
  versions: readonly string[];
  namespaced: boolean;
  spec: TSchema;
  /**
   * Kubernetes kinds keep fields beside `spec` (EndpointSlice has no spec at all): for them the validated "spec" is the
   * whole object minus apiVersion, kind and metadata.
   */
  wholeObject?: boolean;
  /** Semantic checks on a spec that already matches the schema. Paths are relative to the object (`spec.http[0]…`). */
  check?: (spec: Spec, meta: { name: string; namespace: string }) => FieldError[];
}

export function defineKind<Spec>(def: KindDefinition<Spec>): KindDefinition<Spec> {
  return def;
}
