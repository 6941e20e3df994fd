/** Where an executable is on PATH (like `which`), or undefined. */
import fs from 'node:fs';
import path from 'node:path';

export function which(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    if (d === '') continue;
    const file = path.join(d, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}
