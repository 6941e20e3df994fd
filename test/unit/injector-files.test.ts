/** The installed injector settings (the istio-sidecar-injector ConfigMap's `values` and `config`) → what is injected. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { injectorInput, readInjectorDir } from '../../src/app/injector-files.ts';
import { resolveInjectorConfig } from '../../src/webhook/inject.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VALUES = JSON.stringify({
  revision: '',
  istioNamespace: 'mesh-system',
  global: { hub: 'registry.example/mesh', tag: '1.2.3', imagePullPolicy: 'Always', proxy: { image: 'mizzen-proxy', clusterDomain: 'corp.local', logLevel: 'debug', excludeIPRanges: '10.1.0.0/16', resources: { requests: { cpu: '50m' } } }, proxy_init: { image: 'docker.io/x/init:9' } },
});
const CONFIG = 'policy: disabled\nalwaysInjectSelector: []\nneverInjectSelector: [{ matchLabels: { batch: "true" } }]\ninjectedAnnotations: { team: mesh }\ndefaultTemplates: [sidecar]\n';

describe('installed injector settings', () => {
  it('maps the chart values and policy onto the injector, with the control plane address from the mesh', () => {
    const input = injectorInput(VALUES, CONFIG, { discoveryAddress: 'mizzen.mesh-system.svc:15012' });
    const c = resolveInjectorConfig(input);
    expect(c.values).toMatchObject({
      proxyImage: 'registry.example/mesh/mizzen-proxy:1.2.3',
      proxyInitImage: 'docker.io/x/init:9',
      imagePullPolicy: 'Always',
      clusterDomain: 'corp.local',
      istioNamespace: 'mesh-system',
      caAddress: 'mizzen.mesh-system.svc:15012',
      xdsAddress: 'mizzen.mesh-system.svc:15010',
      logLevel: 'debug',
      excludeIPRanges: '10.1.0.0/16',
      resources: { requests: { cpu: '50m' } },
    });
    expect(c.policy).toBe('disabled');
    expect(c.neverInjectSelector).toEqual([{ matchLabels: { batch: 'true' } }]);
    expect(c.injectedAnnotations).toEqual({ team: 'mesh' });
  });

  it('refuses a folder with neither file, and a values file that is not JSON, naming the folder', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-inject-'));
    expect(() => readInjectorDir(dir, undefined)).toThrow(`injector config ${dir}: neither "values" nor "config" found`);
    fs.writeFileSync(path.join(dir, 'values'), '{ not json');
    expect(() => readInjectorDir(dir, undefined)).toThrow(new RegExp(`^injector config ${dir}: `));
  });

  it('kube-inject --inject-dir injects the installed image', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-inject-'));
    fs.writeFileSync(path.join(dir, 'values'), VALUES);
    fs.writeFileSync(path.join(dir, 'config'), 'policy: enabled\n');
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: { name: app, namespace: shop }\nspec: { containers: [{ name: app, image: app:1 }] }\n';
    const r = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'kube-inject', '-f', '-', '--inject-dir', dir], { cwd: ROOT, input: pod, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('image: registry.example/mesh/mizzen-proxy:1.2.3');
  });
});
