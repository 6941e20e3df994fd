/**
 * Scenario goldens: each folder under goldens/ holds Istio YAML and a proxy description; the xDS mizzen generates for
 * that proxy is compared with expected.json (sorted, volatile fields scrubbed). Refresh deliberately with
 * `UPDATE_GOLDENS=1 npx vitest run test/scenarios/goldens.test.ts` and review the diff.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { translate, type ProxySpec } from '../support/translate.ts';

const DIR = path.join(import.meta.dirname, 'goldens');
const UPDATE = process.env.UPDATE_GOLDENS === '1';

function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortDeep((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

const byName = (a: { name?: string; cluster_name?: string }, b: { name?: string; cluster_name?: string }) =>
  (a.name ?? a.cluster_name ?? '').localeCompare(b.name ?? b.cluster_name ?? '');

for (const name of fs.readdirSync(DIR).sort()) {
  describe(`scenario ${name}`, () => {
    it('generates the expected xDS', () => {
      const dir = path.join(DIR, name);
      const yaml = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'proxy.yaml').sort().map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n---\n');
      const proxy = parse(fs.readFileSync(path.join(dir, 'proxy.yaml'), 'utf8')) as ProxySpec;
      const t = translate(yaml, proxy);
      expect(t.generationErrors).toBe(0);
      const actual = sortDeep({
        refused: t.refused,
        notes: t.notes,
        lds: [...t.lds].sort(byName),
        rds: [...t.rds].sort(byName),
        cds: [...t.cds].sort(byName),
        eds: [...t.eds].sort(byName),
        ...(t.sds.length > 0 ? { sds: [...t.sds].sort(byName) } : {}),
      });
      const file = path.join(dir, 'expected.json');
      if (UPDATE || !fs.existsSync(file)) fs.writeFileSync(file, `${JSON.stringify(actual, null, 2)}\n`);
      expect(actual).toEqual(JSON.parse(fs.readFileSync(file, 'utf8')));
    });
  });
}
