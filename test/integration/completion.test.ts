/**
 * `shellwire completion bash|zsh`: the scripts are generated from the program, loaded into a
 * real bash (the completion function called as bash calls it) and a real zsh under tmux (Tab
 * pressed), with the real CLI on PATH answering the inventory's host names.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, runCli } from '../helpers/daemon.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import type { CommandSpec } from '../../src/cli/completion-spec.js';

const hasZsh = (() => {
  try {
    execFileSync('zsh', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let root: string;
let env: NodeJS.ProcessEnv;
let spec: CommandSpec;
let bashScript: string;

before(async () => {
  root = tempDir('shellwire-completion-');
  // `shellwire` on PATH, as an installed package puts it: the scripts call it for host names.
  mkdirSync(join(root, 'bin'));
  symlinkSync(CLI, join(root, 'bin', 'shellwire'));
  mkdirSync(join(root, 'home'));
  writeFileSync(
    join(root, 'home', 'inventory.yaml'),
    'hosts:\n  - name: web01\n    address: 10.0.0.1\n    groups: [web]\n  - name: web02\n    address: 10.0.0.2\n    groups: [web]\n  - name: db01\n    address: 10.0.0.3\n    groups: [db]\n',
  );
  writeFileSync(join(root, 'other.yaml'), 'hosts:\n  - name: mail01\n    address: 10.0.1.1\n');
  env = cleanEnv({ SHELLWIRE_HOME: join(root, 'home'), PATH: `${join(root, 'bin')}:${process.env.PATH}` });
  const specRun = await runCli(['completion', 'spec'], { env });
  assert.equal(specRun.code, 0, specRun.stderr);
  spec = JSON.parse(specRun.stdout.toString('utf8')) as CommandSpec;
  const bash = await runCli(['completion', 'bash'], { env });
  assert.equal(bash.code, 0, bash.stderr);
  bashScript = join(root, 'shellwire.bash');
  writeFileSync(bashScript, bash.stdout);
});

after(() => {
  if (root) removeDir(root);
});

/**
 * What bash's programmable completion offers for `line` (the cursor at its end): COMP_LINE,
 * COMP_POINT, and COMP_WORDS/COMP_CWORD split as bash splits them (at blanks, and around the
 * ':' and '=' of COMP_WORDBREAKS), then the function `complete -F` registered.
 */
function bashComplete(line: string): string[] {
  const program = `
    source ${JSON.stringify(bashScript)}
    line=$1
    COMP_LINE=$line; COMP_POINT=\${#line}
    read -ra COMP_WORDS <<< "$(printf '%s' "$line" | sed 's/\\([:=]\\)/ \\1 /g')"
    [[ $line == *[[:space:]] || $line == *: || $line == *= ]] && COMP_WORDS+=("")
    COMP_CWORD=$((\${#COMP_WORDS[@]} - 1))
    fn=$(complete -p shellwire | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
    "$fn"
    printf '%s\\n' "\${COMPREPLY[@]}"
  `;
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', program, 'bash', line], { env, encoding: 'utf8', cwd: root, timeout: 20_000 });
  return out.split('\n').filter((word) => word !== '').sort();
}

test('bash: every command and subcommand of the program completes, none listed by hand', () => {
  const top = spec.commands.map((command) => command.name).sort();
  assert.ok(top.includes('exec') && top.includes('completion'));
  assert.deepEqual(bashComplete('shellwire '), top);
  assert.deepEqual(bashComplete('shellwire us'), ['user']);
  const user = spec.commands.find((command) => command.name === 'user')!;
  assert.deepEqual(bashComplete('shellwire user '), user.commands.map((command) => command.name).sort());
});

test('bash: options of the command being typed, from the program', () => {
  for (const command of spec.commands.filter((c) => c.commands.length === 0 && c.options.length > 0)) {
    const longs = command.options.map((option) => option.long).filter((name): name is string => name !== undefined).sort();
    assert.deepEqual(bashComplete(`shellwire ${command.name} --`), longs, command.name);
  }
  assert.deepEqual(bashComplete('shellwire exec --conn'), ['--connect-timeout']);
  assert.deepEqual(bashComplete('shellwire user add --run'), ['--run-as']);
  // An option's value is not a positional: after `-i KEY` the host is still the first argument.
  assert.deepEqual(bashComplete('shellwire exec -i key web'), ['web01', 'web02']);
});

