/**
 * A real terminal for CLI tests: a detached tmux session running one command, keys sent
 * with send-keys, the screen read with capture-pane. Each pane gets its own name and is
 * killed by `close()`.
 */
import { execFileSync } from 'node:child_process';
import { waitFor } from './daemon.js';

export const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V']);
    return true;
  } catch {
    return false;
  }
})();

let serial = 0;

export class TmuxPane {
  readonly name = `swpane${process.pid}x${serial++}`;

  /** Start `command` (a /bin/sh command line) in a new detached session of cols x rows. */
  constructor(command: string, cols = 100, rows = 30) {
    execFileSync('tmux', ['new-session', '-d', '-s', this.name, '-x', String(cols), '-y', String(rows), command]);
  }

  /** The visible screen, one line per row, trailing blanks trimmed by tmux. */
  screen(): string {
    return execFileSync('tmux', ['capture-pane', '-p', '-t', this.name], { encoding: 'utf8' });
  }

  /** The screen with escape sequences (colours, reverse video). */
  screenWithAttributes(): string {
    return execFileSync('tmux', ['capture-pane', '-p', '-e', '-t', this.name], { encoding: 'utf8' });
  }

  /** send-keys: key names (`Enter`, `C-c`, `Up`) or literal text. */
  keys(...keys: string[]): void {
    execFileSync('tmux', ['send-keys', '-t', this.name, ...keys]);
  }

  /** Type `text` literally (no key-name lookup), then Enter. */
  line(text: string): void {
    execFileSync('tmux', ['send-keys', '-t', this.name, '-l', text]);
    execFileSync('tmux', ['send-keys', '-t', this.name, 'Enter']);
  }

  shows(pattern: RegExp, timeoutMs = 5_000): Promise<boolean> {
    return waitFor(() => pattern.test(this.screen()), timeoutMs);
  }

  close(): void {
    try {
      execFileSync('tmux', ['kill-session', '-t', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

/**
 * A shell program for recording tests: prints in colour (SGR bold/red, green background,
 * underline, 256-colour) and UTF-8, waits (up to 10 s) for its 80x24 terminal to be resized,
 * prints the new size, and ends with a line holding `done`.
 */
export const COLOUR_RESIZE_PROGRAM = [
  "printf '\\033[1;31mRED\\033[0m \\033[42mGREEN-BG\\033[0m caf\\303\\251 \\342\\202\\254\\n'",
  'printf "before=%s\\n" "$(stty size)"',
  'i=0; while [ "$(stty size)" = "24 80" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done',
  'printf "after=%s\\n" "$(stty size)"',
  "printf '\\033[4munderlined\\033[0m \\033[38;5;208morange-256\\033[0m done\\n'",
].join('; ');
