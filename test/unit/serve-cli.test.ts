/** `mizzen serve` as users start it: one process (same pid) with the server heap flag, ready, and a clean SIGTERM. */
import { spawn } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient, type AdsResponse } from '../support/ads-client.ts';
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

  it('applies --mesh-config (shown on /debug/mesh) and follows it live, as the kubelet updates a mounted ConfigMap', async () => {
    const [xds, mon] = [await freePort(), await freePort()];
    // The kubelet's layout: mesh -> ..data/mesh, ..data -> ..<timestamp>; an update swaps ..data atomically.
    const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-mesh-'));
    let generation = 0;
    const publish = (text: string) => {
      const dir = `..gen_${++generation}`;
      fs.mkdirSync(path.join(mount, dir));
      fs.writeFileSync(path.join(mount, dir, 'mesh'), text);
      fs.symlinkSync(dir, path.join(mount, '..data_tmp'));
      fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
    };
    publish('outboundTrafficPolicy: { mode: REGISTRY_ONLY }\ntrustDomain: example.org\nenablePrometheusMerge: true\n');
    fs.symlinkSync('..data/mesh', path.join(mount, 'mesh'));
    const meshFile = path.join(mount, 'mesh');
    // One external service: its cluster carries no Istio extension (the test client decodes Envoy's types only).
    const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-config-'));
    fs.writeFileSync(path.join(configDir, 'se.yaml'), 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: api, namespace: shop }\nspec:\n  hosts: [api.example.com]\n  location: MESH_EXTERNAL\n  ports: [{ number: 443, name: tls, protocol: TLS }]\n  resolution: STATIC\n  endpoints: [{ address: 192.0.2.1 }]\n');
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--config', configDir, '--mesh-config', meshFile, '--host', '127.0.0.1', '--xds-port', String(xds), '--monitoring-port', String(mon)], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const meshNow = async () => (await (await fetch(`http://127.0.0.1:${mon}/debug/mesh`)).json()) as { outboundTrafficPolicy: string; trustDomain: string; connectTimeoutMs: number };
    let proxy: AdsClient | undefined;
    try {
      await eventually(async () => (await fetch(`http://127.0.0.1:${mon}/ready`).catch(() => undefined))?.status === 200, 15_000, 'ready');
      proxy = new AdsClient('sotw', xds, { kind: 'envoy', pod: 'web-1', namespace: 'shop', ip: '10.1.0.9' });
      expect(await meshNow()).toMatchObject({ outboundTrafficPolicy: 'REGISTRY_ONLY', trustDomain: 'example.org' });
      const connectTimeouts = (r: AdsResponse) => new Set(r.resources.filter((x) => x.name.startsWith('outbound|')).map((x) => JSON.stringify(x.body.connect_timeout)));
      const first = await proxy.fetch(TypeUrl.Cluster);
      proxy.ack(first);
      expect(connectTimeouts(first)).toEqual(new Set(['"10s"']));

      // A valid change applies live and is pushed; a trust domain change is not applied (it takes a restart).
      publish('outboundTrafficPolicy: { mode: ALLOW_ANY }\ntrustDomain: changed.org\nconnectTimeout: 3s\n');
      await eventually(async () => (await meshNow()).outboundTrafficPolicy === 'ALLOW_ANY', 10_000, 'new mesh config');
      expect(await meshNow()).toMatchObject({ trustDomain: 'example.org', connectTimeoutMs: 3000 });
      const pushed = await proxy.next(TypeUrl.Cluster, 10_000);
      proxy.ack(pushed);
      expect(connectTimeouts(pushed)).toEqual(new Set(['"3s"']));

      // An invalid one is refused; the last good one keeps serving.
      publish('outboundTrafficPolicy: { mode: DENY_ALL }\n');
      await new Promise((r) => setTimeout(r, 2500));
      expect(await meshNow()).toMatchObject({ outboundTrafficPolicy: 'ALLOW_ANY', connectTimeoutMs: 3000 });
      await proxy.expectNone(300, TypeUrl.Cluster);
    } finally {
      proxy?.close();
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
