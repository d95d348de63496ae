/**
 * What `FleetRun` (runOn) and `BroadcastRun` (runBroadcast) share as event streams: they are
 * iterated once (the events come from one queue, drained by one consumer; a second loop would
 * see nothing, or steal half of them), `result()` drains the events nobody iterates, and the
 * summary resolves once. One class, so both runs refuse a second loop with the same error.
 */
import { ErrorCode, RequestError } from '../errors.js';
import type { FleetEvent, FleetSummary } from './results.js';

export abstract class IterateOnce implements AsyncIterable<FleetEvent> {
  #iterated = false;
  readonly #summary: Promise<FleetSummary>;
  #resolveSummary!: (summary: FleetSummary) => void;
  /** For the message: the class ("FleetRun") and the call that makes another run ("runOn()"). */
  readonly #names: { run: string; call: string };

  protected constructor(run: string, call: string) {
    this.#names = { run, call };
    this.#summary = new Promise((resolve) => (this.#resolveSummary = resolve));
  }

  /** Start the run (called once, at the first iteration) and return the iterator of its events. */
  protected abstract begin(): AsyncIterator<FleetEvent>;

  /** The run is over: `result()` resolves with `summary` (the first call wins). */
  protected settle(summary: FleetSummary): void {
    this.#resolveSummary(summary);
  }

  /** @throws {RequestError} `SW_ERR_BAD_REQUEST` when the run was iterated (or `result()` called) before. */
  [Symbol.asyncIterator](): AsyncIterator<FleetEvent> {
    if (this.#iterated) {
      throw new RequestError(ErrorCode.BAD_REQUEST, `A ${this.#names.run} can be iterated once: keep the events of the first loop, or call ${this.#names.call} again.`);
    }
    this.#iterated = true;
    return this.begin();
  }

  /** The summary (never rejects: each host's failure is in its `HostResult`); if nobody iterates the events, they are consumed (and dropped) here. */
  result(): Promise<FleetSummary> {
    if (!this.#iterated) {
      void (async () => {
        for await (const _event of this) {
          // dropped: the caller wants the summary only
        }
      })();
    }
    return this.#summary;
  }
}
