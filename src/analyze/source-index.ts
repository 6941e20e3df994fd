/**
 * Where things are in the YAML: every document of every analysed file, its plain value (for kinds the config loader
 * ignores, such as Deployments) and the line of every field, keyed by the same path format validation errors use
 * (`spec.http[0].route[1].destination.host`). Parsed the way src/config/yaml-docs.ts parses (YAML 1.1, unique keys),
 * so a document's start line here is the `source.line` the loader gave its object.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Node } from 'yaml';
import { formatPath } from '../shared/errors.ts';

export interface IndexedDoc {
  file: string;
  /** 1-based line of the document's first content line. */
  line: number;
  value: unknown;
  /** field path → 1-based line of its key (or of the sequence item). */
  lines: ReadonlyMap<string, number>;
}

export class SourceIndex {
  readonly docs: IndexedDoc[] = [];
  private readonly byStart = new Map<string, IndexedDoc>();

  /** Adds a file's documents; returns false when its YAML does not parse (nothing of it is indexed). */
  addFile(file: string, text: string): boolean {
    const lineCounter = new LineCounter();
    const parsed = parseAllDocuments(text, { version: '1.1', uniqueKeys: true, lineCounter, prettyErrors: false });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    if (list.some((d) => d.errors.length > 0)) return false;
    for (const d of list) {
      const start = d.contents?.range?.[0] ?? d.range?.[0] ?? 0;
      let value: unknown;
      try {
        value = d.toJS({ maxAliasCount: 100 });
      } catch {
        continue;
      }
      if (value === null || value === undefined) continue;
      const lines = new Map<string, number>();
      const lineOf = (offset: number | undefined) => (offset === undefined ? 0 : lineCounter.linePos(offset).line);
      const walk = (node: Node | null | undefined, path: Array<string | number>): void => {
        if (isMap(node)) {
          for (const item of node.items) {
            if (!isPair(item)) continue;
            const key = isScalar(item.key) ? String(item.key.value) : undefined;
            if (key === undefined) continue;
            const p = [...path, key];
            lines.set(formatPath(p), lineOf((item.key as Node).range?.[0]));
            walk(item.value as Node | null, p);
          }
        } else if (isSeq(node)) {
          node.items.forEach((item, i) => {
            const p = [...path, i];
            lines.set(formatPath(p), lineOf((item as Node | null)?.range?.[0]));
            walk(item as Node | null, p);
          });
        }
      };
      walk(d.contents as Node | null, []);
      const doc: IndexedDoc = { file, line: lineOf(start), value, lines };
      this.docs.push(doc);
      this.byStart.set(`${file}\0${doc.line}`, doc);
    }
    return true;
  }

  doc(file: string, line: number): IndexedDoc | undefined {
    return this.byStart.get(`${file}\0${line}`);
  }

  /**
   * The line of `path` in the document that starts at `file:line`; the nearest enclosing field that exists when the
   * path itself does not (a missing field is reported where its parent is); the document line as a last resort.
   */
  lineOf(file: string, docLine: number, path: ReadonlyArray<string | number>): number {
    const doc = this.doc(file, docLine);
    if (!doc) return docLine;
    for (let n = path.length; n > 0; n--) {
      const l = doc.lines.get(formatPath(path.slice(0, n)));
      if (l) return l;
    }
    return docLine;
  }

  /** Same, for a path already formatted (`spec.accessLogging[0].format`, as validation errors give it). */
  lineOfFormatted(file: string, docLine: number, formatted: string): number {
    const doc = this.doc(file, docLine);
    if (!doc) return docLine;
    let p = formatted;
    while (p) {
      const l = doc.lines.get(p);
      if (l) return l;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return docLine;
  }
}
