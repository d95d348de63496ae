/**
 * A seeded generator of hostile client sessions for the protocol fuzz (test/integration/
 * fuzz.test.ts, bench/fuzz.ts). Pure: it only builds byte scripts; test/helpers/fuzz-runner.ts
 * plays them against a daemon.
 *
 * A session is fully determined by (seed, index), so any session can be replayed alone
 * (`FUZZ_SEED=… FUZZ_SESSION=…`) and shrunk step by step. The generator keeps its own view of
 * the channels it opened so that most of a long session stays valid (a protocol error is fatal
 * and ends the connection, which would waste the rest of the script); each session then ends
 * in one of many ways: a fatal frame, a bit flip, a truncated frame, an abrupt disconnect,
 * GOODBYE, or an orderly close.
 *
 * Safety: the daemon runs these commands for real. Commands come from a fixed pool of
 * harmless ones; odd bytes only ever reach argv entries, env values and text after `#` in a
 * shell command, never the shell's parser, and the runner starts the daemon as an
 * unprivileged account with a scratch directory as its working and file root.
 */
import { FrameType, encodeFrame, frameTypeName } from '../../src/protocol/frame.js';
import { ALLOWED_SIGNALS, encodeJson, encodeWindow, FEATURES, PROTOCOL_MAGIC } from '../../src/protocol/messages.js';

const U32_MAX = 0xffffffff;

/** sfc32: small, fast, seedable; good enough to pick fuzz moves. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** Integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** Pick by weight: `[[weight, value], …]`. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    const total = table.reduce((sum, [w]) => sum + w, 0);
    let x = this.float() * total;
    for (const [w, value] of table) {
      x -= w;
      if (x < 0) return value;
    }
    return table[table.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** The seed of session `index` of a run: sessions are independent of each other. */
export function sessionSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export type Step =
  /** Write these bytes (holding `frames` frames, maybe a cut one). */
  | { op: 'send'; bytes: Buffer; frames: number; what: string }
  /** Wait for a frame of this type (on this channel) from the daemon, the close, or the timeout. */
  | { op: 'await'; type: FrameType; channel?: number; timeoutMs: number; what: string }
  | { op: 'sleep'; ms: number }
  /** Stop reading from the socket (a stalled reader), or start again. */
  | { op: 'pause' }
  | { op: 'resume' }
  /** Half-close (TLS close_notify + FIN), or drop the connection at once. */
  | { op: 'end' }
  | { op: 'destroy' };

export type SessionMode = 'prelogin' | 'valid' | 'chaos' | 'stalled';

export interface FuzzSession {
  index: number;
  seed: number;
  mode: SessionMode;
  /** Local address to connect from: sessions that may fail authentication use their own, so
   *  the daemon's per-address brute-force lockout never hits the valid sessions. */
  source: string;
  steps: Step[];
}

export interface FuzzEnvironment {
  /** The daemon's access token. */
  token: string;
  /** A scratch directory the daemon account owns: working directory and file root. */
  root: string;
  /** A regular file inside `root` (a cwd that is not a directory). */
  file: string;
}

export interface GenerateOptions {
  /** Rough number of frames for a `valid` session; others are short. */
  maxFrames: number;
  /** Force a mode (replays and focused runs); otherwise drawn from `modeWeights`. */
  mode?: SessionMode;
  modeWeights?: ReadonlyArray<readonly [number, SessionMode]>;
  /** Longest stall of a stalled reader, ms. */
  maxStallMs?: number;
}

export const DEFAULT_MODE_WEIGHTS: ReadonlyArray<readonly [number, SessionMode]> = [
  [3, 'prelogin'],
  [5, 'valid'],
  [3, 'chaos'],
  [1, 'stalled'],
];

/** One line per step, with the start of each frame in hex: what a reproducer needs. */
export function describeSession(session: FuzzSession, token?: string): string {
  const lines = [`session ${session.index} (seed ${session.seed}, mode ${session.mode}, from ${session.source}):`];
  for (const step of session.steps) {
    switch (step.op) {
      case 'send': {
        let hex = step.bytes.subarray(0, 64).toString('hex');
        if (step.bytes.length > 64) hex += `… (${step.bytes.length} bytes)`;
        let what = step.what;
        if (token) what = what.split(token).join('$TOKEN');
        lines.push(`  send ${what} [${step.frames} frame(s)] ${hex}`);
        break;
      }
      case 'await':
        lines.push(`  await ${frameTypeName(step.type)}${step.channel !== undefined ? ` on ${step.channel}` : ''} (${step.timeoutMs} ms)`);
        break;
      case 'sleep':
        lines.push(`  sleep ${step.ms} ms`);
        break;
      default:
        lines.push(`  ${step.op}`);
    }
  }
  return lines.join('\n');
}

export function frameCount(session: FuzzSession): number {
  let n = 0;
  for (const step of session.steps) if (step.op === 'send') n += step.frames;
  return n;
}

// ---------------------------------------------------------------------------------------
// Building blocks

/** Strings a sloppy decoder would trip on: controls, lone surrogates, RTL marks, long runs. */
function oddString(rng: Rng, maxLength = 40): string {
  const pieces = [
    '\u0001', '\u001b[31m', '\u007f', '\u0085', '\u00ff', '\u200f', '\u2028', '\ufeff', '\ufffd',
    '\ud800', '\udfff', '\ud83d\ude00', 'é', 'ü', '$HOME', '`x`', '$(x)', "'", '"', '\\', '%s%n', ' ', '\t', '*', '~', '-', '--', '../',
  ];
  let s = '';
  const n = rng.int(0, maxLength);
  while (s.length < n) s += rng.chance(0.6) ? rng.pick(pieces) : String.fromCharCode(rng.int(0x20, 0x7e));
  return s;
}

