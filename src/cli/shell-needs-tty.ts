/**
 * Commands that need a terminal. `shellwire shell` runs each command with pipes, not a
 * terminal (that is what keeps its output exact and Ctrl-C per command), so an editor, a
 * pager or a monitor there prints "not a terminal" and escape-sequence junk, or waits on
 * input it cannot get. On a terminal we catch the usual ones by name before they run, and
 * the rest by what they print, and point to `shellwire tty`, which gives them a terminal.
 */

/** Full-screen and terminal-only programs, whatever their arguments (but see BATCH_FLAGS). */
const ALWAYS = new Set([
  'vi', 'vim', 'nvim', 'view', 'vimdiff', 'ex', 'nano', 'pico', 'emacs', 'mg', 'joe', 'micro', 'mcedit',
  'less', 'more', 'most', 'man', 'info',
  'top', 'htop', 'btop', 'atop', 'iotop', 'iftop', 'nload', 'nethogs', 'glances', 'watch',
  'mc', 'ranger', 'nnn', 'tig', 'alsamixer', 'nmtui', 'whiptail', 'dialog', 'visudo', 'vipw',
]);

/** Flags that make a program above run without a terminal (`top -b`, `emacs --batch`). */
const BATCH_FLAGS: Record<string, RegExp> = {
  top: /^-[a-zA-Z]*b/,
  iotop: /^(-[a-zA-Z]*b|--batch)$/,
  atop: /^-[a-zA-Z]*w/,
  emacs: /^(--?batch|--script)/,
  ex: /^-[a-zA-Z]*s/,
};

/** Interactive shells and REPLs: a terminal program only when started with no arguments. */
const INTERACTIVE_BARE = new Set([
  'sh', 'bash', 'dash', 'zsh', 'ksh', 'fish', 'tmux', 'screen', 'python', 'python3', 'node', 'irb', 'ghci',
  'mysql', 'psql', 'sqlite3', 'redis-cli', 'ftp', 'sftp', 'telnet',
]);

/** Words that run the rest of the line as a command (`sudo vi`, `env X=1 top`). */
const PREFIXES = new Set(['sudo', 'doas', 'env', 'nice', 'time', 'command', 'exec', 'nohup', 'stdbuf', 'ionice']);

/** ssh options that take a value (ssh(1)). */
const SSH_VALUE_OPTIONS = 'BbcDEeFIiJLlmOoPpQRSWw';

/**
 * The program in `command` that needs a terminal, or null. Looks at the first word of each
 * simple command (`cd x && vi y` → vi), after variable assignments and prefixes such as
 * `sudo`. A leading backslash (`\less file`) is the user's way to run it anyway.
 */
export function terminalProgram(command: string): string | null {
  // Quoted text is one word, never a separator (`echo 'a | less'`); `\` + newline joins lines.
  const plain = command.replace(/\\\n/g, ' ').replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, (q) => q.replace(/[\s;&|(){}<]/g, '_'));
  for (const list of plain.split(/&&|\|\||[;&\n(){}]/)) {
    const stages = list.split('|');
    for (let position = 0; position < stages.length; position++) {
      const words = stages[position]!.trim().split(/\s+/).filter((w) => w !== '').map(unquote);
      // A shell or REPL reading a pipe or a file runs a script, not a session.
      const stdinIsData = position > 0 || words.some((w) => w.startsWith('<'));
      const found = programIn(words, stdinIsData);
      if (found) return found;
    }
  }
  return null;
}

/** Arguments that only print something and exit (`vi --version`, `man -w ls`, `ssh -V`). */
const INFORMATIONAL = /^(--version|-V|--help|-h|-\?|-w|--where|--path)$/;

function programIn(words: string[], stdinIsData = false): string | null {
  let i = 0;
  while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!)) i += 1;
  const word = words[i];
  if (word === undefined) return null;
  const name = word.slice(word.lastIndexOf('/') + 1);
  const args = words.slice(i + 1);
  if (name === 'sudo' || name === 'doas') {
    // `sudo -s` / `sudo -i` with no command is a root shell.
    let j = 0;
    while (j < args.length && args[j]!.startsWith('-')) j += /^-[ugChprDRT]$/.test(args[j]!) ? 2 : 1;
    if (j >= args.length && args.some((a) => /^-[a-zA-Z]*[si]/.test(a))) return `${name} ${args.join(' ')}`.trim();
    return programIn(args.slice(j), stdinIsData);
  }
  if (args.some((a) => INFORMATIONAL.test(a))) return null;
  if (PREFIXES.has(name)) {
    let j = 0;
    while (j < args.length && (args[j]!.startsWith('-') || args[j]!.includes('='))) j += 1;
    if (name === 'nice' || name === 'ionice') while (j < args.length && /^-?\d+$/.test(args[j]!)) j += 1;
    return programIn(args.slice(j), stdinIsData);
  }
  if (ALWAYS.has(name)) return args.some((a) => BATCH_FLAGS[name]?.test(a)) ? null : name;
  if (name === 'crontab' && args.includes('-e')) return 'crontab -e';
  if (INTERACTIVE_BARE.has(name) && !stdinIsData && args.every((a) => /^(-i|-l|--login|--interactive|-)$/.test(a))) return name;
  if (name === 'ssh' && sshHasNoCommand(args)) return name;
  if (name === 'su' && !args.some((a) => a === '-c' || a.startsWith('--command'))) return name;
  return null;
}

/**
 * The program to name in a message about `command`: of its simple commands, the one whose
 * name the output shows (`stty: 'standard input': Inappropriate ioctl…`), else the first.
 */
export function programName(command: string, output = ''): string {
  const names = command.split(/&&|\|\||[;&|\n(){}]/).map(firstWord).filter((name) => name !== '');
  return names.find((name) => output.includes(`${name}:`)) ?? names[0] ?? command.trim();
}

function firstWord(segment: string): string {
  const words = segment.trim().split(/\s+/).filter((w) => w !== '').map(unquote);
  let i = 0;
  while (i < words.length - 1 && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!) || PREFIXES.has(words[i]!) || words[i]!.startsWith('-'))) i += 1;
  const word = words[i] ?? '';
  return word.slice(word.lastIndexOf('/') + 1);
}

function sshHasNoCommand(args: string[]): boolean {
  let positional = 0;
  for (let j = 0; j < args.length; j++) {
    const arg = args[j]!;
    if (arg.startsWith('-') && arg.length > 1) {
      if (arg.length === 2 && SSH_VALUE_OPTIONS.includes(arg[1]!)) j += 1;
      continue;
    }
    positional += 1;
  }
  return positional <= 1;
}

function unquote(word: string): string {
  // A backslash-escaped word stays as typed, so `\vi` matches nothing.
  return word.replace(/^(['"])(.*)\1$/, '$2');
}

/**
 * What programs print when they find no terminal; seen in a command's first output, it
 * earns the same hint after the fact.
 */
export const NO_TERMINAL_OUTPUT = /not a terminal|not a tty|Inappropriate ioctl for device|must be run from a terminal|a terminal is required|no tty present|Error opening terminal|input device is not a TTY/i;

/** How many bytes of a command's output are looked at for NO_TERMINAL_OUTPUT. */
export const NO_TERMINAL_SCAN_BYTES = 4096;
