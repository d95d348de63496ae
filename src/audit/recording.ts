/**
 * The gateway's recordings (docs/gateway.md, "Recording and replay"): terminal sessions as
 * asciicast v2 (`<id>.cast`), exec output as raw bytes (`<id>.out`, exec-output.ts), each
 * with a small `<id>.json` beside it saying who, where, when, how long, and the file's
 * SHA-256. All in `<state dir>/recordings/`, directory 0700, files 0600.
 *
 * The audit row that ends a session carries `recording: { id, sha256 }`; `audit verify`
 * recomputes the hash (recording-verify.ts). The `.json` is only an index for `list()`:
 * trust comes from the hash in the chained audit row, not from it.
 *
 * Ids are `YYYYMMDDTHHMMSSZ-<8 hex>`: sorting them sorts by start time (to the second), the
 * random part keeps two sessions in the same second apart, and the file is created with
 * O_EXCL, so an id is never reused.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ErrorCode, UsageError } from '../errors.js';
import { castEventLine, castHeaderLine, castSeconds, StreamText, type CastEventCode } from './asciicast.js';
import { EXEC_OUTPUT_MAGIC, execOutputRecordHeader } from './exec-output.js';
import { RecordingFile, type RecordingFileResult } from './recording-file.js';

/** The folder under a gateway's state dir. */
export const RECORDINGS_DIR = 'recordings';
/** Default `--recording-retention`, in days. */
export const DEFAULT_RECORDING_RETENTION_DAYS = 90;

/** What a recording id looks like; anything else is refused before it touches a path. */
export const RECORDING_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

export function recordingsDir(stateDir: string): string {
  return join(stateDir, RECORDINGS_DIR);
}

export interface TerminalMeta {
  operator: string;
  host: string;
  as: string;
  /** The command run in the terminal; null for a login shell. */
  command: string | null;
  cols: number;
  rows: number;
  term: string;
  /** Record keystrokes too ("i" events). They carry passwords typed at prompts: off by default. */
  recordInput: boolean;
}

export interface ExecOutputMeta {
  operator: string;
  host: string;
  as: string;
  command: string;
}

export interface RecordingInfo {
  id: string;
  operator: string;
  host: string;
  as: string;
  /** ISO 8601 UTC. */
  startedAt: string;
  /** null while it is being recorded (or when the gateway stopped before the end). */
  durationMs: number | null;
  /** Size of the file. */
  bytes: number;
  /** Hex SHA-256 of the file; null while it is being recorded. */
  sha256: string | null;
  /** `terminal` (.cast) or `exec` (.out). */
  type?: 'terminal' | 'exec';
  command?: string | null;
  /** Why the recording stopped early (the disk did not keep up, a write failed). */
  error?: string;
}

/** What `end()` reports, and what the audit row references (`{ id, sha256 }`). */
export interface RecordingResult {
  id: string;
  sha256: string;
  bytes: number;
  durationMs: number;
  /** Set when the recording stopped early; the file holds what came before (and `sha256` is its hash). */
  error?: string;
}

export interface TerminalRecording {
  readonly id: string;
  output(chunk: Buffer): void;
  input(chunk: Buffer): void;
  resize(cols: number, rows: number): void;
  end(): Promise<RecordingResult>;
}

export interface ExecOutputRecording {
  readonly id: string;
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  end(): Promise<RecordingResult>;
}

export interface RecordingStore {
  startTerminal(meta: TerminalMeta): TerminalRecording;
  /** An exec command's output, when the user's `record.output` is true. */
  startExecOutput(meta: ExecOutputMeta): ExecOutputRecording;
  list(filter?: { operator?: string }): RecordingInfo[];
  open(id: string): { info: RecordingInfo; path: string };
  prune(retentionDays: number): number;
}

export interface RecordingStoreOptions {
  /** Wall clock for ids, `startedAt` and pruning (tests inject one). */
  now?: () => Date;
  /** Monotonic milliseconds for event times (default `performance.now()`). */
  monotonicMs?: () => number;
  maxQueuedBytes?: number;
  /** Where a recording that stops early is reported (warn). */
  logger?: Pick<Logger, 'warn'>;
}

/** The files of a recording id inside the store. */
function pathsOf(dir: string, id: string) {
  return { cast: join(dir, `${id}.cast`), out: join(dir, `${id}.out`), meta: join(dir, `${id}.json`) };
}

