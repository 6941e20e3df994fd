/**
 * `--config DIR`: every *.yaml / *.yml under DIR (multi-document), watched. A file's objects are replaced as a set
 * when it changes; objects gone from it are deleted. A refused object keeps its last good version serving, and a file
 * whose YAML does not parse changes nothing.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { configKey, type ConfigObject } from '../object.ts';
import type { KindLookup } from '../validate.ts';
import { loadYamlText } from './load-file.ts';
import type { ConfigSink, ConfigSource } from './source.ts';

const isYaml = (f: string) => /\.ya?ml$/i.test(f);

export async function listYamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && isYaml(e.name)) out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

export class FileSource implements ConfigSource {
  private readonly dir: string;
  private readonly kinds: KindLookup;
  private readonly log: Logger;
  private readonly defaultNamespace: string;
  /** file → keys of the objects it currently provides. */
  private readonly owned = new Map<string, Map<string, ConfigObject>>();
  private watcher: fs.FSWatcher | undefined;
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private sink: ConfigSink | undefined;
  private rescanAll = false;

  constructor(options: { dir: string; kinds: KindLookup; log: Logger; defaultNamespace?: string }) {
    this.dir = path.resolve(options.dir);
    this.kinds = options.kinds;
    this.log = options.log;
    this.defaultNamespace = options.defaultNamespace ?? 'default';
  }

  async start(sink: ConfigSink): Promise<void> {
    this.sink = sink;
    if (!fs.existsSync(this.dir)) throw new Error(`config folder ${this.dir} does not exist`);
    for (const f of await listYamlFiles(this.dir)) await this.reload(f);
    this.watcher = fs.watch(this.dir, { recursive: true }, (_event, name) => {
      if (name === null) this.rescanAll = true;
      else this.dirty.add(path.join(this.dir, name.toString()));
      this.schedule();
    });
    this.watcher.on('error', (err) => this.log.error({ err }, 'config folder watch failed'));
    sink.synced();
  }

  private schedule(): void {
    if (this.timer) return;
    // Editors write files in several steps; settle briefly before reading.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, 50);
  }

  private async flush(): Promise<void> {
    const files = new Set(this.dirty);
    this.dirty.clear();
    if (this.rescanAll) {
      this.rescanAll = false;
      for (const f of await listYamlFiles(this.dir)) files.add(f);
      for (const f of this.owned.keys()) files.add(f);
    }
    for (const f of files) {
      try {
        const stat = await fsp.stat(f).catch(() => undefined);
        if (stat?.isDirectory()) {
          for (const inner of await listYamlFiles(f)) await this.reload(inner);
          continue;
        }
        if (isYaml(f) || this.owned.has(f)) await this.reload(f);
      } catch (err) {
        this.log.error({ err, file: f }, 'reading a config file failed');
      }
    }
  }

  /** Re-reads one file (or notices it is gone) and sends the difference to the sink. */
  private async reload(file: string): Promise<void> {
    const sink = this.sink!;
    const rel = path.relative(this.dir, file);
    const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
    const before = this.owned.get(file) ?? new Map<string, ConfigObject>();
    if (text === undefined) {
      for (const o of before.values()) sink.delete(o.kind, o.metadata.namespace, o.metadata.name);
      this.owned.delete(file);
      if (before.size > 0) this.log.info({ file: rel, removed: before.size }, 'config file removed');
      return;
    }
    const loaded = loadYamlText(text, rel, this.kinds, { defaultNamespace: this.defaultNamespace, now: () => new Date().toISOString() });
    if (!loaded.parsed) {
      for (const e of loaded.errors) sink.rejected(e);
      return; // keep serving what the file held before
    }
    const after = new Map<string, ConfigObject>();
    for (const o of loaded.objects) after.set(configKey(o.kind, o.metadata.namespace, o.metadata.name), o);
    // A refused object that existed before keeps its last good version.
    for (const e of loaded.errors) {
      if (!e.name) continue;
      const k = configKey(e.kind, e.namespace ?? this.defaultNamespace, e.name);
      const prev = before.get(k);
      if (prev) after.set(k, prev);
    }
    for (const [k, o] of before) if (!after.has(k)) sink.delete(o.kind, o.metadata.namespace, o.metadata.name);
    for (const o of after.values()) sink.upsert(o);
    // After the upserts: re-asserting a last good version must not clear the report of the refused edit.
    for (const e of loaded.errors) sink.rejected(e);
    this.owned.set(file, after);
    if (loaded.ignored.length > 0) this.log.debug({ file: rel, kinds: loaded.ignored }, 'documents of kinds mizzen does not read were ignored');
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
  }
}
