// The lab harness: virtual hosts in network namespaces for tests, benchmarks and `beacon lab`.
export { Lab, LabBridge, LabError, LabHost, LabProcess } from './lab.js';
export type { Attachment, DestroyReport, ExecOptions, LabOptions, LinkEnd, PingResult, PointToPoint, ProcessExit } from './lab.js';
export { LAB_RANGES, LabAddressError, checkLabIp, parseLabCidr } from './addresses.js';
export type { LabCidr, LabFamily } from './addresses.js';
export { LabNameError, MAX_IFNAME } from './names.js';
export { listRuns, removeKeptRuns, sweepStaleRuns, DEFAULT_LOG_ROOT, DEFAULT_STATE_DIR } from './sweep.js';
export { Site, SITE, onLan } from './site.js';
export type { SiteNode, SiteOptions } from './site.js';
export { runScenario } from './scenario.js';
export { failoverSeconds, renderReport, tally } from './report.js';
export type { FailoverReport, LabReport, RestartReport, RouteReport, ServiceReport } from './report.js';
export type { CleanUpReport, RunListing, SweepReport } from './sweep.js';
export type { RunState, OwnerVerdict } from './state.js';
export type { CommandResult } from './system.js';
export type { LinkState } from './commands.js';
