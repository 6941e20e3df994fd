/** For `mizzen bootstrap`: the Envoy bootstrap an injected proxy starts with, as JSON or YAML. */
import { stringify } from 'yaml';
import { buildBootstrap, type BootstrapOptions } from '../xds/builders/bootstrap.ts';

export type { BootstrapOptions };
import { decodeResource, encodeResource } from '../proto/encode.ts';

const BOOTSTRAP_TYPE = 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap';

/** Builds the bootstrap and round-trips it through Envoy's Bootstrap proto, so what is printed is what Envoy parses. */
export function renderBootstrap(o: BootstrapOptions, format: 'json' | 'yaml'): string {
  const encoded = encodeResource(BOOTSTRAP_TYPE, 'bootstrap', buildBootstrap(o));
  const json = decodeResource(BOOTSTRAP_TYPE, encoded.bytes);
  return format === 'yaml' ? stringify(json) : `${JSON.stringify(json, null, 2)}\n`;
}

/** `app=reviews,version=v1` → labels. */
export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`label "${pair}" is not key=value`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}
