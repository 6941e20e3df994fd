/**
 * Raw writes to a test API server. client-node's typed clients serialize through their model classes, which drop keys
 * they spell differently — a CRD's `x-kubernetes-preserve-unknown-fields` among them (the model calls it
 * `xKubernetesPreserveUnknownFields`), so a CRD created through them prunes every free-form field. CRDs are
 * therefore created as the JSON helm and kubectl would send.
 */
import { HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { fetch } from 'undici';

export async function createCrd(kc: KubeConfig, crd: unknown): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster');
  const ctx = new RequestContext(`${cluster.server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, HttpMethod.POST);
  await kc.applySecurityAuthentication(ctx);
  const res = await fetch(ctx.getUrl(), { method: 'POST', headers: { ...ctx.getHeaders(), 'content-type': 'application/json' }, body: JSON.stringify(crd), dispatcher: ctx.getDispatcher() });
  if (!res.ok) throw new Error(`creating CRD: HTTP ${res.status}: ${await res.text()}`);
}
