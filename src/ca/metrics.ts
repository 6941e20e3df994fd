/**
 * CA metrics under Istio's names (security/pkg/server/ca/monitoring.go; ecosystem.md §3), exported without a `_total`
 * suffix as istiod does. Failure counters carry an `error` label with a short reason.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface CaMetrics {
  csrCount: Counter;
  success: Counter;
  csrParsingErrors: Counter<'error'>;
  csrSignErrors: Counter<'error'>;
  idExtractionErrors: Counter<'error'>;
  authnFailures: Counter<'error'>;
  rootExpiry: Gauge;
  chainExpiry: Gauge;
}

/** The CA's metrics on `registry`; reuses ones already registered there (two services, or a restart in tests). */
export function createCaMetrics(registry: Registry): CaMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter<L>({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string): Gauge => (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, registers: [registry] });
  return {
    csrCount: counter('citadel_server_csr_count', 'The number of CSRs received by Citadel server.'),
    success: counter('citadel_server_success_cert_issuance_count', 'The number of certificates issuances that have succeeded.'),
    csrParsingErrors: counter('citadel_server_csr_parsing_err_count', 'The number of errors occurred when parsing the CSR.', ['error']),
    csrSignErrors: counter('citadel_server_csr_sign_err_count', 'The number of errors occurred when signing the CSR.', ['error']),
    idExtractionErrors: counter('citadel_server_id_extraction_err_count', 'The number of errors occurred when extracting the ID from CSR.', ['error']),
    authnFailures: counter('citadel_server_authentication_failure_count', 'The number of authentication failures.', ['error']),
    rootExpiry: gauge('citadel_server_root_cert_expiry_timestamp', 'The unix timestamp, in seconds, when Citadel root cert will expire.'),
    chainExpiry: gauge('citadel_server_cert_chain_expiry_timestamp', 'The unix timestamp, in seconds, when Citadel cert chain will expire.'),
  };
}
