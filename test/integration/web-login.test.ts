/**
 * The web console's login (issue 14): a real gateway with --web, spoken to over HTTPS and
 * WebSocket by hand (test/helpers/web-http.ts), and the real CLI for `web-login`. Password
 * and one-time link logins, the cookie's flags, the daemon's throttle shared with the TCP
 * port, session/Origin/CSRF guards (a refused upgrade is an HTTP answer, never a 101),
 * logout, expiry, revocation by users.yaml reload, and the audit rows naming the browser.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connect } from '../../src/client/connect.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { hashPassword } from '../../src/auth/password.js';
import { Gateway } from '../../src/gateway/gateway.js';
import '../../src/web/web-console.js';
import { browserPeer, openInProcessConnection } from '../../src/web/in-process.js';
import { WebSessions } from '../../src/web/sessions.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { keyFile, startGatewayProcess, type KeyFile } from '../helpers/gateway.js';
import { createIdentity } from '../../src/auth/identity.js';
import { webClient, webLogin, webRequest, wsConnect, type WebClient } from '../helpers/web-http.js';

const isCode = (code: string) => (err: unknown) => (err as { code?: string }).code === code;

describe('web console login', () => {
  let dir: string;
  let gwDir: string;
  let gateway: Gateway;
  let gwPort: number;
  let webPort: number;
  let ca: string;
  let bob: KeyFile;
  let carol: KeyFile;
  let passwordHash: string;
  let clock = Date.now();
  const rows: AuditEvent[] = [];
  const logLines: string[] = [];
  const ALLOWED_ORIGIN = 'https://console.example:8443';

  const usersText = (over: Record<string, string[] | null> = {}) => {
    const entries: Record<string, string[]> = {
      alice: [`    password: "${passwordHash}"`, '    hosts: ["web01"]'],
      bob: [`    keys: ["${bob.line}"]`, '    hosts: ["web01"]'],
      carol: [`    keys: ["${carol.line}"]`, `    password: "${passwordHash}"`, '    hosts: ["web01"]'],
    };
    for (const [name, lines] of Object.entries(over)) {
      if (lines === null) delete entries[name];
      else entries[name] = lines;
    }
    return ['settings:', '  passwordLogin: true', 'users:', ...Object.entries(entries).flatMap(([name, lines]) => [`  ${name}:`, ...lines])].join('\n') + '\n';
  };
  const reload = (text: string) => {
    writeFileSync(join(gwDir, 'users.yaml'), text);
    assert.ok(gateway.server.reloadUsers().ok);
  };
  const client = (): WebClient => webClient(webPort, ca);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-web-login-'));
    gwDir = join(dir, 'gateway');
    mkdirSync(gwDir, { mode: 0o700 });
    bob = keyFile(dir, 'bob');
    carol = keyFile(dir, 'carol');
    passwordHash = await hashPassword('correct horse');
    writeFileSync(join(gwDir, 'users.yaml'), usersText());
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, 'hosts:\n  web01: { address: 127.0.0.1, port: 1 }\n');
    const emptyUi = join(dir, 'no-ui');
    mkdirSync(emptyUi);
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => void (logLines.push(chunk.toString()), done()) }));
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, logger,
      audit: { record: (e: AuditEvent) => void rows.push(e) },
      // Lock out after 5 failures, with short delays: the test needs no sleeps.
      throttle: { baseDelayMs: 1, maxDelayMs: 5, lockoutAfter: 5 },
      web: { host: '127.0.0.1', port: 0, origins: [ALLOWED_ORIGIN], staticDir: emptyUi, clock: () => clock },
    });
    gwPort = (await gateway.listen()).port;
    webPort = gateway.webAddress!.port;
    ca = gateway.server.identity.certPem;
  });

  after(async () => {
    await gateway?.close(500);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a password login sets an HttpOnly, Secure, SameSite=Strict session cookie; the audit rows name the browser', async () => {
    const c = client();
    const answer = await webLogin(c, 'alice', 'correct horse');
    assert.equal(answer.status, 200, answer.body.toString());
    const body = answer.json();
    assert.equal(body.user, 'alice');
    assert.match(body.csrfToken, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(body.expiresAt) > clock);
    assert.equal(answer.setCookie.length, 1);
    const cookie = answer.setCookie[0]!;
    assert.match(cookie, /^sw_session=[A-Za-z0-9_-]{43};/);
    for (const flag of [/; HttpOnly/i, /; Secure/i, /; SameSite=Strict/i, /; Path=\//]) assert.match(cookie, flag);
    assert.doesNotMatch(cookie, /Max-Age|Expires/i);
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(answer.headers['x-content-type-options'], 'nosniff');
    assert.equal(answer.headers['referrer-policy'], 'no-referrer');
    assert.match(String(answer.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/);
    const session = await webRequest(c, 'GET', '/api/session');
    assert.equal(session.status, 200);
    assert.deepEqual(session.json(), body);
    // The gateway's own login rows, with the browser's address.
    const ok = rows.find((r) => r.kind === 'auth-ok' && r.user === 'alice');
    assert.match(String(ok?.address), /^web:127\.0\.0\.1:\d+$/);
    assert.ok(rows.some((r) => r.kind === 'connect' && /^web:127\.0\.0\.1:\d+$/.test(String(r.address))));
    // No secret in the logs: not the password, not the session id, not the CSRF token.
    const logs = logLines.join('');
    assert.match(logs, /"msg":"web login"/);
    for (const secret of ['correct horse', c.cookies.get('sw_session')!, body.csrfToken]) assert.ok(!logs.includes(secret), `log holds a secret: ${secret.slice(0, 6)}…`);
    await webRequest(c, 'POST', '/api/logout');
  });

  it('each login gets a new session id (no fixation); the cookie the browser came with is ended', async () => {
    const c = client();
    c.cookies.set('sw_session', 'chosen-by-an-attacker');
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    const first = c.cookies.get('sw_session')!;
    assert.notEqual(first, 'chosen-by-an-attacker');
    const old = webClient(webPort, ca);
    old.cookies.set('sw_session', first);
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    assert.notEqual(c.cookies.get('sw_session'), first);
    assert.equal((await webRequest(old, 'GET', '/api/session')).status, 401);
    await webRequest(c, 'POST', '/api/logout');
  });

  it('a wrong password is 401; the daemon\'s throttle locks the address out (429), for the web and the TCP port alike', async () => {
    const c = client();
    try {
      for (let i = 1; i <= 5; i += 1) {
        const answer = await webLogin(c, 'alice', `wrong ${i}`);
        assert.equal(answer.status, 401, `try ${i}: ${answer.body.toString()}`);
        assert.equal(answer.json().error.code, 'SW_ERR_AUTH_FAILED');
        assert.equal(c.cookies.size, 0);
      }
      for (const password of ['wrong 6', 'correct horse']) {
        const answer = await webLogin(c, 'alice', password);
        assert.equal(answer.status, 429, answer.body.toString());
        assert.equal(answer.json().error.code, 'SW_ERR_LOCKED_OUT');
      }
      // The same lock holds at the TCP port from this address: one throttle, the authenticator's.
      await assert.rejects(
        connect({ user: 'carol', host: '127.0.0.1', port: gwPort }, { password: 'correct horse', fingerprint: gateway.server.identity.fingerprint, env: {}, home: join(dir, 'nohome') }),
        isCode('SW_ERR_LOCKED_OUT'),
      );
      assert.ok(gateway.server.locks().some((l) => l.kind === 'address' && l.key === '127.0.0.1'));
    } finally {
      gateway.server.clearLocks('*');
    }
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    await webRequest(c, 'POST', '/api/logout');
  });

  it('without a session, /api answers 401 and a WebSocket upgrade is refused with HTTP 401, never a 101', async () => {
    const c = client();
    for (const path of ['/api/session', '/api/hosts', '/api/audit']) {
      const answer = await webRequest(c, 'GET', path);
      assert.equal(answer.status, 401, path);
      assert.ok(answer.json().error.code === 'SW_ERR_NOT_AUTHENTICATED', path);
    }
    // Refused before the body is read: bad JSON (or an upload) from a stranger is not even parsed.
    const body = await webRequest(c, 'POST', '/api/run', { body: '{not json', headers: { 'content-type': 'application/json' } });
    assert.equal(body.status, 401);
    const forged = client();
    forged.cookies.set('sw_session', 'A'.repeat(43));
    assert.equal((await webRequest(forged, 'GET', '/api/hosts')).status, 401);
    for (const who of [c, forged]) {
      const ws = await wsConnect(who, '/api/terminal?host=web01&cols=80&rows=24');
      assert.ok('refused' in ws, 'upgraded without a session');
      assert.equal(ws.refused, 401);
    }
  });

  it('a cross-origin (or Origin-less) POST, login or WebSocket upgrade is refused with 403; --web-origin is allowed', async () => {
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    for (const origin of ['https://evil.example', `http://127.0.0.1:${webPort}`, null]) {
      const post = await webRequest(c, 'POST', '/api/logout', { origin });
      assert.equal(post.status, 403, `logout from ${origin}`);
      assert.equal(post.json().error.code, 'SW_ERR_DENIED');
      const login = await webRequest(client(), 'POST', '/api/login', { origin, json: { user: 'alice', password: 'correct horse' } });
      assert.equal(login.status, 403, `login from ${origin}`);
      assert.equal(login.setCookie.length, 0);
      const ws = await wsConnect(c, '/api/terminal?host=web01&cols=80&rows=24', { origin });
      assert.ok('refused' in ws, `upgraded from ${origin}`);
      assert.equal(ws.refused, 403);
    }
    // Still logged in: the refusals changed nothing.
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 200);
    const allowed = await webRequest(c, 'POST', '/api/logout', { origin: ALLOWED_ORIGIN });
    assert.equal(allowed.status, 204);
  });

  it('a state-changing request without the session\'s CSRF token is 403; logout ends the session and clears the cookie', async () => {
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    const other = client();
    assert.equal((await webLogin(other, 'alice', 'correct horse')).status, 200);
    for (const csrf of [null, '', 'wrong', other.csrf!]) {
      const answer = await webRequest(c, 'POST', '/api/logout', { csrf });
      assert.equal(answer.status, 403, `csrf ${JSON.stringify(csrf)}`);
      assert.equal(answer.json().error.code, 'SW_ERR_DENIED');
    }
    const cookie = c.cookies.get('sw_session')!;
    const out = await webRequest(c, 'POST', '/api/logout');
    assert.equal(out.status, 204);
    assert.match(out.setCookie[0] ?? '', /^sw_session=;/);
    const stale = client();
    stale.cookies.set('sw_session', cookie);
    assert.equal((await webRequest(stale, 'GET', '/api/session')).status, 401);
    assert.equal((await webRequest(stale, 'GET', '/api/hosts')).status, 401);
    assert.ok(logLines.some((l) => l.includes('"msg":"web logout"')));
    // The other session is another: it stands.
    assert.equal((await webRequest(other, 'GET', '/api/session')).status, 200);
    await webRequest(other, 'POST', '/api/logout');
  });

  it('bad JSON is 400, an oversized body 413, a wrong shape 400, all in the error shape', async () => {
    const c = client();
    const bad = await webRequest(c, 'POST', '/api/login', { body: '{"user":', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().error.code, 'SW_ERR_BAD_REQUEST');
    assert.match(bad.json().error.message, /not valid JSON/);
    const big = await webRequest(c, 'POST', '/api/login', { json: { user: 'alice', password: 'x'.repeat(100_000) } });
    assert.equal(big.status, 413);
    assert.equal(big.json().error.code, 'SW_ERR_BAD_REQUEST');
    const shape = await webRequest(c, 'POST', '/api/login', { json: { user: ['alice'], password: 1 } });
    assert.equal(shape.status, 400);
    assert.equal(shape.json().error.code, 'SW_ERR_BAD_REQUEST');
  });

  it('the page answers 503 saying to run `npm run build` when dist/ui is missing', async () => {
    const page = await webRequest(client(), 'GET', '/');
    assert.equal(page.status, 503);
    assert.match(page.body.toString(), /npm run build/);
  });

  it('sessions end after 30 min idle and 12 h in all; a user holds at most 16', async () => {
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    clock += 29 * 60_000;
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 200);
    clock += 29 * 60_000;
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 200, 'use restarts the idle time');
    clock += 31 * 60_000;
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 401, 'idle');
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    for (let i = 0; i < 25; i += 1) {
      clock += 29 * 60_000;
      await webRequest(c, 'GET', '/api/session');
    }
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 401, 'absolute limit');
    const first = client();
    assert.equal((await webLogin(first, 'alice', 'correct horse')).status, 200);
    const more: WebClient[] = [];
    for (let i = 0; i < 16; i += 1) {
      const m = client();
      assert.equal((await webLogin(m, 'alice', 'correct horse')).status, 200);
      more.push(m);
    }
    assert.equal((await webRequest(first, 'GET', '/api/session')).status, 401, 'the 17th login ended the oldest');
    for (const m of more) assert.equal((await webRequest(m, 'GET', '/api/session')).status, 200);
    for (const m of more) await webRequest(m, 'POST', '/api/logout');
  });

  it('`shellwire web-login --via` prints a link whose token works once, only in the browser, not after a minute', async () => {
    const home = join(dir, 'bob-home');
    mkdirSync(home, { recursive: true });
    const env = { ...process.env, SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' };
    const ask = () => runCli(['web-login', '--via', `bob@127.0.0.1:${gwPort}`, '-i', bob.file, '--accept-new-host'], { env });
    const first = await ask();
    assert.equal(first.code, 0, first.stderr);
    const url = first.stdout.toString();
    // The link points where browsers reach the console: the first --web-origin here.
    const m = new RegExp(`^${ALLOWED_ORIGIN.replace(/\./g, '\\.')}/#login=([A-Za-z0-9_-]{43})\\n$`).exec(url);
    assert.ok(m, `stdout: ${JSON.stringify(url)}`);
    const token = m[1]!;
    assert.match(first.stderr, /within a minute/);
    assert.ok(!first.stderr.includes(token));
    assert.ok(!logLines.join('').includes(token), 'the token is in the log');
    // On the TCP port the token is nobody's (and is not used up there).
    await assert.rejects(
      connect({ host: '127.0.0.1', port: gwPort }, { token, fingerprint: gateway.server.identity.fingerprint, env: {}, home: join(dir, 'nohome') }),
      isCode('SW_ERR_AUTH_FAILED'),
    );
    const c = client();
    const login = await webRequest(c, 'POST', '/api/login/link', { json: { token } });
    assert.equal(login.status, 200, login.body.toString());
    assert.equal(login.json().user, 'bob');
    assert.match(login.setCookie[0] ?? '', /^sw_session=.*HttpOnly/i);
    // The gateway audits the login under bob's key (the login that asked for the link).
    const ok = rows.findLast((r) => r.kind === 'auth-ok' && r.user === 'bob');
    assert.match(String(ok?.address), /^web:127\.0\.0\.1:\d+$/);
    const again = await webRequest(client(), 'POST', '/api/login/link', { json: { token } });
    assert.equal(again.status, 401);
    assert.equal(again.json().error.code, 'SW_ERR_AUTH_FAILED');
    // A fresh link is dead a minute later.
    const second = await ask();
    assert.equal(second.code, 0, second.stderr);
    const late = /#login=([A-Za-z0-9_-]+)/.exec(second.stdout.toString())![1]!;
    clock += 60_001;
    assert.equal((await webRequest(client(), 'POST', '/api/login/link', { json: { token: late } })).status, 401);
    await webRequest(c, 'POST', '/api/logout');
    gateway.server.clearLocks('*');
  });

  it('a browser session cannot mint itself one-time links (its 12 h limit stands)', async () => {
    const conn = await connect({ user: 'bob', host: '127.0.0.1', port: gwPort }, { identity: bob.file, fingerprint: gateway.server.identity.fingerprint, env: {} });
    let link: { url: string };
    try {
      link = JSON.parse((await conn.gatewayRequest({ op: 'web-login' })).toString()) as { url: string };
    } finally {
      await conn.close();
    }
    const web = await openInProcessConnection(gateway, browserPeer('127.0.0.1', 1), { token: /#login=(.+)$/.exec(link.url)![1]! });
    try {
      assert.equal(web.server.user, 'bob');
      await assert.rejects(web.gatewayRequest({ op: 'web-login' }), isCode('SW_ERR_DENIED'));
    } finally {
      await web.close();
    }
  });

  it("a browser login never offers the gateway process's own keys, agent or tokens", async () => {
    // A key of the gateway's account, authorized for dave (who has no password): were the
    // in-process client to look in HOME as a CLI does, any password would log in as dave.
    const home = join(dir, 'gateway-account-home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const own = keyFile(join(home, '.ssh'), 'id_ed25519');
    reload(usersText({ dave: [`    keys: ["${own.line}"]`, '    hosts: ["web01"]'] }));
    const saved = { HOME: process.env.HOME, SHELLWIRE_HOME: process.env.SHELLWIRE_HOME };
    process.env.HOME = home;
    process.env.SHELLWIRE_HOME = home;
    try {
      const answer = await webLogin(client(), 'dave', 'anything');
      assert.equal(answer.status, 401, answer.body.toString());
      assert.ok(!rows.some((r) => r.kind === 'auth-ok' && r.user === 'dave'));
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      reload(usersText());
      gateway.server.clearLocks('*');
    }
  });

  it('a link asked for with a key that is revoked before the exchange is refused (login-in-force)', async () => {
    const home = join(dir, 'carol-home');
    mkdirSync(home, { recursive: true });
    const env = { ...process.env, SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' };
    const asked = await runCli(['web-login', '--via', `carol@127.0.0.1:${gwPort}`, '-i', carol.file, '--accept-new-host'], { env });
    assert.equal(asked.code, 0, asked.stderr);
    const token = /#login=([A-Za-z0-9_-]+)/.exec(asked.stdout.toString())![1]!;
    // Her key goes; her password stays: the link, made with the key, no longer stands.
    reload(usersText({ carol: [`    password: "${passwordHash}"`, '    hosts: ["web01"]'] }));
    try {
      const answer = await webRequest(client(), 'POST', '/api/login/link', { json: { token } });
      assert.equal(answer.status, 401, answer.body.toString());
    } finally {
      reload(usersText());
      gateway.server.clearLocks('*');
    }
  });

  it('removing the user from users.yaml and reloading ends her web session', async () => {
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 200);
    reload(usersText({ alice: null }));
    try {
      assert.ok(await waitFor(async () => (await webRequest(c, 'GET', '/api/session')).status === 401), 'the session outlived the revocation');
      assert.equal((await webRequest(c, 'GET', '/api/hosts')).status, 401);
      // She (and the log) are told it was a revocation, not a lost connection.
      const why = await webRequest(c, 'GET', '/api/session');
      assert.equal(why.json().error.code, 'SW_ERR_NOT_AUTHENTICATED');
      assert.match(why.json().error.message, /revoked your login.*no longer permitted/);
      assert.ok(logLines.some((l) => l.includes('"reason":"revoked"') && l.includes('"user":"alice"')));
    } finally {
      reload(usersText());
    }
  });

  it('`shellwire gateway --web` serves the console with --web-cert/--web-key and says where in its banner; bad flags are usage errors', async () => {
    const own = await createIdentity('console.example');
    const certFile = join(dir, 'console.crt');
    const keyFileName = join(dir, 'console.key');
    writeFileSync(certFile, own.certPem);
    writeFileSync(keyFileName, own.keyPem, { mode: 0o600 });
    const stateDir = join(dir, 'cli-gateway');
    const gw = await startGatewayProcess(['--state-dir', stateDir, '--web', '127.0.0.1:0', '--web-cert', certFile, '--web-key', keyFileName, '--log-level', 'warn']);
    try {
      const banner = await new Promise<string>((resolve) => {
        let text = gw.banner;
        const check = () => (/web console: https:\/\/127\.0\.0\.1:\d+\/\n/.test(text) ? resolve(text) : undefined);
        gw.child.stdout!.on('data', (c: Buffer) => void ((text += c.toString()), check()));
        check();
      });
      const port = Number(/web console: https:\/\/127\.0\.0\.1:(\d+)\//.exec(banner)![1]);
      // Trusting only the given certificate: the console presents it, not the gateway's own.
      const answer = await webRequest(webClient(port, own.certPem), 'GET', '/api/session');
      assert.equal(answer.status, 401);
    } finally {
      gw.child.kill('SIGTERM');
      await new Promise((r) => gw.child.once('exit', r));
    }
    for (const [args, pattern] of [
      [['--web-cert', certFile, '--web-key', keyFileName], /only go with --web/],
      [['--web', '0', '--web-cert', certFile], /go together/],
      [['--web', '0', '--web-origin', 'http://console.example'], /--web-origin takes an origin/],
      [['--web', 'nonsense:port:x'], /--web must be HOST:PORT/],
      [['--web', '0', '--web-trust-proxy', 'proxy.example'], /--web-trust-proxy takes IP addresses/],
      [['--web-trust-proxy', '127.0.0.1'], /only go with --web/],
    ] as const) {
      const result = await runCli(['gateway', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'cli-gateway-bad'), ...args]);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
    }
  });

  it("a session's WebSockets are closed with 4401 when it ends, by logout or by its gateway connection closing", async () => {
    const sessions = new WebSessions({ log: pino({ level: 'silent' }) });
    try {
      const closed: Array<{ code?: number; reason?: string }> = [];
      const socket = { close: (code?: number, reason?: string) => void closed.push({ code, reason }) };
      const open = () => openInProcessConnection(gateway, browserPeer('127.0.0.1', 2), { user: 'alice', password: 'correct horse' });
      const one = sessions.create('alice', await open(), 'web:127.0.0.1:2', 'password');
      one.track(socket);
      sessions.end(one, 'logout');
      assert.deepEqual(closed.map((c) => c.code), [4401]);
      assert.ok(one.gateway.closed || (await waitFor(() => one.gateway.closed)));
      // Revoked at the gateway: her connection is closed there, and the session with it.
      const two = sessions.create('alice', await open(), 'web:127.0.0.1:2', 'password');
      two.track(socket);
      reload(usersText({ alice: null }));
      try {
        assert.ok(await waitFor(() => two.ended), 'the session outlived its gateway connection');
        assert.deepEqual(closed.map((c) => c.code), [4401, 4401]);
        assert.equal(sessions.get(two.id), null);
      } finally {
        reload(usersText());
      }
      assert.equal(closed[1]!.reason, 'session ended: revoked');
      assert.equal(sessions.endedReason(two.id)?.reason, 'revoked');
      // A socket tracked by an ended session is closed at once.
      two.track(socket);
      assert.equal(closed.length, 3);
      // Lost (keepalive, overload, an error), not revoked: told apart.
      const three = sessions.create('alice', await open(), 'web:127.0.0.1:2', 'password');
      three.track(socket);
      three.gateway.destroy();
      assert.ok(await waitFor(() => three.ended));
      assert.equal(closed.at(-1)!.reason, 'session ended: connection-lost');
      assert.equal(sessions.endedReason(three.id)?.reason, 'connection-lost');
    } finally {
      sessions.endAll();
    }
  });

  it("/api/login/link takes only one-time links: never the gateway's own token or a users.yaml token", async () => {
    const ciToken = randomBytes(32).toString('base64url');
    reload(usersText({ erin: [`    tokens: [{ name: ci, sha256: ${createHash('sha256').update(ciToken).digest('hex')} }]`, '    hosts: ["web01"]'] }));
    try {
      // The users.yaml token is good on the TCP port (so the refusal below is the route's).
      const tcp = await connect({ host: '127.0.0.1', port: gwPort }, { token: ciToken, fingerprint: gateway.server.identity.fingerprint, env: {}, home: join(dir, 'nohome') });
      assert.equal(tcp.server.user, 'erin');
      await tcp.close();
      const daemonToken = readFileSync(join(gwDir, 'token'), 'utf8').trim();
      for (const token of [daemonToken, ciToken]) {
        const c = client();
        const answer = await webRequest(c, 'POST', '/api/login/link', { json: { token } });
        assert.equal(answer.status, 401, answer.body.toString());
        assert.equal(answer.json().error.code, 'SW_ERR_AUTH_FAILED');
        assert.match(answer.json().error.message, /not a login link.*shellwire web-login/);
        assert.equal(answer.setCookie.length, 0);
        assert.equal((await webRequest(c, 'GET', '/api/session')).status, 401);
      }
      assert.ok(!rows.some((r) => r.kind === 'auth-ok' && (r.user === 'root' || r.user === 'erin') && /^web:/.test(String(r.address))), 'no web login with a reusable token');
    } finally {
      reload(usersText());
      gateway.server.clearLocks('*');
    }
  });

  it("Fastify's own refusals are in the documented error shape; a bad yes/no parameter is 400; logout of an ended session clears the cookie", async () => {
    // A Content-Length shorter than the body: the rest reads as a second, malformed request.
    const raw = await new Promise<string>((resolve, reject) => {
      const body = '{"user":"alice","password":"x"}';
      const socket = tlsConnect({ host: '127.0.0.1', port: webPort, ca, checkServerIdentity: () => undefined }, () => {
        socket.write(`POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:${webPort}\r\nOrigin: https://127.0.0.1:${webPort}\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n${body}`);
      });
      let text = '';
      socket.on('data', (c: Buffer) => void (text += c.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      setTimeout(() => socket.destroy(), 5_000).unref();
    });
    const bodies = raw.split(/HTTP\/1\.1 /).slice(1).map((answer) => answer.slice(answer.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, ''));
    assert.ok(bodies.length >= 1, raw);
    for (const b of bodies) assert.equal(typeof JSON.parse(b).error.code, 'string', `not the documented shape: ${b}`);
    assert.doesNotMatch(raw, /"statusCode"/);
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    for (const path of ['/api/audit?failed=maybe', '/api/hosts?probe=yes']) {
      const answer = await webRequest(c, 'GET', path);
      assert.equal(answer.status, 400, `${path}: ${answer.body.toString()}`);
      assert.equal(answer.json().error.code, 'SW_ERR_BAD_REQUEST');
    }
    for (const [method, path] of [['OPTIONS', '/api/session'], ['DELETE', '/api/session'], ['GET', '/api/nosuch']] as const) {
      const answer = await webRequest(c, method, path);
      assert.equal(answer.status, 404, `${method} ${path}`);
      assert.equal(answer.json().error.code, 'SW_ERR_BAD_REQUEST');
    }
    // The session ends elsewhere (another tab logs out); this tab's logout still clears its cookie.
    const other = client();
    other.cookies.set('sw_session', c.cookies.get('sw_session')!);
    other.csrf = c.csrf;
    assert.equal((await webRequest(other, 'POST', '/api/logout')).status, 204);
    const late = await webRequest(c, 'POST', '/api/logout');
    assert.equal(late.status, 401);
    assert.match(late.setCookie.join('\n'), /sw_session=;.*Expires=Thu, 01 Jan 1970/i);
    assert.equal(c.cookies.has('sw_session'), false);
  });

  it('Origin is checked against the console\'s own names, never the Host header; an unknown Host is refused with 421 (DNS rebinding)', async () => {
    const c = client();
    assert.equal((await webLogin(c, 'alice', 'correct horse')).status, 200);
    // A rebound name: Host and Origin agree with each other, but name none of the console's.
    const evil = `evil.example:${webPort}`;
    for (const [method, path] of [['POST', '/api/logout'], ['GET', '/api/session'], ['GET', '/']] as const) {
      const answer = await webRequest(c, method, path, { origin: `https://${evil}`, headers: { host: evil } });
      assert.equal(answer.status, 421, `${method} ${path}: ${answer.body.toString()}`);
      assert.equal(answer.json().error.code, 'SW_ERR_DENIED');
    }
    // The right Host with that Origin: the Origin check itself refuses it.
    assert.equal((await webRequest(c, 'POST', '/api/logout', { origin: `https://${evil}` })).status, 403);
    assert.equal((await webRequest(c, 'GET', '/api/session')).status, 200, 'still logged in');
    // Names the console does answer to: its address, localhost (loopback listen), --web-origin's.
    assert.equal((await webRequest(c, 'GET', '/api/session', { headers: { host: `localhost:${webPort}` } })).status, 200);
    const proxied = await webRequest(c, 'POST', '/api/logout', { origin: ALLOWED_ORIGIN, headers: { host: new URL(ALLOWED_ORIGIN).host } });
    assert.equal(proxied.status, 204, proxied.body.toString());
  });

  it('--web-trust-proxy: X-Forwarded-For keys the throttle and the audit only when it comes from a trusted proxy', async () => {
    const proxyDir = join(dir, 'proxied');
    mkdirSync(proxyDir, { mode: 0o700 });
    writeFileSync(join(proxyDir, 'users.yaml'), usersText());
    const seen: AuditEvent[] = [];
    const proxied = await Gateway.create({
      stateDir: proxyDir, host: '127.0.0.1', port: 0, inventory: join(dir, 'inventory.yaml'),
      audit: { record: (e: AuditEvent) => void seen.push(e) },
      throttle: { baseDelayMs: 1, maxDelayMs: 5, lockoutAfter: 5 },
      web: { host: '127.0.0.1', port: 0, staticDir: join(dir, 'no-ui'), trustProxy: ['127.0.0.2'] },
    });
    try {
      await proxied.listen();
      const c = webClient(proxied.webAddress!.port, proxied.server.identity.certPem);
      const attempt = (from: string, forwarded: string, user: string, password: string) =>
        webRequest(c, 'POST', '/api/login', { localAddress: from, headers: { 'x-forwarded-for': forwarded }, json: { user, password }, cookies: false });
      // From the trusted proxy: the forwarded address is the browser's.
      assert.equal((await attempt('127.0.0.2', '10.9.8.7', 'alice', 'wrong')).status, 401);
      assert.match(String(seen.findLast((r) => r.kind === 'auth-fail')?.address), /^web:10\.9\.8\.7:0$/);
      // From anyone else it is a forgery: the socket's address stands.
      assert.equal((await attempt('127.0.0.1', '10.9.8.7', 'alice', 'wrong')).status, 401);
      assert.match(String(seen.findLast((r) => r.kind === 'auth-fail')?.address), /^web:127\.0\.0\.1:\d+$/);
      // Five failures through the proxy lock out that browser's address only...
      for (let i = 1; i <= 5; i += 1) await attempt('127.0.0.2', '10.9.8.7', `nobody${i}`, 'wrong');
      assert.equal((await attempt('127.0.0.2', '10.9.8.7', 'alice', 'correct horse')).status, 429);
      // ...not every browser behind the proxy.
      const other = await attempt('127.0.0.2', '10.9.8.8', 'alice', 'correct horse');
      assert.equal(other.status, 200, other.body.toString());
      // A forged X-Forwarded-For from an untrusted address does not dodge its own lock.
      for (let i = 1; i <= 5; i += 1) await attempt('127.0.0.3', `10.0.0.${i}`, `nobody${i}`, 'wrong');
      assert.equal((await attempt('127.0.0.3', '10.0.0.99', 'alice', 'correct horse')).status, 429);
    } finally {
      await proxied.close(200);
    }
  });

  it('the web-login op is refused by a gateway without --web', async () => {
    const plainDir = join(dir, 'plain');
    mkdirSync(plainDir, { mode: 0o700 });
    writeFileSync(join(plainDir, 'users.yaml'), usersText());
    const plain = await Gateway.create({ stateDir: plainDir, host: '127.0.0.1', port: 0, inventory: join(dir, 'inventory.yaml'), audit: false });
    try {
      const port = (await plain.listen()).port;
      const conn = await connect({ user: 'bob', host: '127.0.0.1', port }, { identity: bob.file, fingerprint: plain.server.identity.fingerprint, env: {} });
      try {
        await assert.rejects(conn.gatewayRequest({ op: 'web-login' }), (err: Error & { code?: string }) => err.code === 'SW_ERR_BAD_REQUEST' && /--web/.test(err.message));
      } finally {
        await conn.close();
      }
    } finally {
      await plain.close(200);
    }
  });
});
