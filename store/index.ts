export * from './types.js';
export { Reflector, type ReflectorOptions } from './cache.js';
