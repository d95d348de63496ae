/**
 * Output shared by the fan-out commands (`run`, and `put`/`get` to many hosts): stdout writes
 * that wait for it to drain (a slow reader holds the run back, never our memory), and `--json`
 * as one JSON record a line.
 */
import { write } from './stdio.js';
import { JsonLines } from '../fleet/json-lines.js';
import type { FleetSummary } from '../fleet/results.js';
import type { FleetEvent } from '../fleet/results.js';

/** Every event of `run` to stdout as JSON lines; resolves with its summary. */
export async function printJson(run: AsyncIterable<FleetEvent>): Promise<FleetSummary> {
  const json = new JsonLines();
  let summary: FleetSummary | null = null;
  for await (const event of run) {
    if (event.type === 'summary') summary = event.summary;
    const records = json.records(event);
    if (records !== '') await write(process.stdout, records);
  }
  return summary!;
}
