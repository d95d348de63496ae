/**
 * Codes a peer sends are read by one helper (errors.ts `remoteErrorCode`): known codes pass,
 * unknown ones become the caller's fallback, and the old v1 form of an integrity failure
 * (SW_ERR_BAD_REQUEST + errno EINTEGRITY) is read as SW_ERR_INTEGRITY.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, parseErrorCode, remoteErrorCode } from '../../src/errors.js';

test('parseErrorCode names only codes this version defines', () => {
  assert.equal(parseErrorCode('SW_ERR_DENIED'), ErrorCode.DENIED);
  assert.equal(parseErrorCode('SW_ERR_NOPE'), undefined);
  assert.equal(parseErrorCode(42), undefined);
  assert.equal(parseErrorCode(undefined), undefined);
});

test('remoteErrorCode: unknown codes fall back, the old integrity form is understood', () => {
  assert.equal(remoteErrorCode('SW_ERR_DENIED', ErrorCode.BAD_REQUEST), ErrorCode.DENIED);
  assert.equal(remoteErrorCode('SW_ERR_FROM_THE_FUTURE', ErrorCode.BAD_REQUEST), ErrorCode.BAD_REQUEST);
  assert.equal(remoteErrorCode(undefined, ErrorCode.CONNECTION_CLOSED), ErrorCode.CONNECTION_CLOSED);
  assert.equal(remoteErrorCode('SW_ERR_BAD_REQUEST', ErrorCode.BAD_REQUEST, 'EINTEGRITY'), ErrorCode.INTEGRITY);
  assert.equal(remoteErrorCode('SW_ERR_INTEGRITY', ErrorCode.BAD_REQUEST, 'EINTEGRITY'), ErrorCode.INTEGRITY);
  assert.equal(remoteErrorCode('SW_ERR_BAD_REQUEST', ErrorCode.BAD_REQUEST, 'ENOENT'), ErrorCode.BAD_REQUEST);
});
