/** `mizzen serve` as users start it: one process (same pid) with the server heap flag, ready, and a clean SIGTERM. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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
});
