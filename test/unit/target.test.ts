import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget, formatTarget } from '../../src/client/target.js';
import { ErrorCode } from '../../src/errors.js';

test('parses host, host:port, IPv6 and user@', () => {
  assert.deepEqual(parseTarget('web1'), { host: 'web1', port: 50007 });
  assert.deepEqual(parseTarget('web1:2222'), { host: 'web1', port: 2222 });
  assert.deepEqual(parseTarget('[::1]:50007'), { host: '::1', port: 50007 });
  assert.deepEqual(parseTarget('::1'), { host: '::1', port: 50007 });
  assert.deepEqual(parseTarget('alice@10.0.0.5:7'), { user: 'alice', host: '10.0.0.5', port: 7 });
  assert.equal(formatTarget({ host: '::1', port: 5 }), '[::1]:5');
});

test('bad targets are usage errors that say what to write', () => {
  for (const bad of ['', 'host:0', 'host:99999', 'host:abc', '[::1', '[nothost]:5', '@host', 'ho st']) {
    assert.throws(() => parseTarget(bad), (err: Error & { code?: string }) => err.code === ErrorCode.BAD_TARGET && /HOST:PORT/.test(err.message), bad);
  }
});