/** Text safe to put after `#` in a shell command: anything but a line break and NUL. */
function commentText(rng: Rng): string {
  return oddString(rng, 60).replace(/[\n\r\u2028\u2029\u0085]/g, '?').split('\0').join('?');
}

/** A file name: no slash, no NUL. */
function oddName(rng: Rng, maxLength: number): string {
  return oddString(rng, maxLength).split('\0').join('_').split('/').join('_');
}

function frame(type: number, channel: number, payload?: Uint8Array): Buffer {
  return encodeFrame(type as FrameType, channel, payload);
}

/** A frame whose header claims `length` whatever the payload really is. */
function rawFrame(length: number, type: number, channel: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUInt32BE(length >>> 0, 0);
  header.writeUInt8(type & 0xff, 4);
  header.writeUInt32BE(channel >>> 0, 5);
  return Buffer.concat([header, payload]);
}

const UNKNOWN_TYPES = [0x00, 0x06, 0x0f, 0x1c, 0x20, 0x7f, 0x80, 0xff];

interface Channel {
  id: number;
  kind: 'exec' | 'session' | 'file-put' | 'file-other';
  /** STDIN bytes we may still send without a WINDOW from the daemon (kept well under its grant). */
  stdinBudget: number;
  /** Credit we granted so far (the daemon refuses a total above 2^32-1). */
  granted: number;
  eofSent: boolean;
  pty: boolean;
}

/** Builds one session's steps; tracks channels so the valid parts stay valid. */
class SessionBuilder {
  readonly steps: Step[] = [];
  readonly open = new Map<number, Channel>();
  readonly closed: number[] = [];
  frames = 0;
  #nextId = 1;

  constructor(readonly rng: Rng, readonly env: FuzzEnvironment) {}

  send(bytes: Buffer, frames: number, what: string): void {
    this.steps.push({ op: 'send', bytes, frames, what });
    this.frames += frames;
  }

  json(type: FrameType, channel: number, value: unknown, what: string): void {
    this.send(frame(type, channel, encodeJson(value)), 1, what);
  }

  hello(overrides: Record<string, unknown> = {}): Buffer {
    return frame(
      FrameType.HELLO,
      0,
      encodeJson({
        magic: PROTOCOL_MAGIC, versions: [1], features: [...FEATURES], client: 'fuzz/0',
        auth: [{ method: 'token', token: this.env.token }], ...overrides,
      }),
    );
  }

  login(): void {
    this.send(this.hello(), 1, 'HELLO (valid token)');
    this.steps.push({ op: 'await', type: FrameType.WELCOME, timeoutMs: 5_000, what: 'WELCOME' });
  }

  newId(): number {
    // Mostly small ids counting up, sometimes a huge one (ids are u32; 0 is the connection).
    const id = this.rng.chance(0.05) ? this.rng.int(2 ** 31, U32_MAX) : this.#nextId++;
    return this.open.has(id) || this.closed.includes(id) ? this.#nextId++ : id;
  }

  sleep(ms: number): void {
    this.steps.push({ op: 'sleep', ms });
  }

  // --- valid moves: the daemon must carry on after each --------------------------------

  openExec(options: { heavy?: boolean } = {}): void {
    const rng = this.rng;
    const id = this.newId();
    // A stalled reader asks for a huge window, so only TCP backpressure holds the daemon back.
    const window = options.heavy ? rng.pick([2 ** 31, U32_MAX]) : rng.pick([1, 2, 1024, 65536, 2 * 1024 * 1024, 2 ** 31, U32_MAX]);
    const maxPacket = options.heavy ? rng.pick([1024, 65536, 1024 * 1024]) : rng.pick([1, 3, 1024, 65536, 1024 * 1024]);
    const request: Record<string, unknown> = { kind: 'exec', window, maxPacket };
    const commands = options.heavy
      ? ['cat /dev/zero', 'yes', 'yes >&2', 'head -c 50000000 /dev/zero', 'seq 1 10000000', 'cat']
      : [
        'true', 'echo ok', 'cat', 'cat >/dev/null', 'head -c 100000 /dev/zero', 'sleep 0.2', 'sleep 30', 'exit 3',
        'yes | head -n 20000', 'printf "a\\000b"', 'sleep 30 &', 'kill -STOP $$', 'echo err >&2; exit 1', 'seq 1 5000',
        `true #${commentText(rng)}`, `echo ok #${commentText(rng)}`,
      ];
    const shape = rng.weighted([[6, 'command'], [2, 'argv'], [1, 'pty']] as const);
    if (shape === 'argv') {
      request.argv = rng.pick([
        ['echo', oddString(rng)], ['cat'], ['true'], ['/nonexistent/fuzz-binary'], [this.env.file], ['sleep', '30'],
        ['printf', '%s', oddString(rng, 2000)], [oddString(rng, 10) || 'x'],
      ]);
    } else {
      request.command = rng.pick(commands);
    }
    const pty = shape === 'pty';
    if (pty) {
      request.pty = { term: rng.pick(['xterm', 'dumb', oddString(rng, 8)]), cols: rng.int(1, 65535), rows: rng.int(1, 65535) };
      if (rng.chance(0.2)) delete request.command; // the account's login shell
    }
    // Without cwd the command starts in the account's home, which may not exist (OPEN_FAIL).
    const mayFail = rng.chance(0.05);
    if (!mayFail) request.cwd = this.env.root;
    if (rng.chance(0.3)) request.env = this.envObject(true);
    if (rng.chance(0.1)) request.timeoutMs = rng.int(1, 500);
    const sessions = [...this.open.values()].filter((c) => c.kind === 'session');
    if (!pty && sessions.length > 0 && rng.chance(0.3)) {
      request.session = rng.pick(sessions).id;
      delete request.cwd;
    }
    this.json(FrameType.OPEN, id, request, `OPEN exec ${JSON.stringify(request).slice(0, 200)}`);
    if (mayFail && request.session === undefined) return void this.closed.push(id);
    // The daemon grants 2 MiB of STDIN; stay at half so no WINDOW is needed.
    this.open.set(id, { id, kind: 'exec', stdinBudget: 1024 * 1024, granted: window, eofSent: false, pty });
  }

