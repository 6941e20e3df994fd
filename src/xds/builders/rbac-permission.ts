/**
 * The permission side of an RBAC policy (`to.operation` and the destination-side `when` keys), as istiod's
 * pilot/pkg/security/authz/model/generator.go builds it.
 */
import type { Json } from './common.ts';
import {
  cidrRange,
  headerMatcher,
  hostMatchers,
  httpOnly,
  isError,
  isPathTemplate,
  metadataMatcher,
  pathMatcher,
  stringMatcher,
  uriTemplate,
  type AttributeGenerator,
  type GenError,
} from './rbac-match.ts';

/** Internal keys for operation fields (model.go). */
export const HOST_KEY = ':authority';
export const METHOD_KEY = ':method';
export const PATH_KEY = 'path-matcher';
export const PORT_KEY = 'destination.port';

/** `hosts`: `:authority`, case-insensitive; mizzen also matches `host:port` when widening (rbac-match.ts). */
const hosts: AttributeGenerator = {
  one: (key, v, widen, ctx) => (ctx.forTCP ? httpOnly(key) : hostMatchers(v, widen && ctx.hardening.hostPorts).map((header) => ({ header }))),
};

/** `methods`: `:method`, case-sensitive. */
const methods: AttributeGenerator = {
  one: (key, v, _w, ctx) => (ctx.forTCP ? httpOnly(key) : [{ header: headerMatcher(METHOD_KEY, v) }]),
};

/** `paths`: url_path (query stripped by Envoy), or a `{*}`/`{**}` template through the uri_template extension. */
const paths: AttributeGenerator = {
  one: (key, v, widen, ctx) => {
    if (ctx.forTCP) return httpOnly(key);
    if (isPathTemplate(v)) return [{ uri_template: uriTemplate(v) }];
    return [{ url_path: pathMatcher(v, widen && ctx.hardening.pathCase && v !== '*') }];
  },
};

function port(v: string): number | GenError {
  if (!/^\d+$/.test(v) || Number(v) > 65535) return { error: `invalid port ${v}` };
  return Number(v);
}

/** `ports` / `destination.port`: the downstream connection's local port. */
const destinationPort: AttributeGenerator = {
  one: (_k, v) => {
    const p = port(v);
    return isError(p) ? p : [{ destination_port: p }];
  },
};

/** `destination.ip`: the downstream connection's local address. */
const destinationIp: AttributeGenerator = {
  one: (_k, v) => {
    const c = cidrRange(v);
    return isError(c) ? c : [{ destination_ip: c }];
  },
};

/** `connection.sni`: the TLS server name (StringMatcher value forms). */
const connectionSni: AttributeGenerator = {
  one: (_k, v) => [{ requested_server_name: stringMatcher(v) }],
};

/**
 * `experimental.envoy.filters.<filter>[<key>]`: dynamic metadata of that filter; a value `[v]` matches v as an element
 * of a list (envoyFilterGenerator.extendedPermission).
 */
const envoyFilter: AttributeGenerator = {
  all: (key, values) => {
    const inner = key.slice('experimental.'.length).replace(/]$/, '');
    const open = inner.indexOf('[');
    if (open < 0) return { error: `invalid key: ${key}` };
    const filter = inner.slice(0, open);
    const field = inner.slice(open + 1);
    const ms: Json[] = values.map((v) =>
      v.startsWith('[') && v.endsWith(']') ? { list_match: { one_of: { string_match: stringMatcher(v.slice(1, -1)) } } } : { string_match: stringMatcher(v) },
    );
    const value = ms.length === 1 ? (ms[0] as Json) : { or_match: { value_matchers: ms } };
    return { metadata: metadataMatcher(filter, [field], value) };
  },
};

/** The permission-side generator for an attribute key (operation fields use the internal keys above), or undefined. */
export function permissionGenerator(key: string): AttributeGenerator | undefined {
  switch (key) {
    case HOST_KEY:
      return hosts;
    case METHOD_KEY:
      return methods;
    case PATH_KEY:
      return paths;
    case PORT_KEY:
      return destinationPort;
    case 'destination.ip':
      return destinationIp;
    case 'connection.sni':
      return connectionSni;
  }
  if (key.startsWith('experimental.envoy.filters.')) return envoyFilter;
  return undefined;
}
