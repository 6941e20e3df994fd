/**
 * SPIFFE identities (`spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`, Istio's pkg/spiffe genSpiffeURI)
 * and the Kubernetes name rules that keep a token's claims from smuggling path segments into one.
 */

/** RFC 1123 label: a namespace name. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** RFC 1123 subdomain (≤ 253): a service account name. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A SPIFFE trust domain: lowercase letters, digits, dots, dashes and underscores (SPIFFE-ID spec §2.1). */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export function isNamespaceName(s: unknown): s is string {
  return typeof s === 'string' && DNS_LABEL.test(s);
}

export function isServiceAccountName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

export function checkTrustDomain(td: string): string {
  if (!TRUST_DOMAIN.test(td)) throw new Error(`invalid trust domain ${JSON.stringify(td)} (lowercase letters, digits, '.', '-', '_')`);
  return td;
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * The namespace and service account of a Kubernetes service-account username `system:serviceaccount:<ns>:<sa>`
 * (exactly four parts, as Istio's kube_jwt.go requires), or undefined.
 */
export function parseServiceAccountUsername(username: unknown): { namespace: string; serviceAccount: string } | undefined {
  if (typeof username !== 'string') return undefined;
  const parts = username.split(':');
  if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount') return undefined;
  const [, , namespace, serviceAccount] = parts as [string, string, string, string];
  if (!isNamespaceName(namespace) || !isServiceAccountName(serviceAccount)) return undefined;
  return { namespace, serviceAccount };
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>` → its parts (Istio's spiffe.ParseIdentity), or undefined. */
export function parseSpiffeId(uri: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m || !TRUST_DOMAIN.test(m[1]!) || !isNamespaceName(m[2]) || !isServiceAccountName(m[3])) return undefined;
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

/** A URI SAN we are willing to put in a certificate: printable ASCII, no spaces, bounded. */
export function isCertifiableUri(uri: string): boolean {
  return uri.length > 0 && uri.length <= 2048 && /^[a-zA-Z][a-zA-Z0-9+.-]*:[\x21-\x7e]+$/.test(uri);
}
