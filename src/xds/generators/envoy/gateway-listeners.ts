/**
 * LDS for gateways (istio-xds.md §11): one bound listener per listen port; plain HTTP servers share an HCM chain,
 * each terminated TLS server gets its own SNI-matched chain with a DownstreamTlsContext whose certificates come over
 * SDS, PASSTHROUGH servers forward by SNI following VirtualService `tls` routes, AUTO_PASSTHROUGH forwards Istio mTLS
 * by the `outbound_.<port>_.<subset>_.<host>` SNI, TCP servers follow VirtualService `tcp` routes.
 */
import type { ServerTLSSettings } from '../../../config/kinds/gateway.ts';
import { boundHost, virtualServicesForGateway } from '../../../model/gateways.ts';
import { clusterName, istioSni, WILDCARD_ADDRESS } from '../../../model/names.ts';
import { compact, type Json } from '../../builders/common.ts';
import { ALPN, httpConnectionManager, LISTENER_FILTERS, tcpProxy } from '../../builders/http-connection-manager.ts';
import { destinationCluster } from '../../builders/route.ts';
import { adsSds, agentSds, downstreamTlsSocket, ROOT_CA, WORKLOAD_CERT } from '../../builders/tls.ts';
import type { GenContext } from '../generator.ts';
import { gatewayPlan, type GatewayListenerPlan, type PlannedServer } from './gateway-plan.ts';
import { securityHttpFilters } from './security-filters.ts';
import { hostService, routeContext } from './route-context.ts';

const TLS_VERSION: Record<string, string> = { TLS_AUTO: 'TLS_AUTO', TLSV1_0: 'TLSv1_0', TLSV1_1: 'TLSv1_1', TLSV1_2: 'TLSv1_2', TLSV1_3: 'TLSv1_3' };

function sanMatchers(sans: readonly string[] | undefined): Json | undefined {
  return sans?.length ? { match_typed_subject_alt_names: sans.map((s) => ({ san_type: s.startsWith('spiffe://') ? 'URI' : 'DNS', matcher: { exact: s } })) } : undefined;
}

/** The DownstreamTlsContext of a terminating server (istio-xds.md §11 table). */
function serverTlsSocket(tls: ServerTLSSettings, note: (m: string) => void): Json | undefined {
  const params = compact({
    tls_minimum_protocol_version: tls.minProtocolVersion ? TLS_VERSION[tls.minProtocolVersion] : 'TLSv1_2',
    tls_maximum_protocol_version: tls.maxProtocolVersion ? TLS_VERSION[tls.maxProtocolVersion] : undefined,
    cipher_suites: tls.cipherSuites?.length ? tls.cipherSuites : undefined,
  });
  const alpn = ['h2', 'http/1.1'];
  const mode = tls.mode ?? 'SIMPLE';
  if (mode === 'ISTIO_MUTUAL') {
    return downstreamTlsSocket([agentSds(WORKLOAD_CERT)], { default_validation_context: {}, validation_context_sds_secret_config: agentSds(ROOT_CA) }, true, alpn, params);
  }
  const mutual = mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  const credentials = tls.credentialNames ?? (tls.credentialName ? [tls.credentialName] : []);
  let certs: Json[];
  let validation: Json | undefined;
  if (credentials.length > 0) {
    certs = credentials.map((c) => adsSds(`kubernetes://${c}`));
    if (mutual) {
      const ca = tls.caCertCredentialName ?? `${credentials[0]}-cacert`;
      validation = { default_validation_context: sanMatchers(tls.subjectAltNames) ?? {}, validation_context_sds_secret_config: adsSds(`kubernetes://${ca}`) };
    }
  } else if (tls.serverCertificate && tls.privateKey) {
    certs = [agentSds(`file-cert:${tls.serverCertificate}~${tls.privateKey}`)];
    if (mutual && tls.caCertificates) {
      validation = { default_validation_context: sanMatchers(tls.subjectAltNames) ?? {}, validation_context_sds_secret_config: agentSds(`file-root:${tls.caCertificates}`) };
    }
  } else if (tls.tlsCertificates?.length) {
    certs = tls.tlsCertificates.map((c) => agentSds(`file-cert:${c.serverCertificate}~${c.privateKey}`));
  } else {
    note('TLS server has neither credentialName nor serverCertificate/privateKey: server left out');
    return undefined;
  }
  return downstreamTlsSocket(certs, validation, mode === 'MUTUAL', alpn, params);
}

