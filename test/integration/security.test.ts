/**
 * Who may run commands, and who the client believes it talks to: tokens, host-key pinning
 * (known_hosts), secret-file permissions, and TLS 1.3 only. Real daemons on loopback,
 * the library client and the real CLI.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, statSync, chmodSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthenticationError, ConnectionError, ErrorCode, HostVerificationError, UsageError, type ShellwireError,
} from '../../src/errors.js';
import { connect } from '../../src/client/connect.js';
import { Server } from '../../src/server/server.js';
import { TokenAuthenticator, type Authenticator } from '../../src/auth/authenticator.js';
import { createIdentity } from '../../src/auth/identity.js';
import { HOST_KEY_FILE, TOKEN_FILE } from '../../src/auth/paths.js';
import { ALPN_PROTOCOL, TLS_CIPHERS } from '../../src/transport/tls.js';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import { RawClient, captureLogger, type LogLine } from '../helpers/raw-client.js';
import { transportOf } from '../helpers/transport-of.js';

const tempRoots: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'shellwire-sec-'));
  tempRoots.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempRoots) rmSync(dir, { recursive: true, force: true });
});

/** An environment for the CLI with no SHELLWIRE_* from the outside world. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SHELLWIRE_')) env[name] = value;
  return { ...env, ...extra };
}

function isCode(code: ErrorCode, cls: new (...args: never[]) => ShellwireError) {
  return (err: ShellwireError) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err.name}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** An authenticator that records every HELLO it is asked about, then checks the daemon's token. */
function recordingAuthenticator(): Authenticator & { calls: string[]; token?: string } {
  const recorder: Authenticator & { calls: string[]; token?: string } = {
    calls: [],
    authenticate(attempts) {
      for (const auth of attempts) recorder.calls.push(auth.method === 'token' ? auth.token : auth.method);
      return new TokenAuthenticator(recorder.token ?? '').authenticate(attempts);
    },
  };
  return recorder;
}

describe('tokens', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('a wrong token: connect() rejects with AuthenticationError SW_ERR_AUTH_FAILED', async () => {
    await assert.rejects(d.connect({ token: 'swt_wrong' }), isCode(ErrorCode.AUTH_FAILED, AuthenticationError));
    // ... and the daemon keeps serving the right token.
    const conn = await d.connect();
    assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
    await conn.close();
  });

  it('a wrong token on the CLI: exit 255, one line naming the code', async () => {
    const result = await runCli(['exec', d.address, 'echo', 'hi'], { env: { ...d.env, SHELLWIRE_TOKEN: 'swt_wrong' } });
    assert.equal(result.code, 255, result.stderr);
    assert.equal(result.stdout.length, 0);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
    assert.match(lines[0]!, /^shellwire: .*SW_ERR_AUTH_FAILED/);
    assert.ok(!result.stderr.includes('swt_wrong'), 'the offered token is not echoed');
  });

  it('no token anywhere (no option, no file, no SHELLWIRE_TOKEN, no local daemon token): SW_ERR_NO_CREDENTIALS', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'known_hosts'), `${d.address} ${d.fingerprint}\n`);
    const env = cleanEnv({ SHELLWIRE_HOME: home });
    await assert.rejects(connect(d.address, { env, home }), isCode(ErrorCode.NO_CREDENTIALS, AuthenticationError));
    await assert.rejects(connect(d.address, { env, home, tokenFile: join(home, 'missing-token') }), isCode(ErrorCode.NO_CREDENTIALS, AuthenticationError));

    const result = await runCli(['exec', d.address, 'echo', 'hi'], { env });
    assert.equal(result.code, 255, result.stderr);
    assert.match(result.stderr, /SW_ERR_NO_CREDENTIALS/);
    assert.match(result.stderr, /--token-file|SHELLWIRE_TOKEN/);
  });

  it('on loopback, the local daemon\'s own token file is found without flags (the control for the case above)', async () => {
    const home = tempDir();
    const local = await startDaemon({ stateDir: join(home, 'server') });
    try {
      writeFileSync(join(home, 'known_hosts'), `${local.address} ${local.fingerprint}\n`);
      const conn = await connect(local.address, { env: cleanEnv({ SHELLWIRE_HOME: home }), home });
      assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
      await conn.close();
    } finally {
      await local.stop();
    }
  });
});

