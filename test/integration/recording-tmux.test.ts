/**
 * Issue 13 item 6: "a recorded tty session (driven in tmux) replayed and compared with what
 * was shown". A program with colours prints in a real PTY on a real daemon, shown in one tmux
 * pane and recorded (test/fixtures/record-tty.ts tees the output, as the gateway relay will);
 * the pane is resized mid-way. Then `shellwire replay ID --no-wait` runs in a second pane of
 * the final size, and both screens — with their colours — must be the same.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDaemon, waitFor, CLI, type TestDaemon } from '../helpers/daemon.js';
import { COLOUR_RESIZE_PROGRAM, hasTmux, TmuxPane } from '../helpers/tmux.js';
import { parseCast } from '../../src/audit/asciicast.js';
import { FileRecordingStore } from '../../src/audit/recording.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/record-tty.ts');

let daemon: TestDaemon;
let root: string;
const panes: TmuxPane[] = [];
before(async () => {
  daemon = await startDaemon();
  root = mkdtempSync(join(tmpdir(), 'sw-rec-tmux-'));
});
after(async () => {
  for (const pane of panes) pane.close();
  await daemon.stop();
  rmSync(root, { recursive: true, force: true });
});

test('a recorded terminal session replays to the same screen, colours included', { skip: !hasTmux && 'tmux not installed' }, async () => {
  const idFile = join(root, 'id');
  const env = {
    SW_PORT: String(daemon.port), SW_TOKEN: daemon.token, SW_FINGERPRINT: daemon.fingerprint,
    SW_STATE_DIR: root, SW_PROGRAM: COLOUR_RESIZE_PROGRAM, SW_ID_FILE: idFile, TERM: 'xterm-256color',
  };
  const envWords = Object.entries(env).map(([k, v]) => `${k}='${v.replace(/'/g, "'\\''")}'`).join(' ');
  const shown = new TmuxPane(`env ${envWords} ${process.execPath} --import tsx ${FIXTURE}; sleep 60`, 80, 24);
  panes.push(shown);
  assert.ok(await shown.shows(/before=24 80/, 15_000), `the program runs in the recorded terminal:\n${shown.screen()}`);
  execFileSync('tmux', ['resize-window', '-t', shown.name, '-x', '100', '-y', '30']);
  assert.ok(await shown.shows(/after=30 100[\s\S]*done/), `the resize reaches the program:\n${shown.screen()}`);
  assert.ok(await waitFor(() => existsSync(idFile), 10_000), 'the recording ended');
  const id = readFileSync(idFile, 'utf8').trim();

  const cast = parseCast(readFileSync(new FileRecordingStore(root).open(id).path, 'utf8'));
  assert.deepEqual([cast.header.width, cast.header.height], [80, 24]);
  assert.deepEqual(cast.events.filter((e) => e[1] === 'r').map((e) => e[2]), ['100x30']);
  assert.match(cast.events.map((e) => (e[1] === 'o' ? e[2] : '')).join(''), /café €/);

  const replayed = new TmuxPane(`${process.execPath} ${CLI} replay ${id} --no-wait --state-dir ${root}; sleep 60`, 100, 30);
  panes.push(replayed);
  assert.ok(await replayed.shows(/done/), `the replay prints:\n${replayed.screen()}`);
  const original = shown.screenWithAttributes();
  assert.ok(original.includes('\x1b[31mRED'), 'the colours are on the original screen');
  assert.equal(replayed.screenWithAttributes(), original);
});
