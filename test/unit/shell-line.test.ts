/**
 * `shellwire shell` input rules: when a command is complete, which lines end the session,
 * and which commands need a terminal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCompleteCommand, parseExit, startsWithExit } from '../../src/cli/shell-line.js';
import { programName, terminalProgram } from '../../src/cli/shell-needs-tty.js';

test('isCompleteCommand: open quotes, continuations, compound commands and here-documents wait for more lines', () => {
  const cases: [string, boolean][] = [
    ['echo hi', true], ["echo 'a", false], ["echo 'a\nb'", true], ['echo "a\nb"', true], ['echo a \\', false], ['echo a \\\nb', true],
    ['for i in 1 2; do', false], ['for i in 1 2; do\necho $i\ndone', true], ['if true; then echo x; fi', true], ['if true; then', false],
    ['while true; do echo; done', true], ['until false; do :; done', true], ['case $x in a) echo a;; esac', true], ['case $x in', false],
    ['case $x in\n(a) echo;;\nesac', true], ['{ echo a; }', true], ['{ echo a;', false], ['echo ${x}', true], ['(cd /tmp', false],
    ['(cd /tmp; ls)', true], ['echo $(date', false], ['ls |', false], ['ls |\nwc', true], ['true &&', false], ['false ||', false], ['true &', true],
    ['cat <<EOF', false], ['cat <<EOF\nx\nEOF', true], ["cat <<-'E'\nx\n\tE", true], ['echo $((1<<2))', true], ['echo done', true],
    ['echo if', true], ['fi', true], ['# comment', true], ["echo a # it's", true], ['x=1; echo `date', false], ['echo "it\'s"', true],
    ["echo it\\'s", true], ['f() {', false], ['f() { echo; }', true], ['', true],
  ];
  for (const [text, complete] of cases) assert.equal(isCompleteCommand(text), complete, JSON.stringify(text));
});

test('parseExit / startsWithExit: plain exits end the session here; others are evaluated remotely first', () => {
  assert.deepEqual(parseExit('exit'), { status: undefined });
  assert.deepEqual(parseExit(' exit 3 '), { status: 3 });
  assert.deepEqual(parseExit('logout'), { status: undefined });
  assert.deepEqual(parseExit('exit 300'), { status: 300 & 0xff });
  assert.equal(parseExit('exit $?'), null);
  assert.equal(parseExit('exitcode'), null);
  assert.equal(startsWithExit('exit $?'), true);
  assert.equal(startsWithExit('exit; echo x'), true);
  assert.equal(startsWithExit('exiting'), false);
  assert.equal(startsWithExit('echo exit'), false);
});

test('terminalProgram: editors, pagers, monitors, bare shells and ssh without a command; not batch modes or escaped names', () => {
  const cases: [string, string | null][] = [
    ['vi notes.txt', 'vi'], ['top', 'top'], ['top -b -n 1 | head -1', null], ['seq 1 5 | less', 'less'], ['\\less f', null],
    ['cd x && vim y', 'vim'], ['sudo vi /etc/x', 'vi'], ['sudo -i', 'sudo -i'], ['sudo -u bob -s', 'sudo -u bob -s'], ['sudo ls', null],
    ['ssh host', 'ssh'], ['ssh -p 22 host', 'ssh'], ['ssh host uptime', null], ['bash', 'bash'], ['bash -c x', null], ['python3 -V', null],
    ['python3', 'python3'], ['TERM=x nano f', 'nano'], ['env -i X=1 htop', 'htop'], ['echo vi', null], ['man ls', 'man'], ['git log', null],
    ['emacs --batch -l x', null], ['su', 'su'], ['su -c id', null], ['su - bob', 'su'], ['crontab -e', 'crontab -e'], ['crontab -l', null],
    ['/usr/bin/vim', 'vim'], ['nice -n 5 top', 'top'],
  ];
  for (const [command, program] of cases) assert.equal(terminalProgram(command), program, command);
});

test('programName: the program the output names, else the first', () => {
  assert.equal(programName('clear; stty size', "stty: 'standard input': Inappropriate ioctl for device"), 'stty');
  assert.equal(programName('X=1 sudo /usr/bin/tput cols'), 'tput');
});

test('terminalProgram: programs that only print, read a pipe, or are quoted words are not refused', () => {
  const cases: Array<[string, string | null]> = [
    ['echo a \\\nless', null], // a continued line: less is echo's argument
    ["echo 'echo hi' | bash", null], // a shell reading a pipe runs a script
    ["printf '%s\\n' a b | sort | python3", null],
    ['python3 </dev/null', null],
    ['man -w ls', null],
    ['ssh -V', null],
    ['vi --version | head -1', null],
    ["echo 'a | less'", null],
    ['ls | less', 'less'], // a pager reads keys from the terminal whatever its input
    ['bash', 'bash'],
  ];
  for (const [command, program] of cases) assert.equal(terminalProgram(command), program, command);
});