describe('host keys', () => {
  it('a changed fingerprint: SW_ERR_HOST_KEY_CHANGED, the WARNING banner, and the token is never sent', async () => {
    // The daemon at this address is "reinstalled": a new identity on the same port.
    const original = await startDaemon();
    const { port, fingerprint: pinned } = original;
    await original.stop();
    const auth = recordingAuthenticator();
    const impostor = await startDaemon({ port, authenticator: auth });
    auth.token = impostor.token;
    try {
      assert.notEqual(impostor.fingerprint, pinned);
      const home = tempDir();
      writeFileSync(join(home, 'known_hosts'), `127.0.0.1:${port} ${pinned}\n`);

      await assert.rejects(connect(`127.0.0.1:${port}`, { token: impostor.token, home }), (err: ShellwireError) => {
        isCode(ErrorCode.HOST_KEY_CHANGED, HostVerificationError)(err);
        // The library error carries the facts; the ssh-style banner is the CLI's (below).
        const changed = err as HostVerificationError;
        assert.equal(changed.fingerprint, impostor.fingerprint);
        assert.equal(changed.presented, impostor.fingerprint);
        assert.equal(changed.pinned, pinned);
        assert.equal(changed.knownHostsFile, join(home, 'known_hosts'));
        assert.equal(changed.line, 1);
        assert.doesNotMatch(err.message, /WARNING|@@@|\n/, 'one plain paragraph, no banner');
        assert.ok(err.message.includes(pinned) && err.message.includes(impostor.fingerprint), err.message);
        assert.match(err.message, /remove line 1 of .*known_hosts and connect again/);
        return true;
      });

      const result = await runCli(['exec', `127.0.0.1:${port}`, 'echo', 'hi'], {
        env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: impostor.token }),
      });
      assert.equal(result.code, 255, result.stderr);
      assert.match(result.stderr, /WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED/);
      assert.ok(result.stderr.includes(`Offending key in ${join(home, 'known_hosts')}:1`), result.stderr);
      assert.ok(result.stderr.includes(pinned) && result.stderr.includes(impostor.fingerprint), 'both fingerprints are shown');
      assert.ok(!result.stderr.includes(impostor.token));

      assert.deepEqual(auth.calls, [], 'no HELLO (and so no token) reached the daemon');
      // The control: with the right pin the same recorder does see the token.
      const conn = await impostor.connect();
      await conn.close();
      assert.deepEqual(auth.calls, [impostor.token]);
      // The mismatch did not rewrite the pin.
      assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `127.0.0.1:${port} ${pinned}\n`);
    } finally {
      await impostor.stop();
    }
  });

  it('an explicit fingerprint option that does not match: SW_ERR_HOST_KEY_CHANGED before any HELLO', async () => {
    const auth = recordingAuthenticator();
    const d = await startDaemon({ authenticator: auth });
    auth.token = d.token;
    try {
      const other = await createIdentity('someone-else');
      await assert.rejects(d.connect({ fingerprint: other.fingerprint }), isCode(ErrorCode.HOST_KEY_CHANGED, HostVerificationError));
      assert.deepEqual(auth.calls, []);
    } finally {
      await d.stop();
    }
  });

  describe('an unknown host', () => {
    let d: TestDaemon;
    before(async () => {
      d = await startDaemon();
    });
    after(async () => {
      await d.stop();
    });

    it('strict policy: SW_ERR_HOST_KEY_UNKNOWN, known_hosts untouched', async () => {
      const home = tempDir();
      await assert.rejects(connect(d.address, { token: d.token, home, hostKeyPolicy: 'strict' }), (err: ShellwireError) => {
        isCode(ErrorCode.HOST_KEY_UNKNOWN, HostVerificationError)(err);
        assert.equal((err as HostVerificationError).fingerprint, d.fingerprint);
        assert.ok(err.message.includes(d.fingerprint), 'the message shows the fingerprint to check');
        return true;
      });
      assert.throws(() => statSync(join(home, 'known_hosts')), { code: 'ENOENT' });
      // The CLI without a TTY is strict too.
      const result = await runCli(['exec', d.address, 'echo', 'hi'], { env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: d.token }) });
      assert.equal(result.code, 255);
      assert.match(result.stderr, /--accept-new-host/);
    });

    it('ask policy, answered no: SW_ERR_HOST_KEY_UNKNOWN', async () => {
      const home = tempDir();
      const asked: string[] = [];
      const confirmHost = async (host: string, fingerprint: string) => {
        asked.push(`${host} ${fingerprint}`);
        return false;
      };
      await assert.rejects(connect(d.address, { token: d.token, home, hostKeyPolicy: 'ask', confirmHost }), isCode(ErrorCode.HOST_KEY_UNKNOWN, HostVerificationError));
      assert.deepEqual(asked, [`${d.address} ${d.fingerprint}`]);
    });

    it('accept-new policy: connects and adds the host line to known_hosts (0600)', async () => {
      const home = tempDir();
      const conn = await connect(d.address, { token: d.token, home, hostKeyPolicy: 'accept-new' });
      assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
      await conn.close();
      const file = join(home, 'known_hosts');
      assert.equal(readFileSync(file, 'utf8'), `${d.address} ${d.fingerprint}\n`);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      // Now it is known: strict accepts it, and nothing is appended twice.
      const again = await connect(d.address, { token: d.token, home, hostKeyPolicy: 'strict' });
      await again.close();
      assert.equal(readFileSync(file, 'utf8'), `${d.address} ${d.fingerprint}\n`);
    });
  });
});

