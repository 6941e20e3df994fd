/** VirtualService `retries` → Envoy route retry_policy (istio-xds.md §3.4; istiod route/retry/retry.go ConvertPolicy). */
import type { HTTPRetry } from '../../config/kinds/virtual-service.ts';
import { compact, duration, type Json } from './common.ts';

const previousHosts = () => [
  { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } },
];

/** The status codes Go's net/http knows (http.StatusText ≠ ""): only these retryOn integers become retriable codes. */
const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404,
  405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502,
  503, 504, 505, 506, 507, 508, 510, 511,
]);

/**
 * Istio's default retry policy for routes whose VirtualService sets none (retry.go; 503 not retried since 1.24). With
 * consistent hashing the previous_hosts predicate is left out: a retry must stay on the hashed host.
 */
export function defaultRetryPolicy(consistentHash: boolean): Json {
  return compact({
    num_retries: { value: 2 },
    retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
    retry_host_predicate: consistentHash ? undefined : previousHosts(),
    host_selection_retry_max_attempts: 5,
  });
}

/** `retries` unset → the default; `attempts` ≤ 0 → no policy; otherwise the default with the user's fields over it. */
export function retryPolicy(retries: HTTPRetry | undefined, consistentHash: boolean): Json | undefined {
  if (!retries) return defaultRetryPolicy(consistentHash);
  if ((retries.attempts ?? 0) <= 0) return undefined;
  const policy = defaultRetryPolicy(consistentHash);
  policy.num_retries = { value: retries.attempts };
  if (retries.retryOn) {
    const codes: number[] = [];
    const on: string[] = [];
    for (const token of retries.retryOn.split(',').map((t) => t.trim()).filter(Boolean)) {
      const n = /^[+-]?\d+$/.test(token) ? Number(token) : NaN;
      if (KNOWN_STATUS.has(n)) codes.push(n);
      else on.push(token);
    }
    if (codes.length > 0) {
      policy.retriable_status_codes = codes;
      if (!on.join(',').includes('retriable-status-codes')) on.push('retriable-status-codes');
    }
    policy.retry_on = on.join(',');
  }
  if (retries.perTryTimeout) policy.per_try_timeout = duration(retries.perTryTimeout);
  // retryIgnorePreviousHosts set: honoured either way, even over consistent hashing.
  if (retries.retryIgnorePreviousHosts === true) policy.retry_host_predicate = previousHosts();
  else if (retries.retryIgnorePreviousHosts === false) delete policy.retry_host_predicate;
  if (retries.retryRemoteLocalities) {
    policy.retry_priority = {
      name: 'envoy.retry_priorities.previous_priorities',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 2 },
    };
  }
  if (retries.backoff) policy.retry_back_off = { base_interval: duration(retries.backoff) };
  return policy;
}
