/**
 * A daemon on the network hears garbage, old clients, broken clients and hostile ones.
 * Each bad input here must be answered with a coded GOODBYE (docs/errors.md) and a closed
 * connection — and must leave the daemon serving everyone else: after every case a
 * normal client runs `echo ok` on the same daemon.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorCode, RequestError, CommandError, UsageError, ConnectionError, type ShellwireError } from '../../src/errors.js';
import { FrameType, encodeFrame, encodeFrameHeader, FRAME_HEADER_SIZE } from '../../src/protocol/frame.js';
import { decodeExit, encodeWindow } from '../../src/protocol/messages.js';
import { connect } from '../../src/client/connect.js';
import { startDaemon, waitFor, processAlive, type TestDaemon } from '../helpers/daemon.js';
import { RawClient, plainTcpExchange, captureLogger, type LogLine } from '../helpers/raw-client.js';

/** A normal client still gets service: connect, `echo ok`, close. */
async function assertServes(d: TestDaemon): Promise<void> {
  const conn = await d.connect();
  try {
    const result = await conn.exec('echo ok');
    assert.equal(result.stdout, 'ok\n');
    assert.equal(result.exitCode, 0);
  } finally {
    await conn.close();
  }
}

/** The daemon said GOODBYE with one of `codes`, then closed; returns the goodbye. */
async function assertGoodbye(client: RawClient, codes: string | string[]): Promise<{ code: string; message: string }> {
  const expected = Array.isArray(codes) ? codes : [codes];
  const goodbye = await client.goodbye();
  assert.ok(expected.includes(goodbye.code), `GOODBYE code ${goodbye.code} (${goodbye.message}), expected ${expected.join(' or ')}`);
  assert.ok(goodbye.message.length > 0, 'GOODBYE carries a message for humans');
  await client.waitClosed();
  assert.equal(client.decodeError, null, 'the daemon only ever sends well-formed frames');
  return goodbye;
}

function logsFor(lines: LogLine[], client: RawClient): LogLine[] {
  return lines.filter((l) => l.client === client.localAddress);
}

/** Random bytes whose first frame header is invalid for sure: a huge length, and (most likely) an unknown type. */
function garbage(size = 64): Buffer {
  const bytes = randomBytes(size);
  bytes[0] = 0xff;
  return bytes;
}


