export * from './ip.js';
export * from './meta.js';
export * from './selector.js';
export * from './pool.js';
export * from './service.js';
export * from './validate.js';
export { crdObject, crdSources, renderCRDs, toStructural } from './crd.js';
export * from "./manifests.js";
