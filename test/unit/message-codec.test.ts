/**
 * Two-sided messages (docs/protocol.md §3–4, §7.1): for every control message, what its typed
 * encoder writes its decoder reads back as the same value (fast-check round trips), and a
 * field of the wrong JSON type is refused with SW_ERR_BAD_MESSAGE, the decoders' existing error.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ALLOWED_SIGNALS, PROTOCOL_MAGIC,
  decodeCodeMessage, decodeExit, decodeHello, decodeOpen, decodeOpenOk, decodeResize, decodeSignal, decodeWelcome, decodeWindow,
  encodeCodeMessage, encodeExit, encodeHello, encodeOpen, encodeOpenOk, encodeResize, encodeSignal, encodeWelcome, encodeWindow,
  type AuthRequest, type ExecParams, type ExitStatus, type Hello, type OpenOk, type OpenRequest, type Welcome,
} from '../../src/protocol/messages.js';
import {
  decodeFileEntry, decodeFileExit, decodeFileOpenOk, decodePutEof, encodeFileEntry, encodePutEof, fileExitPayload, MAX_PATH_LENGTH,
  type FileEntry, type FileExit, type FileOpenOk, type FileRequest,
} from '../../src/protocol/file-messages.js';
import { decodeOsBytes } from '../../src/protocol/os-bytes.js';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

const U32_MAX = 0xffffffff;
const RUNS = { numRuns: 200 };

/** Plain objects all the way down (decoded env maps have no prototype; deepEqual compares prototypes). */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

// ---- arbitraries ----

/** An OS byte string without NUL: any bytes, as surrogateescape makes them a JS string. */
const osText = (maxLength = 24) => fc.uint8Array({ maxLength }).map((b) => decodeOsBytes(Buffer.from(b.map((x) => x || 1))));
const path = osText(48).filter((p) => p.length <= MAX_PATH_LENGTH);
const text = fc.string({ maxLength: 16 });
const u32 = fc.integer({ min: 0, max: U32_MAX });
const positive = fc.integer({ min: 1, max: U32_MAX });
const packet = fc.integer({ min: 1, max: 1024 * 1024 });
const size = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const mode = fc.integer({ min: 0, max: 0o7777 });
// -0 would come back as 0: JSON has one zero.
const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x));
const sha256 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
const env = fc.dictionary(envName, osText(), { maxKeys: 4 });
const pty = fc.record({ term: fc.stringMatching(/^[a-z0-9-]{1,16}$/), cols: fc.integer({ min: 1, max: 65535 }), rows: fc.integer({ min: 1, max: 65535 }) });
const header = { window: positive, maxPacket: packet };

const auth: fc.Arbitrary<AuthRequest> = fc.oneof(
  fc.record({ method: fc.constant('token' as const), token: text }),
  fc.record({ method: fc.constant('publickey' as const), user: text, publicKey: text, algorithm: text, signature: text }, { requiredKeys: ['method', 'publicKey', 'signature'] }),
  fc.record({ method: fc.constant('password' as const), user: text, password: text }, { requiredKeys: ['method', 'password'] }),
  fc.constant({ method: 'none' as const }),
);

const hello: fc.Arbitrary<Hello> = fc.record(
  {
    magic: fc.constant(PROTOCOL_MAGIC),
    versions: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 3 }),
    features: fc.array(text, { maxLength: 4 }),
    client: text,
    user: text,
    auth: fc.array(auth, { minLength: 1, maxLength: 4 }),
  },
  { requiredKeys: ['magic', 'versions', 'features', 'client', 'auth'] },
);

const welcome: fc.Arbitrary<Welcome> = fc.record({
  version: fc.integer({ min: 1, max: 255 }),
  features: fc.array(text, { maxLength: 4 }),
  server: text,
  hostname: text,
  user: text,
  maxPayload: fc.integer({ min: 1024, max: 1024 * 1024 }),
  maxChannels: positive,
  keepaliveMs: u32,
});

const execParams: fc.Arbitrary<ExecParams> = fc
  .tuple(
    fc.oneof(
      fc.record({ command: osText() }),
      fc.record({ argv: fc.array(osText(), { minLength: 1, maxLength: 4 }) }),
      fc.record({ pty }),
    ),
    fc.record({ pty, env, cwd: osText(), timeoutMs: fc.integer({ min: 1, max: 2 ** 31 - 1 }), session: u32 }, { requiredKeys: [] }),
  )
  .map(([what, rest]) => ({ ...rest, ...what }));

