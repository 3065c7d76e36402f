export { Allocator, reasons, type PoolResult, type Reason, type ServiceResult } from './allocator.js';
export { invalidPoolInput, isManaged, poolInput, serviceInput, serviceKey, type PoolInput, type ServiceInput, type Slot } from './inputs.js';
export { sharingConflict } from './sharing.js';
export { mergeConditions, poolConditions, poolConditionTypes, serviceCondition, serviceStatus } from './status.js';
export { plan, type Plan, type PlanError, type PlanPool, type PlanService } from './plan.js';
