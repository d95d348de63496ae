// A command the OS refuses at exec (one argument or variable over MAX_ARG_STRLEN: E2BIG) gets
// the same answer on pipes and on a terminal: OPEN_FAIL SW_ERR_SPAWN_FAILED (protocol.md §6.1,
// §6.5), not BAD_REQUEST on one and "execvp(3) failed" as terminal output on the other. A
// terminal type longer than 256 bytes is a malformed OPEN (review 11 #10).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { ErrorCode } from '../../src/errors.js';
import { FrameType } from '../../src/protocol/frame.js';
import { nodePtyUnavailable } from '../../src/process/pty-process.js';

const pty = { term: 'xterm', cols: 80, rows: 24 };
const big = 'x'.repeat(200 * 1024);

test('E2BIG at exec: OPEN_FAIL SW_ERR_SPAWN_FAILED on pipes and on a terminal; a huge term is SW_ERR_BAD_MESSAGE', async () => {
  const d = await startDaemon();
  try {
    const client = await RawClient.open(d.port);
    await client.authenticate(d.token);
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ command: `echo ${big}` }, ErrorCode.SPAWN_FAILED, /E2BIG.*stdin or in a file/],
      [{ argv: ['echo', big] }, ErrorCode.SPAWN_FAILED, /E2BIG/],
      [{ command: 'true', env: { BIG: big } }, ErrorCode.SPAWN_FAILED, /BIG.*E2BIG/],
      [{ command: 'true', pty: { ...pty, term: 'x'.repeat(300) } }, ErrorCode.BAD_MESSAGE, /pty\.term.*256 bytes/],
    ];
    if (!nodePtyUnavailable()) {
      cases.push([{ command: `echo ${big}`, pty }, ErrorCode.SPAWN_FAILED, /E2BIG/]);
      cases.push([{ command: 'true', env: { BIG: big }, pty }, ErrorCode.SPAWN_FAILED, /E2BIG/]);
    }
    let id = 1;
    for (const [request, code, message] of cases) {
      const opened = await client.openExec(id, request);
      const what = JSON.stringify(request).slice(0, 80);
      assert.equal(opened.type, FrameType.OPEN_FAIL, what);
      assert.equal(opened.body.code, code, `${what}: ${String(opened.body.message)}`);
      assert.match(String(opened.body.message), message);
      id += 1;
    }
    // The connection goes on.
    assert.equal((await client.openExec(id, { command: 'true' })).type, FrameType.OPEN_OK);
    client.socket.destroy();
  } finally {
    await d.stop();
  }
});