  envObject(valid: boolean): Record<string, unknown> {
    const rng = this.rng;
    const env: Record<string, unknown> = {};
    const names = valid
      ? ['A', 'FUZZ_X', 'LANG', 'LC_ALL', 'PATH', 'LD_PRELOAD', 'IFS', 'HOME', 'ünï', 'A B', '1X', 'x'.repeat(300), oddString(rng, 12) || 'y']
      : ['', '=', 'A=B', '\u0000', 'A\u0000B'];
    const n = rng.int(1, 4);
    for (let i = 0; i < n; i++) {
      const name = rng.pick(names);
      if (name === 'FUZZ_RUN_TAG') continue;
      env[name] = valid
        ? rng.weighted([[6, oddString(rng)], [1, ''], [1, 'v'.repeat(rng.int(1000, 50_000))]] as const)
        : rng.pick<unknown>([1, null, true, [], {}, 'a\u0000b', oddString(rng)]);
    }
    return env;
  }

  openSession(): void {
    const id = this.newId();
    const request: Record<string, unknown> = { kind: 'session', window: 1, maxPacket: 1024 };
    const mayFail = this.rng.chance(0.1);
    if (!mayFail) request.cwd = this.env.root;
    if (this.rng.chance(0.3)) request.env = this.envObject(true);
    this.json(FrameType.OPEN, id, request, `OPEN session ${JSON.stringify(request).slice(0, 200)}`);
    if (mayFail) return void this.closed.push(id);
    this.open.set(id, { id, kind: 'session', stdinBudget: 0, granted: 1, eofSent: false, pty: false });
  }

  openFile(): void {
    const rng = this.rng;
    const id = this.newId();
    const op = rng.pick(['put', 'get', 'stat', 'list', 'mkdir'] as const);
    const path = rng.pick([
      `${this.env.root}/f${rng.int(0, 20)}`, this.env.root, this.env.file, `${this.env.root}/d${rng.int(0, 5)}/x`, `${this.env.root}/../escape`,
      '/etc/passwd', 'relative', `${this.env.root}/${oddName(rng, 20)}`,
    ]);
    const request: Record<string, unknown> = { kind: 'file', window: rng.pick([1, 4096, 2 * 1024 * 1024, U32_MAX]), maxPacket: rng.pick([1, 4096, 65536]), op, path };
    if (op === 'put') Object.assign(request, { size: rng.int(0, 5000), mode: rng.pick([0o644, 0o600, 0o7777]), mtimeMs: rng.int(0, 2e12), resume: rng.chance(0.5) });
    if (op === 'put' && rng.chance(0.2)) request.name = rng.pick(['n', 'x.txt', oddName(rng, 8) || 'z']);
    if (op === 'get' && rng.chance(0.3)) request.offset = rng.int(0, 10_000);
    // Not on the root itself: a chmod 000 of the fuzz's own cwd would only starve later sessions.
    if (op === 'mkdir' && path !== this.env.root && rng.chance(0.5)) request.mode = rng.int(0, 0o7777);
    this.json(FrameType.OPEN, id, request, `OPEN file ${JSON.stringify(request).slice(0, 200)}`);
    this.open.set(id, { id, kind: op === 'put' ? 'file-put' : 'file-other', stdinBudget: op === 'put' ? 4096 : 0, granted: request.window as number, eofSent: false, pty: false });
  }

  pingBurst(max: number): void {
    const n = this.rng.int(1, max);
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(frame(FrameType.PING, 0, this.rng.bytes(8)));
    this.send(Buffer.concat(parts), n, `${n} x PING`);
  }

