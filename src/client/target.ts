/**
 * The client's view of addresses: `[USER@]HOST[:PORT]` targets. The parsing lives in
 * transport/address.ts because the server needs it too; this module keeps the client's
 * (and the public API's) import path.
 */
export { DEFAULT_PORT, parseTarget, formatTarget, isLoopback, type Target } from '../transport/address.js';
