/**
 * File roots follow command rights: a principal that may run any command may move files
 * anywhere its account may (`put a.txt host:/tmp/` with the daemon's token just works); one
 * with command rules, or without a command channel, keeps its home unless `fileRoots` says
 * otherwise. Refusals name the setting that decides the roots.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, tempDir, removeDir, startServeCli } from '../helpers/fixtures.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

const isRoot = process.getuid?.() === 0;

describe('serve: the daemon token', () => {
  it('without --file-root it may put, get and ls anywhere (put a.txt host:/tmp/…)', async () => {
    const serveHome = tempDir('shellwire-roots-serve-');
    const elsewhere = tempDir('shellwire-roots-elsewhere-');
    const local = tempDir('shellwire-roots-local-');
    const serve = await startServeCli(serveHome, ['--no-audit']);
    try {
      writeFileSync(join(local, 'a.txt'), 'hello');
      const env = cleanEnv({ SHELLWIRE_HOME: serveHome });
      const flags = ['--token-file', serve.tokenFile, '--accept-new-host'];
      const put = await runCli(['put', ...flags, join(local, 'a.txt'), `${serve.address}:${elsewhere}/`], { env });
      assert.equal(put.code, 0, put.stderr);
      assert.equal(readFileSync(join(elsewhere, 'a.txt'), 'utf8'), 'hello');
      const get = await runCli(['get', ...flags, `${serve.address}:${elsewhere}/a.txt`, join(local, 'back.txt')], { env });
      assert.equal(get.code, 0, get.stderr);
      assert.equal(readFileSync(join(local, 'back.txt'), 'utf8'), 'hello');
      const ls = await runCli(['ls', ...flags, `${serve.address}:${elsewhere}`], { env });
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout.toString(), /a\.txt/);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
      removeDir(serveHome);
      removeDir(elsewhere);
      removeDir(local);
    }
  });

  it('with --file-root it keeps to it, and the refusal names --file-root', async () => {
    const serveHome = tempDir('shellwire-roots-serve-');
    const allowed = tempDir('shellwire-roots-allowed-');
    const local = tempDir('shellwire-roots-local-');
    const serve = await startServeCli(serveHome, ['--no-audit', '--file-root', allowed]);
    try {
      writeFileSync(join(local, 'a.txt'), 'hello');
      const env = cleanEnv({ SHELLWIRE_HOME: serveHome });
      const r = await runCli(['put', '--token-file', serve.tokenFile, '--accept-new-host', join(local, 'a.txt'), `${serve.address}:${local}/b.txt`], { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`outside the allowed file root ${allowed}.*serve --file-root`));
      assert.equal(existsSync(join(local, 'b.txt')), false);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
      removeDir(serveHome);
      removeDir(allowed);
      removeDir(local);
    }
  });
});

describe('users.yaml: file roots follow command rights', { skip: !isRoot && 'needs root (users run as the daemon account: allowRoot)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let keyFile: string;

  before(async () => {
    d = await startDaemon({ audit: false });
    dir = tempDir('shellwire-roots-users-');
    const pair = generateKeyPair('roots@test');
    keyFile = join(dir, 'id');
    writeFileSync(keyFile, pair.privateText, { mode: 0o600 });
    for (const sub of ['home-r', 'home-f', 'home-x', 'outside', 'extra']) mkdirSync(join(dir, sub));
    writeFileSync(join(dir, 'a.txt'), 'hello');
    const user = (name: string, lines: string[]) => [`  ${name}:`, '    allowRoot: true', ...lines.map((l) => `    ${l}`), `    keys: ["${pair.publicLine}"]`];
    writeFileSync(join(d.server.stateDir, 'users.yaml'), ['users:',
      ...user('free', []),
      ...user('restricted', [`home: ${dir}/home-r`, 'commands: { allow: ["echo ..."] }']),
      ...user('fileonly', [`home: ${dir}/home-f`, 'channels: [file]']),
      ...user('explicit', [`home: ${dir}/home-x`, `fileRoots: [${dir}/extra]`]),
    ].join('\n') + '\n');
    assert.ok(d.server.reloadUsers().ok);
  });
  after(async () => {
    await d.stop();
    removeDir(dir);
  });

  const put = (user: string, to: string) => runCli(['put', '-i', keyFile, join(dir, 'a.txt'), `${user}@${d.address}:${to}`], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });

  it('a user without command rules may put anywhere its account may', async () => {
    const r = await put('free', `${dir}/outside/free.txt`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'outside', 'free.txt'), 'utf8'), 'hello');
  });

  it('a user with command rules keeps its home; the refusal names users.NAME.fileRoots and the user add flag', async () => {
    const inside = await put('restricted', 'in-home.txt');
    assert.equal(inside.code, 0, inside.stderr);
    assert.ok(existsSync(join(dir, 'home-r', 'in-home.txt')));
    const r = await put('restricted', `${dir}/outside/r.txt`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`outside the allowed file root ${dir}/home-r.*users\\.restricted\\.fileRoots in the daemon's users\\.yaml.*--file-root DIR`));
    assert.equal(existsSync(join(dir, 'outside', 'r.txt')), false);
  });

  it('a user who runs no commands (channels: [file]) keeps its home', async () => {
    const r = await put('fileonly', `${dir}/outside/f.txt`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /users\.fileonly\.fileRoots/);
    assert.equal(existsSync(join(dir, 'outside', 'f.txt')), false);
  });

  it('fileRoots given explicitly are kept, even for an unrestricted user', async () => {
    const ok = await put('explicit', `${dir}/extra/x.txt`);
    assert.equal(ok.code, 0, ok.stderr);
    const r = await put('explicit', `${dir}/outside/x.txt`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`outside the allowed file root ${dir}/extra.*users\\.explicit\\.fileRoots`));
  });
});