/** STDIN frames on channel 1 carrying `window + 1` bytes, in frames of at most `maxPayload`, as one buffer. */
function stdinPastWindow(window: number, maxPayload: number): Buffer {
  const frames: Buffer[] = [];
  for (let left = window + 1; left > 0;) {
    const size = Math.min(left, maxPayload);
    frames.push(encodeFrame(FrameType.STDIN, 1, Buffer.alloc(size, 0x61)));
    left -= size;
  }
  return Buffer.concat(frames);
}
describe('bad input on one daemon', () => {
  let d: TestDaemon;
  let logs: LogLine[];

  before(async () => {
    const captured = captureLogger();
    logs = captured.lines;
    d = await startDaemon({ logger: captured.logger });
  });
  after(async () => {
    await d.stop();
  });

  it('garbage bytes after the TLS handshake: GOODBYE with a frame error', async () => {
    const client = await RawClient.open(d.port);
    client.write(garbage());
    await assertGoodbye(client, [ErrorCode.UNKNOWN_FRAME_TYPE, ErrorCode.FRAME_TOO_LARGE]);
    await assertServes(d);
  });

  it('an unknown frame type is named as such', async () => {
    const client = await RawClient.open(d.port);
    const header = encodeFrameHeader(FrameType.HELLO, 0, 0);
    header[4] = 0xee;
    client.write(header);
    await assertGoodbye(client, ErrorCode.UNKNOWN_FRAME_TYPE);
    await assertServes(d);
  });

  it('non-TLS bytes on the port (an HTTP request): connection closed, daemon fine', async () => {
    const { received } = await plainTcpExchange(d.port, 'GET / HTTP/1.0\r\n\r\n');
    // At most a TLS alert record (type 0x15) comes back, never an HTTP answer or a frame.
    assert.ok(received.length === 0 || received[0] === 0x15, `unexpected reply ${received.subarray(0, 16).toString('hex')}`);
    await assertServes(d);
    assert.ok(logs.some((l) => l.code === ErrorCode.TLS), 'the failed TLS handshake is logged with SW_ERR_TLS');
  });

  it('HELLO with protocol version 99 only: SW_ERR_VERSION_MISMATCH', async () => {
    const client = await RawClient.open(d.port);
    client.write(RawClient.helloFrame(d.token, { versions: [99] }));
    const goodbye = await assertGoodbye(client, ErrorCode.VERSION_MISMATCH);
    assert.match(goodbye.message, /99/);
    await assertServes(d);
  });

  it('HELLO with the wrong magic: SW_ERR_BAD_MAGIC', async () => {
    const client = await RawClient.open(d.port);
    client.write(RawClient.helloFrame(d.token, { magic: 'sshellwire' }));
    await assertGoodbye(client, ErrorCode.BAD_MAGIC);
    await assertServes(d);
  });

  it('a length prefix over 16 KiB before authentication: SW_ERR_FRAME_TOO_LARGE', async () => {
    const client = await RawClient.open(d.port);
    // Only the header: the daemon must refuse on the length alone, before buffering a byte of payload.
    client.write(encodeFrameHeader(FrameType.HELLO, 0, 16 * 1024 + 1));
    await assertGoodbye(client, ErrorCode.FRAME_TOO_LARGE);
    await assertServes(d);
  });

  it('a length prefix over 256 KiB after authentication: SW_ERR_FRAME_TOO_LARGE', async () => {
    const client = await RawClient.open(d.port);
    const welcome = await client.authenticate(d.token);
    assert.equal(welcome.maxPayload, 256 * 1024);
    client.write(encodeFrameHeader(FrameType.STDIN, 1, 256 * 1024 + 1));
    await assertGoodbye(client, ErrorCode.FRAME_TOO_LARGE);
    await assertServes(d);
  });

  it('a 16 KiB HELLO-sized frame is still accepted before authentication (the limit is inclusive)', async () => {
    const client = await RawClient.open(d.port);
    // A HELLO padded to exactly the pre-auth maximum: it is decoded (and refused for its content, not its size).
    const body = Buffer.from(JSON.stringify({ magic: 'nope', pad: '' }));
    const padded = Buffer.from(JSON.stringify({ magic: 'nope', pad: 'x'.repeat(16 * 1024 - body.length) }));
    assert.equal(padded.length, 16 * 1024);
    client.write(encodeFrame(FrameType.HELLO, 0, padded));
    await assertGoodbye(client, ErrorCode.BAD_MAGIC);
  });

  it('a frame cut off by a half-close: connection closed, SW_ERR_FRAME_TRUNCATED logged', async () => {
    const client = await RawClient.open(d.port);
    const hello = RawClient.helloFrame(d.token);
    client.socket.end(hello.subarray(0, FRAME_HEADER_SIZE + 10));
    await client.waitClosed();
    const truncated = await waitFor(() => logsFor(logs, client).some((l) => l.code === ErrorCode.FRAME_TRUNCATED), 2_000);
    assert.ok(truncated, `expected one log line with SW_ERR_FRAME_TRUNCATED, got ${JSON.stringify(logsFor(logs, client))}`);
    assert.equal(logsFor(logs, client).filter((l) => l.code === ErrorCode.FRAME_TRUNCATED).length, 1);
    await assertServes(d);
  });

  it('OPEN before HELLO: SW_ERR_NOT_AUTHENTICATED', async () => {
    const client = await RawClient.open(d.port);
    client.sendJson(FrameType.OPEN, 1, { kind: 'exec', command: 'echo pwned', window: 65536, maxPacket: 65536 });
    await assertGoodbye(client, ErrorCode.NOT_AUTHENTICATED);
    await assertServes(d);
  });

  it('OPEN pipelined right behind HELLO, before WELCOME: SW_ERR_NOT_AUTHENTICATED', async () => {
    const client = await RawClient.open(d.port);
    client.write(Buffer.concat([
      RawClient.helloFrame(d.token),
      encodeFrame(FrameType.OPEN, 1, Buffer.from(JSON.stringify({ kind: 'exec', command: 'echo early', window: 65536, maxPacket: 65536 }))),
    ]));
    await assertGoodbye(client, ErrorCode.NOT_AUTHENTICATED);
    await assertServes(d);
  });

  it('WINDOW for channel 42, which is not open: SW_ERR_UNKNOWN_CHANNEL', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    client.send(FrameType.WINDOW, 42, encodeWindow(4096));
    const goodbye = await assertGoodbye(client, ErrorCode.UNKNOWN_CHANNEL);
    assert.match(goodbye.message, /42/);
    await assertServes(d);
  });

  it('OPEN twice on the same channel: SW_ERR_CHANNEL_IN_USE, and the first command is killed', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    const first = await client.openExec(1, { command: 'sleep 5' });
    assert.equal(first.type, FrameType.OPEN_OK);
    const pid = first.body.pid as number;
    assert.ok(processAlive(pid));
    client.sendJson(FrameType.OPEN, 1, { kind: 'exec', command: 'sleep 5', window: 65536, maxPacket: 65536 });
    await assertGoodbye(client, ErrorCode.CHANNEL_IN_USE);
    assert.ok(await waitFor(() => !processAlive(pid), 3_000), 'the command of the failed connection is killed');
    await assertServes(d);
  });

  it('STDIN past the granted window: SW_ERR_WINDOW_OVERRUN', async () => {
    const client = await RawClient.open(d.port);
    const welcome = await client.authenticate(d.token);
    // `sleep` never reads stdin, so the pipe takes at most one pipe buffer and no credit comes back.
    const opened = await client.openExec(1, { command: 'sleep 5' });
    assert.equal(opened.type, FrameType.OPEN_OK);
    const window = opened.body.window as number;
    const pid = opened.body.pid as number;
    assert.ok(window > 0);
    // One write: no WINDOW from the daemon can slip in between our frames.
    client.write(stdinPastWindow(window, welcome.maxPayload));
    const goodbye = await assertGoodbye(client, ErrorCode.WINDOW_OVERRUN);
    assert.match(goodbye.message, /channel 1/);
    assert.ok(await waitFor(() => !processAlive(pid), 3_000), 'the command of the failed connection is killed');
    await assertServes(d);
  });

  it('one STDIN frame bigger than the window: the GOODBYE names the frame\'s size, not a piece of it (review 11 #12)', async () => {
    const small = await startDaemon({ limits: { stdinWindow: 64 * 1024 } });
    const client = await RawClient.open(small.port);
    const welcome = await client.authenticate(small.token);
    const opened = await client.openExec(1, { command: 'sleep 5' });
    const window = opened.body.window as number;
    const size = welcome.maxPayload;
    assert.ok(size > window, `maxPayload ${size} > window ${window}`);
    // Sent in small writes: the daemon's decoder passes the frame on in pieces.
    const frame = encodeFrame(FrameType.STDIN, 1, Buffer.alloc(size, 0x61));
    for (let at = 0; at < frame.length && !client.closed; at += 16 * 1024) client.write(frame.subarray(at, at + 16 * 1024));
    const goodbye = await assertGoodbye(client, ErrorCode.WINDOW_OVERRUN);
    assert.match(goodbye.message, new RegExp(`a ${size}-byte data frame on channel 1 with only ${window} bytes of window left`));
    await assertServes(small);
    await small.stop();
  });

  it('STDIN past the window after the daemon\'s EXIT and CLOSE: still SW_ERR_WINDOW_OVERRUN (§6.3 rule 2)', async () => {
    const client = await RawClient.open(d.port);
    const welcome = await client.authenticate(d.token);
    const opened = await client.openExec(1, { command: 'true' });
    assert.equal(opened.type, FrameType.OPEN_OK);
    const window = opened.body.window as number;
    // The daemon has sent EXIT and CLOSE; ours is not out yet, so channel 1 still counts STDIN.
    await client.nextFrame((f) => f.type === FrameType.CLOSE && f.channel === 1);
    client.write(stdinPastWindow(window, welcome.maxPayload));
    const goodbye = await assertGoodbye(client, ErrorCode.WINDOW_OVERRUN);
    assert.match(goodbye.message, /channel 1/);
    await assertServes(d);
  });

  it('WINDOW past 2^32-1 after the daemon\'s EXIT and CLOSE: still SW_ERR_WINDOW_OVERRUN', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    await client.openExec(1, { command: 'true', window: 1024 });
    await client.nextFrame((f) => f.type === FrameType.CLOSE && f.channel === 1);
    client.send(FrameType.WINDOW, 1, encodeWindow(0xffffffff));
    await assertGoodbye(client, ErrorCode.WINDOW_OVERRUN);
    await assertServes(d);
  });

  it('WINDOW that raises the credit past 2^32-1: SW_ERR_WINDOW_OVERRUN', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    const opened = await client.openExec(1, { command: 'sleep 5', window: 1024 });
    const pid = opened.body.pid as number;
    client.send(FrameType.WINDOW, 1, encodeWindow(0xffffffff));
    await assertGoodbye(client, ErrorCode.WINDOW_OVERRUN);
    assert.ok(await waitFor(() => !processAlive(pid), 3_000), 'the command of the failed connection is killed');
    await assertServes(d);
  });

  it('PING before HELLO: SW_ERR_NOT_AUTHENTICATED (nothing but HELLO before authentication)', async () => {
    const client = await RawClient.open(d.port);
    try {
      client.send(FrameType.PING, 0, Buffer.alloc(8));
      // Short wait: today the daemon answers PONG and keeps waiting for HELLO until its deadline.
      const goodbye = await client.goodbye(1_000);
      assert.equal(goodbye.code, ErrorCode.NOT_AUTHENTICATED);
      assert.equal(client.frames.some((f) => f.type === FrameType.PONG), false);
    } finally {
      client.destroy();
    }
  });

  it('STDIN of exactly the granted window is accepted', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    const opened = await client.openExec(1, { command: 'wc -c' });
    const window = opened.body.window as number;
    const chunk = 64 * 1024;
    const frames: Buffer[] = [];
    for (let left = window; left > 0; left -= chunk) frames.push(encodeFrame(FrameType.STDIN, 1, Buffer.alloc(Math.min(left, chunk), 0x61)));
    frames.push(encodeFrame(FrameType.EOF, 1));
    client.write(Buffer.concat(frames));
    const exit = await client.nextFrame((f) => f.type === FrameType.EXIT && f.channel === 1, 5_000);
    assert.equal(decodeExit(exit.payload).exitCode, 0);
    const out = client.frames.filter((f) => f.type === FrameType.STDOUT).map((f) => f.payload.toString()).join('');
    assert.equal(out.trim(), String(window));
    assert.equal(client.frames.some((f) => f.type === FrameType.GOODBYE), false);
    client.destroy();
  });

  // A malformed OPEN fails that channel alone (OPEN_FAIL); the connection serves on.
  const assertOpenFail = async (client: RawClient, channel: number) => {
    const frame = await client.nextFrame((f) => f.channel === channel);
    assert.equal(frame.type, FrameType.OPEN_FAIL);
    assert.equal(JSON.parse(frame.payload.toString()).code, ErrorCode.BAD_MESSAGE);
    assert.equal((await client.openExec(channel, { command: 'echo still' })).type, FrameType.OPEN_OK);
    client.destroy();
  };

  it('malformed JSON in OPEN: OPEN_FAIL SW_ERR_BAD_MESSAGE, the connection lives on', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    client.send(FrameType.OPEN, 1, Buffer.from('{"kind":"exec","command":"echo x",'));
    await assertOpenFail(client, 1);
    await assertServes(d);
  });

  it('a well-formed OPEN with wrong field types: OPEN_FAIL SW_ERR_BAD_MESSAGE, the connection lives on', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    client.sendJson(FrameType.OPEN, 1, { kind: 'exec', command: ['echo', 'x'], window: -1, maxPacket: 65536 });
    await assertOpenFail(client, 1);
    await assertServes(d);
  });

  it('NUL bytes in a command, an argv word, an env value, cwd or TERM: OPEN_FAIL, the connection lives on', async () => {
    const cases = [
      { command: 'echo a\0b' },
      { argv: ['echo', 'a\0b'] },
      { command: 'echo', env: { X: 'a\0b' } },
      { command: 'echo', cwd: '/tmp\0/etc' },
      { pty: { term: 'xterm\0', cols: 80, rows: 24 }, command: 'true' },
    ];
    for (const fields of cases) {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      client.sendJson(FrameType.OPEN, 1, { kind: 'exec', window: 65536, maxPacket: 65536, ...fields });
      await assertOpenFail(client, 1);
    }
    await assertServes(d);
  });

  it('a client that half-closes right after auth: clean close, its running command is killed', async () => {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    const opened = await client.openExec(1, { command: 'sleep 30' });
    assert.equal(opened.type, FrameType.OPEN_OK);
    const pid = opened.body.pid as number;
    assert.ok(processAlive(pid));
    client.socket.end();
    await client.waitClosed();
    assert.equal(client.frames.some((f) => f.type === FrameType.GOODBYE), false, 'nothing to complain about: no GOODBYE');
    assert.ok(await waitFor(() => !processAlive(pid), 3_000), 'the running command is killed');
    assert.ok(await waitFor(() => logsFor(logs, client).some((l) => l.msg === 'connection closed'), 1_000), 'logged as a clean close');
    const mine = logsFor(logs, client);
    assert.equal(mine.filter((l) => l.code !== undefined).length, 0, `no error logged: ${JSON.stringify(mine)}`);
    await assertServes(d);
  });

  it('many bad clients at once while a good client runs 50 commands: all 50 succeed', async () => {
    const conn = await d.connect();
    let goodDone = false;
    let badConnections = 0;
    const pest = async (n: number) => {
      // Keep coming back until the good client is done: TLS garbage and plain-TCP garbage, alternating.
      for (let round = 0; !goodDone && round < 200; round++) {
        if ((n + round) % 2 === 0) {
          // Garbage TLS rejects at once: a first byte of 0x14..0x18 (or 0x80+) could start a
          // real record header, and such a client is a silent one, closed at the handshake
          // deadline instead (hostile-transport.test.ts).
          await plainTcpExchange(d.port, Buffer.concat([Buffer.from('G'), randomBytes(63)]));
        } else {
          const client = await RawClient.open(d.port);
          client.write(garbage());
          await assertGoodbye(client, [ErrorCode.UNKNOWN_FRAME_TYPE, ErrorCode.FRAME_TOO_LARGE]);
        }
        badConnections += 1;
      }
    };
    const pests = Array.from({ length: 20 }, (_, n) => pest(n));
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => conn.exec(`echo ${i}`)));
      results.forEach((r, i) => assert.equal(r.stdout, `${i}\n`));
    } finally {
      goodDone = true;
      await Promise.all(pests);
      await conn.close();
    }
    assert.ok(badConnections >= 20, `only ${badConnections} bad connections were made`);
    await assertServes(d);
  });

  describe('bad requests (answered per command, the connection lives on)', () => {
    it('a working directory that does not exist: RequestError SW_ERR_BAD_REQUEST', async () => {
      const conn = await d.connect();
      try {
        await assert.rejects(conn.exec('pwd', { cwd: '/nonexistent/shellwire-test' }), (err: ShellwireError) => {
          assert.ok(err instanceof RequestError, `${err.name}: ${err.message}`);
          assert.equal(err.code, ErrorCode.BAD_REQUEST);
          return true;
        });
        assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
      } finally {
        await conn.close();
      }
    });

    it('a program that does not exist: EXIT carries SW_ERR_SPAWN_FAILED, the client sees exit 127', async () => {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      await client.openExec(1, { argv: ['/nonexistent/shellwire-program'] });
      const exit = decodeExit((await client.nextFrame((f) => f.type === FrameType.EXIT && f.channel === 1)).payload);
      assert.equal(exit.exitCode, 127);
      assert.equal(exit.error?.code, ErrorCode.SPAWN_FAILED);
      client.destroy();

      const conn = await d.connect();
      try {
        await assert.rejects(conn.exec(['/nonexistent/shellwire-program']), (err: CommandError) => {
          assert.ok(err instanceof CommandError);
          assert.equal(err.code, ErrorCode.COMMAND_FAILED);
          assert.equal(err.exitCode, 127);
          assert.match(err.stderr, /Cannot run/);
          return true;
        });
      } finally {
        await conn.close();
      }
    });

    it('non-zero exit, timeout, cancel and maxBuffer reject with their codes', async () => {
      const conn = await d.connect();
      try {
        await assert.rejects(conn.exec('echo oops >&2; exit 3'), { name: 'CommandError', code: ErrorCode.COMMAND_FAILED, exitCode: 3, stderr: 'oops\n' });
        await assert.rejects(conn.exec('sleep 5', { timeout: 200 }), { code: ErrorCode.COMMAND_TIMED_OUT, timedOut: true });
        await assert.rejects(conn.exec('sleep 5', { signal: AbortSignal.timeout(150) }), { code: ErrorCode.COMMAND_CANCELED, canceled: true });
        await assert.rejects(conn.exec('head -c 100000 /dev/zero', { maxBuffer: 1000 }), (err: CommandError) => {
          assert.equal(err.code, ErrorCode.MAX_BUFFER);
          assert.equal(err.stdoutBytes.length, 1000);
          return true;
        });
        assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
      } finally {
        await conn.close();
      }
    });

    it('a bad target never reaches the network: UsageError SW_ERR_BAD_TARGET', async () => {
      await assert.rejects(connect('[::1', { token: d.token }), (err: ShellwireError) => {
        assert.ok(err instanceof UsageError);
        assert.equal(err.code, ErrorCode.BAD_TARGET);
        return true;
      });
    });
  });
});