  /** A few valid frames on one of the open channels. */
  channelMove(): void {
    const rng = this.rng;
    const channels = [...this.open.values()];
    if (channels.length === 0) return this.pingBurst(20);
    const ch = rng.pick(channels);
    if (ch.kind === 'session') {
      if (rng.chance(0.3)) this.closeChannel(ch);
      else this.openExec();
      return;
    }
    const move = rng.weighted([[5, 'stdin'], [2, 'window'], [1, 'signal'], [1, 'resize'], [1, 'eof'], [1, 'close']] as const);
    switch (move) {
      case 'stdin': {
        if (ch.eofSent && ch.kind === 'file-put') return;
        const n = rng.int(1, 50);
        const parts: Buffer[] = [];
        let sent = 0;
        for (let i = 0; i < n; i++) {
          const size = Math.min(rng.pick([0, 1, 7, 100, 1024, 4096]), ch.stdinBudget);
          ch.stdinBudget -= size;
          parts.push(frame(FrameType.STDIN, ch.id, rng.bytes(size)));
          sent++;
        }
        this.send(Buffer.concat(parts), sent, `${sent} x STDIN on ${ch.id}`);
        return;
      }
      case 'window': {
        const increment = Math.min(rng.pick([1, 100, 65536, 2 * 1024 * 1024]), U32_MAX - ch.granted);
        if (increment <= 0) return;
        ch.granted += increment;
        this.send(frame(FrameType.WINDOW, ch.id, encodeWindow(increment)), 1, `WINDOW +${increment} on ${ch.id}`);
        return;
      }
      case 'signal':
        if (ch.kind !== 'exec') return;
        this.json(FrameType.SIGNAL, ch.id, { signal: rng.pick(ALLOWED_SIGNALS) }, `SIGNAL on ${ch.id}`);
        return;
      case 'resize':
        if (ch.kind !== 'exec') return;
        this.json(FrameType.RESIZE, ch.id, { cols: rng.int(1, 65535), rows: rng.int(1, 65535) }, `RESIZE on ${ch.id}`);
        return;
      case 'eof':
        if (ch.eofSent) return;
        ch.eofSent = true;
        if (ch.kind === 'file-put') {
          // Usually a hash that does not match what was sent: the put must fail cleanly.
          this.json(FrameType.EOF, ch.id, { sha256: rng.bytes(32).toString('hex'), size: rng.int(0, 5000) }, `EOF (put) on ${ch.id}`);
        } else if (ch.kind === 'exec') {
          this.send(frame(FrameType.EOF, ch.id), 1, `EOF on ${ch.id}`);
        }
        return;
      case 'close':
        this.closeChannel(ch);
        return;
    }
  }

  closeChannel(ch: Channel): void {
    this.send(frame(FrameType.CLOSE, ch.id), 1, `CLOSE ${ch.id}`);
    this.open.delete(ch.id);
    this.closed.push(ch.id);
  }

  /** OPENs the daemon must refuse with OPEN_FAIL (or run and fail), keeping the connection. */
  refusedOpen(): void {
    const rng = this.rng;
    const id = this.newId();
    const request: Record<string, unknown> = rng.pick<Record<string, unknown>>([
      { kind: 'unknown-kind', window: 1, maxPacket: 1 },
      { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: '/nonexistent/fuzz' },
      { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: this.env.file },
      { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: oddString(rng) },
      { kind: 'session', window: 1, maxPacket: 1, cwd: '/nonexistent/fuzz' },
      { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: this.env.root, pty: { term: 'xterm', cols: 80, rows: 24 }, session: undefined },
      { kind: 'file', window: 1024, maxPacket: 1024, op: 'get', path: '/nonexistent/fuzz' },
      { kind: 'file', window: 1024, maxPacket: 1024, op: 'stat', path: '/proc/self/environ' },
      // One env string over the kernel's 128 KiB limit: spawn fails with E2BIG.
      { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: this.env.root, env: { BIG: 'v'.repeat(200_000) } },
      { kind: 'exec', window: 1024, maxPacket: 1024, argv: ['/nonexistent/fuzz-binary'], cwd: this.env.root },
    ]);
    this.json(FrameType.OPEN, id, request, `OPEN (to be refused) ${JSON.stringify(request).slice(0, 200)}`);
    // Its id is free again after OPEN_FAIL, or open if the daemon ran it: never touch it again.
    this.closed.push(id);
  }

  // --- fatal moves: the daemon answers GOODBYE and closes; it must not crash -----------