const fileRequest: fc.Arbitrary<FileRequest> = fc.oneof(
  fc.record(
    {
      op: fc.constant('put' as const), path, name: osText(16).filter((n) => n !== '' && n !== '.' && n !== '..' && !n.includes('/')),
      size, mode, mtimeMs: finite, resume: fc.boolean(),
    },
    { requiredKeys: ['op', 'path', 'size', 'mode', 'mtimeMs', 'resume'] },
  ),
  fc.record({ op: fc.constant('get' as const), path, offset: size, offsetSha256: sha256 }, { requiredKeys: ['op', 'path', 'offset'] }),
  fc.record({ op: fc.constantFrom('stat' as const, 'list' as const), path }),
  fc.record({ op: fc.constant('mkdir' as const), path, mode, mtimeMs: finite }, { requiredKeys: ['op', 'path'] }),
);

/** Another kind's fields: names §4.4 does not use, any JSON. */
const otherParams = fc.dictionary(fc.stringMatching(/^x-[a-z]{1,8}$/), fc.jsonValue(), { maxKeys: 3 }).map((o) => plain(o) as Record<string, unknown>);

const open: fc.Arbitrary<OpenRequest> = fc.oneof(
  fc.record({ kind: fc.constant('exec' as const), ...header, params: execParams }),
  fc.record({ kind: fc.constant('session' as const), ...header, params: fc.record({ env, cwd: osText() }, { requiredKeys: [] }) }),
  fc.record({ kind: fc.constant('file' as const), ...header, params: fileRequest }),
  fc.record({ kind: fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/).filter((k) => !['exec', 'session', 'file'].includes(k)), ...header, params: otherParams }),
);

const openOk: fc.Arbitrary<OpenOk> = fc.record({ window: u32, maxPacket: packet, pid: u32, cwd: osText() }, { requiredKeys: ['window', 'maxPacket'] });

const entry: fc.Arbitrary<FileEntry> = fc.record(
  { name: osText(16), type: fc.constantFrom('file' as const, 'dir' as const, 'symlink' as const, 'other' as const), size, mode, mtimeMs: finite, target: osText(16) },
  { requiredKeys: ['name', 'type', 'size', 'mode', 'mtimeMs'] },
);

const fileOpenOk: fc.Arbitrary<FileOpenOk> = fc.record(
  { window: u32, maxPacket: packet, path, offset: size, offsetSha256: sha256, entry, created: fc.boolean() },
  { requiredKeys: ['window', 'maxPacket', 'path'] },
);

const codeMessage = fc.record({ code: text, message: text });
const exitStatus: fc.Arbitrary<ExitStatus> = fc.record(
  {
    exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: null }),
    signal: fc.option(text, { nil: null }),
    timedOut: fc.boolean(),
    cwd: osText(),
    error: codeMessage,
  },
  { requiredKeys: ['exitCode', 'signal', 'timedOut'] },
);

const fileExit: fc.Arbitrary<FileExit> = fc
  .record({ ok: fc.boolean(), size, sha256, count: size, errno: fc.stringMatching(/^E[A-Z]{2,8}$/), error: codeMessage }, { requiredKeys: ['ok'] })
  .filter((e) => e.ok || e.error !== undefined);

// ---- the table: message, encoder, decoder ----

interface Codec<T> {
  name: string;
  value: fc.Arbitrary<T>;
  encode(value: T): Buffer;
  decode(payload: Buffer): unknown;
  /** What the decoder returns for `value` when that is not `value` itself. */
  expected?(value: T): unknown;
  /** Fields whose value of another JSON type must be refused, with the types each accepts. */
  typed: Record<string, readonly JsonType[]>;
}

type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';
const codec = <T>(c: Codec<T>): Codec<unknown> => c as Codec<unknown>;

