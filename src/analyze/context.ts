/**
 * What an analyzer sees: the validated objects (by kind), the refused ones, the raw documents (workloads and other
 * kinds the loader ignores), the service registry the server would build from the same objects, and a way to report
 * a message pointing at a resource and, when the analyzer knows it, the exact field.
 */
import type { ConfigError, ConfigObject } from '../config/object.ts';
import { ConfigStore } from '../model/config-store.ts';
import { DEFAULT_MESH, type MeshConfig } from '../model/mesh.ts';
import { buildRegistry, type Registry } from '../model/service-registry.ts';
import type { Message, MessageType, ResourceRef } from './message.ts';
import type { IndexedDoc, SourceIndex } from './source-index.ts';
import { collectWorkloads, type Workload } from './workloads.ts';

/** One analysed file as the loader returned it, with its text for line numbers and ignored kinds. */
export interface AnalysisFile {
  /** As shown in messages (a path relative to the working directory). */
  file: string;
  text: string;
  objects: ConfigObject[];
  /** Refusals of documents of kinds mizzen knows (schema or semantic errors). */
  errors: ConfigError[];
}

export interface AnalysisContext {
  readonly mesh: MeshConfig;
  readonly defaultNamespace: string;
  /** Validated objects of a kind, sorted by namespace/name. */
  objects<S = unknown>(kind: string): ReadonlyArray<ConfigObject<S>>;
  readonly refused: ReadonlyArray<ConfigError>;
  readonly docs: ReadonlyArray<IndexedDoc>;
  readonly workloads: ReadonlyArray<Workload>;
  /** Namespace objects by name. */
  readonly namespaces: ReadonlyMap<string, ConfigObject>;
  readonly registry: Registry;
  readonly index: SourceIndex;
  /** A resource reference for an object, its line that of `path` when given. */
  ref(obj: ConfigObject, path?: ReadonlyArray<string | number>): ResourceRef;
  /** The same for a raw workload document. */
  workloadRef(w: Workload, path?: ReadonlyArray<string | number>): ResourceRef;
  report(type: MessageType, resource: ResourceRef | undefined, text: string): void;
}

const byName = (a: ConfigObject, b: ConfigObject) =>
  a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name);

export function createContext(opts: {
  files: readonly AnalysisFile[];
  index: SourceIndex;
  defaultNamespace: string;
  mesh?: Partial<MeshConfig>;
  sink: (m: Message) => void;
}): AnalysisContext {
  const mesh: MeshConfig = { ...DEFAULT_MESH, ...opts.mesh };
  const store = new ConfigStore();
  const byKind = new Map<string, ConfigObject[]>();
  for (const f of opts.files) {
    for (const o of f.objects) {
      store.upsert(o);
      byKind.set(o.kind, [...(byKind.get(o.kind) ?? []), o]);
    }
  }
  for (const list of byKind.values()) list.sort(byName);
  const registry = buildRegistry(store.snapshot(), mesh);
  const namespaces = new Map((byKind.get('Namespace') ?? []).map((n) => [n.metadata.name, n]));
  const index = opts.index;
  return {
    mesh,
    defaultNamespace: opts.defaultNamespace,
    objects: <S>(kind: string) => (byKind.get(kind) ?? []) as ReadonlyArray<ConfigObject<S>>,
    refused: opts.files.flatMap((f) => f.errors),
    docs: index.docs,
    workloads: collectWorkloads(index.docs, opts.defaultNamespace),
    namespaces,
    registry,
    index,
    ref(obj, path) {
      const src = obj.source;
      const base = { kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name };
      if (!src) return base;
      return { ...base, file: src.file, line: path ? index.lineOf(src.file, src.line, path) : src.line };
    },
    workloadRef(w, path) {
      return { kind: w.kind, namespace: w.namespace, name: w.name, file: w.file, line: path ? index.lineOf(w.file, w.line, path) : w.line };
    },
    report(type, resource, text) {
      opts.sink({ code: type.code, level: type.level, message: text, ...(resource ? { resource } : {}) });
    },
  };
}

/** Is an object exported to (visible from) namespace `ns`? `exportTo` as Istio reads it; none means everywhere. */
export function visibleFrom(exportTo: readonly string[] | undefined, ownNamespace: string, ns: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || e === ns || (e === '.' && ownNamespace === ns));
}
