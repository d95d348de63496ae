/**
 * The client pointed at a port that is not a shellwire daemon: a real sshd, real
 * `openssl s_server`s (no ALPN, another ALPN, TLS 1.2 only), an HTTP server, a server that
 * speaks first in plain text, one that says nothing, one that hangs up. Each says what the
 * port is and where the daemon usually listens; OpenSSL's own words are never the message,
 * and a TLS service that is not shellwire is never pinned in known_hosts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer as createNetServer, connect as netConnect, type Server as NetServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect } from '../../src/client/connect.js';
import { ConnectionError, ErrorCode, HostVerificationError, type ShellwireError } from '../../src/errors.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv, freePort } from '../helpers/fixtures.js';

const SSHD = '/usr/sbin/sshd';
const OPENSSL_NOISE = /ssl3_|SSL routines|wrong version number|\.\.\/deps\/openssl/;

let dir: string;
const children: ChildProcess[] = [];
const servers: NetServer[] = [];

before(() => {
  dir = tempDir('shellwire-wrongport-');
});
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const server of servers) server.close();
  removeDir(dir);
});

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function startProcess(command: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(child);
  return child;
}

async function listen(server: NetServer): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** connect() must fail with `code` and a message matching `pattern`, and without OpenSSL's words. */
async function expectFailure(port: number, code: ErrorCode, pattern: RegExp, connectTimeoutMs = 5_000): Promise<ShellwireError> {
  let caught: ShellwireError | null = null;
  await assert.rejects(connect(`127.0.0.1:${port}`, { token: 'x', fingerprint: 'SHA256:x', connectTimeoutMs }), (err: ShellwireError) => {
    caught = err;
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, OPENSSL_NOISE);
    return true;
  });
  return caught!;
}

/** The CLI with --accept-new-host: exit 255, the right words, nothing pinned. */
async function expectCliFailure(port: number, pattern: RegExp): Promise<void> {
  const home = join(dir, `home-${port}`);
  const result = await runCli(['exec', '--accept-new-host', `127.0.0.1:${port}`, '--', 'true'], { env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: 'x' }) });
  assert.equal(result.code, 255, result.stderr);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, OPENSSL_NOISE);
  assert.equal(existsSync(join(home, 'known_hosts')), false, 'nothing was pinned');
}

describe('a real sshd on the port', { skip: !existsSync(SSHD) }, () => {
  let port: number;
  let createdRunDir = false;
  before(async () => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'ssh_host_key')]);
    writeFileSync(join(dir, 'sshd_config'), `HostKey ${join(dir, 'ssh_host_key')}\nPidFile none\nUsePAM no\nStrictModes no\n`);
    // sshd refuses to start without its privilege separation directory.
    if (!existsSync('/run/sshd')) {
      mkdirSync('/run/sshd', { mode: 0o755 });
      createdRunDir = true;
    }
    port = await freePort();
    const sshd = await startProcess(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config'), '-p', String(port), '-o', 'ListenAddress=127.0.0.1']);
    let log = '';
    sshd.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    assert.ok(await waitFor(() => accepting(port), 5_000), `sshd did not start: ${log}`);
  });
  after(() => {
    if (createdRunDir) rmSync('/run/sshd', { recursive: true, force: true });
  });

  it('the library: SW_ERR_NOT_SHELLWIRE "speaks SSH, not shellwire", with the default port', async () => {
    const err = await expectFailure(port, ErrorCode.NOT_SHELLWIRE, new RegExp(`^127\\.0\\.0\\.1:${port} speaks SSH, not shellwire \\(it sent "SSH-2\\.0-OpenSSH.*; the shellwire daemon listens on 50007 by default\\.$`));
    assert.ok(err instanceof ConnectionError);
    assert.ok(err.cause instanceof Error, 'the TLS error is kept as the cause');
  });

  it('the CLI says the same, exit 255', async () => {
    await expectCliFailure(port, /speaks SSH, not shellwire/);
  });
});

describe('TLS servers that are not shellwire (openssl s_server)', () => {
  let cert: string;
  let key: string;
  before(() => {
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=not-shellwire'], { stdio: 'ignore' });
  });
  const sServer = async (extra: string[]): Promise<number> => {
    const port = await freePort();
    await startProcess('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', key, '-quiet', ...extra]);
    assert.ok(await waitFor(() => accepting(port), 5_000), 'openssl s_server did not start');
    return port;
  };

  it('no ALPN at all: "speaks TLS, not shellwire", and --accept-new-host pins nothing', async () => {
    const port = await sServer([]);
    await expectFailure(port, ErrorCode.NOT_SHELLWIRE, /speaks TLS, not shellwire \(it did not agree to ALPN shellwire\/1: another TLS service, such as HTTPS\); the shellwire daemon listens on 50007 by default/);
    await expectCliFailure(port, /speaks TLS, not shellwire/);
  });

  it('another ALPN (h2): refused, "speaks TLS, not shellwire"', async () => {
    const port = await sServer(['-alpn', 'h2']);
    await expectFailure(port, ErrorCode.NOT_SHELLWIRE, /speaks TLS, not shellwire \(it refused ALPN shellwire\/1/);
  });

  it('TLS 1.2 only: SW_ERR_TLS "not TLS 1.3"', async () => {
    const port = await sServer(['-tls1_2']);
    const err = await expectFailure(port, ErrorCode.TLS, /speaks TLS but not TLS 1\.3/);
    assert.ok(err instanceof HostVerificationError);
  });
});

describe('plain TCP services', () => {
  it('an HTTP server: "speaks HTTP, not shellwire"', async () => {
    const port = await listen(createHttpServer((_req, res) => res.end('hello')));
    await expectFailure(port, ErrorCode.NOT_SHELLWIRE, /speaks HTTP, not shellwire \(it answered "HTTP\/1\.1 \d{3} /);
    await expectCliFailure(port, /speaks HTTP, not shellwire/);
  });

  it('a server that speaks first (SMTP-like): "does not speak TLS", quoting its greeting', async () => {
    const port = await listen(createNetServer((socket) => socket.end('220 mail.example ESMTP ready\r\n')));
    await expectFailure(port, ErrorCode.NOT_SHELLWIRE, /does not speak TLS, not shellwire \(it said "220 mail\.example ESMTP ready"\)/);
  });

  it('a silent open port: "accepted the connection but said nothing", not "is the port open?"', async () => {
    const port = await listen(createNetServer(() => {}));
    const err = await expectFailure(port, ErrorCode.CONNECT_FAILED, /accepted the connection but said nothing for 300 ms: it is not a shellwire daemon \(the shellwire daemon listens on 50007 by default\)/, 300);
    assert.doesNotMatch(err.message, /is the port open/);
  });

  it('a port that closes at once: "closed it at once, before TLS"', async () => {
    const port = await listen(createNetServer((socket) => socket.destroy()));
    await expectFailure(port, ErrorCode.CONNECT_FAILED, /accepted the connection and closed it at once, before TLS/);
    await expectCliFailure(port, /closed it at once/);
  });

  it('nothing listening: refused, naming the default port', async () => {
    const port = await freePort();
    await expectFailure(port, ErrorCode.CONNECT_FAILED, /Connection refused by 127\.0\.0\.1:\d+; is `shellwire serve` running there, on that port \(the shellwire daemon listens on 50007 by default\)\?/);
  });
});
