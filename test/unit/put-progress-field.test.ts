/**
 * The put's `progress` OPEN field (docs/protocol.md §10 "Live per-host records"): true asks a
 * gateway for live per-host records; false or absent is what v1 always sent; anything else is
 * a malformed OPEN, not a silent "no".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFileRequest } from '../../src/protocol/file-messages.js';

const put = { op: 'put', path: 'up/x', size: 3, mode: 0o644, mtimeMs: 0, resume: false };

test('put progress: true is kept, false and absent are the same as before, other values refused', () => {
  assert.equal((decodeFileRequest({ ...put, progress: true }) as { progress?: boolean }).progress, true);
  assert.deepEqual(decodeFileRequest({ ...put, progress: false }), decodeFileRequest(put));
  assert.equal('progress' in decodeFileRequest(put), false);
  for (const bad of ['yes', 1, null, {}]) {
    assert.throws(() => decodeFileRequest({ ...put, progress: bad }), (err: Error & { code?: string }) => err.code === 'SW_ERR_BAD_MESSAGE' && /"progress" must be true or false/.test(err.message), JSON.stringify(bad));
  }
});
