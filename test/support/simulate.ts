/**
 * Behavioural checks on generated Envoy config, in the style of istiod's simulation tests. The walk itself lives in
 * src/explain/simulate.ts (`mizzen explain` uses it); this adapts a test Translation (lds/rds/cds/eds) to it.
 */
import { danglingClusters as dangling, simulate as walkNames, type Call, type DecodedConfig, type Result } from '../../src/explain/simulate.ts';
import type { Translation } from './translate.ts';

export type { Call, Result };

const decoded = (t: Translation): DecodedConfig => ({ listeners: t.lds, routes: t.rds, clusters: t.cds, endpoints: t.eds });

/** Walks `call` through the translated config. */
export const simulate = (t: Translation, call: Call): Result => walkNames(decoded(t), call);

/** Every cluster a translation's listeners and routes name must exist in its CDS (Envoy would 503 otherwise). */
export const danglingClusters = (t: Translation): string[] => dangling(decoded(t));
