/** Moved to src/transport/duplex-pair.ts (the web console's in-process connections use it); kept for the tests that import it here. */
export { duplexPair, type DuplexEnd } from '../../src/transport/duplex-pair.js';