const CODECS: Codec<unknown>[] = [
  codec({ name: 'HELLO', value: hello, encode: encodeHello, decode: decodeHello, typed: { versions: ['array'], features: ['array'], client: ['string'], user: ['string'] } }),
  codec({
    name: 'WELCOME', value: welcome, encode: encodeWelcome, decode: decodeWelcome,
    typed: { version: ['number'], features: ['array'], server: ['string'], hostname: ['string'], user: ['string'], maxPayload: ['number'], maxChannels: ['number'], keepaliveMs: ['number'] },
  }),
  codec({ name: 'GOODBYE', value: codeMessage, encode: (m) => encodeCodeMessage(m.code, m.message), decode: (p) => decodeCodeMessage(FrameType.GOODBYE, p), typed: { code: ['string'], message: ['string'] } }),
  codec({ name: 'OPEN_FAIL', value: codeMessage, encode: (m) => encodeCodeMessage(m.code, m.message, { errno: 'ENOENT' }), decode: (p) => decodeCodeMessage(FrameType.OPEN_FAIL, p), typed: { code: ['string'], message: ['string'] } }),
  codec({
    name: 'OPEN', value: open, encode: encodeOpen, decode: (p) => plain(decodeOpen(p)),
    typed: { kind: ['string'], window: ['number'], maxPacket: ['number'], host: ['string'], onBehalfOf: ['object'] },
  }),
  codec({ name: 'OPEN_OK', value: openOk, encode: encodeOpenOk, decode: decodeOpenOk, typed: { window: ['number'], maxPacket: ['number'], pid: ['number'], cwd: ['string'] } }),
  codec({
    name: 'OPEN_OK (file)', value: fileOpenOk, encode: encodeOpenOk, decode: decodeFileOpenOk,
    typed: { window: ['number'], maxPacket: ['number'], path: ['string'], offset: ['number'], offsetSha256: ['string'], entry: ['object'] },
  }),
  codec({ name: 'SIGNAL', value: fc.record({ signal: fc.constantFrom(...ALLOWED_SIGNALS) }), encode: encodeSignal, decode: decodeSignal, typed: { signal: ['string'] } }),
  codec({ name: 'RESIZE', value: fc.record({ cols: fc.integer({ min: 1, max: 65535 }), rows: fc.integer({ min: 1, max: 65535 }) }), encode: encodeResize, decode: decodeResize, typed: { cols: ['number'], rows: ['number'] } }),
  codec({
    name: 'EXIT', value: exitStatus, encode: encodeExit, decode: decodeExit,
    typed: { exitCode: ['number', 'null'], signal: ['string', 'null'], timedOut: ['boolean'], cwd: ['string'], error: ['object'] },
  }),
  codec({
    name: 'EXIT (file)', value: fileExit, encode: (e) => encodeExit(fileExitPayload(e)), decode: decodeFileExit,
    typed: { size: ['number'], sha256: ['string'], count: ['number'] },
  }),
  codec({ name: 'EOF (put)', value: fc.record({ sha256, size }), encode: encodePutEof, decode: decodePutEof, typed: { sha256: ['string'], size: ['number'] } }),
  codec({ name: 'list entry', value: entry, encode: encodeFileEntry, decode: (p) => decodeFileEntry(p.subarray(0, -1).toString('utf8')), typed: { name: ['string'], type: ['string'], size: ['number'], mode: ['number'], mtimeMs: ['number'], target: ['string'] } }),
];

function jsonType(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v as JsonType;
}

describe('every message: decode(encode(m)) equals m', () => {
  for (const c of CODECS) {
    test(c.name, () => {
      fc.assert(fc.property(c.value, (value) => {
        assert.deepEqual(c.decode(c.encode(value)), plain(c.expected ? c.expected(value) : value));
      }), RUNS);
    });
  }

  test('WINDOW', () => {
    fc.assert(fc.property(positive, (increment) => assert.equal(decodeWindow(encodeWindow(increment)), increment)), RUNS);
  });

  test('OPEN: the header wins over a parameter of the same name, and the wire object is flat', () => {
    const payload = encodeOpen({ kind: 'relay', window: 7, maxPacket: 9, params: { kind: 'exec', window: 1, 'x-to': 'db1' } });
    assert.deepEqual(JSON.parse(payload.toString('utf8')), { kind: 'relay', window: 7, maxPacket: 9, 'x-to': 'db1' });
    const exec = encodeOpen({ kind: 'exec', window: 2097152, maxPacket: 65536, params: { command: 'echo hello' } });
    // The spec's fixture open-exec, byte for byte (docs/protocol.md §4.4).
    assert.equal(exec.toString('utf8'), '{"kind":"exec","window":2097152,"maxPacket":65536,"command":"echo hello"}');
  });
});

describe('a field of the wrong JSON type is refused with SW_ERR_BAD_MESSAGE', () => {
  for (const c of CODECS) {
    test(c.name, () => {
      fc.assert(
        fc.property(c.value, fc.constantFrom(...Object.keys(c.typed)), fc.jsonValue(), (value, key, replacement) => {
          const accepted = c.typed[key]!;
          fc.pre(!accepted.includes(jsonType(replacement)));
          // The message as it goes on the wire, with that one field replaced.
          const wire = JSON.parse(c.encode(value).toString('utf8')) as Record<string, unknown>;
          wire[key] = replacement;
          const payload = Buffer.from(`${JSON.stringify(wire)}${c.name === 'list entry' ? '\n' : ''}`, 'utf8');
          assert.throws(() => c.decode(payload), (err: unknown) => {
            assert.ok(err instanceof ProtocolError, `${c.name}.${key} = ${JSON.stringify(replacement)}: ${String(err)}`);
            assert.equal(err.code, ErrorCode.BAD_MESSAGE, err.message);
            return true;
          });
        }),
        RUNS,
      );
    });
  }
});