describe('bad input needing its own limits', () => {
  it('a TLS client that sends nothing: SW_ERR_HANDSHAKE_TIMEOUT after the deadline', async () => {
    const d = await startDaemon({ limits: { handshakeTimeoutMs: 300 } });
    try {
      const started = Date.now();
      const client = await RawClient.open(d.port);
      await assertGoodbye(client, ErrorCode.HANDSHAKE_TIMEOUT);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2_000, `closed after ${elapsed} ms, deadline 300 ms`);
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });

  it('an authenticated client that goes silent: SW_ERR_KEEPALIVE_TIMEOUT', async () => {
    const d = await startDaemon({ limits: { keepaliveMs: 100 } });
    try {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      // Never answer the daemon's PINGs.
      await assertGoodbye(client, ErrorCode.KEEPALIVE_TIMEOUT);
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });

  it('maxChannels 2, three OPENs: the third gets OPEN_FAIL SW_ERR_TOO_MANY_CHANNELS, the others complete', async () => {
    const d = await startDaemon({ limits: { maxChannels: 2 } });
    try {
      const client = await RawClient.open(d.port);
      const welcome = await client.authenticate(d.token);
      assert.equal(welcome.maxChannels, 2);
      const [a, b, c] = await Promise.all([1, 2, 3].map((id) => client.openExec(id, { command: 'sleep 1' })));
      assert.equal(a!.type, FrameType.OPEN_OK);
      assert.equal(b!.type, FrameType.OPEN_OK);
      assert.equal(c!.type, FrameType.OPEN_FAIL);
      assert.equal(c!.body.code, ErrorCode.TOO_MANY_CHANNELS);
      for (const id of [1, 2]) {
        const exit = decodeExit((await client.nextFrame((f) => f.type === FrameType.EXIT && f.channel === id)).payload);
        assert.equal(exit.exitCode, 0);
      }
      assert.equal(client.frames.some((f) => f.type === FrameType.GOODBYE), false, 'a refused OPEN does not end the connection');
      client.destroy();
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });

  it('maxChannels 2, three execs on the library client: the third rejects with RequestError SW_ERR_TOO_MANY_CHANNELS', async () => {
    const d = await startDaemon({ limits: { maxChannels: 2 } });
    try {
      const conn = await d.connect();
      try {
        const runs = [conn.exec('sleep 1'), conn.exec('sleep 1'), conn.exec('sleep 1')];
        const settled = await Promise.allSettled(runs);
        assert.equal(settled[0]!.status, 'fulfilled');
        assert.equal(settled[1]!.status, 'fulfilled');
        assert.equal(settled[2]!.status, 'rejected');
        const err = (settled[2] as PromiseRejectedResult).reason as ShellwireError;
        assert.equal(err.code, ErrorCode.TOO_MANY_CHANNELS);
        assert.ok(err instanceof RequestError, `got ${err.name}: ${err.message}`);
      } finally {
        await conn.close();
      }
    } finally {
      await d.stop();
    }
  });

  it('maxConnections 1: a second connect() rejects with SW_ERR_TOO_MANY_CONNECTIONS, the first keeps working', async () => {
    const d = await startDaemon({ limits: { maxConnections: 1 } });
    try {
      const first = await d.connect();
      await assert.rejects(d.connect(), (err: ShellwireError) => {
        assert.ok(err instanceof ConnectionError, `${err.name}: ${err.message}`);
        assert.equal(err.code, ErrorCode.TOO_MANY_CONNECTIONS);
        return true;
      });
      assert.equal((await first.exec('echo ok')).stdout, 'ok\n');
      await first.close();
      assert.ok(await waitFor(() => d.server.connectionCount === 0, 2_000));
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });

  it('daemon stopping: idle clients get SW_ERR_SERVER_SHUTTING_DOWN, new ones SW_ERR_CONNECT_FAILED', async () => {
    const d = await startDaemon();
    try {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      const closing = d.server.close(500);
      await assertGoodbye(client, ErrorCode.SERVER_SHUTTING_DOWN);
      await closing;
      await assert.rejects(d.connect(), { name: 'ConnectionError', code: ErrorCode.CONNECT_FAILED });
    } finally {
      await d.stop();
    }
  });
});

describe('an internal fault while handling a frame (review 11 #1)', () => {
  it('is SW_ERR_INTERNAL with a generic message: the client is not blamed and hears none of our internals', async () => {
    const { logger, lines } = captureLogger();
    // A channel kind whose factory has a bug: a plain Error, not a ProtocolError.
    const d = await startDaemon({ logger, channelKinds: [['buggy', () => { throw new Error('secret internal detail /etc/x'); }]] });
    try {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      client.sendJson(FrameType.OPEN, 1, { kind: 'buggy', window: 65536, maxPacket: 16384 });
      const goodbye = await assertGoodbye(client, ErrorCode.INTERNAL);
      assert.doesNotMatch(goodbye.message, /secret|\/etc\/x/);
      // The details are in the daemon's log, at error level.
      assert.ok(await waitFor(() => lines.some((l) => l.code === ErrorCode.INTERNAL && /secret internal detail/.test(String(l.err)))));
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });
});

describe('control JSON that is not UTF-8 or repeats a key (review 11 #4)', () => {
  it('an OPEN with invalid UTF-8 or a repeated key is refused (OPEN_FAIL SW_ERR_BAD_MESSAGE), runs nothing, and the connection lives', async () => {
    const d = await startDaemon();
    try {
      const client = await RawClient.open(d.port);
      await client.authenticate(d.token);
      const head = '{"kind":"exec","window":65536,"maxPacket":16384,"command":"printf %s caf';
      const bodies = [
        Buffer.concat([Buffer.from(head), Buffer.from([0xe9]), Buffer.from('"}')]),
        Buffer.concat([Buffer.from(head), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
        Buffer.from('{"kind":"exec","window":65536,"maxPacket":16384,"command":"echo first","command":"echo second"}'),
      ];
      let id = 1;
      for (const body of bodies) {
        client.send(FrameType.OPEN, id, body);
        const frame = await client.nextFrame((f) => f.channel === id && (f.type === FrameType.OPEN_OK || f.type === FrameType.OPEN_FAIL));
        assert.equal(frame.type, FrameType.OPEN_FAIL, body.toString('latin1'));
        assert.equal((JSON.parse(frame.payload.toString('utf8')) as { code: string }).code, ErrorCode.BAD_MESSAGE);
        id += 1;
      }
      // Still serving on this connection.
      const opened = await client.openExec(id, { command: 'true' });
      assert.equal(opened.type, FrameType.OPEN_OK);
      client.socket.destroy();
    } finally {
      await d.stop();
    }
  });

  it('a HELLO with invalid UTF-8 is a malformed HELLO: GOODBYE SW_ERR_BAD_MESSAGE', async () => {
    const d = await startDaemon();
    try {
      const client = await RawClient.open(d.port);
      // A real HELLO whose client name holds a raw 0xE9 byte (framed again: its length changed).
      const hello = RawClient.helloFrame(d.token, { client: 'x\udce9' }).subarray(FRAME_HEADER_SIZE);
      const at = hello.indexOf('\\udce9');
      client.write(encodeFrame(FrameType.HELLO, 0, Buffer.concat([hello.subarray(0, at), Buffer.from([0xe9]), hello.subarray(at + 6)])));
      await assertGoodbye(client, ErrorCode.BAD_MESSAGE);
      await assertServes(d);
    } finally {
      await d.stop();
    }
  });
});
