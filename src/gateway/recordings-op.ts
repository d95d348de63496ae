/**
 * The `gateway` channel kind's ops `recordings` and `recording` (GATEWAY-SPEC.md,
 * "Recording"): what `shellwire recordings --via GW` and `shellwire replay ID --via GW` ask.
 * The gateway's kind handler calls `recordingsOp()` and sends `body` as STDOUT data (with the
 * channel's credit: it is a stream, so a long recording never sits in memory), then EXIT 0;
 * a thrown `ShellwireError` becomes OPEN_FAIL with its code and message.
 *
 *   { op: 'recordings', user?: string }  →  JSON array of RecordingInfo, newest first
 *   { op: 'recording', id: string }      →  the recording's file (.cast, or .out for exec)
 *
 * An operator sees her own recordings; one with `recordings: all` in the gateway's users.yaml
 * (`canSeeAll`) sees every one. Someone else's id gets the same answer as an unknown one, so
 * the op does not reveal which recordings exist.
 */
import { createReadStream, fstatSync, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import { ErrorCode, RequestError, UsageError } from '../errors.js';
import type { RecordingInfo, RecordingStore } from '../audit/recording.js';

export interface RecordingsOpResult {
  /** What goes to the operator as STDOUT data. */
  body: Readable;
  /** Its length in bytes (known up front). Consume it or `destroy()` it: a file's descriptor is open. */
  bytes: number;
  /** For `recording`: the recording sent (the gateway's audit row may name it). */
  info?: RecordingInfo;
}

/**
 * Answer one `recordings` or `recording` op for `operator`.
 *
 * @throws {RequestError} `SW_ERR_BAD_REQUEST` for params that are not one of the two shapes.
 * @throws {UsageError} `SW_ERR_NO_RECORDING` for an id that does not exist or is not the operator's.
 * @throws {RequestError} `SW_ERR_DENIED` for `user` naming someone else without `recordings: all`.
 */
export function recordingsOp(store: RecordingStore, operator: string, params: unknown, canSeeAll: boolean): RecordingsOpResult {
  const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
  if (p['op'] === 'recordings') {
    const user = p['user'];
    if (user !== undefined && typeof user !== 'string') throw badRequest('"user" must be a string');
    if (user !== undefined && user !== operator && !canSeeAll) {
      throw new RequestError(ErrorCode.DENIED, `${operator} may list only their own recordings (users.yaml: recordings: all lists everyone's)`);
    }
    const filter = user !== undefined ? { operator: user } : canSeeAll ? {} : { operator };
    const body = Buffer.from(`${JSON.stringify(store.list(filter))}\n`);
    return { body: Readable.from([body]), bytes: body.length };
  }
  if (p['op'] === 'recording') {
    const id = p['id'];
    if (typeof id !== 'string') throw badRequest('"recording" needs "id", a string');
    let found: { info: RecordingInfo; path: string } | null = null;
    try {
      found = store.open(id);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
    }
    if (found === null || (!canSeeAll && found.info.operator !== operator)) {
      throw new UsageError(ErrorCode.NO_RECORDING, `No recording ${JSON.stringify(id)} for ${operator} on this gateway.`, {
        hint: '`shellwire recordings --via GW` lists the ones you may replay.',
      });
    }
    // Opened now, so what is sent is the file that was found (a prune in between cannot swap it)
    // and its size is that file's. The caller consumes or destroys `body` (which closes it).
    const fd = openSync(found.path, 'r');
    return { body: createReadStream('', { fd }), bytes: fstatSync(fd).size, info: found.info };
  }
  throw badRequest(`unknown op ${JSON.stringify(p['op'])}: the gateway kind takes hosts, recordings or recording`);
}

function badRequest(message: string): RequestError {
  return new RequestError(ErrorCode.BAD_REQUEST, message);
}
