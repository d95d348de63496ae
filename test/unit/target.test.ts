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

test('the host fingerprint is SHA-256 of the SPKI, read straight from the certificate DER', async () => {
  const { createIdentity } = await import('../../src/auth/identity.js');
  const { fingerprintOfCertificate, spkiOfCertificate } = await import('../../src/transport/tls.js');
  const { X509Certificate, createHash } = await import('node:crypto');
  const identity = await createIdentity('fingerprint-test');
  const cert = new X509Certificate(identity.certPem);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  assert.ok(spkiOfCertificate(cert.raw).equals(spki));
  assert.equal(fingerprintOfCertificate(cert.raw), 'SHA256:' + createHash('sha256').update(spki).digest('base64').replace(/=+$/, ''));
  assert.equal(fingerprintOfCertificate(identity.certPem), identity.fingerprint);
  assert.throws(() => spkiOfCertificate(Buffer.from([0x30, 0x05, 1, 2])), /truncated|not an X\.509/);
});
