/**
 * Telemetry API (access logs, tracing) on the filters of an Envoy listener: every HTTP connection manager and
 * tcp_proxy gets the access logs of its direction (virtualInbound and inbound listeners are SERVER, the rest CLIENT),
 * HTTP connection managers also tracing. Computed once per distinct view and direction.
 */
import type { Json } from '../../builders/common.ts';
import { HCM_FILTER, TCP_PROXY_FILTER } from '../../builders/http-connection-manager.ts';
import { hcmTelemetry, tcpTelemetry, type HcmTelemetry, type TelemetryDirection } from '../../builders/telemetry.ts';
import type { GenContext } from '../generator.ts';

function directionOf(ctx: GenContext, listener: Json): TelemetryDirection {
  if (ctx.view.type() === 'router') return 'gateway';
  return listener.traffic_direction === 'INBOUND' ? 'inbound' : 'outbound';
}

function withFilterTelemetry(filter: Json, http: HcmTelemetry, tcp: { accessLog: Json[] }): Json {
  const tc = filter.typed_config as Json | undefined;
  if (!tc) return filter;
  if (filter.name === HCM_FILTER) {
    const out: Json = { ...tc };
    if (http.accessLog.length > 0) out.access_log = http.accessLog;
    if (http.tracing) out.tracing = http.tracing;
    if (http.requestIdExtension) out.request_id_extension = http.requestIdExtension;
    return { ...filter, typed_config: out };
  }
  if (filter.name === TCP_PROXY_FILTER && tcp.accessLog.length > 0) return { ...filter, typed_config: { ...tc, access_log: tcp.accessLog } };
  return filter;
}

export function withTelemetry(ctx: GenContext, listener: Json): Json {
  const direction = directionOf(ctx, listener);
  const http = ctx.memo(`telemetry-http:${direction}`, (c) => hcmTelemetry(c.push, c.view, direction, c.note));
  const tcp = ctx.memo(`telemetry-tcp:${direction}`, (c) => tcpTelemetry(c.push, c.view, direction, c.note));
  if (http.accessLog.length === 0 && !http.tracing && tcp.accessLog.length === 0) return listener;
  const chain = (c: Json): Json => ({ ...c, filters: ((c.filters as Json[] | undefined) ?? []).map((f) => withFilterTelemetry(f, http, tcp)) });
  const out: Json = { ...listener };
  if (Array.isArray(listener.filter_chains)) out.filter_chains = (listener.filter_chains as Json[]).map(chain);
  if (listener.default_filter_chain) out.default_filter_chain = chain(listener.default_filter_chain as Json);
  return out;
}
