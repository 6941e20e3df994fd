/**
 * Kube mode's CA plumbing: the self-signed CA kept in the `istio-ca-secret` Secret (Istio's name and keys, so every
 * replica, and a restarted one, signs with the same root), and TokenReview as the bearer-token authenticator.
 */
import { AuthenticationV1Api, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { TokenReviewer, TokenReviewResult } from '../ca/authenticate.ts';
import type { CaMaterialPem } from '../ca/bundle.ts';
import { CaFiles, type CaStore } from '../ca/root-store.ts';

/** istiod's self-signed CA Secret (security/pkg/pki/ca: CASecret). */
export const CA_SECRET_NAME = 'istio-ca-secret';

const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

function secretData(m: CaMaterialPem): Record<string, string> {
  return { [CaFiles.cert]: b64(m.caCert), [CaFiles.key]: b64(m.caKey), [CaFiles.chain]: b64(m.certChain), [CaFiles.root]: b64(m.rootCerts) };
}

export class SecretCaStore implements CaStore {
  readonly description: string;
  readonly writable = true;
  private readonly core: CoreV1Api;
  private readonly namespace: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.namespace = namespace;
    this.description = `secret ${namespace}/${CA_SECRET_NAME}`;
  }

  async load(): Promise<CaMaterialPem | undefined> {
    let s: V1Secret;
    try {
      s = await this.core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: this.namespace });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
    const d = s.data ?? {};
    return { caCert: unb64(d[CaFiles.cert]), caKey: unb64(d[CaFiles.key]), certChain: unb64(d[CaFiles.chain]), rootCerts: unb64(d[CaFiles.root]) };
  }

  async create(material: CaMaterialPem): Promise<boolean> {
    try {
      await this.core.createNamespacedSecret({
        namespace: this.namespace,
        body: { apiVersion: 'v1', kind: 'Secret', type: 'istio.io/ca-root', metadata: { name: CA_SECRET_NAME, namespace: this.namespace }, data: secretData(material) },
      });
      return true;
    } catch (err) {
      // Another replica created it first: the caller loads theirs, so every replica signs with one root.
      if (statusOf(err) === 409) return false;
      throw err;
    }
  }

  async update(material: CaMaterialPem): Promise<void> {
    const current = await this.core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: this.namespace });
    // resourceVersion makes this a compare-and-swap: a concurrent rotation by another replica fails instead of being lost.
    await this.core.replaceNamespacedSecret({ name: CA_SECRET_NAME, namespace: this.namespace, body: { ...current, data: secretData(material) } });
  }
}

/** TokenReview through the API server (authentication.k8s.io/v1), status passed through unchanged. */
export function kubeTokenReviewer(kc: KubeConfig): TokenReviewer {
  const authn = kc.makeApiClient(AuthenticationV1Api);
  return {
    async review(token: string, audiences: string[]): Promise<TokenReviewResult> {
      const r = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } });
      const st = r.status ?? {};
      return {
        authenticated: st.authenticated === true,
        user: { username: st.user?.username ?? '', groups: st.user?.groups ?? [] },
        audiences: st.audiences ?? [],
        ...(st.error ? { error: st.error } : {}),
      };
    },
  };
}