describe('state files', () => {
  it('token and host key are 0600 in a 0700 state dir', async () => {
    const stateDir = join(tempDir(), 'state');
    const server = await Server.create({ stateDir, port: 0 });
    assert.equal(server.created, true);
    assert.equal(statSync(stateDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(stateDir, TOKEN_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(join(stateDir, HOST_KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(stateDir, TOKEN_FILE), 'utf8').trim(), server.token);
  });

  it('a group-readable token file is refused at daemon start, naming chmod 600', async () => {
    const stateDir = join(tempDir(), 'state');
    await Server.create({ stateDir, port: 0 });
    const tokenFile = join(stateDir, TOKEN_FILE);
    chmodSync(tokenFile, 0o640);
    await assert.rejects(Server.create({ stateDir, port: 0 }), (err: ShellwireError) => {
      isCode(ErrorCode.STATE_DIR, UsageError)(err);
      assert.ok(err.message.includes(`chmod 600 ${tokenFile}`), err.message);
      return true;
    });

    const port = await freePort();
    const result = await runCli(['serve', '--state-dir', stateDir, '--listen', `127.0.0.1:${port}`], { timeoutMs: 10_000 });
    assert.equal(result.signal, null, 'the daemon refused to start (it was not killed by the timeout)');
    assert.notEqual(result.code, 0);
    assert.ok(result.stderr.includes(`chmod 600 ${tokenFile}`), result.stderr);
  });

  it('a group-readable host key is refused too', async () => {
    const stateDir = join(tempDir(), 'state');
    await Server.create({ stateDir, port: 0 });
    chmodSync(join(stateDir, HOST_KEY_FILE), 0o644);
    await assert.rejects(Server.create({ stateDir, port: 0 }), (err: ShellwireError) => {
      isCode(ErrorCode.STATE_DIR, UsageError)(err);
      assert.match(err.message, /chmod 600/);
      return true;
    });
  });
});

describe('TLS', () => {
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

  it('a client limited to TLS 1.2 fails the handshake', async () => {
    await assert.rejects(RawClient.open(d.port, { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' }), (err: NodeJS.ErrnoException) => {
      assert.match(String(err.code ?? err.message), /SSL|TLS|ECONNRESET/i);
      return true;
    });
    assert.ok(logs.some((l) => l.code === ErrorCode.TLS && l.msg === 'TLS handshake failed'));
  });

  it('the normal client negotiates TLS 1.3 with TLS_AES_128_GCM_SHA256', async () => {
    // A raw socket configured as the library's client is...
    const raw = await RawClient.open(d.port, { ciphers: TLS_CIPHERS, minVersion: 'TLSv1.3' });
    assert.equal(raw.socket.getProtocol(), 'TLSv1.3');
    assert.equal(raw.socket.getCipher().name, 'TLS_AES_128_GCM_SHA256');
    assert.equal(raw.socket.alpnProtocol, ALPN_PROTOCOL);
    raw.destroy();
    // ... and the library's own connection.
    const conn = await d.connect();
    const socket = transportOf(conn).socket as TLSSocket;
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    assert.equal(socket.getCipher().name, 'TLS_AES_128_GCM_SHA256');
    await conn.close();
  });

  it('a client with Node\'s default TLS settings still gets TLS 1.3 and an AEAD suite', async () => {
    const raw = await RawClient.open(d.port);
    assert.equal(raw.socket.getProtocol(), 'TLSv1.3');
    assert.ok(TLS_CIPHERS.split(':').includes(raw.socket.getCipher().name), raw.socket.getCipher().name);
    raw.destroy();
  });
});

describe('connection failures', () => {
  let servers: Array<NetServer | TlsServer> = [];
  after(() => {
    for (const server of servers) server.close();
    servers = [];
  });

  it('nothing listening: ConnectionError SW_ERR_CONNECT_FAILED', async () => {
    const port = await freePort();
    await assert.rejects(connect(`127.0.0.1:${port}`, { token: 'x', fingerprint: 'SHA256:x' }), isCode(ErrorCode.CONNECT_FAILED, ConnectionError));
  });

  it('a non-TLS service on the port: ConnectionError SW_ERR_NOT_SHELLWIRE naming what it speaks', async () => {
    const http = createNetServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'));
    servers.push(http);
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const { port } = http.address() as AddressInfo;
    await assert.rejects(connect(`127.0.0.1:${port}`, { token: 'x', fingerprint: 'SHA256:x' }), (err: ShellwireError) => {
      isCode(ErrorCode.NOT_SHELLWIRE, ConnectionError)(err);
      assert.match(err.message, /speaks HTTP, not shellwire/);
      return true;
    });
  });

  it('a TLS peer that hangs up after the handshake: ConnectionError SW_ERR_CONNECTION_CLOSED', async () => {
    const identity = await createIdentity('hang-up');
    const tls = createTlsServer({ key: identity.keyPem, cert: identity.certPem, ALPNProtocols: [ALPN_PROTOCOL] }, (socket) => {
      // Read the HELLO, then leave without a word.
      socket.once('data', () => socket.destroy());
    });
    servers.push(tls);
    tls.listen(0, '127.0.0.1');
    await once(tls, 'listening');
    const { port } = tls.address() as AddressInfo;
    await assert.rejects(connect(`127.0.0.1:${port}`, { token: 'x', fingerprint: identity.fingerprint }), isCode(ErrorCode.CONNECTION_CLOSED, ConnectionError));
  });
});

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
