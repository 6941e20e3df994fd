/** `mizzen validate FILE|DIR`: the same validation `serve` applies, printed; exit 1 when anything is refused. */
import fs from 'node:fs';
import path from 'node:path';
import { allKinds } from '../config/kinds/all.ts';
import { formatConfigError } from '../config/object.ts';
import { listYamlFiles } from '../config/sources/file-source.ts';
import { loadYamlText } from '../config/sources/load-file.ts';

export interface ValidateReport {
  accepted: number;
  refused: number;
  ignored: number;
  lines: string[];
}

export async function validatePaths(paths: string[]): Promise<ValidateReport> {
  const report: ValidateReport = { accepted: 0, refused: 0, ignored: 0, lines: [] };
  for (const p of paths) {
    const files = fs.existsSync(p) && fs.statSync(p).isDirectory() ? await listYamlFiles(p) : [p];
    if (!fs.existsSync(p)) {
      report.refused++;
      report.lines.push(`${p}: no such file or directory`);
      continue;
    }
    for (const f of files) {
      const rel = path.relative(process.cwd(), f) || f;
      const loaded = loadYamlText(fs.readFileSync(f, 'utf8'), rel, allKinds, { defaultNamespace: 'default', now: () => new Date(0).toISOString() });
      report.accepted += loaded.objects.length;
      report.ignored += loaded.ignored.length;
      for (const e of loaded.errors) {
        report.refused++;
        const where = e.source ? `${e.source.file}:${e.source.line}: ` : '';
        for (const line of formatConfigError(e)) report.lines.push(`${where}${line}`);
      }
    }
  }
  return report;
}
