/**
 * Rows 7c/7d alone (bench/measures/spawn-under-load.ts), without the rest of the table:
 *
 *   npm run build && node --import tsx bench/spawn-under-load.ts [on|off]...
 *
 * Prints each run's round medians and the ratios; `npm run bench` runs the same measure.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../dist/index.js';
import { killChildrenSync } from './lib/children.js';
import { killAllDaemonsSync } from './lib/daemon.js';
import { median, fmt } from './lib/util.js';
import { LOAD_CONNECTIONS, describeRun, measureUnderLoad } from './measures/spawn-under-load.js';

const sw: typeof Shellwire = await import(pathToFileURL(resolve(import.meta.dirname, '../dist/index.js')).href);
const modes = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['on', 'off']) as Array<'on' | 'off'>;
process.on('exit', () => {
  killChildrenSync();
  killAllDaemonsSync();
});
for (const mode of modes) {
  const run = await measureUnderLoad(sw, mode);
  const idle = median([...run.before, ...run.after]);
  const loaded = median(run.loaded);
  process.stdout.write(`spawner ${mode}: idle ${fmt(idle, 3)} ms, ${LOAD_CONNECTIONS} connections ${fmt(loaded, 3)} ms, ratio ${fmt(loaded / idle, 2)}×\n  ${describeRun(run)}\n`);
}
