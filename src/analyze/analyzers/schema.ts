/**
 * IST0106: objects of kinds mizzen knows that validation refuses (the same checks `mizzen validate` and `serve` apply),
 * one message per bad field, at that field's line.
 */
import type { Analyzer } from '../analyzer.ts';
import { T, Text } from '../codes.ts';

const CLUSTER_SCOPED = ['Namespace', 'Node'];

export const schemaAnalyzer: Analyzer = {
  name: 'schema.ValidationAnalyzer',
  description: 'Runs schema validation as a config analyzer and reports any errors',
  types: [T.SchemaValidationError],
  analyze(ctx) {
    for (const e of ctx.refused) {
      const src = e.source;
      for (const f of e.errors) {
        const text = f.path ? `${f.path}: ${f.message}` : f.message;
        ctx.report(
          T.SchemaValidationError,
          {
            kind: e.kind,
            namespace: CLUSTER_SCOPED.includes(e.kind) ? '' : (e.namespace ?? ''),
            name: e.name ?? '<unnamed>',
            ...(src ? { file: src.file, line: f.path ? ctx.index.lineOfFormatted(src.file, src.line, f.path) : src.line } : {}),
          },
          Text.schemaValidationError(text),
        );
      }
    }
  },
};
