/**
 * known_hosts as ssh users know it: a changed key names FILE:LINE and the command that
 * fixes it, `known-hosts remove` (ssh-keygen -R, with FILE.old), `list`, `scan`/`add`
 * (ssh-keyscan, many hosts without a prompt each), ssh's "Permanently added" note, and
 * writers in several processes that never lose each other's lines. Real daemons on
 * loopback and the real CLI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { startDaemon, runCli, CLI, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv, freePort } from '../helpers/fixtures.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import { connect } from '../../src/client/connect.js';

const FAKE = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
let a: TestDaemon;
let b: TestDaemon;
let home: string;

before(async () => {
  a = await startDaemon();
  b = await startDaemon();
});
after(async () => {
  await a.stop();
  await b.stop();
});

function freshHome(): { home: string; file: string; env: NodeJS.ProcessEnv } {
  home = tempDir('shellwire-kh-');
  return { home, file: join(home, 'known_hosts'), env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: a.token }) };
}

test('a changed key: the banner names FILE:LINE and the remove command; running it, then --accept-new-host, reconnects with "Permanently added"', async () => {
  const { home, file, env } = freshHome();
  try {
    writeFileSync(file, `# pins\n${b.address} ${b.fingerprint}\n${a.address} ${FAKE}\n`);
    const refused = await runCli(['exec', a.address, '--', 'echo reached'], { env });
    assert.equal(refused.code, 255, refused.stderr);
    assert.equal(refused.stdout.length, 0);
    assert.match(refused.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.ok(refused.stderr.includes(`Offending key in ${file}:3`), refused.stderr);
    const fix = `shellwire known-hosts remove ${a.address}`;
    assert.ok(refused.stderr.includes(fix), refused.stderr);

    // The command the banner gave, word for word.
    const removed = await runCli(fix.split(' ').slice(1), { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout.toString(), new RegExp(`# Host ${a.address.replace(/\./g, '\\.')} found: line 3`));
    assert.match(removed.stderr, /removed 1 line\(s\)/);
    assert.equal(readFileSync(file, 'utf8'), `# pins\n${b.address} ${b.fingerprint}\n`, 'other lines and comments kept');
    assert.equal(readFileSync(`${file}.old`, 'utf8'), `# pins\n${b.address} ${b.fingerprint}\n${a.address} ${FAKE}\n`, 'ssh-keygen -R keeps FILE.old');

    const again = await runCli(['exec', '--accept-new-host', a.address, '--', 'echo reached'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.toString(), 'reached\n');
    assert.ok(again.stderr.includes(`Warning: Permanently added '${a.address}' to the list of known hosts.`), again.stderr);
    // Known now: no note the second time.
    const third = await runCli(['exec', a.address, '--', 'true'], { env });
    assert.equal(third.code, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /Permanently added/);
  } finally {
    removeDir(home);
  }
});

test('the library: HOST_KEY_CHANGED carries knownHostsFile and line; onHostKeyAdded is called once for a new host', async () => {
  const { home, file } = freshHome();
  try {
    writeFileSync(file, `\n\n${a.address} ${FAKE}\n`);
    await assert.rejects(connect(a.address, { token: a.token, home }), (err: Error & { knownHostsFile?: string; line?: number; code?: string }) => {
      assert.equal(err.code, 'SW_ERR_HOST_KEY_CHANGED');
      assert.equal(err.knownHostsFile, file);
      assert.equal(err.line, 3);
      assert.doesNotMatch(err.message, /--[a-z]/, 'no CLI flag in a library message');
      return true;
    });
    const added: string[] = [];
    const conn = await connect(b.address, { token: b.token, home, hostKeyPolicy: 'accept-new', onHostKeyAdded: (host, fp, f) => added.push(`${host} ${fp} ${f}`) });
    await conn.close();
    const again = await connect(b.address, { token: b.token, home, onHostKeyAdded: (host) => added.push(host) });
    await again.close();
    assert.deepEqual(added, [`${b.address} ${b.fingerprint} ${file}`]);
  } finally {
    removeDir(home);
  }
});

test('first contact answered "yes" on a terminal: ssh\'s "Permanently added" note', { skip: !hasTmux }, async () => {
  const { home, env } = freshHome();
  const pane = new TmuxPane(`env SHELLWIRE_HOME=${home} SHELLWIRE_TOKEN=${a.token} ${process.execPath} ${CLI} exec ${a.address} -- echo reached-it; sleep 30`);
  try {
    assert.ok(await pane.shows(/continue connecting \(yes\/no\/\[fingerprint\]\)\?/), pane.screen());
    pane.line('yes');
    assert.ok(await pane.shows(/reached-it/), pane.screen());
    assert.match(pane.screen(), new RegExp(`Warning: Permanently added '${a.address.replace(/\./g, '\\.')}' to the list of known hosts\\.`));
    void env;
  } finally {
    pane.close();
    removeDir(home);
  }
});

test('known-hosts remove: a bare HOST removes every port, HOST:PORT only that one; IPv6; a missing host exits 0 and says so', async () => {
  const { home, file, env } = freshHome();
  try {
    writeFileSync(file, `10.0.0.1:50007 ${FAKE}\n10.0.0.1:2222 ${FAKE}\n10.0.0.11:50007 ${FAKE}\n[::1]:50007 ${FAKE}\n[::1]:6000 ${FAKE}\n`);
    const onePort = await runCli(['known-hosts', 'remove', '10.0.0.1:2222'], { env });
    assert.equal(onePort.code, 0, onePort.stderr);
    assert.equal(readFileSync(file, 'utf8'), `10.0.0.1:50007 ${FAKE}\n10.0.0.11:50007 ${FAKE}\n[::1]:50007 ${FAKE}\n[::1]:6000 ${FAKE}\n`);
    const v6 = await runCli(['known-hosts', 'remove', '[::1]:6000'], { env });
    assert.equal(v6.code, 0, v6.stderr);
    const bare = await runCli(['known-hosts', 'rm', '::1', '10.0.0.1'], { env });
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal(readFileSync(file, 'utf8'), `10.0.0.11:50007 ${FAKE}\n`, '10.0.0.11 is not 10.0.0.1');
    const missing = await runCli(['known-hosts', 'remove', 'nowhere'], { env });
    assert.equal(missing.code, 0);
    assert.match(missing.stderr, /nowhere not found in .*known_hosts; nothing removed/);
  } finally {
    removeDir(home);
  }
});

test('known-hosts list shows each pin with FILE:LINE; list HOST filters (exit 1 when absent)', async () => {
  const { home, file, env } = freshHome();
  try {
    writeFileSync(file, `# comment\n${a.address} ${a.fingerprint}\n${b.address} ${b.fingerprint}\n`);
    const all = await runCli(['known-hosts', 'list'], { env });
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout.toString(), `${file}:2: ${a.address} ${a.fingerprint}\n${file}:3: ${b.address} ${b.fingerprint}\n`);
    const one = await runCli(['known-hosts', 'list', b.address, '--json'], { env });
    assert.deepEqual(JSON.parse(one.stdout.toString()), { host: b.address, fingerprint: b.fingerprint, line: 3, file });
    const none = await runCli(['known-hosts', 'list', '192.0.2.1'], { env });
    assert.equal(none.code, 1);
  } finally {
    removeDir(home);
  }
});

test('known-hosts scan prints known_hosts lines without logging in or writing; a dead port is reported, exit 1', async () => {
  const { home, file, env } = freshHome();
  const dead = await freePort();
  try {
    const result = await runCli(['known-hosts', 'scan', a.address, b.address, `127.0.0.1:${dead}`], { env: cleanEnv({ SHELLWIRE_HOME: home }) });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout.toString(), `${a.address} ${a.fingerprint}\n${b.address} ${b.fingerprint}\n`);
    assert.match(result.stderr, new RegExp(`Connection refused by 127\\.0\\.0\\.1:${dead}`));
    assert.equal(existsSync(file), false, 'scan trusts nothing');
    // ssh-keyscan >> known_hosts: the output is a valid file, and `add --from` pins it.
    writeFileSync(join(home, 'scanned'), result.stdout);
    const pinned = await runCli(['known-hosts', 'add', '--from', join(home, 'scanned')], { env });
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.equal(readFileSync(file, 'utf8'), result.stdout.toString());
    const run = await runCli(['exec', a.address, '--', 'echo pinned'], { env });
    assert.equal(run.stdout.toString(), 'pinned\n', run.stderr);
  } finally {
    removeDir(home);
  }
});

test('known-hosts add @group: fetches and pins every inventory host without a prompt, printing each; a changed one is refused', async () => {
  const { home, file, env } = freshHome();
  try {
    writeFileSync(join(home, 'inventory.yaml'), `hosts:\n  - name: web01\n    address: 127.0.0.1\n    port: ${a.port}\n    groups: [web]\n  - name: web02\n    address: 127.0.0.1\n    port: ${b.port}\n    groups: [web]\n`);
    const first = await runCli(['known-hosts', 'add', '@web'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.toString(), `${a.address} ${a.fingerprint} added\n${b.address} ${b.fingerprint} added\n`);
    assert.match(first.stderr, /2 added, 0 already known/);
    assert.equal(readFileSync(file, 'utf8'), `${a.address} ${a.fingerprint}\n${b.address} ${b.fingerprint}\n`);
    const second = await runCli(['known-hosts', 'add', 'web01', 'web02'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout.toString(), /already known\n.*already known\n/);

    writeFileSync(file, `${a.address} ${FAKE}\n`);
    const changed = await runCli(['known-hosts', 'add', '@web'], { env });
    assert.equal(changed.code, 1);
    assert.match(changed.stderr, new RegExp(`WARNING: ${a.address.replace(/\./g, '\\.')} presents ${a.fingerprint.replace(/[+/]/g, '\\$&')}, but ${file.replace(/[/.]/g, '\\$&')}:1 pins`));
    assert.equal(readFileSync(file, 'utf8'), `${a.address} ${FAKE}\n${b.address} ${b.fingerprint}\n`, 'the changed pin is kept, the new one added');
    // An inventory name removes its address:port pin.
    const byName = await runCli(['known-hosts', 'remove', 'web01'], { env });
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(readFileSync(file, 'utf8'), `${b.address} ${b.fingerprint}\n`);
  } finally {
    removeDir(home);
  }
});

test('concurrent writers in several processes never lose a line (appends racing a remove)', async () => {
  const { home, file } = freshHome();
  const writer = resolve(import.meta.dirname, '../fixtures/known-hosts-writer.ts');
  try {
    const run = (args: string[]) =>
      new Promise<void>((done, fail) => {
        const child = spawn(process.execPath, ['--import', 'tsx', writer, file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('close', (code) => (code === 0 ? done() : fail(new Error(`writer ${args.join(' ')} exited ${code}: ${err}`))));
      });
    await Promise.all([run(['add', 'p1', '60']), run(['add', 'p2', '60']), run(['add', 'p3', '60']), run(['churn', 'victim', '60'])]);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    for (const p of ['p1', 'p2', 'p3']) {
      for (let i = 0; i < 60; i++) assert.ok(lines.includes(`${p}-${i}.test:50007 ${FAKE}`), `${p}-${i} kept`);
    }
    assert.equal(lines.length, 180, 'no duplicates, and the victim was removed last');
  } finally {
    removeDir(home);
  }
});
