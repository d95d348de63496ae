/**
 * Times people type: `token create --expires`, `audit --since/--until` and token expiries
 * in users.yaml take a duration with a unit or a full ISO date, never a bare number (which
 * V8 reads as a year) or an impossible date, and a new token's expiry must be in the future.
 * And `user passwd` says when the password it sets cannot be used yet (password login off).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';

const isRoot = process.getuid?.() === 0;
const BOB = isRoot ? '{ allowRoot: true }' : '{}';
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) removeDir(dir);
});

/** A state dir with users.yaml holding user bob (runs as the daemon's own account, root here or not). */
function stateWithBob(extra = ''): { stateDir: string; env: NodeJS.ProcessEnv } {
  const dir = tempDir('shellwire-expiry-');
  dirs.push(dir);
  const stateDir = join(dir, 'server');
  mkdirSync(stateDir, { mode: 0o700 });
  writeFileSync(join(stateDir, 'users.yaml'), `${extra}users:\n  bob: ${BOB}\n`, { mode: 0o600 });
  return { stateDir, env: cleanEnv({ SHELLWIRE_HOME: dir }) };
}

const usersYaml = (stateDir: string) => readFileSync(join(stateDir, 'users.yaml'), 'utf8');

test('token create --expires: a bare number, a past or impossible date, 0d are refused; 1h30m and a future date work', async () => {
  const { stateDir, env } = stateWithBob();
  const create = (expires: string) => runCli(['token', 'create', '--user', 'bob', '--state-dir', stateDir, '--expires', expires], { env });

  for (const bare of ['90', '5', '0', '1.5']) {
    const r = await create(bare);
    assert.equal(r.code, 2, `--expires ${bare}: ${r.stderr}`);
    assert.match(r.stderr, /--expires give a unit: 30d, 12h, 90m \(a bare number could mean days, hours or a year\)/, bare);
  }
  const past = await create('2020-01-01');
  assert.equal(past.code, 2, past.stderr);
  assert.match(past.stderr, /--expires 2020-01-01 \(2020-01-01T00:00:00\.000Z\) is in the past/);
  const pastTime = await create('2021-06-01T12:00Z');
  assert.equal(pastTime.code, 2, pastTime.stderr);
  assert.match(pastTime.stderr, /2021-06-01T12:00:00\.000Z\) is in the past/);
  for (const bad of ['2099-02-30', '2099-1-1', 'next week', '0d', '-1d']) {
    const r = await create(bad);
    assert.equal(r.code, 2, `--expires ${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--expires /, bad);
  }
  assert.doesNotMatch(usersYaml(stateDir), /tokens/, 'a refused --expires made a token');

  const before = Date.now();
  const composite = await create('1h30m');
  assert.equal(composite.code, 0, composite.stderr);
  const expires = Date.parse(/expires (\S+);/.exec(composite.stderr)![1]!);
  assert.ok(expires >= before + 90 * 60_000 && expires <= Date.now() + 90 * 60_000, composite.stderr);
  const dated = await create('2099-01-31');
  assert.equal(dated.code, 0, dated.stderr);
  assert.match(dated.stderr, /expires 2099-01-31T00:00:00\.000Z/);
  assert.match(usersYaml(stateDir), /expires: 2099-01-31T00:00:00\.000Z/);

  const help = await runCli(['token', 'create', '--help'], { env });
  assert.match(help.stdout.toString().replace(/\s+/g, ' '), /--expires <when> when it stops working: a duration with a unit \(30d, 12h, 90m, 1h30m, 2w\) or a date: YYYY-MM-DD/);
});

test('users.yaml: a token expiry that is a bare number or no real date is an error at its line, not the year 1990', async () => {
  for (const value of ['90', '2027-02-30']) {
    const { stateDir, env } = stateWithBob();
    writeFileSync(join(stateDir, 'users.yaml'), `users:\n  bob:\n    allowRoot: ${isRoot}\n    tokens:\n      - { name: t, sha256: ${'a'.repeat(64)}, expires: ${value} }\n`);
    const list = await runCli(['user', 'list', '--state-dir', stateDir], { env });
    assert.equal(list.code, 1, `expires: ${value}: ${list.stdout.toString()}`);
    assert.match(list.stderr, /tokens\.0\.expires|tokens\[0\]\.expires|expires.*must be an ISO date-time/, value);
  }
});

test('audit --since/--until: a bare number (a year? seconds?) and impossible dates are refused', async () => {
  const { stateDir, env } = stateWithBob();
  for (const [flag, value] of [['--since', '2024'], ['--until', '90'], ['--since', '2025-02-30']] as const) {
    const r = await runCli(['audit', '--state-dir', stateDir, flag, value], { env });
    assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${flag} `), value);
  }
  const bare = await runCli(['audit', '--state-dir', stateDir, '--since', '2024'], { env });
  assert.match(bare.stderr, /--since needs a unit or a full date: 90s, 30m, 2d, or YYYY-MM-DD/);
});

test('user passwd with password login off: the password is stored, and a note says it is not accepted until passwordLogin: true', async () => {
  const off = stateWithBob();
  const r = await runCli(['user', 'passwd', 'bob', '--state-dir', off.stateDir], { env: off.env, input: 'correct horse\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /password set for bob/);
  assert.match(r.stderr, /note: password login is off on this daemon, so this password is not accepted yet/);
  assert.ok(r.stderr.includes(`set in ${join(off.stateDir, 'users.yaml')}:\n  settings:\n    passwordLogin: true\n`), r.stderr);
  assert.match(usersYaml(off.stateDir), /password: /);

  const on = stateWithBob('settings:\n  passwordLogin: true\n');
  const quiet = await runCli(['user', 'passwd', 'bob', '--state-dir', on.stateDir], { env: on.env, input: 'correct horse\n' });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /note:/);
});
