/**
 * The workload agent's options, from the environment the injection template gives the `istio-proxy` container
 * (injection-and-proxyless.md A2 and B4, istio-xds.md §1.2 and §10, Istio's pilot/cmd/pilot-agent/options). A pure
 * function: the caller (src/cli) passes the environment and the working directory; nothing here reads process.env or
 * the file system. Every problem is reported at once, by variable name.
 *
 * Istio's agent names its files relative to its working directory (`./var/run/secrets/...`; the container runs in
 * `/`), so relative defaults resolve against `cwd` and tests can point a whole agent at a temporary folder.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { fail, ok, type FieldError, type Result } from '../shared/errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** `istiod` and the others as Istio's PILOT_CERT_PROVIDER: which root the agent trusts when it calls the CA. */
export type CertProvider = 'istiod' | 'kubernetes' | 'custom';

export interface AgentConfig {
  podName: string;
  namespace: string;
  instanceIp: string;
  serviceAccount: string | undefined;
  trustDomain: string;
  /** ISTIO_META_CLUSTER_ID (default `Kubernetes`): node metadata and the CA's `clusterid` request header. */
  clusterId: string;
  /** `<ns>.svc.<domainSuffix>`: the 4th part of the node id. */
  dnsDomain: string;
  /** `sidecar~<ip>~<pod>.<ns>~<ns>.svc.<suffix>` (istio-xds.md §1.1). */
  nodeId: string;
  /** ISTIO_META_* (strings) and ISTIO_METAJSON_* (parsed), plus what the agent itself fills in. */
  nodeMetadata: Record<string, unknown>;

  /** CA_ADDR: `host:port` of the CA (TLS). */
  caAddress: string;
  /** The name the CA's serving certificate must carry: CA_ADDR's host, or `istiod.istio-system.svc` for an IP. */
  caServerName: string;
  certProvider: CertProvider;
  /** PEM file with the root(s) that verify the CA's serving certificate; undefined = the system roots (CA_ROOT_CA=SYSTEM). */
  caRootCertPath: string | undefined;
  /** The projected service-account token, re-read on every CA call (it rotates). */
  tokenPath: string;

  /** SECRET_TTL: the lifetime the agent asks for (default 24 h). */
  secretTtlSec: number;
  /** SECRET_GRACE_PERIOD_RATIO (0.5): renew when this share of the lifetime is left. */
  graceRatio: number;
  /** SECRET_GRACE_PERIOD_RATIO_JITTER (0.01): ± on the ratio, so a fleet does not renew in step. */
  graceRatioJitter: number;
  /** `ec` (P-256) with ECC_SIGNATURE_ALGORITHM=ECDSA, else `rsa`. */
  keyType: 'rsa' | 'ec';
  /** WORKLOAD_RSA_KEY_SIZE (2048). */
  rsaBits: number;

  /** Envoy's SDS socket (the bootstrap's `sds-grpc` cluster pipe). */
  sdsSocketPath: string;
  /** `proxyless` with DISABLE_ENVOY=true or ISTIO_META_GENERATOR=grpc (the grpc-agent template sets both). */
  mode: 'envoy' | 'proxyless';
  /** OUTPUT_CERTS: where key.pem, cert-chain.pem and root-cert.pem go (grpc-agent: /var/lib/istio/data). */
  outputCertsDir: string | undefined;
  /** GRPC_XDS_BOOTSTRAP: the gRPC bootstrap the agent writes in proxyless mode. */
  grpcBootstrapPath: string | undefined;
  /** XDS_ADDR: plaintext xDS address the gRPC bootstrap names (see grpc-agent.ts for why plaintext). */
  xdsAddress: string;
}

export interface ParseOptions {
  /** The agent's working directory, for Istio's relative default paths (default `/`, as in the container). */
  cwd?: string;
  /** Cluster DNS suffix (Istio's `--domain` is `<ns>.svc.<this>`; default cluster.local). */
  domainSuffix?: string;
}

