/**
 * `serve --mesh-config FILE`: the mesh config, read at start (any refusal stops `serve`, naming the file and field) and
 * then followed: in a cluster the file is the mounted `istio` ConfigMap, which the kubelet replaces when the ConfigMap
 * changes (an atomic symlink swap, which file-change events miss, so the file is polled). A valid new version applies
 * live; an invalid one is refused with its field named and the last good one keeps serving, as istiod's mesh watcher.
 */
import fs from 'node:fs';
import { parseMeshConfig } from '../config/mesh-config.ts';
import type { MeshConfig } from '../model/mesh.ts';
import { ErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';

export interface MeshConfigRead {
  mesh: Partial<MeshConfig>;
  unused: string[];
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`mesh config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

function parse(file: string, text: string): MeshConfigRead {
  const r = parseMeshConfig(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `mesh config ${file}: ${e.path ? `${e.path}: ` : ''}${e.message}`).join('\n'));
  return r.value;
}

export function readMeshConfigFile(file: string): MeshConfigRead {
  return parse(file, readText(file));
}

/**
 * Polls `file` every `intervalMs` and calls `apply` with each new valid version (compared by content, so a touch or
 * a swap to identical text is no change). Returns a function that stops following.
 */
export function followMeshConfigFile(file: string, apply: (read: MeshConfigRead) => void, log: Logger, intervalMs = 1000): () => void {
  let last = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const check = () => {
    let text: string;
    try {
      text = readText(file);
    } catch (err) {
      // A ConfigMap mount is never without its file; a missing one is a mistake to report, not an empty mesh config.
      if (last !== '') log.error({ err: (err as Error).message }, 'mesh config unreadable; the last good one keeps serving');
      last = '';
      return;
    }
    if (text === last) return;
    last = text;
    let read: MeshConfigRead;
    try {
      read = parse(file, text);
    } catch (err) {
      log.error({ code: ErrorCode.ConfigInvalid, errors: (err as Error).message.split('\n') }, 'mesh config refused; the last good one keeps serving');
      return;
    }
    log.info({ file, ...(read.unused.length > 0 ? { unusedFields: read.unused } : {}) }, 'mesh config changed');
    apply(read);
  };
  fs.watchFile(file, { interval: intervalMs, persistent: false }, check);
  return () => fs.unwatchFile(file, check);
}
