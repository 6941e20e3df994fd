/** `mizzen validate` as users run it: a real process, its output and exit code. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE = process.execPath;

async function validate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(NODE, [path.join(ROOT, 'src/cli/main.ts'), 'validate', ...args], { cwd: ROOT });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e: any) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('mizzen validate', () => {
  it('accepts the bundled example and exits 0', async () => {
    const r = await validate('examples/bookinfo');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^7 accepted, 0 refused/);
  });
  it('prints each refusal with file, line, object and field, and exits 1', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-validate-'));
    fs.writeFileSync(
      path.join(dir, 'bad.yaml'),
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http: [{ timeout: soon, route: [{ destination: { host: reviews } }] }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy: { loadBalancer: { simple: FASTEST } }
`,
    );
    const r = await validate(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('bad.yaml:1: VirtualService default/reviews: spec.http[0].timeout: invalid duration "soon"');
    expect(r.stderr).toMatch(/bad\.yaml:8: DestinationRule default\/reviews: spec\.trafficPolicy\.loadBalancer\.simple: invalid value "FASTEST"/);
    expect(r.stderr).toContain('0 accepted, 2 refused');
    fs.rmSync(dir, { recursive: true });
  });
  it('the seed Telemetry with a field the API does not have is refused, naming it', async () => {
    const seed = path.resolve(ROOT, '../shared/fixtures/seeds/011-s000-telemetry-custom-access-log.yaml');
    const r = await validate(seed);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Telemetry production/custom-access-log: spec.accessLogging[0].format: unknown field');
  });
});
