export {
  addressSortKey,
  backendKey,
  buildFrontends,
  defaultAffinityTimeoutSeconds,
  endpointSortKey,
  frontendKey,
  lbAlgorithmAnnotations,
  type Algorithm,
  type Backend,
  type BackendState,
  type Frontend,
  type FrontendInput,
  type FrontendType,
  type Problem,
  type ProblemReason,
  type Protocol,
} from './model.js';
export { desiredHealthChecks, type HealthCheckInput, type HealthCheckListener, type HealthCheckProblem, type HealthCheckProblemReason } from './health-check.js';
export { DEFAULT_MAGLEV_TABLE_SIZE, MAGLEV_TABLE_SIZES, hashString, isPrime, maglevTable } from './maglev.js';
export {
  applyDelta,
  describeServices,
  emptyDatapathState,
  planDatapath,
  planDatapathFull,
  planDatapathChanges,
  type DatapathBackend,
  type DatapathDelta,
  type DatapathPlan,
  type DatapathService,
  type DatapathState,
  type FrontendAddress,
  type Op,
  type PlanOptions,
  type ServiceDescription,
} from './state.js';
export { decodeEntry, mapNames, statNames, type StatName } from './layout.js';
