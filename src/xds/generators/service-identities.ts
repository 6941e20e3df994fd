import type { Service } from '../../model/service.ts';
import type { GenContext } from './generator.ts';

/** The SPIFFE identities of a service's workloads (their service accounts): what a client verifies a server against. */
export function serviceIdentities(ctx: GenContext, service: Service): string[] {
  const accounts = new Set<string>();
  for (const e of ctx.push.endpoints(service)) if (e.serviceAccount) accounts.add(e.serviceAccount);
  return [...accounts].sort().map((sa) => (sa.startsWith('spiffe://') ? sa : `spiffe://${ctx.push.mesh.trustDomain}/ns/${service.namespace}/sa/${sa}`));
}
