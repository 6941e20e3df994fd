/** VirtualService HTTPMatchRequest → Envoy RouteMatch, and whether a match applies to the proxy at all (§3.3). */
import type { HTTPMatchRequest, StringMatch } from '../../config/kinds/virtual-service.ts';
import { MESH_GATEWAY } from '../../model/names.ts';
import { resolveGatewayName } from '../../model/names.ts';
import { compact, type Json } from './common.ts';
import type { RouteContext } from './route-context.ts';

/** Istio StringMatch → Envoy StringMatcher (istiod util.ConvertToEnvoyMatch). */
export function stringMatcher(m: StringMatch): Json | undefined {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

function headerMatcher(name: string, m: StringMatch, invert: boolean): Json {
  const sm = stringMatcher(m);
  // An empty match (or regex "*") means "header present" in Istio.
  const present = !sm || m.regex === '*';
  return compact({
    name,
    ...(present ? { present_match: true } : { string_match: sm }),
    invert_match: invert || undefined,
    treat_missing_header_as_empty: invert && !present ? true : undefined,
  });
}

/**
 * Whether a match can apply to this proxy at all (istiod translateRoute + sourceMatchHTTP, decided at generation
 * time): `port` must be the listener's; with `gateways` set one must be a name the proxy represents (names resolved
 * against the VirtualService's namespace) and source labels are not looked at; otherwise sourceLabels must select
 * the proxy and sourceNamespace be its namespace.
 */
export function matchApplies(m: HTTPMatchRequest, vsNamespace: string, ctx: RouteContext): boolean {
  if (m.port !== undefined && m.port !== 0 && m.port !== ctx.port) return false;
  if (m.gateways && m.gateways.length > 0) {
    const mine = ctx.gateways ?? [MESH_GATEWAY];
    return m.gateways.some((g) => mine.includes(resolveGatewayName(g, vsNamespace)));
  }
  if (m.sourceNamespace && m.sourceNamespace !== ctx.view.namespace()) return false;
  if (m.sourceLabels && !ctx.view.selectedBy(m.sourceLabels)) return false;
  return true;
}

/** The Envoy RouteMatch; undefined when the route must be left out for this proxy. */
export function translateMatch(m: HTTPMatchRequest | undefined, ctx: RouteContext): Json | undefined {
  const out: Json = {};
  const uri = m?.uri;
  if (uri?.exact !== undefined) out.path = uri.exact;
  else if (uri?.prefix !== undefined) out.prefix = uri.prefix;
  else if (uri?.regex !== undefined) out.safe_regex = { regex: uri.regex };
  else out.prefix = '/';
  out.case_sensitive = { value: !(m?.ignoreUriCase ?? false) };
  const headers: Json[] = [];
  for (const name of Object.keys(m?.headers ?? {}).sort()) headers.push(headerMatcher(name.toLowerCase(), m!.headers![name]!, false));
  for (const name of Object.keys(m?.withoutHeaders ?? {}).sort()) headers.push(headerMatcher(name.toLowerCase(), m!.withoutHeaders![name]!, true));
  if (!ctx.proxyless) {
    // istiod sorts headers and withoutHeaders together by name (TranslateRouteMatch), then appends the pseudo-headers.
    headers.sort((a, b) => ((a.name as string) < (b.name as string) ? -1 : (a.name as string) > (b.name as string) ? 1 : 0));
  }
  if (m?.method) headers.push(headerMatcher(':method', m.method, false));
  if (m?.authority) headers.push(headerMatcher(':authority', m.authority, false));
  if (m?.scheme) headers.push(headerMatcher(':scheme', m.scheme, false));
  if (headers.length > 0) out.headers = headers;
  const qp = Object.keys(m?.queryParams ?? {}).sort();
  if (qp.length > 0) {
    if (ctx.proxyless) {
      // gRFC A28: clients must ignore routes that match on query parameters; gRPC requests have none.
      ctx.note('route matches on queryParams, which gRPC requests cannot carry: route left out for proxyless gRPC');
      return undefined;
    }
    out.query_parameters = qp.map((name) => {
      const q = m!.queryParams![name]!;
      const sm = stringMatcher(q);
      return sm && q.regex !== '*' ? { name, string_match: sm } : { name, present_match: true };
    });
  }
  return out;
}

/** istiod IsCatchAllRoute: prefix `/` (or regex `.*`) with no header, query or metadata condition. */
export function isCatchAllMatch(match: Json): boolean {
  const pathAll = match.prefix === '/' || (match.safe_regex as { regex?: string } | undefined)?.regex === '.*';
  return pathAll && !match.headers && !match.query_parameters && !match.dynamic_metadata;
}

/** The older, proxyless rule: a match with no condition but its name, or only `uri.prefix: /`. */
export function matchesEverything(m: HTTPMatchRequest | undefined): boolean {
  if (!m) return true;
  const conditions = Object.keys(m).filter((k) => k !== 'name');
  return conditions.length === 0 || (conditions.length === 1 && m.uri?.prefix === '/');
}