  fatalMove(): void {
    const rng = this.rng;
    const anyOpen = [...this.open.values()];
    const ch = anyOpen.length > 0 ? rng.pick(anyOpen) : null;
    const unknownId = rng.pick([0, 999_999, U32_MAX, ...this.closed]);
    const move = rng.int(0, 22);
    switch (move) {
      case 0:
        return this.send(rawFrame(rng.int(0, 64), rng.pick(UNKNOWN_TYPES), rng.u32(), rng.bytes(rng.int(0, 64))), 1, 'frame of unknown type');
      case 1:
        return this.send(rawFrame(rng.pick([256 * 1024 + 1, 1024 * 1024 + 1, 2 ** 31, U32_MAX]), rng.pick([FrameType.STDIN, FrameType.OPEN, FrameType.PING]), ch?.id ?? 1), 1, 'oversized length field');
      case 2: {
        // A valid frame cut short, then the end of the stream.
        const f = frame(FrameType.OPEN, this.newId(), encodeJson({ kind: 'exec', window: 10, maxPacket: 10, command: 'true', cwd: this.env.root }));
        this.send(f.subarray(0, rng.int(1, f.length - 1)), 1, 'truncated OPEN');
        this.steps.push(rng.chance(0.5) ? { op: 'end' } : { op: 'destroy' });
        return;
      }
      case 3:
        return this.bitFlip();
      case 4:
        return this.badOpen();
      case 5:
        return this.badOpen();
      case 6:
        return this.send(frame(rng.pick([FrameType.STDIN, FrameType.EOF, FrameType.WINDOW, FrameType.SIGNAL, FrameType.RESIZE, FrameType.CLOSE]), unknownId, rng.bytes(rng.int(0, 8))), 1, `frame for unknown/closed channel ${unknownId}`);
      case 7:
        if (!ch) return this.send(frame(FrameType.CLOSE, unknownId), 1, `CLOSE unknown ${unknownId}`);
        return this.json(FrameType.OPEN, ch.id, { kind: 'exec', window: 1, maxPacket: 1, command: 'true' }, `OPEN on in-use channel ${ch.id}`);
      case 8:
        // STDIN past the daemon's 2 MiB grant.
        if (!ch || ch.kind !== 'exec') return this.send(frame(FrameType.STDIN, unknownId, rng.bytes(10)), 1, 'STDIN unknown channel');
        return this.send(Buffer.concat(Array.from({ length: 10 }, () => frame(FrameType.STDIN, ch.id, Buffer.alloc(256 * 1024)))), 10, `STDIN window overrun on ${ch.id}`);
      case 9:
        return this.send(frame(FrameType.WINDOW, ch?.id ?? unknownId, rng.pick([Buffer.alloc(4), Buffer.alloc(3), Buffer.alloc(5), encodeWindow(U32_MAX)])), 1, 'bad WINDOW');
      case 10:
        return this.json(FrameType.SIGNAL, ch?.id ?? unknownId, rng.pick<unknown>([{ signal: 'SIGSEGV' }, { signal: 9 }, {}, [], 'SIGINT', { signal: oddString(rng) }]), 'bad SIGNAL');
      case 11:
        return this.json(FrameType.RESIZE, ch?.id ?? unknownId, rng.pick<unknown>([{ cols: 0, rows: 1 }, { cols: 1e9, rows: 1 }, { cols: -1, rows: 5 }, { cols: '80', rows: 24 }, null]), 'bad RESIZE');
      case 12:
        // Types only the server may send.
        return this.send(frame(rng.pick([FrameType.WELCOME, FrameType.OPEN_OK, FrameType.OPEN_FAIL, FrameType.STDOUT, FrameType.STDERR, FrameType.EXIT, FrameType.HELLO]), ch?.id ?? 0, rng.bytes(rng.int(0, 40))), 1, 'server-only frame type');
      case 13:
        return this.json(FrameType.GOODBYE, 0, rng.pick<unknown>([{ code: 'SW_ERR_FUZZ', message: 'bye' }, { code: 1 }, 'x']), 'GOODBYE mid-stream');
      case 14:
        return this.send(Buffer.from(rng.bytes(rng.int(1, 300))), 1, 'random bytes');
      case 15:
        this.steps.push({ op: 'destroy' });
        return;
      case 16:
        this.steps.push({ op: 'end' });
        return;
      case 17: {
        // Half a frame, then drop the connection.
        const f = frame(FrameType.STDIN, ch?.id ?? 1, rng.bytes(rng.int(1, 4000)));
        this.send(f.subarray(0, rng.int(1, f.length - 1)), 1, 'half a STDIN frame');
        this.steps.push({ op: 'destroy' });
        return;
      }
      case 18:
        // Deep JSON nesting inside the payload limit.
        return this.send(frame(FrameType.OPEN, this.newId(), Buffer.from('['.repeat(rng.int(1000, 200_000)))), 1, 'deeply nested OPEN');
      case 19:
        if (!ch || ch.kind !== 'session') return this.send(frame(FrameType.STDIN, ch?.id ?? unknownId, rng.bytes(3)), 1, 'STDIN on random channel');
        return this.send(frame(FrameType.EOF, ch.id), 1, `EOF on session ${ch.id}`);
      case 20:
        return this.json(FrameType.OPEN, this.newId(), { kind: 'exec', window: 10, maxPacket: 10, command: 'true', session: rng.pick([unknownId, 0, U32_MAX]) }, 'exec in unknown session');
      case 21:
        return this.send(frame(FrameType.EOF, ch?.id ?? unknownId, rng.bytes(rng.int(1, 100))), 1, 'EOF with garbage payload');
      default:
        return this.send(this.hello(), 1, 'second HELLO');
    }
  }

  badOpen(): void {
    const rng = this.rng;
    const base: Record<string, unknown> = { kind: 'exec', window: 1024, maxPacket: 1024, command: 'true', cwd: this.env.root };
    const mutations: Array<() => void> = [
      () => (base.window = rng.pick<unknown>([0, -1, 2 ** 32, 1.5, null, '100', 1e308, [], {}, true])),
      () => (base.maxPacket = rng.pick<unknown>([0, -5, 1024 * 1024 + 1, 0.5, null, 'x'])),
      () => (base.kind = rng.pick<unknown>(['', 'Exec', 'EXEC', 5, null, 'a'.repeat(40), oddString(rng, 10), ['exec']])),
      () => (delete base.command, (base.argv = rng.pick<unknown>([[], [1, 2], ['a', null], 'ls', {}, ['a\u0000b']]))),
      () => (base.argv = ['echo', 'both']),
      () => (delete base.command),
      () => (base.command = rng.pick<unknown>([5, null, ['echo'], {}, 'true\u0000false'])),
      () => (base.env = this.envObject(false)),
      () => (base.env = rng.pick<unknown>(['A=1', [], 5, null])),
      () => (base.cwd = rng.pick<unknown>([5, null, [], {}])),
      () => (base.timeoutMs = rng.pick<unknown>([0, -1, 2 ** 31, 1.5, '1000', null])),
      () => (base.session = rng.pick<unknown>([-1, 1.5, 'x', 2 ** 32, null])),
      () => (base.pty = rng.pick<unknown>([null, 5, {}, { term: 5, cols: 80, rows: 24 }, { term: 'x', cols: 0, rows: 24 }, { term: 'x', cols: 80, rows: 70000 }])),
      () => Object.assign(base, { kind: 'file', op: rng.pick<unknown>(['put', 'rm', 5, null]), path: rng.pick<unknown>([5, null, 'x'.repeat(5000), 'a\u0000b']) }),
      () => Object.assign(base, { kind: 'file', op: 'put', path: `${this.env.root}/p`, size: rng.pick<unknown>([-1, 2 ** 60, 'x']), mode: 0o644, mtimeMs: 0 }),
      () => Object.assign(base, { kind: 'file', op: 'put', path: `${this.env.root}/p`, size: 1, mode: rng.pick<unknown>([0o10000, -1]), mtimeMs: rng.pick<unknown>([null, 'x']) }),
      () => Object.assign(base, { kind: 'file', op: 'get', path: this.env.root, offsetSha256: rng.pick<unknown>(['xyz', 5, 'A'.repeat(64)]) }),
    ];
    const count = rng.int(1, 3);
    for (let i = 0; i < count; i++) rng.pick(mutations)();
    const id = this.newId();
    const payload = rng.chance(0.15)
      ? rng.pick([Buffer.from('not json'), Buffer.from('[1,2]'), Buffer.from('null'), Buffer.from('"x"'), Buffer.from('{"kind":"exec",'), Buffer.from([0xff, 0xfe, 0x7b, 0x7d])])
      : encodeJson(base);
    this.send(frame(FrameType.OPEN, id, payload), 1, `malformed OPEN ${payload.toString('utf8').slice(0, 200)}`);
    this.closed.push(id);
  }

