/**
 * Fuzzing the admission webhooks (arbitraries.ts): mutated and random AdmissionReviews through the validating
 * webhook's decision (reviewValidation) and the injector (reviewAdmission → injectPod), then the same bodies — and
 * damaged, binary, deeply nested and oversized ones, with wrong content types — POSTed to the real HTTPS server on
 * port 0. Never an exception; answers are well-formed AdmissionReviews (the request's uid, allowed, a message when
 * denied, a patch that applies to the pod) or 400/404/413/415 with an error; the server keeps serving.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertProperty, fuzzRuns, startFuzzWebhookServer, WEBHOOK_PROPERTIES, WIRE_PROPERTY, wireProperty, type FuzzWebhookServer } from './arbitraries.ts';

const RUNS = fuzzRuns(300);

describe('webhook fuzzing', () => {
  for (const p of WEBHOOK_PROPERTIES) {
    it(p.name, async () => {
      const outcomes = await assertProperty(p, RUNS);
      expect(outcomes.refused).toBeGreaterThan(0);
      expect(outcomes.accepted).toBeGreaterThan(0);
    }, 120_000);
  }
});

describe('webhook fuzzing over HTTPS', () => {
  let tmp: string;
  let server: FuzzWebhookServer;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-fuzz-webhook-'));
    server = await startFuzzWebhookServer(tmp, new Registry());
  });

  afterAll(async () => {
    await server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it(`${WIRE_PROPERTY}: every answer well-formed, and the server keeps serving`, async () => {
    const p = wireProperty(server);
    const outcomes = await assertProperty(p, Math.max(50, Math.round(RUNS / 2)));
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(outcomes.accepted).toBeGreaterThan(0);
    expect(await server.healthy()).toBe(true);
  }, 120_000);
});