test('bash: host arguments complete inventory names and @groups (one-host commands: names only); --inventory is honoured', () => {
  assert.deepEqual(bashComplete('shellwire exec '), ['db01', 'web01', 'web02']);
  assert.deepEqual(bashComplete('shellwire tty '), ['db01', 'web01', 'web02']);
  assert.deepEqual(bashComplete('shellwire run '), ['@db', '@web', 'db01', 'web01', 'web02']);
  assert.deepEqual(bashComplete('shellwire shell w'), ['web01', 'web02']);
  assert.deepEqual(bashComplete('shellwire run --stream @'), ['@db', '@web']);
  // After the target word comes the command (as ssh): no inventory names offered there.
  assert.deepEqual(bashComplete('shellwire run web01 d'), []);
  assert.deepEqual(bashComplete(`shellwire run --inventory ${join(root, 'other.yaml')} `), ['mail01']);
  assert.deepEqual(bashComplete(`shellwire hosts --inventory=${join(root, 'other.yaml')} m`), ['mail01']);
  // The remote command is not completed from local names.
  assert.deepEqual(bashComplete('shellwire exec web01 -- '), []);
  assert.deepEqual(bashComplete('shellwire run @web -- '), []);
});

test('bash: HOST:PATH arguments offer "host:", files and directories keep their place after ":" and "="', () => {
  writeFileSync(join(root, 'release.tar'), '');
  assert.deepEqual(bashComplete('shellwire put rel'), ['release.tar']);
  assert.deepEqual(bashComplete('shellwire put release.tar we'), ['web01:', 'web02:']);
  // put and get also take TARGETS:PATH (issue 13): @groups are offered; ls takes one host.
  assert.deepEqual(bashComplete('shellwire put release.tar @'), ['@db:', '@web:']);
  assert.deepEqual(bashComplete('shellwire get @'), ['@db:', '@web:']);
  assert.deepEqual(bashComplete('shellwire ls @'), []);
  mkdirSync(join(root, 'state-dir-here'), { recursive: true });
  assert.deepEqual(bashComplete('shellwire serve --state-dir state-'), ['state-dir-here']);
  // bash replaces only what follows the '=': the reply must not repeat the option.
  assert.deepEqual(bashComplete('shellwire serve --state-dir=state-'), ['state-dir-here']);
});

test('zsh: Tab completes commands, options and inventory hosts', { skip: !hasZsh ? 'zsh is not installed' : !hasTmux ? 'tmux is not installed' : false }, async () => {
  const fpath = join(root, 'zsh');
  mkdirSync(fpath, { recursive: true });
  const zsh = await runCli(['completion', 'zsh'], { env });
  assert.equal(zsh.code, 0, zsh.stderr);
  writeFileSync(join(fpath, '_shellwire'), zsh.stdout);
  execFileSync('zsh', ['-n', join(fpath, '_shellwire')]);
  writeFileSync(join(root, 'zshrc'), `fpath=(${fpath} $fpath)\nautoload -U compinit && compinit -u -D\nPS1='READY> '\ncd ${root}\n`);
  const envWords = `SHELLWIRE_HOME=${env.SHELLWIRE_HOME} PATH=${env.PATH} HOME=${root} TERM=xterm`;
  const pane = new TmuxPane(`env -i ${envWords} zsh -f -i`, 150, 30);
  try {
    pane.line(`source ${join(root, 'zshrc')}`);
    assert.ok(await pane.shows(/READY>\s*$/m), pane.screen());
    pane.keys('-l', 'shellwire us');
    pane.keys('Tab');
    assert.ok(await pane.shows(/READY> shellwire user\s*$/m), pane.screen());
    pane.keys('C-u');
    pane.keys('-l', 'shellwire exec --conn');
    pane.keys('Tab');
    assert.ok(await pane.shows(/READY> shellwire exec --connect-timeout=$/m), pane.screen());
    pane.keys('C-u');
    pane.keys('-l', 'shellwire run ');
    pane.keys('Tab');
    assert.ok(await pane.shows(/@db\s+@web\s+db01\s+web01\s+web02/), pane.screen());
    pane.keys('C-u');
    pane.keys('-l', 'shellwire exec ');
    pane.keys('Tab');
    assert.ok(await pane.shows(/READY> shellwire exec\s*\n\s*db01\s+web01\s+web02/), pane.screen());
    assert.doesNotMatch(pane.screen().split('shellwire exec').pop()!, /@web/);
    pane.keys('C-u');
    pane.keys('-l', 'shellwire put release.tar db');
    pane.keys('Tab');
    assert.ok(await pane.shows(/READY> shellwire put release\.tar db01:$/m), pane.screen());
  } finally {
    pane.close();
  }
});