export const DEFAULT_CA_ADDR = 'istiod.istio-system.svc:15012';
export const DEFAULT_XDS_ADDR = 'istiod.istio-system.svc:15010';
/** The name on mizzen's (and istiod's) serving certificate (src/ca/serving-cert.ts). */
export const DEFAULT_CA_SERVER_NAME = 'istiod.istio-system.svc';
export const DEFAULT_SDS_SOCKET = './var/run/secrets/workload-spiffe-uds/socket';
/** JWT_POLICY=third-party-jwt (the default): the projected token, audience istio-ca. */
export const THIRD_PARTY_TOKEN_PATH = './var/run/secrets/tokens/istio-token';
/** JWT_POLICY=first-party-jwt: the legacy service-account token. */
export const FIRST_PARTY_TOKEN_PATH = './var/run/secrets/kubernetes.io/serviceaccount/token';
/** The `istio-ca-root-cert` ConfigMap mount (PILOT_CERT_PROVIDER=istiod). */
export const ISTIO_CA_ROOT_PATH = './var/run/secrets/istio/root-cert.pem';
const ROOT_BY_PROVIDER: Record<CertProvider, string> = {
  istiod: ISTIO_CA_ROOT_PATH,
  kubernetes: './var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
  custom: './etc/certs/root-cert.pem',
};
export const DEFAULT_GRPC_BOOTSTRAP = '/etc/istio/proxy/grpc-bootstrap.json';
export const DEFAULT_SECRET_TTL_SEC = 24 * 3600;
/** The CA refuses more (MAX_WORKLOAD_CERT_TTL). */
const MAX_SECRET_TTL_SEC = 90 * 24 * 3600;

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Parses a Go duration (`24h`, `24h0m0s`, `1m30s`, `500ms`) to seconds; undefined if malformed. */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : total;
}

