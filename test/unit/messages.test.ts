/**
 * Control message schemas (docs/protocol.md §3–4): every decoder accepts the messages the
 * implementation sends, rejects each malformed field with SW_ERR_BAD_MESSAGE (a wrong
 * magic with SW_ERR_BAD_MAGIC), and turns any input at all into a value or a ProtocolError.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeHello, decodeWelcome, decodeCodeMessage, decodeOpen, decodeOpenOk, decodeSignal,
  decodeExit, decodeResize, decodeWindow, encodeWindow, encodeJson,
  ALLOWED_SIGNALS, FEATURES, MAX_AUTH_ATTEMPTS, PROTOCOL_MAGIC, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
  type ExecParams, type OpenHeader,
} from '../../src/protocol/messages.js';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

const U32_MAX = 0xffffffff;

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/**
 * decodeOpen's result as the wire has it: one flat object, the header (kind, window,
 * maxPacket) and the kind's parameters side by side.
 */
function flatOpen(payload: Buffer): OpenHeader & ExecParams {
  const { params, ...header } = decodeOpen(payload);
  assert.equal(typeof params, 'object');
  return { ...header, ...params };
}

/** flatOpen, with `env` copied into a plain object (for deepEqual). */
function openFields(payload: Buffer): Record<string, unknown> {
  const fields = flatOpen(payload);
  return { ...fields, ...(fields.env ? { env: { ...fields.env } } : {}) };
}

