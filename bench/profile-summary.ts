/**
 * Where the server's time went: summarizes a V8 .cpuprofile (from `npm run bench -- --cpu-prof`) by self time per
 * function and by inclusive time per mizzen source function, optionally for a time window only.
 *
 *   node bench/profile-summary.ts bench/results/prof-<stamp>/<file>.cpuprofile [--from 10] [--to 60] [--top 25]
 *
 * Windows are seconds since the profile started (the server's start), e.g. the sync phase printed by the bench log.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { from: { type: 'string', default: '0' }, to: { type: 'string', default: '1e9' }, top: { type: 'string', default: '25' } },
});
const file = positionals[0];
if (!file) throw new Error('usage: node bench/profile-summary.ts <file.cpuprofile> [--from s] [--to s] [--top n]');
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const from = Number(values.from) * 1e6;
const to = Number(values.to) * 1e6;
const top = Number(values.top);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (f: CallFrame) => {
  const where = f.url ? `${path.relative(process.cwd(), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
const ownCode = (f: CallFrame) => f.url.includes('/src/');

// Self time per sample's leaf node; inclusive time per distinct mizzen function on the sample's stack.
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let t = profile.startTime;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  if (t - profile.startTime < from || t - profile.startTime > to) continue;
  total += dt;
  const leaf = byId.get(profile.samples[i]!)!;
  self.set(label(leaf.callFrame), (self.get(label(leaf.callFrame)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
    const f = byId.get(id)!.callFrame;
    if (!ownCode(f)) continue;
    const l = label(f);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
  }
}

const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(v / 1e6).toFixed(2).padStart(8)} s ${((100 * v) / Math.max(1, total)).toFixed(1).padStart(5)} %  ${k}`);
  }
};
console.log(`window ${(from / 1e6).toFixed(0)}–${Math.min(to, profile.endTime - profile.startTime) / 1e6} s, ${(total / 1e6).toFixed(1)} s sampled`);
print('self time (top functions)', self);
print('inclusive time (mizzen functions)', inclusive);
