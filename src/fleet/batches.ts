/**
 * Rolling batches, as Ansible's `serial`: with `batchSize` N the hosts run N at a time and a
 * batch starts only when the previous one has finished; with `canary` the first host runs
 * alone first. Without either, everything is one batch (the fan-out limit still applies).
 */
export function planBatches<T>(hosts: readonly T[], batchSize?: number, canary?: boolean): T[][] {
  if (hosts.length === 0) return [[]];
  const batches: T[][] = [];
  let rest = [...hosts];
  if (canary) {
    batches.push(rest.slice(0, 1));
    rest = rest.slice(1);
  }
  const size = batchSize !== undefined && batchSize > 0 ? Math.floor(batchSize) : rest.length;
  for (let i = 0; i < rest.length; i += size) batches.push(rest.slice(i, i + size));
  return batches;
}
