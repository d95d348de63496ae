/**
 * Reading a secret or an answer from the user: without echo on a terminal, one line from a
 * pipe (`echo pw | shellwire user passwd bob`). Only the line is taken: what follows it in a
 * pipe is pushed back onto stdin for the command that reads it next (`exec` forwards it).
 */
import { StringDecoder } from 'node:string_decoder';
import { createInterface } from 'node:readline';
import { ErrorCode, UsageError } from '../errors.js';

/** A line longer than this is not a password or an answer: refuse rather than buffer a whole file. */
export const MAX_PROMPT_LINE = 64 * 1024;

/** Exit code after Ctrl-C at a prompt, as a shell reports SIGINT. */
const EXIT_INTERRUPTED = 130;

/**
 * One line from a stream that is not a terminal, without its `\n` or `\r\n`; null when
 * the input ends before any byte. The rest of the chunk is unshifted: stdin stays usable.
 */
export function readPipedLine(input: NodeJS.ReadableStream & { unshift(chunk: Buffer): void } = process.stdin): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const done = (line: Buffer | null) => {
      input.pause();
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      resolve(line === null ? null : new StringDecoder('utf8').end(stripCr(line)));
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const newline = bytes.indexOf(0x0a);
      const head = newline < 0 ? bytes : bytes.subarray(0, newline);
      size += head.length;
      if (size > MAX_PROMPT_LINE) {
        input.pause();
        input.off('data', onData);
        input.off('end', onEnd);
        input.off('error', onError);
        reject(new UsageError(ErrorCode.BAD_CONFIG, `The line on standard input is longer than ${MAX_PROMPT_LINE} bytes; expected one short line.`));
        return;
      }
      parts.push(head);
      if (newline < 0) return;
      const rest = bytes.subarray(newline + 1);
      done(Buffer.concat(parts));
      if (rest.length > 0) input.unshift(rest);
    };
    // The last line may lack its newline (`printf pw |`); no byte at all is "no line".
    const onEnd = () => done(size === 0 && parts.length === 0 ? null : Buffer.concat(parts));
    const onError = (err: Error) => {
      input.off('data', onData);
      input.off('end', onEnd);
      reject(err);
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.resume();
  });
}

function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}

/**
 * A line typed on the terminal without echo. Enter ends it; Backspace removes one character
 * (a whole code point: `é` and emoji too); Ctrl-U clears the line; Ctrl-C exits 130; Ctrl-D
 * on an empty line is the end of input (null), as in a shell.
 */
export function readTerminalSecret(prompt: string, input: NodeJS.ReadStream = process.stdin): Promise<string | null> {
  return new Promise((resolve) => {
    process.stderr.write(prompt);
    input.setRawMode(true);
    input.resume();
    // A keypress may arrive split across reads: decode across chunks.
    const decoder = new StringDecoder('utf8');
    let chars: string[] = [];
    const end = (value: string | null, rest: string) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      if (rest !== '') input.unshift(Buffer.from(rest));
      process.stderr.write('\n');
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      const text = decoder.write(chunk);
      const points = Array.from(text);
      for (let i = 0; i < points.length; i++) {
        const ch = points[i]!;
        const rest = () => points.slice(i + 1).join('').replace(/^\n/, '');
        if (ch === '\r' || ch === '\n') return end(chars.join(''), rest());
        if (ch === '\x03') {
          input.setRawMode(false);
          process.stderr.write('\n');
          process.exit(EXIT_INTERRUPTED);
        }
        if (ch === '\x04') {
          if (chars.length === 0) return end(null, rest());
          continue; // as readpassphrase: Ctrl-D inside a line is not part of it
        }
        if (ch === '\x7f' || ch === '\b') chars.pop();
        else if (ch === '\x15') chars = [];
        else chars.push(ch);
      }
    };
    input.on('data', onData);
  });
}

/**
 * A password or passphrase: from the terminal without echo, else the first line of stdin.
 * An empty one, or none (the input ended), is refused here with a clear message: sent on, it
 * would only fail the login and count towards the daemon's lock-out.
 */
export async function readSecretLine(prompt: string): Promise<string> {
  const input = process.stdin;
  const value = input.isTTY ? await readTerminalSecret(prompt, input) : await readPipedLine(input);
  if (value === null) {
    throw new UsageError(ErrorCode.NO_CREDENTIALS, input.isTTY ? 'No password given (end of input at the prompt).' : 'No password on standard input: it ended before a line (pipe one: echo "$PW" | shellwire …).');
  }
  if (value === '') throw new UsageError(ErrorCode.NO_CREDENTIALS, 'The password is empty; nothing was sent (an empty password never logs in).');
  return value;
}

/**
 * A yes/no question (host keys, confirmations); true only for "yes" (or "y" when
 * `short`). The end of input (Ctrl-D, a closed pipe) answers no at once, never hangs.
 */
export async function askYesNo(question: string, options: { short?: boolean; onInterrupt?: () => void } = {}): Promise<boolean> {
  const accept = options.short ? /^y(es)?$/i : /^yes$/i;
  const answer = await askLine(question, options);
  return answer !== null && accept.test(answer.trim());
}

/**
 * One answer line (echoed), or null at the end of input (Ctrl-D, a closed pipe), which
 * callers take as no at once, never hanging.
 */
export async function askLine(question: string, options: { onInterrupt?: () => void } = {}): Promise<string | null> {
  if (!process.stdin.isTTY) {
    process.stderr.write(question);
    const answer = await readPipedLine(process.stdin);
    process.stderr.write('\n');
    return answer;
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // On a terminal readline takes Ctrl-C as a key: without this it would only pause.
  if (options.onInterrupt) rl.on('SIGINT', options.onInterrupt);
  try {
    const answer = await new Promise<string | null>((resolve) => {
      // 'close' comes first on Ctrl-D; after an answer, the close below finds it settled.
      rl.once('close', () => resolve(null));
      rl.question(question, resolve);
    });
    // Ctrl-D leaves the cursor after the question: what is printed next gets its own line.
    if (answer === null) process.stderr.write('\n');
    return answer;
  } finally {
    rl.close();
  }
}
