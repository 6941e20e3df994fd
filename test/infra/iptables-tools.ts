/**
 * iptables for the network-namespace tests of `mizzen iptables`, provisioned outside the repo when the machine has
 * none: the Debian packages are downloaded with `apt-get download` (no install, no system change) and unpacked into a
 * cache directory, with small wrappers that point the legacy xtables binary at its unpacked libraries. Returns the
 * directory to put first on PATH, or the reason it could not be provided (the tests then skip and say why).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PACKAGES = ['iptables', 'libip6tc2', 'libnetfilter-conntrack3', 'libnfnetlink0', 'libnftnl11'];
const TOOLS = ['iptables', 'iptables-restore', 'iptables-save', 'ip6tables', 'ip6tables-restore', 'ip6tables-save'];

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, name)));
}

export function ensureIptablesTools(): { binDir?: string; reason?: string } {
  if (onPath('iptables-restore')) return {};
  const cache = path.join(process.env.MIZZEN_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'mizzen-test'), 'iptables');
  const bin = path.join(cache, 'bin');
  if (fs.existsSync(path.join(bin, 'iptables-restore'))) return { binDir: bin };
  if (!onPath('apt-get') || !onPath('dpkg-deb')) return { reason: 'no iptables-restore, and no apt-get/dpkg-deb to fetch it' };
  const debs = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-iptables-debs-'));
  try {
    const dl = spawnSync('apt-get', ['download', ...PACKAGES], { cwd: debs, encoding: 'utf8', timeout: 120_000 });
    if (dl.status !== 0) return { reason: `apt-get download failed: ${(dl.stderr || dl.error?.message || '').trim().split('\n').at(-1)}` };
    const root = path.join(cache, 'root');
    fs.mkdirSync(root, { recursive: true });
    for (const f of fs.readdirSync(debs).filter((n) => n.endsWith('.deb'))) {
      const x = spawnSync('dpkg-deb', ['-x', path.join(debs, f), root], { encoding: 'utf8' });
      if (x.status !== 0) return { reason: `dpkg-deb -x ${f} failed: ${x.stderr.trim()}` };
    }
    const lib = path.join(root, 'usr/lib/x86_64-linux-gnu');
    const multi = path.join(root, 'usr/sbin/xtables-legacy-multi');
    if (!fs.existsSync(multi)) return { reason: 'the iptables package has no xtables-legacy-multi' };
    fs.mkdirSync(bin, { recursive: true });
    for (const tool of TOOLS) {
      const file = path.join(bin, tool);
      fs.writeFileSync(file, `#!/bin/sh\nexport LD_LIBRARY_PATH=${lib} XTABLES_LIBDIR=${lib}/xtables\nexec ${multi} ${tool} "$@"\n`, { mode: 0o755 });
    }
    return { binDir: bin };
  } finally {
    fs.rmSync(debs, { recursive: true, force: true });
  }
}