  bitFlip(): void {
    const rng = this.rng;
    const ch = [...this.open.values()];
    const candidates: Buffer[] = [
      frame(FrameType.OPEN, this.newId(), encodeJson({ kind: 'exec', window: 65536, maxPacket: 1024, command: 'echo ok', cwd: this.env.root })),
      frame(FrameType.PING, 0, rng.bytes(8)),
      frame(FrameType.WINDOW, ch[0]?.id ?? 1, encodeWindow(100)),
      frame(FrameType.SIGNAL, ch[0]?.id ?? 1, encodeJson({ signal: 'SIGTERM' })),
      frame(FrameType.STDIN, ch[0]?.id ?? 1, rng.bytes(rng.int(0, 100))),
      frame(FrameType.CLOSE, ch[0]?.id ?? 1),
    ];
    const f = Buffer.from(rng.pick(candidates));
    const flips = rng.int(1, 3);
    for (let i = 0; i < flips; i++) {
      const bit = rng.int(0, f.length * 8 - 1);
      f[bit >> 3]! ^= 1 << (bit & 7);
    }
    this.send(f, 1, 'bit-flipped frame');
  }
}

// ---------------------------------------------------------------------------------------
// Sessions

function preloginSession(b: SessionBuilder): void {
  const rng = b.rng;
  const env = b.env;
  const moves = rng.int(1, 3);
  for (let i = 0; i < moves; i++) {
    const move = rng.int(0, 15);
    switch (move) {
      case 0:
        b.send(rng.bytes(rng.int(1, 2000)), 1, 'random bytes before HELLO');
        break;
      case 1:
        b.send(frame(rng.pick([FrameType.PING, FrameType.PONG, FrameType.GOODBYE, FrameType.OPEN, FrameType.STDIN, FrameType.CLOSE, FrameType.WINDOW]), rng.int(0, 3), rng.bytes(rng.int(0, 30))), 1, 'non-HELLO frame first');
        break;
      case 2:
        b.send(frame(FrameType.HELLO, 0, rng.pick([Buffer.from('{'), Buffer.from('[]'), Buffer.from('null'), rng.bytes(50)])), 1, 'HELLO that is not a JSON object');
        break;
      case 3:
        b.send(b.hello({ magic: rng.pick<unknown>(['ssh', '', null, 5, 'SHELLWIRE']) }), 1, 'HELLO with wrong magic');
        break;
      case 4:
        b.send(b.hello({ versions: rng.pick<unknown>([[], [2], [0, -1], ['1'], null, [1.5], [2 ** 40]]) }), 1, 'HELLO with bad versions');
        break;
      case 5:
        b.send(b.hello({ features: rng.pick<unknown>([null, 'exec', [1], {}]), client: rng.pick<unknown>([null, 5, oddString(rng)]) }), 1, 'HELLO with bad features/client');
        break;
      case 6:
        b.send(b.hello({ auth: rng.pick<unknown>([[], null, 'token', [1], Array.from({ length: 5 }, () => ({ method: 'none' })), [{ method: 'kerberos' }], [{ method: 'token' }], [{ method: 'token', token: 5 }]]) }), 1, 'HELLO with malformed auth');
        break;
      case 7:
        b.send(b.hello({ auth: rng.pick<unknown>([
          [{ method: 'token', token: 'swt_wrong' }], { method: 'none' }, [{ method: 'token', token: env.token.slice(0, -1) }],
          [{ method: 'password', user: rng.pick(['root', 'nobody', oddString(rng)]), password: oddString(rng) }],
          [{ method: 'publickey', user: 'root', publicKey: `ssh-ed25519 ${rng.bytes(51).toString('base64')}`, signature: rng.bytes(64).toString('base64') }],
          [{ method: 'publickey', publicKey: oddString(rng), signature: oddString(rng) }],
        ]) }), 1, 'HELLO with wrong credentials');
        break;
      case 8:
        b.send(b.hello({ user: oddString(rng) }), 1, 'HELLO with the token and a user name');
        break;
      case 9:
        b.send(rawFrame(rng.pick([16 * 1024 + 1, 1024 * 1024, U32_MAX]), FrameType.HELLO, 0, rng.bytes(rng.int(0, 100))), 1, 'HELLO length over the pre-auth limit');
        break;
      case 10: {
        const f = b.hello();
        b.send(f.subarray(0, rng.int(1, f.length - 1)), 1, 'truncated HELLO');
        b.steps.push(rng.chance(0.5) ? { op: 'end' } : { op: 'destroy' });
        return;
      }
      case 11: {
        // The right token, with frames pipelined behind HELLO before WELCOME.
        const extra = rng.int(1, 20);
        const parts = [b.hello()];
        for (let k = 0; k < extra; k++) parts.push(frame(FrameType.PING, 0, rng.bytes(8)));
        if (rng.chance(0.5)) parts.push(frame(FrameType.OPEN, 1, encodeJson({ kind: 'exec', window: 10, maxPacket: 10, command: 'true', cwd: env.root })));
        b.send(Buffer.concat(parts), parts.length, 'HELLO with frames pipelined before WELCOME');
        return;
      }
      case 12: {
        // Slowloris: the HELLO a few bytes at a time.
        const f = b.hello();
        let offset = 0;
        while (offset < f.length && b.steps.length < 40) {
          const n = rng.int(1, 16);
          b.send(f.subarray(offset, offset + n), 0, 'HELLO piece');
          offset += n;
          b.sleep(rng.int(0, 20));
        }
        if (offset >= f.length) b.frames += 1;
        return;
      }
      case 13:
        b.send(rng.bytes(rng.int(0, 9)), 0, 'part of a header');
        b.steps.push(rng.chance(0.5) ? { op: 'end' } : { op: 'destroy' });
        return;
      case 14:
        b.send(b.hello({ extra: 'x'.repeat(rng.int(15_000, 16_300)) }), 1, 'HELLO near the pre-auth limit (with the token)');
        return;
      default:
        b.sleep(rng.int(0, 100));
        b.steps.push({ op: 'destroy' });
        return;
    }
  }
}

