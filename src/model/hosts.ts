/** Host names: wildcard matching and short-name expansion as Istio does it. */

/** Does `pattern` (possibly `*.example.com` or `*`) match the concrete or wildcard `host`? */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1); // ".example.com"
    if (host.startsWith('*')) return host.slice(1).endsWith(suffix);
    return host.endsWith(suffix);
  }
  return false;
}

/** Either side may be a wildcard: the host sets intersect. */
export function hostsOverlap(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

/**
 * Istio resolves short names in VirtualService and DestinationRule hosts relative to the object's namespace:
 * `reviews` in namespace `default` means `reviews.default.svc.cluster.local`. Names with a dot are taken as given.
 */
export function resolveShortName(host: string, namespace: string, domainSuffix: string): string {
  if (host === '*' || host.startsWith('*') || host.includes('.')) return host;
  return `${host}.${namespace}.svc.${domainSuffix}`;
}

/** The more specific host sorts first: exact before wildcard, longer wildcard before shorter. */
export function compareHostSpecificity(a: string, b: string): number {
  const wa = a.startsWith('*');
  const wb = b.startsWith('*');
  if (wa !== wb) return wa ? 1 : -1;
  return b.length - a.length;
}
