/** `mizzen serve` as users start it: one process (same pid) with the server heap flag, ready, and a clean SIGTERM. */
import { spawn } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/mesh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('mizzen serve', () => {
  it('runs with the server heap flag, becomes ready, and exits 0 on SIGTERM', async () => {
    const [xds, mon] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--config', 'examples/bookinfo', '--host', '127.0.0.1', '--xds-port', String(xds), '--monitoring-port', String(mon)], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await eventually(async () => (await fetch(`http://127.0.0.1:${mon}/ready`).catch(() => undefined))?.status === 200, 15_000, 'ready');
      if (process.platform === 'linux') {
        const cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
        expect(cmdline).toContain('--max-semi-space-size=4');
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('applies --mesh-config (shown on /debug/mesh)', async () => {
    const [xds, mon] = [await freePort(), await freePort()];
    const meshFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-mesh-')), 'mesh');
    fs.writeFileSync(meshFile, 'outboundTrafficPolicy: { mode: REGISTRY_ONLY }\ntrustDomain: example.org\nenablePrometheusMerge: true\n');
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--config', 'examples/bookinfo', '--mesh-config', meshFile, '--host', '127.0.0.1', '--xds-port', String(xds), '--monitoring-port', String(mon)], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await eventually(async () => (await fetch(`http://127.0.0.1:${mon}/ready`).catch(() => undefined))?.status === 200, 15_000, 'ready');
      const mesh = (await (await fetch(`http://127.0.0.1:${mon}/debug/mesh`)).json()) as { outboundTrafficPolicy: string; trustDomain: string };
      expect(mesh.outboundTrafficPolicy).toBe('REGISTRY_ONLY');
      expect(mesh.trustDomain).toBe('example.org');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a bad mesh config, naming the file and field, and a missing config source', () => {
    const meshFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-mesh-')), 'mesh');
    fs.writeFileSync(meshFile, 'outboundTrafficPolicy: { mode: DENY_ALL }\n');
    // Outside a pod: without KUBERNETES_SERVICE_HOST, serve has no in-cluster fallback.
    const { KUBERNETES_SERVICE_HOST: _inPod, ...env } = process.env;
    const bad = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--config', 'examples/bookinfo', '--mesh-config', meshFile], { cwd: ROOT, encoding: 'utf8', env });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`mesh config ${meshFile}: outboundTrafficPolicy.mode: must be one of ALLOW_ANY, REGISTRY_ONLY, got "DENY_ALL"`);
    const none = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve'], { cwd: ROOT, encoding: 'utf8', env });
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('give --config DIR');
    const both = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--config', 'x', '--kubeconfig', 'y'], { cwd: ROOT, encoding: 'utf8', env });
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('not both');
  });
});