function validSession(b: SessionBuilder, maxFrames: number): void {
  const rng = b.rng;
  b.login();
  const target = rng.int(Math.max(1, Math.floor(maxFrames / 4)), maxFrames);
  while (b.frames < target) {
    const move = rng.weighted([
      [6, 'ping'], [2, 'exec'], [1, 'session'], [1, 'file'], [10, 'channel'], [1, 'refused'], [1, 'pong'], [1, 'sleep'],
    ] as const);
    switch (move) {
      case 'ping':
        b.pingBurst(500);
        break;
      case 'exec':
        if (b.open.size < 60) b.openExec();
        break;
      case 'session':
        if (b.open.size < 60) b.openSession();
        break;
      case 'file':
        if (b.open.size < 60) b.openFile();
        break;
      case 'channel':
        b.channelMove();
        break;
      case 'refused':
        b.refusedOpen();
        break;
      case 'pong':
        b.send(frame(FrameType.PONG, 0, rng.bytes(8)), 1, 'unsolicited PONG');
        break;
      case 'sleep':
        b.sleep(rng.int(0, 30));
        break;
    }
  }
  // How it ends.
  const ending = rng.weighted([[3, 'close-all'], [2, 'destroy'], [4, 'fatal'], [1, 'end'], [1, 'goodbye']] as const);
  switch (ending) {
    case 'close-all':
      for (const ch of [...b.open.values()]) b.closeChannel(ch);
      b.steps.push({ op: 'end' });
      break;
    case 'destroy':
      b.steps.push({ op: 'destroy' });
      break;
    case 'fatal':
      b.fatalMove();
      break;
    case 'end':
      b.steps.push({ op: 'end' });
      break;
    case 'goodbye':
      b.json(FrameType.GOODBYE, 0, { code: 'SW_ERR_CONNECTION_CLOSED', message: 'fuzz done' }, 'GOODBYE');
      break;
  }
}

function chaosSession(b: SessionBuilder): void {
  const rng = b.rng;
  if (rng.chance(0.2)) {
    // Pipelined login: OPENs queued behind HELLO are a protocol error, but must be only that.
    b.send(b.hello(), 1, 'HELLO');
  } else {
    b.login();
  }
  const moves = rng.int(1, 30);
  for (let i = 0; i < moves; i++) {
    const move = rng.weighted([[3, 'exec'], [1, 'session'], [1, 'file'], [4, 'channel'], [2, 'refused'], [2, 'fatal'], [1, 'ping']] as const);
    if (move === 'exec') b.openExec();
    else if (move === 'session') b.openSession();
    else if (move === 'file') b.openFile();
    else if (move === 'channel') b.channelMove();
    else if (move === 'refused') b.refusedOpen();
    else if (move === 'ping') b.pingBurst(50);
    else b.fatalMove();
  }
  if (rng.chance(0.5)) b.steps.push(rng.chance(0.5) ? { op: 'destroy' } : { op: 'end' });
}

