/**
 * Applies a rule set the way istio-iptables does: one `iptables-restore --noflush` per address family (so existing
 * rules of other tools stay), then the `ip` commands TPROXY and IPv6 need. Not done (istio's extras): detecting
 * legacy vs nft iptables, reconciling or cleaning up earlier Istio chains, guard rails, `--wait` on the xtables lock.
 */
import { spawnSync } from 'node:child_process';
import { fail, ok, type Result } from '../shared/errors.ts';
import { toRestore, type RuleSet } from './rules.ts';

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: NodeJS.ErrnoException;
}

/** Runs a program to completion, feeding it `input`. */
export type Exec = (file: string, args: string[], input?: string) => ExecResult;

export const spawnExec: Exec = (file, args, input) => {
  const r = spawnSync(file, args, { input: input ?? '', encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error as NodeJS.ErrnoException } : {}) };
};

/** What `mizzen iptables` prints: each restore document under the command that loads it, then the route commands. */
export function renderPlan(rules: RuleSet): string {
  let out = `# iptables-restore --noflush\n${toRestore(rules.v4)}`;
  if (rules.v6.length > 0) out += `# ip6tables-restore --noflush\n${toRestore(rules.v6)}`;
  for (const cmd of rules.routes) out += `# ${cmd.join(' ')}\n`;
  return out;
}

function describeFailure(cmd: string, r: ExecResult): string {
  if (r.error?.code === 'ENOENT') {
    return `${cmd.split(' ')[0]} not found on PATH: install iptables (the istio-init image ships it), or use --dry-run to only print the rules`;
  }
  if (r.error) return `${cmd} could not run: ${r.error.message}`;
  const why = r.stderr.trim() || r.stdout.trim() || 'no output';
  return `${cmd} failed (exit ${r.status ?? 'signal'}): ${why}`;
}

/** Loads the rules; the first failure stops and is reported with the command's own message. */
export function applyRules(rules: RuleSet, exec: Exec = spawnExec): Result<string[], string> {
  const done: string[] = [];
  const steps: Array<{ file: string; args: string[]; input?: string; tolerate?: RegExp }> = [
    { file: 'iptables-restore', args: ['--noflush'], input: toRestore(rules.v4) },
  ];
  if (rules.v6.length > 0) steps.push({ file: 'ip6tables-restore', args: ['--noflush'], input: toRestore(rules.v6) });
  // istio ignores "file exists" when adding the ::6 address and the local route (a re-run), not for `ip rule`.
  for (const [file, ...args] of rules.routes) {
    if (file) steps.push({ file, args, ...(args.includes('rule') ? {} : { tolerate: /file exists/i }) });
  }
  for (const s of steps) {
    const cmd = [s.file, ...s.args].join(' ');
    const r = exec(s.file, s.args, s.input);
    if (r.status !== 0 || r.error) {
      if (s.tolerate && !r.error && s.tolerate.test(r.stderr)) {
        done.push(`${cmd}: already present`);
        continue;
      }
      return fail(describeFailure(cmd, r));
    }
    done.push(cmd);
  }
  return ok(done);
}