/** SNI names for a server: its hosts, without the catch-all `*` (which means "no SNI match"). */
function serverNames(hosts: string[]): string[] | undefined {
  if (hosts.includes('*')) return undefined;
  return [...new Set(hosts)].sort();
}

function passthroughChains(ctx: GenContext, s: PlannedServer): Json[] {
  const chains: Json[] = [];
  for (const vs of virtualServicesForGateway(ctx.push, ctx.view, s.gateway.name)) {
    const vsNs = vs.object.metadata.namespace;
    for (const route of vs.object.spec.tls ?? []) {
      for (const m of route.match ?? []) {
        if (m.port !== undefined && m.port !== s.server.port.number) continue;
        if (m.gateways?.length && !m.gateways.includes(s.gateway.name) && !m.gateways.includes(s.gateway.object.metadata.name)) continue;
        const sni = m.sniHosts.filter((h) => s.hosts.some((sh) => boundHost(sh, h)));
        if (sni.length === 0) continue;
        const rc = routeContext(ctx, hostService(sni[0]!, vsNs), s.server.port.number, [s.gateway.name]);
        const dests = (route.route ?? []).filter((d) => (d.weight ?? 1) > 0 || (route.route ?? []).length === 1);
        const filter =
          dests.length === 1
            ? tcpProxy({ statPrefix: destinationCluster(dests[0]!.destination, vsNs, rc), cluster: destinationCluster(dests[0]!.destination, vsNs, rc) })
            : tcpProxy({ statPrefix: sni[0]!, weighted: dests.map((d) => ({ name: destinationCluster(d.destination, vsNs, rc), weight: d.weight ?? 0 })) });
        chains.push({ filter_chain_match: { server_names: [...sni].sort(), transport_protocol: 'tls' }, filters: [filter] });
      }
    }
  }
  return chains;
}

function autoPassthroughChains(ctx: GenContext, s: PlannedServer): Json[] {
  const chains: Json[] = [];
  for (const service of ctx.push.visibleServices(ctx.view)) {
    if (!s.hosts.some((h) => boundHost(h, service.hostname))) continue;
    const subsets = ['', ...(ctx.push.destinationRuleFor(ctx.view, service)?.object.spec.subsets ?? []).map((x) => x.name)];
    for (const p of service.ports) {
      for (const subset of subsets) {
        const sni = istioSni(p.port, subset, service.hostname);
        chains.push({
          filter_chain_match: { server_names: [sni], transport_protocol: 'tls', application_protocols: ALPN.allIstioMtls },
          filters: [tcpProxy({ statPrefix: sni, cluster: sni })],
        });
      }
    }
  }
  return chains;
}

function tcpChain(ctx: GenContext, s: PlannedServer): Json | undefined {
  for (const vs of virtualServicesForGateway(ctx.push, ctx.view, s.gateway.name)) {
    const vsNs = vs.object.metadata.namespace;
    for (const route of vs.object.spec.tcp ?? []) {
      const applies = !route.match?.length || route.match.some((m) => m.port === undefined || m.port === s.server.port.number);
      const dest = route.route?.[0];
      if (!applies || !dest) continue;
      const rc = routeContext(ctx, hostService(vs.hosts[0] ?? '*', vsNs), s.server.port.number, [s.gateway.name]);
      const cluster = destinationCluster(dest.destination, vsNs, rc);
      return { filters: [tcpProxy({ statPrefix: cluster, cluster })] };
    }
  }
  return undefined;
}