function stalledSession(b: SessionBuilder, maxStallMs: number): void {
  const rng = b.rng;
  b.login();
  const pauseFirst = rng.chance(0.5);
  if (pauseFirst) b.steps.push({ op: 'pause' });
  const heavy = rng.int(1, 4);
  for (let i = 0; i < heavy; i++) b.openExec({ heavy: true });
  // Some echo traffic the daemon must send back while we are not reading.
  const cats = [...b.open.values()].filter((c) => c.kind === 'exec');
  if (rng.chance(0.5) && cats.length > 0) {
    const ch = rng.pick(cats);
    const n = rng.int(1, 30);
    b.send(Buffer.concat(Array.from({ length: n }, () => frame(FrameType.STDIN, ch.id, Buffer.alloc(16 * 1024, 0x61)))), n, `${n} x 16 KiB STDIN on ${ch.id}`);
  }
  if (!pauseFirst) b.steps.push({ op: 'pause' });
  b.sleep(rng.int(100, maxStallMs));
  if (rng.chance(0.3)) b.pingBurst(2000);
  const ending = rng.weighted([
    [3, 'destroy'], [2, 'garbage'], [1, 'goodbye'], [1, 'end'], [2, 'close-resume'], [1, 'signal'], [1, 'resume-drain'],
  ] as const);
  switch (ending) {
    case 'destroy':
      b.steps.push({ op: 'destroy' });
      break;
    case 'garbage':
      // The daemon answers GOODBYE into a full socket, then must still let go of everything.
      b.fatalMove();
      b.sleep(rng.int(0, 3000));
      b.steps.push(rng.chance(0.5) ? { op: 'destroy' } : { op: 'resume' });
      break;
    case 'goodbye':
      b.json(FrameType.GOODBYE, 0, { code: 'SW_ERR_CONNECTION_CLOSED', message: 'stalled' }, 'GOODBYE while stalled');
      b.sleep(rng.int(0, 1000));
      b.steps.push({ op: 'destroy' });
      break;
    case 'end':
      b.steps.push({ op: 'end' });
      b.sleep(rng.int(0, 3000));
      b.steps.push({ op: 'destroy' });
      break;
    case 'close-resume':
      for (const ch of [...b.open.values()]) b.closeChannel(ch);
      b.steps.push({ op: 'resume' });
      b.steps.push({ op: 'end' });
      break;
    case 'signal':
      for (const ch of b.open.values()) b.json(FrameType.SIGNAL, ch.id, { signal: 'SIGKILL' }, `SIGKILL ${ch.id}`);
      b.steps.push({ op: 'resume' });
      b.sleep(200);
      b.steps.push({ op: 'destroy' });
      break;
    case 'resume-drain':
      b.steps.push({ op: 'resume' });
      b.sleep(rng.int(0, 500));
      b.steps.push({ op: 'destroy' });
      break;
  }
}

/** The session `index` of the run with `seed`. */
export function generateSession(seed: number, index: number, env: FuzzEnvironment, options: GenerateOptions): FuzzSession {
  const rng = new Rng(sessionSeed(seed, index));
  const mode = options.mode ?? rng.weighted(options.modeWeights ?? DEFAULT_MODE_WEIGHTS);
  const b = new SessionBuilder(rng, env);
  // Sessions that may fail authentication connect from their own loopback address.
  const source = mode === 'prelogin' ? `127.0.${rng.int(1, 254)}.${rng.int(2, 254)}` : '127.0.0.1';
  switch (mode) {
    case 'prelogin':
      preloginSession(b);
      break;
    case 'valid':
      validSession(b, options.maxFrames);
      break;
    case 'chaos':
      chaosSession(b);
      break;
    case 'stalled':
      stalledSession(b, options.maxStallMs ?? 1500);
      break;
  }
  return { index, seed, mode, source, steps: b.steps };
}

/**
 * The stalled reader, by hand: output-heavy commands with a huge window, a client that stops
 * reading until the daemon's socket is congested, and then `ending`.
 */
export function stalledReaderSession(env: FuzzEnvironment, ending: 'destroy' | 'garbage' | 'goodbye' | 'end', stallMs = 800): FuzzSession {
  const steps: Step[] = [];
  const open = (id: number, command: string) => ({
    op: 'send' as const,
    bytes: frame(FrameType.OPEN, id, encodeJson({ kind: 'exec', window: U32_MAX, maxPacket: 65536, command, cwd: env.root })),
    frames: 1,
    what: `OPEN exec ${command} (window 2^32-1)`,
  });
  steps.push({ op: 'send', bytes: encodeFrame(FrameType.HELLO, 0, encodeJson({ magic: PROTOCOL_MAGIC, versions: [1], features: [...FEATURES], client: 'fuzz/0', auth: [{ method: 'token', token: env.token }] })), frames: 1, what: 'HELLO' });
  steps.push({ op: 'await', type: FrameType.WELCOME, timeoutMs: 5_000, what: 'WELCOME' });
  steps.push({ op: 'pause' });
  steps.push(open(1, 'cat /dev/zero'), open(2, 'yes >&2'));
  steps.push({ op: 'sleep', ms: stallMs });
  switch (ending) {
    case 'destroy':
      steps.push({ op: 'destroy' });
      break;
    case 'garbage':
      steps.push({ op: 'send', bytes: rawFrame(3, 0x7f, 1, Buffer.from('bad')), frames: 1, what: 'frame of unknown type' });
      steps.push({ op: 'sleep', ms: 300 }, { op: 'destroy' });
      break;
    case 'goodbye':
      steps.push({ op: 'send', bytes: frame(FrameType.GOODBYE, 0, encodeJson({ code: 'SW_ERR_CONNECTION_CLOSED', message: 'bye' })), frames: 1, what: 'GOODBYE' });
      steps.push({ op: 'sleep', ms: 300 }, { op: 'destroy' });
      break;
    case 'end':
      steps.push({ op: 'end' }, { op: 'sleep', ms: 300 }, { op: 'destroy' });
      break;
  }
  return { index: -1, seed: 0, mode: 'stalled', source: '127.0.0.1', steps };
}
