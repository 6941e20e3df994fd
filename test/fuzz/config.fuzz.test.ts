/**
 * Fuzzing the config path (arbitraries.ts): mutated Istio objects through validateDocument, damaged YAML through the
 * file loader, and the accepted objects — alone and several conflicting ones at once — through translation into xDS
 * for a sidecar, a proxyless gRPC client and a gateway, checked against Envoy's schema and encoded. Never an
 * exception, never a slow case, never a resource that fails to generate; every refusal names `Kind ns/name` and a
 * field path. `MIZZEN_FUZZ_RUNS` sets the cases per property (default 300), `MIZZEN_FUZZ_SEED` the seed.
 */
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { validateDocument } from '../../src/config/validate.ts';
import { assertProperty, BASE_OBJECTS, CONFIG_PROPERTIES, fuzzRuns } from './arbitraries.ts';

const RUNS = fuzzRuns(300);

describe('config fuzzing', () => {
  it('starts from objects mizzen accepts', () => {
    const accepted = BASE_OBJECTS.filter((o) => validateDocument(o, allKinds, { defaultNamespace: 'default', now: () => '' })?.ok);
    expect(BASE_OBJECTS.length).toBeGreaterThan(40);
    expect(accepted.length).toBeGreaterThan(BASE_OBJECTS.length * 0.8);
    expect(new Set(accepted.map((o) => o.kind)).size).toBeGreaterThanOrEqual(14);
  });

  for (const p of CONFIG_PROPERTIES) {
    it(p.name, async () => {
      const outcomes = await assertProperty(p, RUNS);
      // The mutations must exercise both sides, or the property proves little.
      expect(outcomes.refused).toBeGreaterThan(0);
      expect(outcomes.accepted).toBeGreaterThan(0);
    }, 120_000);
  }
});