function gatewayListener(ctx: GenContext, plan: GatewayListenerPlan): Json {
  const chains: Json[] = [];
  let tls = false;
  const seenSni = new Set<string>();
  const http = plan.servers.filter((s) => s.kind === 'http');
  if (http.length > 0) {
    chains.push({
      filters: [httpConnectionManager({ direction: 'gateway', filters: securityHttpFilters(ctx, true), pathNormalization: ctx.push.mesh.pathNormalization, statPrefix: `outbound_${WILDCARD_ADDRESS}_${plan.port};`, rds: http[0]!.routeName! })],
    });
  }
  for (const s of plan.servers) {
    const where = `Gateway ${s.gateway.name} servers[${s.index}]`;
    const note = (m: string) => ctx.note(`${where}: ${m}`);
    if (s.kind === 'https') {
      const names = serverNames(s.hosts);
      const key = names?.join(',') ?? '*';
      if (seenSni.has(key)) {
        note(`hosts ${key} are already served on port ${plan.port} by another server: left out`);
        continue;
      }
      seenSni.add(key);
      const socket = serverTlsSocket(s.server.tls ?? {}, note);
      if (!socket) continue;
      tls = true;
      chains.push(compact({
        filter_chain_match: names ? { server_names: names } : undefined,
        transport_socket: socket,
        filters: [httpConnectionManager({ direction: 'gateway', filters: securityHttpFilters(ctx, true), pathNormalization: ctx.push.mesh.pathNormalization, statPrefix: s.server.name ? `${s.server.name};` : `outbound_${WILDCARD_ADDRESS}_${plan.port};`, rds: s.routeName! })],
      }));
    } else if (s.kind === 'passthrough') {
      tls = true;
      chains.push(...passthroughChains(ctx, s));
    } else if (s.kind === 'auto-passthrough') {
      tls = true;
      chains.push(...autoPassthroughChains(ctx, s));
    } else if (s.kind === 'tcp') {
      const c = tcpChain(ctx, s);
      if (c) chains.push(c);
      else note('no VirtualService tcp route binds to this server: it accepts no connections');
    }
  }
  return compact({
    name: plan.name,
    address: { socket_address: { address: plan.servers[0]?.server.bind ?? WILDCARD_ADDRESS, port_value: plan.port } },
    traffic_direction: 'OUTBOUND',
    listener_filters: tls ? [LISTENER_FILTERS.tlsInspector] : undefined,
    continue_on_listener_filters_timeout: tls ? true : undefined,
    filter_chains: chains,
  });
}

export function gatewayListenerNames(ctx: GenContext): string[] {
  return [...gatewayPlan(ctx).keys()];
}

export function gatewayListenerFor(ctx: GenContext, name: string): Json | undefined {
  const plan = gatewayPlan(ctx).get(name);
  if (!plan) return undefined;
  const listener = gatewayListener(ctx, plan);
  // Envoy refuses a listener without filter chains; a gateway with nothing bound to a port listens nowhere on it.
  return (listener.filter_chains as Json[]).length > 0 ? listener : undefined;
}

/** SNI-DNAT cluster names an AUTO_PASSTHROUGH server forwards to (`outbound_.<port>_.<subset>_.<host>`). */
export function autoPassthroughClusterNames(ctx: GenContext): Array<{ name: string; eds: string }> {
  const out: Array<{ name: string; eds: string }> = [];
  for (const plan of gatewayPlan(ctx).values()) {
    for (const s of plan.servers) {
      if (s.kind !== 'auto-passthrough') continue;
      for (const chain of autoPassthroughChains(ctx, s)) {
        const sni = ((chain.filter_chain_match as Json).server_names as string[])[0]!;
        const [port, subset, ...host] = sni.slice('outbound_.'.length).split('_.');
        out.push({ name: sni, eds: clusterName('outbound', Number(port), subset ?? '', host.join('_.')) });
      }
    }
  }
  return out;
}
