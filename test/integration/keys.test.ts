/**
 * OpenSSH's usual client keys (issue 10): keys made by the real ssh-keygen (Ed25519, ECDSA,
 * RSA; OpenSSH, PEM and PKCS#8 formats; with and without a passphrase), a real ssh-agent
 * loaded with ssh-add, the real CLI as a child process (under tmux where a terminal
 * matters), and a raw client for the signatures the daemon must refuse.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { sign as cryptoSign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, runCli, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import { RawClient } from '../helpers/raw-client.js';
import { connect } from '../../src/client/connect.js';
import { authSignedData, parsePrivateKey, signAuth, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../../src/auth/ssh-key.js';
import { FrameType, encodeFrame } from '../../src/protocol/frame.js';
import { encodeJson, FEATURES, PROTOCOL_MAGIC } from '../../src/protocol/messages.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';

const PASS = 'correct horse';

describe('OpenSSH client keys: every type, passphrases, ssh-agent', () => {
  let d: TestDaemon;
  let dir: string;
  const authorized: Record<string, string[]> = { alice: [], bob: [] };
  const agents: ChildProcess[] = [];

  /** ssh-keygen a key (few KDF rounds: the test is about formats, not bcrypt's cost). */
  function keygen(name: string, args: string[], passphrase = ''): string {
    const file = join(dir, name);
    execFileSync('ssh-keygen', ['-q', ...args, '-a', '2', '-N', passphrase, '-C', `${name}@test`, '-f', file]);
    return file;
  }

  function authorize(user: 'alice' | 'bob', file: string): void {
    authorized[user]!.push(readFileSync(`${file}.pub`, 'utf8').trim());
    const lines = ['users:'];
    for (const [name, keys] of Object.entries(authorized)) {
      lines.push(`  ${name}:`, '    allowRoot: true', ...(keys.length === 0 ? ['    keys: []'] : ['    keys:', ...keys.map((k) => `      - ${k}`)]));
    }
    writeFileSync(join(d.server.stateDir, 'users.yaml'), lines.join('\n') + '\n');
    const reloaded = d.server.reloadUsers();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
  }

  /** A CLI environment with no token, no agent and a HOME of its own (so ~/.ssh is ours). */
  function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env = cleanEnv({ SHELLWIRE_HOME: d.home, HOME: join(dir, 'emptyhome'), ...extra });
    if (extra.SSH_AUTH_SOCK === undefined) delete env.SSH_AUTH_SOCK;
    return env;
  }

  /** A real ssh-agent in the foreground on its own socket, killed by PID in `after`. */
  async function startAgent(name: string, files: string[]): Promise<{ sock: string; agent: ChildProcess }> {
    const sock = join(dir, `${name}.agent`);
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    agents.push(agent);
    // The socket file exists from bind(), before listen(): wait until the agent answers
    // (`ssh-add -l` exits 2 only when it cannot reach an agent).
    assert.ok(await waitFor(() => existsSync(sock) && spawnSync('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' }).status !== 2), 'ssh-agent answers on its socket');
    const askpass = join(dir, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\necho '${PASS}'\n`, { mode: 0o755 });
    for (const file of files) {
      execFileSync('ssh-add', ['-q', file], { env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, stdio: ['ignore', 'ignore', 'pipe'] });
    }
    return { sock, agent };
  }

  const login = (user: string, args: string[], env: NodeJS.ProcessEnv) => runCli(['exec', ...args, `${user}@${d.address}`, '--', 'echo', `logged-in-${user}`], { env });

  before(async () => {
    d = await startDaemon({ throttle: { baseDelayMs: 1, maxDelayMs: 1 } });
    dir = tempDir('sw-keys-it-');
    mkdirSync(join(dir, 'emptyhome'));
  });
  after(async () => {
    for (const agent of agents) if (agent.pid !== undefined && agent.exitCode === null && agent.signalCode === null) agent.kill('SIGTERM');
    await d.stop();
    removeDir(dir);
  });

  it('each key type and format ssh-keygen writes logs in through the real CLI with -i', async () => {
    const kinds: [string, string[]][] = [
      ['ed25519', ['-t', 'ed25519']],
      ['ecdsa256', ['-t', 'ecdsa', '-b', '256']],
      ['ecdsa384', ['-t', 'ecdsa', '-b', '384']],
      ['ecdsa521', ['-t', 'ecdsa', '-b', '521']],
      ['rsa', ['-t', 'rsa', '-b', '2048']],
      ['rsa-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM']],
      ['ecdsa-pem', ['-t', 'ecdsa', '-m', 'PEM']],
      ['rsa-pkcs8', ['-t', 'rsa', '-b', '2048', '-m', 'PKCS8']],
    ];
    for (const [name, args] of kinds) authorize('alice', keygen(`type-${name}`, args));
    for (const [name] of kinds) {
      const r = await login('alice', ['-i', join(dir, `type-${name}`)], cliEnv());
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), 'logged-in-alice\n', name);
    }
  });

  it('without a terminal, a passphrase-protected -i key fails saying to use ssh-agent', async () => {
    const file = keygen('enc-notty', ['-t', 'ecdsa'], PASS);
    authorize('alice', file);
    const r = await login('alice', ['-i', file], cliEnv());
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /passphrase-protected.*ssh-add/);
    assert.match(r.stderr, new RegExp(`${file}`));
  });

  it('a passphrase-protected key is asked for on the terminal without echo; a wrong passphrase is asked again', { skip: !hasTmux && 'tmux missing' }, async () => {
    const file = keygen('enc-tty', ['-t', 'rsa', '-b', '2048'], PASS);
    authorize('alice', file);
    const env = cliEnv();
    const vars = ['PATH', 'HOME', 'SHELLWIRE_HOME'].map((name) => `${name}='${env[name]}'`).join(' ');
    const pane = new TmuxPane(`env -i ${vars} TERM=xterm ${process.execPath} ${CLI} exec -i ${file} alice@${d.address} -- echo logged-in-tty; echo "exit=$?"; sleep 60`);
    try {
      assert.ok(await pane.shows(/Enter passphrase for key '.*enc-tty': *$/m, 10_000), pane.screen());
      pane.line('not the passphrase');
      assert.ok(await pane.shows(/Bad passphrase, try again for key '.*enc-tty'/, 10_000), pane.screen());
      pane.line(PASS);
      assert.ok(await pane.shows(/exit=\d+/, 15_000), pane.screen());
      const screen = pane.screen();
      assert.match(screen, /^logged-in-tty$/m);
      assert.match(screen, /exit=0/);
      assert.doesNotMatch(screen, /not the passphrase|correct horse/, 'no echo');
    } finally {
      pane.close();
    }
  });

  it('three wrong passphrases: the key is not used and the error says why', { skip: !hasTmux && 'tmux missing' }, async () => {
    const file = keygen('enc-wrong', ['-t', 'ed25519'], PASS);
    authorize('alice', file);
    const env = cliEnv();
    const vars = ['PATH', 'HOME', 'SHELLWIRE_HOME'].map((name) => `${name}='${env[name]}'`).join(' ');
    const pane = new TmuxPane(`env -i ${vars} TERM=xterm ${process.execPath} ${CLI} exec -i ${file} alice@${d.address} -- echo logged-in-tty; echo "exit=$?"; sleep 60`, 200, 30);
    try {
      for (let i = 0; i < 3; i += 1) {
        assert.ok(await waitFor(() => (pane.screen().match(/passphrase.*for key/g) ?? []).length === i + 1, 10_000), pane.screen());
        pane.line(`wrong ${i}`);
      }
      assert.ok(await pane.shows(/exit=\d+/, 15_000), pane.screen());
      const screen = pane.screen();
      assert.match(screen, /wrong passphrase \(3 tries\)/);
      assert.doesNotMatch(screen, /exit=0/);
    } finally {
      pane.close();
    }
  });

  it('ssh-agent: every identity is offered in order, so the last one (encrypted on disk) logs in; scripts need no passphrase', async () => {
    const others = [keygen('agent-a', ['-t', 'ed25519']), keygen('agent-b', ['-t', 'ecdsa', '-b', '384'])];
    const last = keygen('agent-c', ['-t', 'rsa', '-b', '2048'], PASS);
    authorize('bob', last);
    const { sock } = await startAgent('three', [...others, last]);
    const r = await login('bob', [], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'logged-in-bob\n');
    // Through the library: the agent's RSA key signs with SHA-2 (the daemon refuses SHA-1).
    const seen: string[] = [];
    const conn = await connect(`bob@${d.address}`, { fingerprint: d.fingerprint, env: cliEnv({ SSH_AUTH_SOCK: sock }), debug: (m) => seen.push(m) });
    assert.equal(conn.server.user, 'bob');
    await conn.close();
    assert.ok(seen.some((m) => /offering ssh-rsa key .* from ssh-agent key agent-c@test/.test(m)), seen.join('\n'));
  });

  it('an agent with more keys than a login carries: the rest are named, and -i picks one (its agent copy, no prompt)', async () => {
    const files = ['ed25519', 'ecdsa', 'ed25519', 'ecdsa'].map((type, i) => keygen(`many-${i}`, ['-t', type]));
    const wanted = keygen('many-wanted', ['-t', 'ecdsa', '-b', '521'], PASS);
    authorize('bob', wanted);
    const { sock } = await startAgent('many', [...files, wanted]);
    const refused = await login('bob', [], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /many-wanted@test.*at most 4 credentials; pick this key with -i/);
    // The file is encrypted and there is no terminal: the agent signs for it.
    const picked = await login('bob', ['-i', wanted], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.equal(picked.code, 0, picked.stderr);
    assert.equal(picked.stdout.toString(), 'logged-in-bob\n');
    // The agent's first key (Ed25519) signs too.
    authorize('alice', files[0]!);
    const first = await login('alice', [], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.toString(), 'logged-in-alice\n');
  });

  it('-i KEY.pub picks that key from ssh-agent (no prompt); without the agent, the private key beside it; a lone .pub says what to do', async () => {
    const held = keygen('pubpick', ['-t', 'ed25519'], PASS);
    const pem = keygen('pubpick-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM'], PASS); // its public half only in the .pub
    const plain = keygen('pubpick-plain', ['-t', 'ecdsa']);
    for (const file of [held, pem, plain]) authorize('bob', file);
    const others = ['ed25519', 'ecdsa', 'ed25519', 'ecdsa'].map((type, i) => keygen(`pubpick-other-${i}`, ['-t', type]));
    const { sock } = await startAgent('pubpick', [...others, held, pem]);
    const viaPub = await login('bob', ['-i', `${held}.pub`], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.equal(viaPub.code, 0, viaPub.stderr);
    assert.equal(viaPub.stdout.toString(), 'logged-in-bob\n');
    // An encrypted PEM key with its .pub beside it: found in the agent, no passphrase asked.
    const viaPem = await login('bob', ['-i', pem], cliEnv({ SSH_AUTH_SOCK: sock }));
    assert.equal(viaPem.code, 0, viaPem.stderr);
    const plainPub = await login('bob', ['-i', `${plain}.pub`], cliEnv());
    assert.equal(plainPub.code, 0, plainPub.stderr);
    const lonely = join(dir, 'lonely.pub');
    writeFileSync(lonely, readFileSync(`${plain}.pub`));
    const refused = await login('bob', ['-i', lonely], cliEnv());
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /lonely\.pub is a public key \(SHA256:.*\) and no ssh-agent is reachable .*ssh-add/);
  });

  it('an agent socket that is missing or dead: a clear message, and other credentials still log in', async () => {
    const home = join(dir, 'home-fallback');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const file = keygen('fallback', ['-t', 'ecdsa']);
    writeFileSync(join(home, '.ssh', 'id_ecdsa'), readFileSync(file), { mode: 0o600 });
    authorize('alice', file);
    const { sock, agent } = await startAgent('dead', []);
    process.kill(agent.pid!, 'SIGKILL'); // leaves its socket file behind
    assert.ok(await waitFor(() => agent.exitCode !== null || agent.signalCode !== null));
    for (const [what, path, why] of [['missing', join(dir, 'no-such.sock'), /no such socket/], ['dead', sock, /nothing answers on it/]] as const) {
      const ok = await login('alice', [], cliEnv({ SSH_AUTH_SOCK: path, HOME: home }));
      assert.equal(ok.code, 0, `${what}: ${ok.stderr}`);
      assert.equal(ok.stdout.toString(), 'logged-in-alice\n');
      const none = await login('alice', [], cliEnv({ SSH_AUTH_SOCK: path }));
      assert.notEqual(none.code, 0);
      assert.match(none.stderr, new RegExp(`ssh-agent at SSH_AUTH_SOCK=${path} is not usable: ${why.source}`), what);
      assert.match(none.stderr, /SW_ERR_NO_CREDENTIALS/);
    }
  });

  it('default keys as ssh: ~/.ssh/id_rsa without -i; an encrypted default key is skipped without a terminal and asked for only when the others failed', async () => {
    const home = join(dir, 'home-defaults');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const rsa = keygen('default-rsa', ['-t', 'rsa', '-b', '2048']);
    const enc = keygen('default-ed', ['-t', 'ed25519'], PASS);
    for (const [src, name] of [[rsa, 'id_rsa'], [enc, 'id_ed25519']] as const) {
      writeFileSync(join(home, '.ssh', name), readFileSync(src), { mode: 0o600 });
      writeFileSync(join(home, '.ssh', `${name}.pub`), readFileSync(`${src}.pub`));
    }
    authorize('alice', rsa);
    const cli = await login('alice', [], cliEnv({ HOME: home }));
    assert.equal(cli.code, 0, cli.stderr);

    // Another user authorizes only the encrypted key. Without a way to ask: skipped and said so.
    const carolEnv = cliEnv({ HOME: home });
    authorize('bob', enc);
    const debug: string[] = [];
    await assert.rejects(connect(`bob@${d.address}`, { fingerprint: d.fingerprint, env: carolEnv, debug: (m) => debug.push(m) }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.AUTH_FAILED);
      assert.match(err.message, /id_ed25519: it is passphrase-protected and there is no terminal/);
      return true;
    });
    assert.ok(debug.some((m) => /skipping .*\.ssh\/id_ed25519: it is passphrase-protected.*ssh-add/.test(m)), debug.join('\n'));

    // With a way to ask: asked only after the id_rsa login failed, then logged in.
    const asked: string[] = [];
    const askPassphrase = async (keyFile: string) => {
      asked.push(keyFile);
      return PASS;
    };
    const asAlice = await connect(`alice@${d.address}`, { fingerprint: d.fingerprint, env: carolEnv, askPassphrase });
    await asAlice.close();
    assert.deepEqual(asked, [], 'alice logs in with id_rsa: no passphrase asked');
    const asBob = await connect(`bob@${d.address}`, { fingerprint: d.fingerprint, env: carolEnv, askPassphrase });
    assert.equal(asBob.server.user, 'bob');
    await asBob.close();
    assert.deepEqual(asked, [join(home, '.ssh', 'id_ed25519')]);
  });

  it('connect({ home }) takes the default key and the local daemon token from that home, not SHELLWIRE_HOME', async () => {
    const home = join(dir, 'library-home');
    mkdirSync(join(home, 'server'), { recursive: true });
    const file = keygen('library', ['-t', 'ed25519']);
    writeFileSync(join(home, 'id_ed25519'), readFileSync(file), { mode: 0o600 });
    authorize('alice', file);
    const env = cliEnv({ SHELLWIRE_HOME: join(dir, 'elsewhere') });
    const conn = await connect(`alice@${d.address}`, { home, fingerprint: d.fingerprint, env });
    assert.equal(conn.server.user, 'alice');
    await conn.close();
    // The local daemon's token lives in HOME/server/token; no key in this home.
    const tokenHome = join(dir, 'token-home');
    mkdirSync(join(tokenHome, 'server'), { recursive: true });
    writeFileSync(join(tokenHome, 'server', 'token'), d.token, { mode: 0o600 });
    const viaToken = await connect(d.address, { home: tokenHome, fingerprint: d.fingerprint, env });
    assert.equal((await viaToken.exec('echo token-home')).stdout, 'token-home\n');
    await viaToken.close();
  });

  it('the daemon refuses an RSA signature made with SHA-1 (ssh-rsa), and one relabelled as SHA-2', async () => {
    const file = keygen('sha1', ['-t', 'rsa', '-b', '2048']);
    authorize('alice', file);
    const key = parsePrivateKey(readFileSync(file, 'utf8'));
    const attempt = async (sign: (exporter: Buffer) => { algorithm: string; signature: Buffer }) => {
      const client = await RawClient.open(d.port);
      const exporter = client.socket.exportKeyingMaterial(AUTH_EXPORTER_LENGTH, AUTH_EXPORTER_LABEL, Buffer.alloc(0));
      const { algorithm, signature } = sign(exporter);
      client.write(encodeFrame(FrameType.HELLO, 0, encodeJson({
        magic: PROTOCOL_MAGIC, versions: [1], features: [...FEATURES], client: 'test', user: 'alice',
        auth: [{ method: 'publickey', user: 'alice', publicKey: key.publicKey.line, algorithm, signature: signature.toString('base64') }],
      })));
      const reply = await client.nextFrame((f) => f.type === FrameType.WELCOME || f.type === FrameType.GOODBYE);
      client.destroy();
      return reply;
    };
    const sha1 = (exporter: Buffer) => cryptoSign('sha1', authSignedData('alice', key.publicKey, exporter), key.key.getPrivatePEM());
    for (const algorithm of ['ssh-rsa', 'rsa-sha2-256']) {
      const refused = await attempt((exporter) => ({ algorithm, signature: sha1(exporter) }));
      assert.equal(refused.type, FrameType.GOODBYE, algorithm);
      assert.match(refused.payload.toString(), algorithm === 'ssh-rsa' ? /SHA-1, which is refused/ : /bad signature/);
    }
    const accepted = await attempt((exporter) => ({ algorithm: 'rsa-sha2-256', signature: signAuth(key, 'alice', exporter, 'rsa-sha2-256') }));
    assert.equal(accepted.type, FrameType.WELCOME, 'the control: SHA-256 is accepted');
  });

  it('key add / user add take every key type; a private key is refused with "give the .pub"; keygen -t writes each type', async () => {
    const stateDir = join(dir, 'cli-state');
    mkdirSync(stateDir, { mode: 0o700 }); // user/key commands refuse a state dir that does not exist
    const env = cliEnv();
    const pubs: string[] = [];
    for (const type of ['ed25519', 'ecdsa', 'rsa']) {
      const file = join(dir, `cli-${type}`);
      const made = await runCli(['keygen', '-t', type, '-f', file, '-C', `cli ${type}`], { env });
      assert.equal(made.code, 0, made.stderr);
      assert.match(readFileSync(file, 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----/);
      const derived = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
      assert.equal(derived.split(' ').slice(0, 2).join(' '), readFileSync(`${file}.pub`, 'utf8').split(' ').slice(0, 2).join(' '));
      pubs.push(`${file}.pub`);
    }
    const added = await runCli(['user', 'add', 'carol', '--allow-root', '--key', pubs[2]!, '--state-dir', stateDir], { env });
    assert.equal(added.code, 0, added.stderr);
    const sshKey = keygen('cli-ssh', ['-t', 'ecdsa', '-b', '521']);
    for (const arg of [pubs[0]!, pubs[1]!, readFileSync(`${sshKey}.pub`, 'utf8').trim()]) {
      const r = await runCli(['key', 'add', 'carol', arg, '--state-dir', stateDir], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    const yaml = readFileSync(join(stateDir, 'users.yaml'), 'utf8');
    for (const type of ['ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp521']) assert.match(yaml, new RegExp(`- ${type} AAAA`), type);

    const privateFile = await runCli(['key', 'add', 'carol', join(dir, 'cli-rsa'), '--state-dir', stateDir], { env });
    assert.notEqual(privateFile.code, 0);
    assert.match(privateFile.stderr, /cli-rsa: this is a private key; give its public half, the \.pub file/);
    const privateText = await runCli(['key', 'add', '--state-dir', stateDir, 'carol', '--', readFileSync(sshKey, 'utf8')], { env });
    // Refused before the command runs (program.ts), and never echoed.
    assert.equal(privateText.code, 2, privateText.stderr);
    assert.match(privateText.stderr, /looks like a private key; give the public half/);
    assert.doesNotMatch(privateText.stderr, /-----BEGIN/);
    const withOptions = await runCli(['key', 'add', 'carol', `from="10.0.0.1" ${readFileSync(pubs[0]!, 'utf8').trim()}`, '--state-dir', stateDir], { env });
    assert.match(withOptions.stderr, /authorized_keys options \(from="10\.0\.0\.1"\) are not supported/);
  });
});