function compactUtc(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

export class FileRecordingStore implements RecordingStore {
  readonly dir: string;
  #now: () => Date;
  #monotonic: () => number;
  #maxQueued: number | undefined;
  #logger: Pick<Logger, 'warn'> | undefined;

  /** The store under `<stateDir>/recordings` (created 0700 on the first recording). */
  constructor(stateDir: string, options: RecordingStoreOptions = {}) {
    this.dir = recordingsDir(stateDir);
    this.#now = options.now ?? (() => new Date());
    this.#monotonic = options.monotonicMs ?? (() => performance.now());
    this.#maxQueued = options.maxQueuedBytes;
    this.#logger = options.logger;
  }

  #begin(base: Omit<RecordingInfo, 'id' | 'startedAt' | 'durationMs' | 'bytes' | 'sha256'>, extension: 'cast' | 'out') {
    // Even the folder is made in the background: a hung disk must not stall the relay here either.
    const dirReady = mkdir(this.dir, { recursive: true, mode: 0o700 }).catch(() => {});
    const started = this.#now();
    const id = `${compactUtc(started)}-${randomBytes(4).toString('hex')}`;
    const paths = pathsOf(this.dir, id);
    const info: RecordingInfo = { id, ...base, startedAt: started.toISOString(), durationMs: null, bytes: 0, sha256: null };
    const file = new RecordingFile(extension === 'cast' ? paths.cast : paths.out, {
      ...(this.#maxQueued === undefined ? {} : { maxQueuedBytes: this.#maxQueued }),
      onError: (message) => this.#logger?.warn({ recording: id, host: base.host, operator: base.operator }, message),
      after: dirReady,
    });
    // The index is written in the background too, and replaced atomically at the end.
    const metaWritten = dirReady.then(() => writeFile(paths.meta, `${JSON.stringify(info)}\n`, { mode: 0o600 })).catch(() => {});
    const t0 = this.#monotonic();
    const finish = async (): Promise<RecordingResult> => {
      const durationMs = Math.round(this.#monotonic() - t0);
      const done: RecordingFileResult = await file.close();
      const result: RecordingResult = { id, sha256: done.sha256, bytes: done.bytes, durationMs };
      if (done.error !== undefined) result.error = done.error;
      const final: RecordingInfo = { ...info, durationMs, bytes: done.bytes, sha256: done.sha256 };
      if (done.error !== undefined) final.error = done.error;
      await metaWritten;
      try {
        await writeFile(`${paths.meta}.tmp`, `${JSON.stringify(final)}\n`, { mode: 0o600 });
        await rename(`${paths.meta}.tmp`, paths.meta);
      } catch (err) {
        this.#logger?.warn({ recording: id }, `cannot write ${paths.meta}: ${(err as Error).message}`);
      }
      return result;
    };
    return { id, file, info, elapsedSeconds: () => castSeconds(this.#monotonic() - t0), finish };
  }

  startTerminal(meta: TerminalMeta): TerminalRecording {
    const begun = this.#begin({ operator: meta.operator, host: meta.host, as: meta.as, type: 'terminal', command: meta.command }, 'cast');
    const { id, file, elapsedSeconds, finish } = begun;
    file.write(Buffer.from(castHeaderLine({
      version: 2,
      width: meta.cols,
      height: meta.rows,
      timestamp: Math.floor(new Date(begun.info.startedAt).getTime() / 1000),
      ...(meta.command === null ? {} : { command: meta.command }),
      title: `${meta.operator}@${meta.host}`,
      env: { TERM: meta.term },
    })));
    const out = new StreamText();
    const inp = new StreamText();
    let ended: Promise<RecordingResult> | null = null;
    const event = (code: CastEventCode, text: string) => {
      if (text !== '') file.write(Buffer.from(castEventLine(elapsedSeconds(), code, text)));
    };
    return {
      id,
      output: (chunk) => {
        if (ended === null) event('o', out.push(chunk));
      },
      input: (chunk) => {
        if (ended === null && meta.recordInput) event('i', inp.push(chunk));
      },
      resize: (cols, rows) => {
        if (ended === null) event('r', `${cols}x${rows}`);
      },
      end: () => {
        if (ended === null) {
          event('o', out.end());
          if (meta.recordInput) event('i', inp.end());
          ended = finish();
        }
        return ended;
      },
    };
  }

  startExecOutput(meta: ExecOutputMeta): ExecOutputRecording {
    const { id, file, finish } = this.#begin({ operator: meta.operator, host: meta.host, as: meta.as, type: 'exec', command: meta.command }, 'out');
    file.write(EXEC_OUTPUT_MAGIC);
    let ended: Promise<RecordingResult> | null = null;
    const record = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
      if (ended !== null || chunk.length === 0) return;
      // Copy: the caller may reuse its buffer (a frame decoder's view) once we return.
      file.write(Buffer.concat([execOutputRecordHeader(stream, chunk.length), chunk]));
    };
    return {
      id,
      stdout: (chunk) => record('stdout', chunk),
      stderr: (chunk) => record('stderr', chunk),
      end: () => (ended ??= finish()),
    };
  }

  /** Every recording (or one operator's), newest first. */
  list(filter: { operator?: string } = {}): RecordingInfo[] {
    const infos: RecordingInfo[] = [];
    for (const id of this.#ids()) {
      const info = this.#read(id);
      if (info !== null && (filter.operator === undefined || info.operator === filter.operator)) infos.push(info);
    }
    return infos.sort((a, b) => (a.startedAt === b.startedAt ? (a.id < b.id ? 1 : -1) : a.startedAt < b.startedAt ? 1 : -1));
  }

  /**
   * The recording `id` and the path of its file.
   *
   * @throws {UsageError} `SW_ERR_NO_RECORDING` when there is no such recording.
   */
  open(id: string): { info: RecordingInfo; path: string } {
    const info = RECORDING_ID_PATTERN.test(id) ? this.#read(id) : null;
    if (info === null) {
      throw new UsageError(ErrorCode.NO_RECORDING, `No recording ${JSON.stringify(id)} in ${this.dir}.`, { hint: '`shellwire recordings` lists them.' });
    }
    const paths = pathsOf(this.dir, id);
    return { info, path: info.type === 'exec' ? paths.out : paths.cast };
  }

  /**
   * Remove recordings that started more than `retentionDays` ago; returns how many. Each
   * leaves `<id>.pruned` (its hash and when) so `audit verify` can tell retention from a
   * deletion it should report.
   */
  prune(retentionDays: number): number {
    if (!(retentionDays >= 0)) throw new RangeError(`retention must be a number of days ≥ 0, got ${retentionDays}`);
    const cutoff = this.#now().getTime() - retentionDays * 86_400_000;
    let removed = 0;
    for (const id of this.#ids()) {
      const info = this.#read(id);
      const started = info === null ? idTime(id) : Date.parse(info.startedAt);
      // Still being written (no hash yet) and young: leave it. An old one without a hash was cut off by a crash.
      if (!(started < cutoff)) continue;
      const paths = pathsOf(this.dir, id);
      const prunedAt = this.#now().toISOString();
      writeFileSync(join(this.dir, `${id}.pruned`), `${JSON.stringify({ id, sha256: info?.sha256 ?? null, prunedAt, retentionDays })}\n`, { mode: 0o600 });
      for (const path of [paths.cast, paths.out, paths.meta]) {
        try {
          unlinkSync(path);
        } catch {
          // not there (an exec recording has no .cast)
        }
      }
      removed++;
    }
    return removed;
  }

  #ids(): string[] {
    if (!existsSync(this.dir)) return [];
    const ids = new Set<string>();
    for (const name of readdirSync(this.dir)) {
      const match = /^(.*)\.(cast|out|json)$/.exec(name);
      if (match !== null && RECORDING_ID_PATTERN.test(match[1]!)) ids.add(match[1]!);
    }
    return [...ids];
  }

  /** The index entry of `id`, with the file's current size; null when there is no recording. */
  #read(id: string): RecordingInfo | null {
    const paths = pathsOf(this.dir, id);
    const file = existsSync(paths.cast) ? paths.cast : existsSync(paths.out) ? paths.out : null;
    if (file === null) return null;
    let info: RecordingInfo;
    try {
      info = JSON.parse(readFileSync(paths.meta, 'utf8')) as RecordingInfo;
    } catch {
      // The index was lost (a crash before it was written): what the id and file still say.
      info = { id, operator: '?', host: '?', as: '?', startedAt: new Date(idTime(id)).toISOString(), durationMs: null, bytes: 0, sha256: null, type: file === paths.out ? 'exec' : 'terminal' };
    }
    try {
      info.bytes = statSync(file).size;
    } catch {
      // removed just now
    }
    return { ...info, id };
  }
}

/** The start time an id carries (to the second). */
function idTime(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  return m === null ? NaN : Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}
