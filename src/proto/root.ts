/**
 * The one protobuf root: Envoy's API protos from the @grpc/grpc-js-xds package tree (pinned exactly in package.json,
 * since a minor bump can move the Envoy tree) plus our own protos/ folder. protobufjs encodes resources directly, so a
 * resource is encoded once and its bytes shared by every proxy that gets it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const xdsDeps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));
const ownProtos = path.resolve(import.meta.dirname, '../../protos');

const INCLUDE_DIRS = [
  ownProtos,
  ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xdsDeps, d)),
  protobufjsDir, // google/protobuf/descriptor.proto and friends
];

/** The entry files; everything they import is loaded too. Listed, not globbed: the tree ships v2 files without their imports. */
const ENTRY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/admin/v3/config_dump.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
];

function resolveInclude(target: string): string {
  if (path.isAbsolute(target) && fs.existsSync(target)) return target;
  for (const dir of INCLUDE_DIRS) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return target;
}

let cached: protobuf.Root | undefined;

/** Loads (once) and returns the shared root. ~80 ms on first call. */
export function protoRoot(): protobuf.Root {
  if (cached) return cached;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => resolveInclude(target);
  root.loadSync(ENTRY_FILES, { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

export function messageType(fullName: string): protobuf.Type {
  ensureType(fullName);
  return protoRoot().lookupType(fullName);
}

/** Directories already loaded on demand (by package path), so a miss is looked for once. */
const loadedPackages = new Set<string>();

/**
 * Makes sure a message type named in a `typed_config` (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`) is in
 * the root, loading the proto files of its package directory on first use: EnvoyFilter and Telemetry may name any
 * Envoy extension, and listing every one of the tree's protos up front would triple start-up time. Returns whether
 * the type exists.
 */
export function ensureType(fullName: string): boolean {
  const root = protoRoot();
  if (root.lookup(fullName) instanceof protobuf.Type) return true;
  const segments = fullName.split('.');
  // Drop the message name (and any enclosing message names) until a package directory exists.
  for (let cut = segments.length - 1; cut > 0; cut--) {
    const rel = segments.slice(0, cut).join('/');
    if (loadedPackages.has(rel)) continue;
    const dir = INCLUDE_DIRS.map((d) => path.join(d, rel)).find((d) => fs.existsSync(d) && fs.statSync(d).isDirectory());
    if (!dir) continue;
    loadedPackages.add(rel);
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.proto')).sort()) loadFileSafely(root, path.join(rel, f));
    return root.lookup(fullName) instanceof protobuf.Type;
  }
  return false;
}

/**
 * Loads one proto file into the shared root only if it (with its imports) loads and resolves on its own: some files
 * in the tree import protos the package does not ship (envoy/config/trace/v3/opencensus.proto), and a half-loaded
 * file would leave the shared root unable to resolve anything loaded after it.
 */
function loadFileSafely(root: protobuf.Root, file: string): boolean {
  const scratch = new protobuf.Root();
  scratch.resolvePath = (_origin, target) => resolveInclude(target);
  try {
    scratch.loadSync(file, { keepCase: true });
    scratch.resolveAll();
  } catch {
    return false;
  }
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return true;
}

/** Loads every message type named by an `@type` inside a JSON resource (see ensureType); returns the unknown ones. */
export function ensureTypesIn(json: unknown, unknown: string[] = []): string[] {
  if (Array.isArray(json)) {
    for (const v of json) ensureTypesIn(v, unknown);
  } else if (json !== null && typeof json === 'object') {
    for (const [k, v] of Object.entries(json)) {
      if (k === '@type' && typeof v === 'string') {
        const name = v.slice(v.lastIndexOf('/') + 1);
        if (!ensureType(name)) unknown.push(name);
      } else if (typeof v === 'object') ensureTypesIn(v, unknown);
    }
  }
  return unknown;
}
