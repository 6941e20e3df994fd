/** The watched config folder: live adds/edits/deletes, and nothing lost on bad input. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import type { ConfigError, ConfigObject } from '../../src/config/object.ts';
import { FileSource } from '../../src/config/sources/file-source.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { eventually } from '../support/mesh.ts';

const vs = (name: string, timeout: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}]
  http: [{ timeout: ${timeout}, route: [{ destination: { host: ${name} } }] }]
`;

describe('file source', () => {
  let source: FileSource | undefined;
  let dir = '';
  afterEach(async () => {
    await source?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(files: Record<string, string>) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-fs-'));
    for (const [f, t] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), t);
    }
    const store = new ConfigStore();
    const rejected: ConfigError[] = [];
    let synced = false;
    source = new FileSource({ dir, kinds: allKinds, log: silentLogger });
    await source.start({
      upsert: (o: ConfigObject) => void store.upsert(o),
      delete: (k, ns, n) => void store.delete(k, ns, n),
      rejected: (e) => rejected.push(e),
      synced: () => (synced = true),
    });
    expect(synced).toBe(true);
    const timeoutOf = (name: string) => (store.get('VirtualService', 'default', name)?.spec as any)?.http[0].timeout as string | undefined;
    return { store, rejected, timeoutOf };
  }

  it('loads multi-document files in nested folders and ignores other kinds', async () => {
    const { store } = await start({
      'a.yaml': `${vs('one', '1s')}---\n${vs('two', '2s')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\n`,
      'nested/deeper/b.yml': vs('three', '3s'),
      'notes.txt': 'not yaml config',
    });
    expect(store.count()).toBe(3);
  });

  it('applies edits and deletions live', async () => {
    const { store, timeoutOf } = await start({ 'a.yaml': vs('one', '1s') });
    fs.writeFileSync(path.join(dir, 'a.yaml'), vs('one', '5s'));
    await eventually(() => timeoutOf('one') === '5s', 5000, 'edit');
    fs.writeFileSync(path.join(dir, 'b.yaml'), vs('two', '2s'));
    await eventually(() => store.count() === 2, 5000, 'add');
    fs.rmSync(path.join(dir, 'a.yaml'));
    await eventually(() => store.get('VirtualService', 'default', 'one') === undefined, 5000, 'delete');
    expect(store.count()).toBe(1);
  });

  it('keeps the last good version of a refused object, and reports the refusal', async () => {
    const { rejected, timeoutOf } = await start({ 'a.yaml': `${vs('one', '1s')}---\n${vs('two', '2s')}` });
    fs.writeFileSync(path.join(dir, 'a.yaml'), `${vs('one', 'soon')}---\n${vs('two', '4s')}`);
    await eventually(() => timeoutOf('two') === '4s', 5000, 'the valid sibling to update');
    expect(timeoutOf('one')).toBe('1s');
    expect(rejected.at(-1)).toMatchObject({ kind: 'VirtualService', namespace: 'default', name: 'one', errors: [{ path: 'spec.http[0].timeout', message: 'invalid duration "soon"' }] });
  });

  it('changes nothing when a file stops parsing as YAML', async () => {
    const { store, rejected, timeoutOf } = await start({ 'a.yaml': vs('one', '1s') });
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'apiVersion: [unclosed\n  kind: : :');
    await eventually(() => rejected.length > 0, 5000, 'the parse error');
    expect(rejected[0]?.kind).toBe('YAML');
    expect(rejected[0]?.errors[0]?.message).toMatch(/^a\.yaml:\d+: /);
    expect(store.count()).toBe(1);
    expect(timeoutOf('one')).toBe('1s');
  });

  it('refuses a folder that does not exist', async () => {
    dir = path.join(os.tmpdir(), 'mizzen-missing-folder-xyz');
    source = new FileSource({ dir, kinds: allKinds, log: silentLogger });
    await expect(source.start({ upsert() {}, delete() {}, rejected() {}, synced() {} })).rejects.toThrow(/does not exist/);
  });
});
