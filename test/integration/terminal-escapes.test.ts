/**
 * Bytes that drive a terminal (ESC, CSI, CR, C1) from files and arguments never reach it raw:
 * error lines are escaped, `known-hosts list` names a malformed line with its number instead of
 * listing it as a pin, and `known-hosts add --from` quotes the hostile line. The real CLI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';

const FP = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const dirs: string[] = [];
after(() => dirs.forEach(removeDir));

function home(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = tempDir('shellwire-esc-');
  dirs.push(dir);
  return { dir, env: cleanEnv({ SHELLWIRE_HOME: dir }) };
}

// ESC, CSI (C1), CR, BEL: none may appear in what the CLI prints.
// eslint-disable-next-line no-control-regex -- the raw controls are what must not appear
const RAW = /[\x1b\x9b\r\x07]/;

test('known-hosts list: a malformed line with ESC sequences is named (FILE:LINE, escaped), not listed as a pin', async () => {
  const { dir, env } = home();
  writeFileSync(join(dir, 'known_hosts'), `good:1 ${FP}\nh\x1b[31mRED\x1b]0;title\x07 ${FP}\n\u009b2Jx:1 ${FP}\n`);
  const result = await runCli(['known-hosts', 'list'], { env });
  assert.equal(result.code, 0);
  assert.doesNotMatch(result.stdout.toString(), RAW);
  assert.doesNotMatch(result.stderr, RAW);
  assert.equal(result.stdout.toString().trim().split('\n').length, 1, result.stdout.toString());
  assert.match(result.stdout.toString(), /:1: good:1 SHA256:/);
  assert.match(result.stderr, /known_hosts:2: malformed, ignored .*"h\\u\{1b\}\[31mRED/);
  assert.match(result.stderr, /known_hosts:3: malformed, ignored .*"\\u\{9b\}2Jx:1/);
});

test('known-hosts add --from: a hostile line is quoted; comments after a pin and blank lines are accepted', async () => {
  const { dir, env } = home();
  const from = join(dir, 'pins');
  writeFileSync(from, `# collected by hand\n\nweb1:50007 ${FP} # rack 4\nevil\x1b[2J\r ${FP} extra\n`);
  const result = await runCli(['known-hosts', 'add', '--from', from], { env });
  assert.doesNotMatch(result.stderr, RAW);
  assert.doesNotMatch(result.stdout.toString(), RAW);
  assert.match(result.stderr, /pins:4: not a known_hosts line .*"evil\\u\{1b\}\[2J\\r/);
  assert.match(result.stdout.toString(), /web1:50007 SHA256:A+ added/);
  assert.match(result.stderr, /1 added, 0 already known, 1 failed/);
});

test('a bad target echoes its text escaped, for every connecting command', async () => {
  const { env } = home();
  for (const args of [['exec', 'h\x1b[31mred', 'true'], ['ls', 'h\x1b[31mred:/'], ['known-hosts', 'remove', 'h\x1b[31mred:1'], ['run', 'h\x1b[31mred', '--', 'true']]) {
    const result = await runCli(args, { env });
    assert.notEqual(result.code, 0, args.join(' '));
    assert.match(result.stderr, /^shellwire: /, args.join(' '));
    assert.doesNotMatch(result.stderr, RAW, `${args[0]}: ${JSON.stringify(result.stderr)}`);
  }
});
