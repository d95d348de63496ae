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

/**
 * Split a whole `.out` file into its records. Throws `SyntaxError` naming the offset when the
 * file is not one (wrong magic, unknown stream, a record cut short).
 */
export function readExecOutput(file: Buffer): Array<{ stream: OutputStream; data: Buffer }> {
  if (!file.subarray(0, EXEC_OUTPUT_MAGIC.length).equals(EXEC_OUTPUT_MAGIC)) {
    throw new SyntaxError('not a shellwire exec output recording (no SWOUT1 header)');
  }
  const records: Array<{ stream: OutputStream; data: Buffer }> = [];
  let offset = EXEC_OUTPUT_MAGIC.length;
  while (offset < file.length) {
    if (offset + 5 > file.length) throw new SyntaxError(`record at byte ${offset} is cut short`);
    const code = file.readUInt8(offset);
    const length = file.readUInt32BE(offset + 1);
    const stream = code === 1 ? 'stdout' : code === 2 ? 'stderr' : null;
    if (stream === null) throw new SyntaxError(`record at byte ${offset} names stream ${code} (1 stdout, 2 stderr)`);
    if (offset + 5 + length > file.length) throw new SyntaxError(`record at byte ${offset} is cut short`);
    records.push({ stream, data: file.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return records;
}
