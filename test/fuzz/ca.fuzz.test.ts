/**
 * Fuzzing the CA (arbitraries.ts): CSRs that are truncated, bit-flipped, re-framed, signed with refused algorithms or
 * keys (RSA-1024, e=3, P-521, secp256k1, Ed25519, RSA-PSS, DSA), mislabelled, oversized, or random bytes inside valid
 * PEM armor, through parseCsr and through CreateCertificate with valid, invalid and missing tokens, odd TTLs and
 * impersonation requests. parseCsr only ever throws CsrError; the service answers a client error or issues a
 * certificate for the caller's own SPIFFE identity and the CSR's own key — never an INTERNAL error, never another
 * identity.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { assertProperty, caHarness, CREATE_CERTIFICATE_PROPERTY, createCertificateProperty, csrMaterial, fuzzRuns, parseCsrProperty, type CaHarness } from './arbitraries.ts';

const RUNS = fuzzRuns(300);

describe('CA fuzzing', () => {
  let harness: CaHarness;

  beforeAll(async () => {
    csrMaterial();
    harness = await caHarness();
  });

  it(parseCsrProperty.name, async () => {
    const outcomes = await assertProperty(parseCsrProperty, RUNS);
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(outcomes.accepted).toBeGreaterThan(0);
  }, 120_000);

  it(CREATE_CERTIFICATE_PROPERTY, async () => {
    const p = createCertificateProperty(harness);
    const outcomes = await assertProperty(p, RUNS);
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(outcomes.accepted).toBeGreaterThan(0);
    harness.service.close();
  }, 120_000);
});
