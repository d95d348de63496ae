/**
 * The fleet API: inventory, target expressions and fan-out. (To be re-exported from
 * `src/index.ts`; see the report of issue 5.)
 */
export { runOn, FleetRun, DEFAULT_FANOUT, DEFAULT_MAX_OUTPUT, TIMEOUT_GRACE_MS, type RunOnOptions } from './run-on.js';
export type { FleetEvent, FleetSummary, HostResult, HostStatus } from './results.js';
export { ConnectionPool, StartSpreader, DEFAULT_CONNECT_RATE, type PoolOptions } from './pool.js';
export { loadInventory, parseInventory, defaultInventoryPath, InventoryError, type FleetHost, type Inventory } from './inventory.js';
export { addHostsToInventory } from './inventory-write.js';
export { resolveTargets, splitTerms, NoHostsMatchedError, type ResolveTargetsOptions } from './targets.js';
export { resolveHost, findInventoryHost, connectArgs, type HostOverrides, type ResolvedHost } from './resolve-host.js';
export { expandRange, foldNames } from './ranges.js';
export { formatGrouped, formatSummary, groupResults, prefixLine } from './format.js';
export { JsonLines, bytesField, fieldBytes } from './json-lines.js';
export { LineSplitter, HostLines, MAX_LINE_BYTES, type Line, type LineEnd } from './line-splitter.js';
export { Announcer, startAnnouncer, discover, expandSubnet, type DiscoveredHost, type DiscoverOptions } from './discovery.js';
