/**
 * SDS for gateway credentials (istio-xds.md §9): `kubernetes://<name>` is the certificate and key of Secret <name> in
 * the gateway's namespace, `kubernetes://<name>-cacert` its CA bundle (for MUTUAL). Only gateway proxies that proved
 * their namespace (secure port) get them, and only from that namespace: a sidecar, or any proxy on the plaintext port,
 * asking for a Secret gets nothing. Keys accepted: `tls.crt`/`tls.key`/
 * `ca.crt` or `cert`/`key`/`cacert`.
 */
import type { Secret } from '../../../config/kinds/kubernetes.ts';
import { TypeUrl } from '../../../proto/types.ts';
import type { Json } from '../../builders/common.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';

const PREFIX = 'kubernetes://';
const CA_SUFFIX = '-cacert';

function secretData(secret: Secret, keys: string[]): string | undefined {
  for (const k of keys) {
    const b64 = secret.data?.[k];
    if (b64 !== undefined) return b64;
    const plain = secret.stringData?.[k];
    if (plain !== undefined) return Buffer.from(plain).toString('base64');
  }
  return undefined;
}

function lookup(ctx: GenContext, ref: string): Secret | undefined {
  const slash = ref.indexOf('/');
  const ns = slash < 0 ? ctx.view.namespace() : ref.slice(0, slash);
  if (ns !== ctx.view.namespace()) return undefined; // never another namespace's credentials
  return ctx.push.config.get<Secret>('Secret', ns, slash < 0 ? ref : ref.slice(slash + 1))?.spec;
}

export const gatewaySecrets: ResourceGenerator = {
  typeUrl: TypeUrl.Secret,
  names: () => [], // Envoy asks for secrets by name; there is no wildcard SDS
  build(ctx, name): Json | undefined {
    if (ctx.view.type() !== 'router' || !name.startsWith(PREFIX)) return undefined;
    // Only to a gateway that proved its namespace on the secure port (istiod serves credentials to verified proxies).
    if (ctx.view.verifiedNamespace() !== ctx.view.namespace()) return undefined;
    const ref = name.slice(PREFIX.length);
    const direct = lookup(ctx, ref);
    const cert = direct && secretData(direct, ['tls.crt', 'cert']);
    const key = direct && secretData(direct, ['tls.key', 'key']);
    if (cert && key) return { name, tls_certificate: { certificate_chain: { inline_bytes: cert }, private_key: { inline_bytes: key } } };
    // `<name>-cacert`: the CA of Secret <name> (or of a Secret literally named so).
    const caSource = direct ?? (ref.endsWith(CA_SUFFIX) ? lookup(ctx, ref.slice(0, -CA_SUFFIX.length)) : undefined);
    const ca = caSource && secretData(caSource, ['ca.crt', 'cacert']);
    if (ca && (ref.endsWith(CA_SUFFIX) || !direct || !cert)) return { name, validation_context: { trusted_ca: { inline_bytes: ca } } };
    return undefined;
  },
};
