/**
 * The principal side of an RBAC policy (`from.source` and the source-side `when` keys), as istiod's
 * pilot/pkg/security/authz/model/generator.go builds it. Identities are matched on the peer certificate's SPIFFE URI
 * (`authenticated.principal_name`), with every user string RE2-quoted where it lands in a regex.
 */
import type { Json } from './common.ts';
import {
  cidrRange,
  headerMatcher,
  httpOnly,
  inlineHeaderMatcher,
  isError,
  jwtClaimMatcher,
  jwtStringClaim,
  nameInBrackets,
  namesInNestedBrackets,
  quoteMeta,
  regexMatcher,
  requestHeaderMatchers,
  stringMatcher,
  type AttributeGenerator,
  type GenError,
} from './rbac-match.ts';

export const SPIFFE_PREFIX = 'spiffe://';

const authenticated = (m: Json): Json => ({ authenticated: { principal_name: m } });

/** `principals` / `source.principal`: the SPIFFE URI with `spiffe://` added (`*` → `.+`, `*x` → regex, `x*` → prefix). */
const sourcePrincipal: AttributeGenerator = {
  one: (_k, v) => [authenticated(stringMatcher(v, SPIFFE_PREFIX))],
};

/** `namespaces` / `source.namespace`: regex `.*` + `/ns/<ns>/` + `.*`, a `*` inside the value meaning `.*`. */
const sourceNamespace: AttributeGenerator = {
  one: (_k, v) => [authenticated(regexMatcher(`.*/ns/${v.split('*').map(quoteMeta).join('.*')}/.*`))],
};

/**
 * `serviceAccounts` / `source.serviceAccount`: `sa` (in the policy's namespace) or `ns/sa`, matched as
 * `spiffe://<td>/ns/<ns>/[<k>/<v>/…]sa/<sa>[/…]` (serviceAccountRegex).
 */
const sourceServiceAccount: AttributeGenerator = {
  one: (_k, v, _w, ctx) => {
    const slash = v.indexOf('/');
    const ns = slash >= 0 ? v.slice(0, slash) : ctx.namespace;
    const sa = slash >= 0 ? v.slice(slash + 1) : v;
    return [authenticated(regexMatcher(`spiffe://.+/ns/${quoteMeta(ns)}/(.+/|)sa/${quoteMeta(sa)}(/.+)?`))];
  },
};

/** `ipBlocks` / `source.ip`: the downstream connection's peer address. */
const sourceIp: AttributeGenerator = {
  one: (_k, v) => {
    const c = cidrRange(v);
    return isError(c) ? c : [{ direct_remote_ip: c }];
  },
};

/** `remoteIpBlocks` / `remote.ip`: the original client address (X-Forwarded-For / PROXY protocol, per the HCM). */
const remoteIp: AttributeGenerator = {
  one: (_k, v) => {
    const c = cidrRange(v);
    return isError(c) ? c : [{ remote_ip: c }];
  },
};

const MATCH_ANY = regexMatcher('.+');

/**
 * `requestPrincipals` / `request.auth.principal` (`<iss>/<sub>`, split at the last `/`): jwt_authn payload `iss` AND
 * `sub`, with istiod's wildcard forms (`*`, `*<sub>`, `*<iss-suffix>/<sub>`, `<iss>/*`, `<iss>/<sub-prefix>*`, `<iss>*`).
 */
const requestPrincipal: AttributeGenerator = {
  all: (key, values, ctx) => {
    if (ctx.forTCP) return httpOnly(key);
    const ors = values.map((value) => {
      const idx = value.lastIndexOf('/');
      const found = idx >= 0;
      const iss = found ? value.slice(0, idx) : value;
      const sub = found ? value.slice(idx + 1) : '';
      let mIss: Json;
      let mSub: Json;
      if (value === '*') {
        mIss = MATCH_ANY;
        mSub = MATCH_ANY;
      } else if (value.startsWith('*')) {
        if (found) {
          mIss = iss === '*' ? MATCH_ANY : { suffix: iss.slice(1) };
          mSub = { exact: sub };
        } else {
          mIss = MATCH_ANY;
          mSub = { suffix: value.slice(1) };
        }
      } else if (value.endsWith('*')) {
        if (found) {
          mIss = { exact: iss };
          mSub = sub === '*' ? MATCH_ANY : { prefix: sub.slice(0, -1) };
        } else {
          mIss = { prefix: value.slice(0, -1) };
          mSub = MATCH_ANY;
        }
      } else {
        mIss = { exact: iss };
        mSub = { exact: sub };
      }
      return { and_ids: { ids: [{ metadata: jwtStringClaim('iss', mIss) }, { metadata: jwtStringClaim('sub', mSub) }] } };
    });
    return ors.length === 1 ? (ors[0] as Json) : { or_ids: { ids: ors } };
  },
};

/** `request.auth.audiences` / `presenter` / `claims[a][b]`: the jwt_authn payload claim, list or scalar. */
function claimGenerator(path: (key: string) => string[] | GenError): AttributeGenerator {
  return {
    all: (key, values, ctx) => {
      if (ctx.forTCP) return httpOnly(key);
      const claims = path(key);
      return isError(claims) ? claims : { metadata: jwtClaimMatcher(claims, values) };
    },
  };
}

/** `request.headers[x]` (HTTP only). */
const requestHeader: AttributeGenerator = {
  one: (key, v, widen, ctx) => {
    if (ctx.forTCP) return httpOnly(key);
    const name = nameInBrackets(key.slice('request.headers'.length));
    if (isError(name)) return name;
    return (ctx.hardening.headerLists ? requestHeaderMatchers(name, v, widen) : [headerMatcher(name, v)]).map((header) => ({ header }));
  },
};

/** `request.experimental.inline.headers[x]`: the value as one element of a comma-separated header (HTTP only). */
const requestInlineHeader: AttributeGenerator = {
  one: (key, v, _w, ctx) => {
    if (ctx.forTCP) return httpOnly(key);
    const name = nameInBrackets(key.slice('request.experimental.inline.headers'.length));
    return isError(name) ? name : [{ header: inlineHeaderMatcher(name, v) }];
  },
};

/** The principal-side generator for an attribute key (from.source fields use the same keys), or undefined. */
export function principalGenerator(key: string): AttributeGenerator | undefined {
  switch (key) {
    case 'source.principal':
      return sourcePrincipal;
    case 'source.namespace':
      return sourceNamespace;
    case 'source.serviceAccount':
      return sourceServiceAccount;
    case 'source.ip':
      return sourceIp;
    case 'remote.ip':
      return remoteIp;
    case 'request.auth.principal':
      return requestPrincipal;
    case 'request.auth.audiences':
      return claimGenerator(() => ['aud']);
    case 'request.auth.presenter':
      return claimGenerator(() => ['azp']);
  }
  if (key.startsWith('request.auth.claims')) return claimGenerator((k) => namesInNestedBrackets(k.slice('request.auth.claims'.length)));
  if (key.startsWith('request.experimental.inline.headers')) return requestInlineHeader;
  if (key.startsWith('request.headers')) return requestHeader;
  return undefined;
}
