// BGP: the message codec (pure). The session FSM, transport and speaker build on this surface.

export * from './constants.js';
export * from './prefix.js';
export * from './attributes.js';
export * from './notification.js';
export * from './framer.js';
export * from './open.js';
export * from './update.js';
export * from './pack.js';
export * from './route-refresh.js';
export * from './message.js';
export { encodeMessage, fromHex, toHex } from './wire.js';
export * from './fsm.js';
export * from './sockopt.js';
export * from './transport.js';
export * from './memory-transport.js';
export * from './session.js';
export * from './speaker.js';
export * from './policy.js';
