/**
 * CustomResourceDefinitions for every Istio kind, generated from the kinds' TypeBox schemas (the one source of truth
 * for types, runtime validation and the CRDs). `npm run gen:crds` writes manifests/charts/mizzen/crds/crds.yaml; the
 * helm test checks that the committed file is what this module generates.
 *
 * TypeBox schemas are JSON Schema, but a CRD's openAPIV3Schema must be *structural*
 * (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
 * a `type` on every node, no `$ref`, no `additionalProperties: false` (unknown fields are pruned instead), maps as
 * `additionalProperties: <schema>`, free-form values as `x-kubernetes-preserve-unknown-fields: true`, int-or-string as
 * `x-kubernetes-int-or-string: true`. Keywords Kubernetes does not support are dropped; semantic checks (regexes,
 * durations, weights) stay in the validating webhook, as in Istio.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { istioKinds } from '../config/kinds/istio.ts';
import type { KindDefinition } from '../config/kinds/kind.ts';

export type JsonSchemaProps = Record<string, unknown>;

/** Value keywords a structural schema accepts unchanged. */
const KEPT = ['description', 'enum', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'uniqueItems', 'minProperties', 'maxProperties', 'required', 'nullable'];
/** Formats the apiserver knows (k8s.io/kube-openapi strfmt); others (our `duration`, `re2`) are the webhook's job. */
const K8S_FORMATS = new Set(['int32', 'int64', 'float', 'double', 'byte', 'date', 'date-time', 'password', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid']);

const PRESERVE = 'x-kubernetes-preserve-unknown-fields';

const isFreeForm = (s: Record<string, unknown>): boolean => s.type === undefined && s.anyOf === undefined && s.oneOf === undefined && s.$ref === undefined;

/** Converts one JSON Schema node (as TypeBox emits it) into a Kubernetes structural schema node. */
export function toStructural(schema: unknown, where = '$'): JsonSchemaProps {
  if (typeof schema !== 'object' || schema === null) throw new Error(`${where}: not a schema`);
  const s = schema as Record<string, unknown>;
  if (s.$ref !== undefined) throw new Error(`${where}: $ref is not allowed in a CRD schema; inline it`);
  // Integer | String (Kubernetes IntOrString, e.g. a Service targetPort).
  const alternatives = (s.anyOf ?? s.oneOf) as Array<Record<string, unknown>> | undefined;
  if (alternatives) {
    const types = new Set(alternatives.map((a) => a.type));
    if (types.size === 2 && types.has('string') && (types.has('integer') || types.has('number'))) {
      return { 'x-kubernetes-int-or-string': true, ...(s.description ? { description: s.description } : {}) };
    }
    throw new Error(`${where}: unions other than int-or-string have no structural form`);
  }
  // Type.Unknown / Type.Any: any JSON value.
  if (isFreeForm(s)) return { [PRESERVE]: true, ...(s.description ? { description: s.description } : {}) };

  const out: JsonSchemaProps = { type: s.type };
  for (const k of KEPT) if (s[k] !== undefined) out[k] = s[k];
  if (typeof s.format === 'string' && K8S_FORMATS.has(s.format)) out.format = s.format;

  if (s.type === 'array') {
    out.items = toStructural(s.items ?? {}, `${where}[]`);
    if (isFreeForm((s.items ?? {}) as Record<string, unknown>)) out.items = { type: 'object', [PRESERVE]: true };
  } else if (s.type === 'object') {
    const props = s.properties as Record<string, unknown> | undefined;
    // Type.Record(String, X) is `patternProperties: {"^(.*)$": X}`: a map, which Kubernetes spells additionalProperties.
    const pattern = s.patternProperties as Record<string, unknown> | undefined;
    const mapValue = pattern ? Object.values(pattern)[0] : typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
    if (props && Object.keys(props).length > 0) {
      out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, toStructural(v, `${where}.${k}`)]));
    } else if (mapValue !== undefined) {
      const value = mapValue as Record<string, unknown>;
      // A map of arbitrary JSON (EnvoyFilter patch.value, WasmPlugin pluginConfig, a Struct): keep every field.
      if (isFreeForm(value)) out[PRESERVE] = true;
      else out.additionalProperties = toStructural(value, `${where}.*`);
    } else if (s.additionalProperties !== false) {
      // An object with no declared fields that accepts any: free-form.
      out[PRESERVE] = true;
    }
  }
  return out;
}

interface CrdExtras {
  shortNames?: string[];
  columns?: Array<{ name: string; type: string; jsonPath: string; description?: string }>;
}

