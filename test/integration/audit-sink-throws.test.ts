// ServerOptions.audit is the embedder's code: a sink that throws must never end the process or
// a connection (review 11 #1). It is read as "audit unavailable" (docs/audit.md): new commands
// are refused with SW_ERR_AUDIT_UNAVAILABLE until a record() succeeds again. Each embedding
// runs in a child process so an uncaught exception shows as a dead child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/throwing-audit-sink.ts');

interface Outcome { results: Array<{ stdout?: string; exitCode?: number; code?: string; message?: string }>; kinds: string[]; sinkErrors: number }

function embed(mode: string): Promise<Outcome> {
  return new Promise((done, fail) => {
    execFile(process.execPath, ['--import', 'tsx', FIXTURE, mode], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) return fail(new Error(`embedding with a sink throwing at ${mode} died: ${err.message}\n${stderr}`));
      done(JSON.parse(stdout.trim().split('\n').pop()!) as Outcome);
    });
  });
}

const ran = (i: number) => ({ stdout: `run${i}\n`, exitCode: 0 });

for (const mode of ['connect', 'disconnect']) {
  test(`a sink throwing at ${mode} loses that row; the connection and its commands go on`, async () => {
    const { results, sinkErrors } = await embed(mode);
    assert.deepEqual(results, [ran(0), ran(1), ran(2)]);
    assert.ok(sinkErrors >= (mode === 'disconnect' ? 0 : 1));
  });
}

test('a sink throwing at auth-ok: the login stands; its first command is refused, and the refusal row heals it', async () => {
  const { results } = await embed('auth-ok');
  assert.equal(results[0]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.deepEqual(results[1], ran(1));
  assert.deepEqual(results[2], ran(2));
});

test('a sink throwing at command-start: the admitted command runs; the next one is refused until a row is written', async () => {
  const { results, kinds } = await embed('command-start');
  assert.deepEqual(results[0], ran(0));
  // command-end of run0 was written: the sink works again, so run1 is admitted.
  assert.deepEqual(results[1], ran(1));
  assert.ok(kinds.includes('command-end'));
});

test('a sink throwing at command-end: the result was sent; the next command is refused with SW_ERR_AUDIT_UNAVAILABLE, then it resumes', async () => {
  const { results } = await embed('command-end');
  assert.deepEqual(results[0], ran(0));
  assert.equal(results[1]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.doesNotMatch(results[1]!.message!, /secret/);
  // The refusal's denied row went through: the sink works again.
  assert.deepEqual(results[2], ran(2));
});

test('a sink that always throws: commands are refused with SW_ERR_AUDIT_UNAVAILABLE, never a connection error', async () => {
  const { results, sinkErrors } = await embed('all');
  assert.equal(results[0]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.equal(results[1]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  // The sink works again from here, but the last row (run1's denial) was lost: refused once more, and that row heals it.
  assert.equal(results[2]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.ok(sinkErrors >= 2);
});

test('an admit() that throws refuses that channel with SW_ERR_AUDIT_UNAVAILABLE, not the connection', async () => {
  const { results } = await embed('admit');
  assert.equal(results[0]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.equal(results[1]!.code, 'SW_ERR_AUDIT_UNAVAILABLE');
  assert.deepEqual(results[2], ran(2));
});
