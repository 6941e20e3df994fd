/** The Envoy RBAC + HCM path-normalisation evaluator moved to src/explain/rbac-eval.ts (`mizzen explain` uses it). */
export * from '../../src/explain/rbac-eval.ts';