/** `host:port` or `[v6]:port` → parts; undefined if malformed. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

const META = 'ISTIO_META_';
const METAJSON = 'ISTIO_METAJSON_';

export function parseAgentConfig(env: Env, options: ParseOptions = {}): Result<AgentConfig, FieldError[]> {
  const errors: FieldError[] = [];
  const err = (variable: string, message: string) => errors.push({ path: variable, message });
  const cwd = options.cwd ?? '/';
  const resolve = (p: string) => path.resolve(cwd, p);
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const required = (name: string, what: string): string => {
    const v = get(name);
    if (!v) err(name, `required: ${what} (the injection template sets it from the downward API)`);
    return v ?? '';
  };

  const podName = required('POD_NAME', 'the pod name');
  const namespace = required('POD_NAMESPACE', 'the pod namespace');
  const instanceIp = required('INSTANCE_IP', 'the pod IP');
  if (instanceIp && isIP(instanceIp) === 0) err('INSTANCE_IP', `${JSON.stringify(instanceIp)} is not an IP address`);
  const serviceAccount = get('SERVICE_ACCOUNT');
  const trustDomain = get('TRUST_DOMAIN') ?? 'cluster.local';
  if (!/^[a-z0-9.-]+$/i.test(trustDomain)) err('TRUST_DOMAIN', `${JSON.stringify(trustDomain)} is not a valid trust domain`);
  const clusterId = get('ISTIO_META_CLUSTER_ID') ?? 'Kubernetes';
  const domainSuffix = options.domainSuffix ?? 'cluster.local';
  const dnsDomain = `${namespace}.svc.${domainSuffix}`;

  // Addresses.
  const caAddress = get('CA_ADDR') ?? DEFAULT_CA_ADDR;
  const ca = splitHostPort(caAddress);
  if (!ca) err('CA_ADDR', `${JSON.stringify(caAddress)} is not host:port`);
  // An IP (or localhost) cannot be on the serving certificate: verify the name istiod's certificate carries, as a
  // workload that reaches the CA through a Service IP would.
  const caServerName = ca && isIP(ca.host) === 0 && ca.host !== 'localhost' ? ca.host : DEFAULT_CA_SERVER_NAME;
  const xdsAddress = get('XDS_ADDR') ?? DEFAULT_XDS_ADDR;
  if (!splitHostPort(xdsAddress)) err('XDS_ADDR', `${JSON.stringify(xdsAddress)} is not host:port`);

  // Trust for the CA connection.
  const providerText = get('PILOT_CERT_PROVIDER') ?? 'istiod';
  let certProvider: CertProvider = 'istiod';
  if (providerText in ROOT_BY_PROVIDER) certProvider = providerText as CertProvider;
  else err('PILOT_CERT_PROVIDER', `${JSON.stringify(providerText)} is not supported (istiod, kubernetes or custom)`);
  // CA_ROOT_CA (Istio): an explicit root file for the CA connection, or SYSTEM for the OS roots.
  const caRootOverride = get('CA_ROOT_CA');
  const caRootCertPath = caRootOverride === 'SYSTEM' ? undefined : resolve(caRootOverride ?? ROOT_BY_PROVIDER[certProvider]);

  const jwtPolicy = get('JWT_POLICY') ?? 'third-party-jwt';
  let tokenPath = resolve(THIRD_PARTY_TOKEN_PATH);
  if (jwtPolicy === 'first-party-jwt') tokenPath = resolve(FIRST_PARTY_TOKEN_PATH);
  else if (jwtPolicy !== 'third-party-jwt') err('JWT_POLICY', `${JSON.stringify(jwtPolicy)} is not third-party-jwt or first-party-jwt`);

  // Certificate lifetime and rotation.
  let secretTtlSec = DEFAULT_SECRET_TTL_SEC;
  const ttlText = get('SECRET_TTL');
  if (ttlText !== undefined) {
    const ttl = parseGoDuration(ttlText);
    if (ttl === undefined) err('SECRET_TTL', `${JSON.stringify(ttlText)} is not a duration (e.g. 24h, 90m, 3600s)`);
    else if (ttl < 1 || ttl > MAX_SECRET_TTL_SEC) err('SECRET_TTL', `${ttlText} is outside 1s..2160h (the CA's maximum is 90 days)`);
    else secretTtlSec = Math.round(ttl);
  }
  const ratio = (name: string, fallback: number, min: number, max: number): number => {
    const text = get(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max) {
      err(name, `${JSON.stringify(text)} is not a number in [${min}, ${max}]`);
      return fallback;
    }
    return n;
  };
  const graceRatio = ratio('SECRET_GRACE_PERIOD_RATIO', 0.5, 0.01, 0.99);
  const graceRatioJitter = ratio('SECRET_GRACE_PERIOD_RATIO_JITTER', 0.01, 0, 0.5);
  if (graceRatio - graceRatioJitter <= 0 || graceRatio + graceRatioJitter >= 1) {
    err('SECRET_GRACE_PERIOD_RATIO_JITTER', `ratio ${graceRatio} ± ${graceRatioJitter} must stay inside (0, 1)`);
  }

  const algorithm = get('ECC_SIGNATURE_ALGORITHM');
  if (algorithm !== undefined && algorithm !== 'ECDSA') err('ECC_SIGNATURE_ALGORITHM', `${JSON.stringify(algorithm)} is not supported (ECDSA, or unset for RSA)`);
  const keyType = algorithm === 'ECDSA' ? 'ec' : 'rsa';
  const rsaBitsText = get('WORKLOAD_RSA_KEY_SIZE');
  const rsaBits = rsaBitsText === undefined ? 2048 : Number(rsaBitsText);
  if (![2048, 3072, 4096].includes(rsaBits)) err('WORKLOAD_RSA_KEY_SIZE', `${JSON.stringify(rsaBitsText)} is not 2048, 3072 or 4096`);

  // Node metadata: ISTIO_META_<KEY> → <KEY> (string), ISTIO_METAJSON_<KEY> → <KEY> (JSON) (pkg/bootstrap/config.go).
  const nodeMetadata: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    if (value === undefined) continue;
    if (name.startsWith(METAJSON) && name.length > METAJSON.length) {
      try {
        nodeMetadata[name.slice(METAJSON.length)] = JSON.parse(value);
      } catch (e) {
        err(name, `not valid JSON: ${(e as Error).message}`);
      }
    } else if (name.startsWith(META) && name.length > META.length) {
      nodeMetadata[name.slice(META.length)] = value;
    }
  }
  // What the agent fills in itself (extractAttributesMetadata), over anything set by hand.
  Object.assign(nodeMetadata, {
    NAMESPACE: namespace,
    NAME: podName,
    INSTANCE_IPS: instanceIp,
    CLUSTER_ID: clusterId,
    ...(serviceAccount ? { SERVICE_ACCOUNT: serviceAccount } : {}),
  });
  if (nodeMetadata.LABELS !== undefined && (typeof nodeMetadata.LABELS !== 'object' || nodeMetadata.LABELS === null || Array.isArray(nodeMetadata.LABELS))) {
    err('ISTIO_METAJSON_LABELS', 'must be a JSON object of label name to value');
  }

  const mode = get('DISABLE_ENVOY') === 'true' || nodeMetadata.GENERATOR === 'grpc' ? 'proxyless' : 'envoy';
  const outputCerts = get('OUTPUT_CERTS');
  const bootstrapText = get('GRPC_XDS_BOOTSTRAP');

  if (errors.length > 0) return fail(errors);
  return ok({
    podName,
    namespace,
    instanceIp,
    serviceAccount,
    trustDomain,
    clusterId,
    dnsDomain,
    nodeId: `sidecar~${instanceIp}~${podName}.${namespace}~${dnsDomain}`,
    nodeMetadata,
    caAddress,
    caServerName,
    certProvider,
    caRootCertPath,
    tokenPath,
    secretTtlSec,
    graceRatio,
    graceRatioJitter,
    keyType,
    rsaBits,
    sdsSocketPath: resolve(DEFAULT_SDS_SOCKET),
    mode,
    outputCertsDir: outputCerts ? resolve(outputCerts) : undefined,
    grpcBootstrapPath: mode === 'proxyless' ? resolve(bootstrapText ?? DEFAULT_GRPC_BOOTSTRAP) : bootstrapText ? resolve(bootstrapText) : undefined,
    xdsAddress,
  });
}

/** One line per problem, for the command's error output. */
export function formatConfigErrors(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('\n');
}
