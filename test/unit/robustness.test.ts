/**
 * Nothing a user writes may crash mizzen: arbitrary YAML text and arbitrary mutations of real Istio objects go through
 * validation and, when accepted, translation — never an exception, never a generation error, and every refusal names
 * the object. (The larger fuzzing campaign lives with the robustness work; this is the always-on slice.)
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { grpcProxy, translate } from '../support/translate.ts';

const SEEDS = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');
const opts = { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' };
const seedObjects = fs
  .readdirSync(SEEDS)
  .filter((f) => /-(virtualservice|destinationrule|gateway|peerauthentication|authorizationpolicy)-/.test(f))
  .map((f) => parse(fs.readFileSync(path.join(SEEDS, f), 'utf8')) as Record<string, any>);
const services = `apiVersion: v1
kind: Service
metadata: { name: SVC, namespace: NS }
spec: { clusterIP: 10.96.0.1, ports: [{ name: grpc, port: 8080 }] }`;

/** Replaces the value at a random path inside `obj.spec` with `value`, or deletes it. */
function mutate(obj: Record<string, any>, pick: number[], value: unknown, del: boolean): Record<string, any> {
  const copy = structuredClone(obj);
  let node: any = copy.spec;
  let parent: any = copy;
  let key: string | number = 'spec';
  for (const p of pick) {
    if (node === null || typeof node !== 'object') break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    parent = node;
    key = Array.isArray(node) ? p % node.length : (keys[p % keys.length] as string);
    node = node[key];
  }
  if (del && !Array.isArray(parent)) delete parent[key];
  else parent[key] = value;
  return copy;
}

describe('robustness', () => {
  it('arbitrary text never throws in the YAML loader', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const r = loadYamlText(text, 'f.yaml', allKinds, opts);
        for (const e of r.errors) expect(e.errors.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it('mutated real objects are accepted and translated cleanly, or refused naming kind, object and field', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...seedObjects),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        fc.oneof(fc.anything({ maxDepth: 2 }), fc.constantFrom('soon', '-1s', '(', '*', '', 0, -1, 1e12, 'UNAVAILABLE', '/a/b', 'v1'), fc.string()),
        fc.boolean(),
        (obj, pick, value, del) => {
          const mutated = mutate(obj, pick, value, del);
          const ns = mutated.metadata?.namespace ?? 'default';
          const host = String(mutated.spec?.host ?? mutated.spec?.hosts?.[0] ?? 'svc').split('.')[0] || 'svc';
          const yaml = `${stringify(mutated)}\n---\n${services.replace('SVC', /^[a-z0-9-]+$/.test(host) ? host : 'svc').replace('NS', ns)}`;
          const loaded = loadYamlText(yaml, 'f.yaml', allKinds, opts);
          for (const e of loaded.errors) {
            expect(e.kind).toBeTruthy();
            for (const fe of e.errors) expect(fe.message.length).toBeGreaterThan(0);
          }
          const t = translate(yaml, grpcProxy(ns));
          expect(t.generationErrors).toBe(0);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('RE2 validation over a long-running process', () => {
  // re2-wasm has a fixed 16 MB heap and never frees what it compiles: without freeing, a few thousand patterns in,
  // every regex would be refused as invalid. 12,000 distinct patterns must all still validate.
  it('keeps validating after many thousands of distinct patterns', async () => {
    const { isValidRe2 } = await import('../../src/config/validate.ts');
    let refused = 0;
    for (let i = 0; i < 12_000; i++) if (!isValidRe2(`^/api/v${i}/[a-z]+(foo|bar){2,5}$`)) refused++;
    expect(refused).toBe(0);
    expect(isValidRe2('(?=lookahead)')).toBe(false);
    expect(isValidRe2('.*Mobile.*')).toBe(true);
  });
});