const AGE = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' };

/** Short names and printer columns as Istio's CRDs have them. */
const EXTRAS: Record<string, CrdExtras> = {
  VirtualService: {
    shortNames: ['vs'],
    columns: [
      { name: 'Gateways', type: 'string', jsonPath: '.spec.gateways', description: 'The names of gateways and sidecars that should apply these routes' },
      { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'The destination hosts to which traffic is being sent' },
      AGE,
    ],
  },
  DestinationRule: {
    shortNames: ['dr'],
    columns: [{ name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'The name of a service from the service registry' }, AGE],
  },
  Gateway: { shortNames: ['gw'] },
  ServiceEntry: {
    shortNames: ['se'],
    columns: [
      { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'The hosts associated with the ServiceEntry' },
      { name: 'Location', type: 'string', jsonPath: '.spec.location', description: 'Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)' },
      { name: 'Resolution', type: 'string', jsonPath: '.spec.resolution', description: 'Service resolution mode for the hosts (NONE, STATIC, or DNS)' },
      AGE,
    ],
  },
  WorkloadEntry: {
    shortNames: ['we'],
    columns: [AGE, { name: 'Address', type: 'string', jsonPath: '.spec.address', description: 'Address associated with the network endpoint.' }],
  },
  WorkloadGroup: { shortNames: ['wg'], columns: [AGE] },
  PeerAuthentication: {
    shortNames: ['pa'],
    columns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'Defines the mTLS mode used for peer authentication.' }, AGE],
  },
  AuthorizationPolicy: {
    shortNames: ['ap'],
    columns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'The operation to take.' }, AGE],
  },
  RequestAuthentication: { shortNames: ['ra'] },
  Telemetry: { shortNames: ['telemetry'], columns: [AGE] },
  WasmPlugin: { columns: [AGE] },
};

/** `networking.istio.io` → `networking-istio-io`, the per-group category Istio's CRDs carry. */
const groupCategory = (group: string) => group.replaceAll('.', '-');

/** v1 where it is served, else the newest (versions are listed newest first). */
export function storageVersion(def: KindDefinition<any>): string {
  return def.versions.includes('v1') ? 'v1' : (def.versions[0] as string);
}

export function crdFor(def: KindDefinition<any>): Record<string, unknown> {
  const extras = EXTRAS[def.kind] ?? {};
  const spec = toStructural(def.spec, `${def.kind}.spec`);
  spec.description ??= `Configuration of the ${def.kind}. See https://istio.io/latest/docs/reference/config/`;
  const schema = {
    openAPIV3Schema: {
      type: 'object',
      properties: {
        spec,
        status: { type: 'object', [PRESERVE]: true },
      },
    },
  };
  const storage = storageVersion(def);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${def.group}`,
      labels: { 'app.kubernetes.io/part-of': 'mizzen', 'app.kubernetes.io/name': 'mizzen-crds' },
    },
    spec: {
      group: def.group,
      names: {
        categories: ['istio-io', groupCategory(def.group)],
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        ...(extras.shortNames ? { shortNames: extras.shortNames } : {}),
        singular: def.kind.toLowerCase(),
      },
      scope: def.namespaced ? 'Namespaced' : 'Cluster',
      versions: def.versions.map((name) => ({
        name,
        served: true,
        storage: name === storage,
        ...(extras.columns ? { additionalPrinterColumns: extras.columns } : {}),
        schema,
        subresources: { status: {} },
      })),
    },
  };
}

/** Every Istio kind's CRD, in the order of src/config/kinds/istio.ts. */
export function generateCrds(): Array<Record<string, unknown>> {
  return istioKinds.map((k) => crdFor(k as KindDefinition<any>));
}

export const CRD_FILE_HEADER = '# Generated by `npm run gen:crds` (src/app/crds.ts) from the schemas in src/config/kinds. Do not edit.\n';

/** The text of manifests/charts/mizzen/crds/crds.yaml. */
export function renderCrdYaml(): string {
  return CRD_FILE_HEADER + generateCrds().map((crd) => `---\n${stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false })}`).join('');
}

export const CRD_FILE = fileURLToPath(new URL('../../manifests/charts/mizzen/crds/crds.yaml', import.meta.url));

if (import.meta.main) {
  fs.mkdirSync(path.dirname(CRD_FILE), { recursive: true });
  fs.writeFileSync(CRD_FILE, renderCrdYaml());
  console.log(`wrote ${generateCrds().length} CRDs to ${path.relative(process.cwd(), CRD_FILE)}`);
}
