/** One YAML file → validated objects and refusals. Shared by `mizzen serve` (watched folder) and `mizzen validate`. */
import type { ConfigError, ConfigObject } from '../object.ts';
import { validateDocument, type KindLookup } from '../validate.ts';
import { parseYamlDocuments } from '../yaml-docs.ts';

export interface LoadedFile {
  objects: ConfigObject[];
  errors: ConfigError[];
  /** Documents of kinds mizzen does not handle (Deployment, Kiali, …), by `apiVersion/kind`. */
  ignored: string[];
  /** False when the YAML itself did not parse: nothing in the file can be trusted. */
  parsed: boolean;
}

export function loadYamlText(text: string, file: string, kinds: KindLookup, opts: { defaultNamespace: string; now: () => string }): LoadedFile {
  const { docs, errors } = parseYamlDocuments(text);
  if (errors.length > 0) {
    return {
      objects: [],
      errors: errors.map((e) => ({ kind: 'YAML', source: { file, line: e.line }, errors: [{ path: '', message: `${file}:${e.line}: ${e.message}` }] })),
      ignored: [],
      parsed: false,
    };
  }
  const out: LoadedFile = { objects: [], errors: [], ignored: [], parsed: true };
  for (const d of docs) {
    const r = validateDocument(d.value, kinds, { ...opts, source: { file, line: d.line } });
    if (!r) {
      const v = d.value as { apiVersion?: unknown; kind?: unknown };
      out.ignored.push(`${String(v.apiVersion)}/${String(v.kind)}`);
    } else if (r.ok) out.objects.push(r.value);
    else out.errors.push(r.errors);
  }
  return out;
}
