/** `serve --mesh-config FILE`: the mesh config, read once at start; any refusal is an error naming the file and field. */
import fs from 'node:fs';
import { parseMeshConfig } from '../config/mesh-config.ts';
import type { MeshConfig } from '../model/mesh.ts';

export function readMeshConfigFile(file: string): { mesh: Partial<MeshConfig>; unused: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`mesh config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const r = parseMeshConfig(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `mesh config ${file}: ${e.path ? `${e.path}: ` : ''}${e.message}`).join('\n'));
  return r.value;
}