function rejects(fn: () => unknown, code: string, label: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `${label}: expected a ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, `${label}: ${err.message}`);
    return true;
  }, label);
}

/** A copy of `base` with `key` set to `value` (or removed when value is `REMOVE`). */
const REMOVE = Symbol('remove');
function withField(base: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = structuredClone(base);
  if (value === REMOVE) delete copy[key];
  else copy[key] = value;
  return copy;
}

type Mutation = [label: string, key: string, value: unknown];

function checkMutations(decode: (p: Buffer) => unknown, base: Record<string, unknown>, mutations: Mutation[], code: string = ErrorCode.BAD_MESSAGE): void {
  for (const [label, key, value] of mutations) {
    rejects(() => decode(json(withField(base, key, value))), code, label);
  }
}

/** Payloads that are not a JSON object at all: every JSON decoder refuses them the same way. */
const NOT_OBJECTS: [string, Buffer][] = [
  ['empty payload', Buffer.alloc(0)],
  ['not JSON', Buffer.from('{"kind":')],
  ['invalid UTF-8 / binary', Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
  ['JSON null', Buffer.from('null')],
  ['JSON array', Buffer.from('[{"magic":"shellwire"}]')],
  ['JSON string', Buffer.from('"shellwire"')],
  ['JSON number', Buffer.from('1')],
];

const JSON_DECODERS: [string, (p: Buffer) => unknown][] = [
  ['HELLO', decodeHello],
  ['WELCOME', decodeWelcome],
  ['GOODBYE', (p) => decodeCodeMessage(FrameType.GOODBYE, p)],
  ['OPEN', decodeOpen],
  ['OPEN_OK', decodeOpenOk],
  ['SIGNAL', decodeSignal],
  ['EXIT', decodeExit],
  ['RESIZE', decodeResize],
];

describe('constants', () => {
  test('v1 identifies itself as the spec says', () => {
    assert.equal(PROTOCOL_MAGIC, 'shellwire');
    assert.equal(PROTOCOL_VERSION, 1);
    assert.deepEqual(SUPPORTED_VERSIONS, [1]);
    assert.deepEqual([...FEATURES], ['exec', 'session', 'signal', 'window', 'keepalive']);
  });

  test('encodeJson is compact UTF-8 JSON in key order', () => {
    assert.equal(encodeJson({ b: 1, a: 'é' }).toString('hex'), Buffer.from('{"b":1,"a":"é"}', 'utf8').toString('hex'));
  });
});

describe('every JSON decoder', () => {
  test('refuses payloads that are not a JSON object with SW_ERR_BAD_MESSAGE', () => {
    for (const [name, decode] of JSON_DECODERS) {
      for (const [label, payload] of NOT_OBJECTS) rejects(() => decode(payload), ErrorCode.BAD_MESSAGE, `${name}: ${label}`);
    }
  });

  test('names the message type in its error', () => {
    assert.throws(() => decodeOpen(Buffer.from('[]')), /OPEN/);
    assert.throws(() => decodeExit(Buffer.from('{}')), /EXIT/);
    assert.throws(() => decodeCodeMessage(FrameType.OPEN_FAIL, Buffer.from('{}')), /OPEN_FAIL/);
  });
});

describe('HELLO', () => {
  const hello = {
    magic: 'shellwire',
    versions: [1],
    features: ['exec', 'session'],
    client: 'shellwire/0.1.0',
    auth: [{ method: 'token', token: 'swt_abc' }],
  };

  test('accepts what the client sends', () => {
    assert.deepEqual(decodeHello(json(hello)), hello);
    assert.deepEqual(decodeHello(json({ ...hello, user: 'alice' })), { ...hello, user: 'alice' });
    assert.deepEqual(decodeHello(json({ ...hello, versions: [], features: [] })).versions, []);
    assert.deepEqual(decodeHello(json({ ...hello, versions: [3, 1, 2] })).versions, [3, 1, 2]);
  });

  test('auth is one attempt or a list of 1..MAX_AUTH_ATTEMPTS attempts, kept in order', () => {
    assert.deepEqual(decodeHello(json({ ...hello, auth: { method: 'token', token: 't' } })).auth, [{ method: 'token', token: 't' }]);
    const attempts = [
      { method: 'publickey', publicKey: 'ssh-ed25519 AAAA', signature: 'c2ln' },
      { method: 'password', password: 'hunter2' },
      { method: 'token', token: 't' },
      { method: 'none' },
    ];
    assert.equal(attempts.length, MAX_AUTH_ATTEMPTS);
    assert.deepEqual(decodeHello(json({ ...hello, auth: attempts })).auth, attempts);
    rejects(() => decodeHello(json({ ...hello, auth: [...attempts, { method: 'none' }] })), ErrorCode.BAD_MESSAGE, 'too many attempts');
    rejects(() => decodeHello(json({ ...hello, auth: [] })), ErrorCode.BAD_MESSAGE, 'no attempt');
  });

  test('ignores unknown fields and does not copy them', () => {
    const decoded = decodeHello(json({ ...hello, extra: { deep: true }, auth: [{ method: 'none', token: 5 }] }));
    assert.equal('extra' in decoded, false);
    assert.deepEqual(decoded.auth, [{ method: 'none' }]);
  });

  test('a missing or wrong magic is SW_ERR_BAD_MAGIC', () => {
    checkMutations(decodeHello, hello, [
      ['magic missing', 'magic', REMOVE],
      ['magic wrong', 'magic', 'sshwire'],
      ['magic case', 'magic', 'Shellwire'],
      ['magic not a string', 'magic', 1],
    ], ErrorCode.BAD_MAGIC);
    // Magic is checked before anything else, so a foreign client gets the clear answer.
    rejects(() => decodeHello(json({ hello: 'world' })), ErrorCode.BAD_MAGIC, 'foreign JSON');
  });

  test('rejects each malformed field with SW_ERR_BAD_MESSAGE', () => {
    checkMutations(decodeHello, hello, [
      ['versions missing', 'versions', REMOVE],
      ['versions not an array', 'versions', 1],
      ['versions with a fraction', 'versions', [1.5]],
      ['versions with a string', 'versions', ['1']],
      ['versions with null', 'versions', [null]],
      ['features missing', 'features', REMOVE],
      ['features with a number', 'features', ['exec', 2]],
      ['features an object', 'features', { exec: true }],
      ['client missing', 'client', REMOVE],
      ['client a number', 'client', 7],
      ['user a number', 'user', 7],
      ['user null', 'user', null],
      ['auth missing', 'auth', REMOVE],
      ['auth null', 'auth', null],
      ['auth a string', 'auth', 'token'],
      ['auth entry a string', 'auth', ['token']],
      ['auth entry null', 'auth', [{ method: 'none' }, null]],
      ['auth method unknown', 'auth', [{ method: 'kerberos', ticket: 'x' }]],
      ['auth method missing', 'auth', [{ token: 'x' }]],
      ['auth token missing', 'auth', [{ method: 'token' }]],
      ['auth token a number', 'auth', [{ method: 'token', token: 1 }]],
      ['auth password missing', 'auth', [{ method: 'password' }]],
      ['auth publickey without signature', 'auth', [{ method: 'publickey', publicKey: 'ssh-ed25519 AAAA' }]],
      ['auth publickey without key', 'auth', [{ method: 'publickey', signature: 'c2ln' }]],
      ['a bad attempt after a good one', 'auth', [{ method: 'token', token: 't' }, { method: 'token' }]],
    ]);
  });
});

describe('WELCOME', () => {
  const welcome = {
    version: 1, features: ['exec'], server: 'shellwire/0.1.0', hostname: 'web1', user: 'alice',
    maxPayload: 262144, maxChannels: 1024, keepaliveMs: 15000,
  };

  test('accepts what the server sends, including the range limits', () => {
    assert.deepEqual(decodeWelcome(json(welcome)), welcome);
    for (const [key, value] of [['maxPayload', 1024], ['maxPayload', 1024 * 1024], ['keepaliveMs', 0], ['maxChannels', U32_MAX], ['version', 255]] as const) {
      assert.equal(decodeWelcome(json({ ...welcome, [key]: value }))[key], value);
    }
  });

  test('rejects each malformed field', () => {
    checkMutations(decodeWelcome, welcome, [
      ['version 0', 'version', 0],
      ['version 256', 'version', 256],
      ['version a string', 'version', '1'],
      ['features missing', 'features', REMOVE],
      ['server missing', 'server', REMOVE],
      ['hostname a number', 'hostname', 1],
      ['user null', 'user', null],
      ['maxPayload below 1 KiB', 'maxPayload', 1023],
      ['maxPayload above 1 MiB', 'maxPayload', 1024 * 1024 + 1],
      ['maxChannels 0', 'maxChannels', 0],
      ['maxChannels above u32', 'maxChannels', U32_MAX + 1],
      ['keepaliveMs negative', 'keepaliveMs', -1],
      ['keepaliveMs fractional', 'keepaliveMs', 1.5],
      ['keepaliveMs missing', 'keepaliveMs', REMOVE],
    ]);
  });
});

describe('GOODBYE / OPEN_FAIL', () => {
  test('accepts {code, message} and rejects anything less', () => {
    const msg = { code: 'SW_ERR_AUTH_FAILED', message: 'no' };
    assert.deepEqual(decodeCodeMessage(FrameType.GOODBYE, json(msg)), msg);
    assert.deepEqual(decodeCodeMessage(FrameType.OPEN_FAIL, json({ ...msg, extra: 1 })), msg);
    checkMutations((p) => decodeCodeMessage(FrameType.GOODBYE, p), msg, [
      ['code missing', 'code', REMOVE],
      ['code a number', 'code', 1],
      ['message missing', 'message', REMOVE],
      ['message null', 'message', null],
    ]);
  });
});

describe('OPEN', () => {
  const exec = { kind: 'exec', window: 2097152, maxPacket: 65536, command: 'echo hello' };

  test('accepts exec with a command, exec with argv, and session', () => {
    assert.deepEqual(openFields(json(exec)), exec);
    const argv = { kind: 'exec', window: 1, maxPacket: 1, argv: ['ls', '-l', ''] };
    assert.deepEqual(openFields(json(argv)), argv);
    const session = { kind: 'session', window: 1, maxPacket: 1024 };
    assert.deepEqual(openFields(json(session)), session);
    const full = { ...exec, env: { A: '1', EMPTY: '' }, cwd: '/tmp', timeoutMs: 5000, session: 2 };
    assert.deepEqual(openFields(json(full)), full);
  });

  test('accepts the boundaries of every range', () => {
    for (const [key, value] of [
      ['window', 1], ['window', U32_MAX], ['maxPacket', 1], ['maxPacket', 1024 * 1024],
      ['timeoutMs', 1], ['timeoutMs', 2 ** 31 - 1], ['session', 0], ['session', U32_MAX],
    ] as const) {
      assert.equal(flatOpen(json({ ...exec, [key]: value }))[key], value, `${key} = ${value}`);
    }
  });

  test('env is copied into an object without a prototype', () => {
    const env = flatOpen(json({ ...exec, env: { PATH: '/bin' } })).env!;
    assert.equal(Object.getPrototypeOf(env), null);
    assert.deepEqual({ ...env }, { PATH: '/bin' });
  });

  test('rejects each malformed field with SW_ERR_BAD_MESSAGE', () => {
    checkMutations(decodeOpen, exec, [
      ['kind missing', 'kind', REMOVE],
      ['kind a number', 'kind', 1],
      ['kind empty', 'kind', ''],
      ['kind upper case', 'kind', 'EXEC'],
      ['kind with a space', 'kind', 'ex ec'],
      ['window missing', 'window', REMOVE],
      ['window 0', 'window', 0],
      ['window negative', 'window', -1],
      ['window fractional', 'window', 1.5],
      ['window above u32', 'window', U32_MAX + 1],
      ['window a string', 'window', '1024'],
      ['maxPacket missing', 'maxPacket', REMOVE],
      ['maxPacket 0', 'maxPacket', 0],
      ['maxPacket above 1 MiB', 'maxPacket', 1024 * 1024 + 1],
      ['command a number', 'command', 1],
      ['command null', 'command', null],
      ['command and argv', 'argv', ['ls']],
      ['argv empty', 'argv', []],
      ['argv with a number', 'argv', ['ls', 1]],
      ['argv a string', 'argv', 'ls'],
      ['env an array', 'env', ['A=1']],
      ['env null', 'env', null],
      ['env value a number', 'env', { A: 1 }],
      ['env value an object', 'env', { A: { B: 'c' } }],
      ['env name with =', 'env', { 'A=B': 'c' }],
      ['env name empty', 'env', { '': 'c' }],
      ['env name with NUL', 'env', { 'A\0': 'c' }],
      ['env value with NUL', 'env', { A: 'x\0y' }],
      ['env __proto__ object', 'env', JSON.parse('{"__proto__":{"polluted":"yes"}}')],
      ['cwd a number', 'cwd', 1],
      ['timeoutMs 0', 'timeoutMs', 0],
      ['timeoutMs above 2^31-1', 'timeoutMs', 2 ** 31],
      ['timeoutMs a string', 'timeoutMs', '10'],
      ['session negative', 'session', -1],
      ['session above u32', 'session', U32_MAX + 1],
      ['session fractional', 'session', 1.5],
    ]);
    const noCommand = withField(exec, 'command', REMOVE);
    assert.equal(typeof decodeOpen(json({ ...noCommand, kind: 'session' })).kind, 'string', 'a session needs no command');
    rejects(() => decodeOpen(json(noCommand)), ErrorCode.BAD_MESSAGE, 'exec with neither command nor argv');
    rejects(() => decodeOpen(json({ kind: 'exec', window: 1, maxPacket: 1, argv: [] })), ErrorCode.BAD_MESSAGE, 'argv-only exec with empty argv');
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  });

  test('pty: {term, cols, rows} is checked, and an exec with a pty needs no command', () => {
    const pty = { term: 'xterm-256color', cols: 80, rows: 24 };
    assert.deepEqual(flatOpen(json({ ...exec, pty })).pty, pty);
    const login = flatOpen(json({ kind: 'exec', window: 1, maxPacket: 1, pty }));
    assert.equal(login.command, undefined);
    assert.equal(login.argv, undefined);
    checkMutations(decodeOpen, { ...exec, pty }, [
      ['pty null', 'pty', null],
      ['pty a string', 'pty', 'xterm'],
      ['pty without term', 'pty', { cols: 80, rows: 24 }],
      ['pty cols 0', 'pty', { term: 'xterm', cols: 0, rows: 24 }],
      ['pty rows 65536', 'pty', { term: 'xterm', cols: 80, rows: 65536 }],
    ]);
  });

  // docs/protocol.md §9 item 4: NUL is refused in env names and values but not in command
  // or argv, which makes the daemon's spawn() throw outside the codec.
  test('rejects NUL bytes in command and argv, as it does in env', () => {
    rejects(() => decodeOpen(json({ ...exec, command: 'echo a\0b' })), ErrorCode.BAD_MESSAGE, 'command with NUL');
    rejects(() => decodeOpen(json({ kind: 'exec', window: 1, maxPacket: 1, argv: ['echo', 'a\0b'] })), ErrorCode.BAD_MESSAGE, 'argv with NUL');
  });

  // docs/protocol.md §4.11: OS byte strings. \udc80-\udcff are bytes; other lone surrogates name none.
  test('takes OS byte strings in command, argv, env and cwd, and refuses strings that name no bytes', () => {
    const bytes = { ...exec, command: 'ls caf\udce9', cwd: '/tmp/\udcff', env: { X: 'a\udc80', Y: '\u{1F600}' } };
    const open = flatOpen(json(bytes));
    assert.equal(open.command, 'ls caf\udce9');
    assert.equal(open.cwd, '/tmp/\udcff');
    assert.deepEqual({ ...open.env }, { X: 'a\udc80', Y: '\u{1F600}' });
    assert.deepEqual(flatOpen(json({ kind: 'exec', window: 1, maxPacket: 1, argv: ['ls', '\udce9'] })).argv, ['ls', '\udce9']);
    for (const [label, value] of [
      ['command high surrogate', { ...exec, command: 'echo \ud800' }],
      ['command low surrogate below U+DC80', { ...exec, command: 'echo \udc7f' }],
      ['argv', { kind: 'exec', window: 1, maxPacket: 1, argv: ['echo', 'a\udd00'] }],
      ['cwd', { ...exec, cwd: '/tmp/\udbff' }],
      ['env value', { ...exec, env: { X: '\udfff' } }],
      ['env name', { ...exec, env: { '\ud800X': '1' } }],
    ] as const) {
      rejects(() => decodeOpen(json(value)), ErrorCode.BAD_MESSAGE, label);
      assert.throws(() => decodeOpen(json(value)), /not an OS byte string/, label);
    }
    assert.throws(() => decodeOpenOk(json({ window: 0, maxPacket: 1, cwd: '/\ud800' })), /not an OS byte string/);
    assert.throws(() => decodeExit(json({ exitCode: 0, signal: null, timedOut: false, cwd: '/\ud800' })), /not an OS byte string/);
  });
});

describe('OPEN_OK', () => {
  test('accepts what the server sends, with and without the optional fields', () => {
    const ok = { window: 2097152, maxPacket: 262144, pid: 4242, cwd: '/home/alice' };
    assert.deepEqual(decodeOpenOk(json(ok)), ok);
    assert.deepEqual(decodeOpenOk(json({ window: 0, maxPacket: 1 })), { window: 0, maxPacket: 1 });
    checkMutations(decodeOpenOk, ok, [
      ['window missing', 'window', REMOVE],
      ['window negative', 'window', -1],
      ['maxPacket 0', 'maxPacket', 0],
      ['maxPacket above 1 MiB', 'maxPacket', 1024 * 1024 + 1],
      ['pid a string', 'pid', '4242'],
      ['pid negative', 'pid', -1],
      ['cwd a number', 'cwd', 0],
    ]);
  });
});

describe('SIGNAL', () => {
  test('accepts every allowed signal and nothing else', () => {
    assert.deepEqual([...ALLOWED_SIGNALS].sort(), ['SIGCONT', 'SIGHUP', 'SIGINT', 'SIGKILL', 'SIGQUIT', 'SIGTERM', 'SIGTSTP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']);
    for (const signal of ALLOWED_SIGNALS) assert.deepEqual(decodeSignal(json({ signal })), { signal });
    checkMutations(decodeSignal, { signal: 'SIGINT' }, [
      ['signal missing', 'signal', REMOVE],
      ['signal not allowed', 'signal', 'SIGSEGV'],
      ['signal lower case', 'signal', 'sigint'],
      ['signal without SIG', 'signal', 'INT'],
      ['signal a number', 'signal', 2],
      ['signal null', 'signal', null],
    ]);
  });
});

describe('EXIT', () => {
  const exit = { exitCode: 0, signal: null, timedOut: false };

  test('accepts every shape the server sends', () => {
    assert.deepEqual(decodeExit(json(exit)), exit);
    assert.deepEqual(decodeExit(json({ exitCode: null, signal: 'SIGKILL', timedOut: true })), { exitCode: null, signal: 'SIGKILL', timedOut: true });
    assert.deepEqual(decodeExit(json({ exitCode: 255, signal: null, timedOut: false, cwd: '/tmp' })), { exitCode: 255, signal: null, timedOut: false, cwd: '/tmp' });
    const spawnFailed = { exitCode: 127, signal: null, timedOut: false, error: { code: 'SW_ERR_SPAWN_FAILED', message: 'Cannot run x: ENOENT' } };
    assert.deepEqual(decodeExit(json(spawnFailed)), spawnFailed);
  });

  test('rejects each malformed field with SW_ERR_BAD_MESSAGE', () => {
    checkMutations(decodeExit, exit, [
      ['exitCode missing', 'exitCode', REMOVE],
      ['exitCode negative', 'exitCode', -1],
      ['exitCode 256', 'exitCode', 256],
      ['exitCode fractional', 'exitCode', 1.5],
      ['exitCode a string', 'exitCode', '0'],
      ['exitCode false', 'exitCode', false],
      ['signal missing', 'signal', REMOVE],
      ['signal a number', 'signal', 9],
      ['timedOut missing', 'timedOut', REMOVE],
      ['timedOut a string', 'timedOut', 'false'],
      ['timedOut null', 'timedOut', null],
      ['cwd a number', 'cwd', 1],
      ['error a string', 'error', 'ENOENT'],
      ['error null', 'error', null],
      ['error without code', 'error', { message: 'x' }],
      ['error with a numeric message', 'error', { code: 'SW_ERR_SPAWN_FAILED', message: 1 }],
    ]);
  });
});

describe('RESIZE', () => {
  test('accepts 1..65535 and rejects the rest', () => {
    assert.deepEqual(decodeResize(json({ cols: 80, rows: 24 })), { cols: 80, rows: 24 });
    assert.deepEqual(decodeResize(json({ cols: 65535, rows: 1 })), { cols: 65535, rows: 1 });
    checkMutations(decodeResize, { cols: 80, rows: 24 }, [
      ['cols 0', 'cols', 0],
      ['rows 65536', 'rows', 65536],
      ['cols missing', 'cols', REMOVE],
    ]);
  });
});

describe('WINDOW', () => {
  test('is a u32 big-endian increment', () => {
    assert.equal(encodeWindow(1048576).toString('hex'), '00100000');
    assert.equal(encodeWindow(U32_MAX).toString('hex'), 'ffffffff');
    assert.equal(decodeWindow(Buffer.from([0, 0, 0, 1])), 1);
    assert.equal(decodeWindow(Buffer.from([0x80, 0, 0, 0])), 0x80000000);
    assert.equal(decodeWindow(Buffer.from([0xff, 0xff, 0xff, 0xff])), U32_MAX);
  });

  test('rejects a wrong length and a zero increment', () => {
    for (const length of [0, 1, 3, 5, 8]) rejects(() => decodeWindow(Buffer.alloc(length, 1)), ErrorCode.BAD_MESSAGE, `length ${length}`);
    rejects(() => decodeWindow(Buffer.alloc(4)), ErrorCode.BAD_MESSAGE, 'increment 0');
  });

  test('property: decodeWindow(encodeWindow(n)) == n for every increment 1..2^32-1', () => {
    fc.assert(
      fc.property(fc.maxSafeNat().map((n) => (n % U32_MAX) + 1), (n) => {
        assert.equal(decodeWindow(encodeWindow(n)), n);
      }),
      { numRuns: 300 },
    );
  });
});

describe('decoder properties', () => {
  function onlyProtocolErrors(decode: (p: Buffer) => unknown, payload: Buffer, allowed: readonly string[]): unknown {
    try {
      return decode(payload);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `threw ${(err as Error)?.constructor?.name}: ${String(err)}`);
      assert.ok(allowed.includes(err.code), `code ${err.code}`);
      return undefined;
    }
  }

  const allowedFor = (name: string) => (name === 'HELLO' ? [ErrorCode.BAD_MESSAGE, ErrorCode.BAD_MAGIC] : [ErrorCode.BAD_MESSAGE]);
  const windowDecoder: [string, (p: Buffer) => unknown] = ['WINDOW', decodeWindow];

  test('random JSON into every decoder yields a value or a ProtocolError', () => {
    for (const [name, decode] of JSON_DECODERS) {
      fc.assert(
        fc.property(fc.jsonValue(), (value) => {
          onlyProtocolErrors(decode, json(value), allowedFor(name));
        }),
        { numRuns: 150 },
      );
    }
  });

  test('random bytes into every decoder yield a value or a ProtocolError', () => {
    for (const [name, decode] of [...JSON_DECODERS, windowDecoder]) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
          onlyProtocolErrors(decode, Buffer.from(bytes), allowedFor(name));
        }),
        { numRuns: 150 },
      );
    }
  });

  // Valid messages with one field replaced by arbitrary JSON: whatever the decoder accepts
  // must still satisfy the schema, so a check that is missing or too loose shows up here.
  const isInt = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  const isStrings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

  test('OPEN with any field replaced: accepted results satisfy the schema', () => {
    const base = { kind: 'exec', window: 2097152, maxPacket: 65536, command: 'ls', env: { A: '1' }, cwd: '/', timeoutMs: 10, session: 1 };
    const keys = [...Object.keys(base), 'argv'];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.jsonValue(), (key, value) => {
        const open = onlyProtocolErrors(flatOpen, json({ ...base, [key]: value }), [ErrorCode.BAD_MESSAGE]) as ReturnType<typeof flatOpen> | undefined;
        if (open === undefined) return;
        assert.ok(typeof open.kind === 'string' && /^[a-z]/.test(open.kind), `kind ${open.kind}`);
        assert.ok(isInt(open.window, 1, U32_MAX) && isInt(open.maxPacket, 1, 1024 * 1024));
        if (open.kind === 'exec') assert.ok(open.command === undefined || open.argv === undefined, 'not both command and argv');
        if (open.kind === 'exec' && open.pty === undefined) assert.ok(open.command !== undefined || open.argv !== undefined, 'command or argv');
        if (open.command !== undefined) assert.equal(typeof open.command, 'string');
        if (open.argv !== undefined) assert.ok(isStrings(open.argv) && open.argv.length > 0);
        if (open.cwd !== undefined) assert.equal(typeof open.cwd, 'string');
        if (open.timeoutMs !== undefined) assert.ok(isInt(open.timeoutMs, 1, 2 ** 31 - 1));
        if (open.session !== undefined) assert.ok(isInt(open.session, 0, U32_MAX));
        for (const [k, v] of Object.entries(open.env ?? {})) {
          assert.ok(k.length > 0 && !k.includes('=') && !k.includes('\0') && typeof v === 'string' && !v.includes('\0'), `env ${k}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('HELLO, EXIT and SIGNAL with any field replaced: accepted results satisfy the schema', () => {
    const hello = { magic: 'shellwire', versions: [1], features: ['exec'], client: 'c', user: 'u', auth: [{ method: 'token', token: 't' }] };
    const exit = { exitCode: 1, signal: null, timedOut: false, cwd: '/', error: { code: 'X', message: 'y' } };
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(hello)), fc.jsonValue(), (key, value) => {
        const h = onlyProtocolErrors(decodeHello, json({ ...hello, [key]: value }), [ErrorCode.BAD_MESSAGE, ErrorCode.BAD_MAGIC]) as ReturnType<typeof decodeHello> | undefined;
        if (h === undefined) return;
        assert.equal(h.magic, 'shellwire');
        assert.ok(Array.isArray(h.versions) && h.versions.every((v) => Number.isInteger(v)));
        assert.ok(isStrings(h.features) && typeof h.client === 'string');
        assert.ok(h.user === undefined || typeof h.user === 'string');
        assert.ok(Array.isArray(h.auth) && h.auth.length >= 1 && h.auth.length <= MAX_AUTH_ATTEMPTS, 'auth is 1..MAX_AUTH_ATTEMPTS attempts');
        for (const a of h.auth) {
          if (a.method === 'token') assert.equal(typeof a.token, 'string');
          else if (a.method === 'password') assert.equal(typeof a.password, 'string');
          else if (a.method === 'publickey') assert.ok(typeof a.publicKey === 'string' && typeof a.signature === 'string');
          else assert.equal(a.method, 'none');
        }
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(exit)), fc.jsonValue(), (key, value) => {
        const e = onlyProtocolErrors(decodeExit, json({ ...exit, [key]: value }), [ErrorCode.BAD_MESSAGE]) as ReturnType<typeof decodeExit> | undefined;
        if (e === undefined) return;
        assert.ok(e.exitCode === null || isInt(e.exitCode, 0, 255));
        assert.ok(e.signal === null || typeof e.signal === 'string');
        assert.equal(typeof e.timedOut, 'boolean');
        assert.ok(e.cwd === undefined || typeof e.cwd === 'string');
        assert.ok(e.error === undefined || (typeof e.error.code === 'string' && typeof e.error.message === 'string'));
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const s = onlyProtocolErrors(decodeSignal, json({ signal: value }), [ErrorCode.BAD_MESSAGE]) as ReturnType<typeof decodeSignal> | undefined;
        if (s !== undefined) assert.ok((ALLOWED_SIGNALS as readonly string[]).includes(s.signal));
      }),
      { numRuns: 100 },
    );
  });
});
