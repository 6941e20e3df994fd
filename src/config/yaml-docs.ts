/**
 * YAML text → documents with their start lines. Parsed as YAML 1.1 like Kubernetes tooling does (go-yaml), and
 * duplicate keys are errors, not silently last-wins.
 */
import { LineCounter, parseAllDocuments } from 'yaml';

export interface YamlDoc {
  value: unknown;
  line: number;
}

export interface YamlParseResult {
  docs: YamlDoc[];
  errors: Array<{ line: number; message: string }>;
}

export function parseYamlDocuments(text: string): YamlParseResult {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { version: '1.1', uniqueKeys: true, lineCounter, prettyErrors: false });
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const docs: YamlDoc[] = [];
  const errors: YamlParseResult['errors'] = [];
  for (const d of list) {
    const start = d.contents?.range?.[0] ?? d.range?.[0] ?? 0;
    const line = lineCounter.linePos(start).line;
    for (const e of d.errors) errors.push({ line: lineCounter.linePos(e.pos[0]).line, message: e.message.split('\n')[0] ?? e.message });
    if (d.errors.length > 0) continue;
    let value: unknown;
    try {
      // toJS throws on unresolved aliases and alias bombs (maxAliasCount): a parse error, not a crash.
      value = d.toJS({ maxAliasCount: 100 });
    } catch (err) {
      errors.push({ line, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (value === null || value === undefined) continue; // empty document (e.g. a trailing ---)
    docs.push({ value, line });
  }
  return { docs, errors };
}
