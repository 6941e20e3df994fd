/**
 * `mizzen iptables`: the `istio-init` container's traffic capture (istio-iptables). Flags → options → host facts →
 * rules; prints them, then (without --dry-run / --skip-rule-apply) loads them with iptables-restore.
 */
import { applyRules, renderPlan, spawnExec, type Exec } from '../iptables/apply.ts';
import { probeHost, type HostPaths } from '../iptables/host.ts';
import { completeConfig, parseIptablesFlags, type Env, type IptablesFlags } from '../iptables/options.ts';
import { buildRules } from '../iptables/rules.ts';

export type { IptablesFlags };

export interface IptablesRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface IptablesDeps {
  exec?: Exec;
  paths?: HostPaths;
}

export function runIptables(flags: IptablesFlags, env: Env, deps: IptablesDeps = {}): IptablesRun {
  const parsed = parseIptablesFlags(flags, env);
  if (!parsed.ok) return { code: 1, stdout: '', stderr: parsed.errors.map((e) => `error: ${e}\n`).join('') };
  const o = parsed.value;
  const host = probeHost(o, env, deps.paths);
  if (!host.ok) return { code: 1, stdout: '', stderr: host.errors.map((e) => `error: ${e}\n`).join('') };
  const rules = buildRules(completeConfig(o, host.value));
  let stderr = [...host.value.warnings, ...rules.warnings].map((w) => `warning: ${w}\n`).join('');
  const stdout = renderPlan(rules);
  if (o.dryRun || o.skipRuleApply) return { code: 0, stdout, stderr };
  const applied = applyRules(rules, deps.exec ?? spawnExec);
  if (!applied.ok) return { code: 1, stdout, stderr: `${stderr}error: ${applied.errors}\n` };
  stderr += applied.value.map((c) => `applied: ${c}\n`).join('');
  return { code: 0, stdout, stderr };
}
