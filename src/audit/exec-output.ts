/**
 * The `.out` file of an exec recording (users.yaml `record: { output: true }`): a command's
 * stdout and stderr as the exact bytes, in the order they came, not text.
 *
 *   file   = magic "SWOUT1\n" (7 bytes) | record*
 *   record = u8 stream (1 stdout, 2 stderr) | u32 big-endian length | length bytes
 *
 * Small on purpose: `readExecOutput` (or ten lines of any language) splits it again.
 */

export const EXEC_OUTPUT_MAGIC = Buffer.from('SWOUT1\n', 'latin1');

export type OutputStream = 'stdout' | 'stderr';

const STREAM_BYTE: Record<OutputStream, number> = { stdout: 1, stderr: 2 };

/** The 5-byte record header for `length` bytes of `stream`. */
export function execOutputRecordHeader(stream: OutputStream, length: number): Buffer {
  // u8 stream | u32 length
  const header = Buffer.allocUnsafe(5);
  header.writeUInt8(STREAM_BYTE[stream], 0);
  header.writeUInt32BE(length, 1);
  return header;
}

/** One record of a `.out` file. */
export interface ExecOutputRecord {
  stream: OutputStream;
  data: Buffer;
}

/**
 * Splits a `.out` file fed in chunks of any size (replay streams a long one), holding at most
 * one record's bytes. Throws `SyntaxError` naming the byte offset when it is not such a file
 * (wrong magic, unknown stream, a record cut short at `end()`).
 */
export class ExecOutputReader {
  #pending: Buffer = Buffer.alloc(0);
  #offset = 0;
  #magicSeen = false;

  push(chunk: Buffer): ExecOutputRecord[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const records: ExecOutputRecord[] = [];
    if (!this.#magicSeen) {
      const n = Math.min(this.#pending.length, EXEC_OUTPUT_MAGIC.length);
      if (!this.#pending.subarray(0, n).equals(EXEC_OUTPUT_MAGIC.subarray(0, n))) {
        throw new SyntaxError('not a shellwire exec output recording (no SWOUT1 header)');
      }
      if (n < EXEC_OUTPUT_MAGIC.length) return records;
      this.#magicSeen = true;
      this.#take(n);
    }
    while (this.#pending.length >= 5) {
      const code = this.#pending.readUInt8(0);
      const stream = code === 1 ? 'stdout' : code === 2 ? 'stderr' : null;
      if (stream === null) throw new SyntaxError(`record at byte ${this.#offset} names stream ${code} (1 stdout, 2 stderr)`);
      const length = this.#pending.readUInt32BE(1);
      if (this.#pending.length < 5 + length) break;
      records.push({ stream, data: this.#pending.subarray(5, 5 + length) });
      this.#take(5 + length);
    }
    return records;
  }

  /** The file is over: throws when it stopped inside its header or a record. */
  end(): void {
    if (!this.#magicSeen) throw new SyntaxError('not a shellwire exec output recording (no SWOUT1 header)');
    if (this.#pending.length > 0) throw new SyntaxError(`record at byte ${this.#offset} is cut short`);
  }

  #take(n: number): void {
    this.#pending = this.#pending.subarray(n);
    this.#offset += n;
  }
}

/** Split a whole `.out` file into its records (see ExecOutputReader). */
export function readExecOutput(file: Buffer): ExecOutputRecord[] {
  const reader = new ExecOutputReader();
  const records = reader.push(file);
  reader.end();
  return records;
}
