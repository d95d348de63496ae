// The web console's run page groups results as the CLI does (ui/src/run-groups.ts, a pure module
// bundled into the browser code): identical outcome and output bytes share a group, successes
// first (largest first), failures last; bytes are compared, not their UTF-8 decoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorText, outcomeWord, RunGroups, someNames, sortedNames, type RunResult } from '../../ui/src/run-groups.ts';

const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64');
function result(host: string, over: Partial<RunResult> = {}): RunResult {
  return { host, status: 'ok', exitCode: 0, signal: null, stdout: b64('same\n'), stderr: '', truncated: false, durationMs: 1, ...over };
}

test('ui run groups: identical results share a group; ok groups largest first, failed commands, then hosts that could not run it', () => {
  const groups = new RunGroups();
  groups.add(result('lost0', { status: 'unreachable', exitCode: null, stdout: '', error: { code: 'SW_ERR_CONNECT_FAILED', message: 'down' } }));
  groups.add(result('f1', { status: 'failed', exitCode: 1, stdout: '' }));
  groups.add(result('solo', { stdout: b64('other\n') }));
  for (const h of ['a', 'b', 'c']) groups.add(result(h));
  groups.add(result('f2', { status: 'failed', exitCode: 1, stdout: '' }));
  groups.add(result('f3', { status: 'failed', exitCode: 2, stdout: '' }));
  groups.add(result('lost1', { status: 'lost', exitCode: null, stdout: '', error: { code: 'SW_ERR_UNREACHABLE', message: 'no route' } }));
  groups.add(result('web10', { stdout: b64('10\n') }));
  groups.add(result('web9', { stdout: b64('9\n') }));
  const order = groups.ordered().map((g) => `${g.sample.status}:${g.hosts.join(',')}`);
  assert.deepEqual(order, ['ok:a,b,c', 'ok:solo', 'ok:web9', 'ok:web10', 'failed:f1,f2', 'failed:f3', 'unreachable:lost0', 'lost:lost1']);
});

test('ui run groups: output that differs only in invalid UTF-8 bytes is two groups', () => {
  const groups = new RunGroups();
  groups.add(result('x', { stdout: b64(Buffer.from([0x61, 0xff])) }));
  groups.add(result('y', { stdout: b64(Buffer.from([0x61, 0xfe])) }));
  assert.equal(groups.size, 2);
});

test('ui run groups: stderr and truncation are part of the key', () => {
  const groups = new RunGroups();
  groups.add(result('x'));
  groups.add(result('y', { stderr: b64('warn\n') }));
  groups.add(result('z', { truncated: true }));
  assert.equal(groups.size, 3);
});

test('ui run groups: outcome words and names beyond 10 folded into "+N more"', () => {
  assert.equal(outcomeWord(result('a', { status: 'failed', exitCode: 3 })), 'exit 3');
  assert.equal(outcomeWord(result('a', { status: 'failed', exitCode: null, signal: 'SIGKILL' })), 'killed by SIGKILL');
  assert.equal(outcomeWord(result('a', { status: 'unreachable', exitCode: null })), 'unreachable');
  assert.equal(errorText({ code: 'SW_ERR_X', message: 'no route (SW_ERR_X); retry' }), 'no route (SW_ERR_X); retry');
  assert.equal(errorText({ code: 'SW_ERR_X', message: 'no route' }), 'no route (SW_ERR_X)');
  const names = Array.from({ length: 13 }, (_, i) => `h${i}`);
  assert.deepEqual(someNames(names), { shown: names.slice(0, 10), more: 3 });
  assert.deepEqual(someNames(names.slice(0, 10)), { shown: names.slice(0, 10), more: 0 });
  assert.deepEqual(sortedNames(['web10', 'db1', 'web2', 'web01']), ['db1', 'web01', 'web2', 'web10']);
});
