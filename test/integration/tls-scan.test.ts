/**
 * The daemon's TLS as an outside scanner sees it (sslscan from Debian): TLS 1.3 only,
 * only strong suites and key-exchange groups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
const hasSslscan = await run('sslscan', ['--version']).then(() => true, () => false);

test('sslscan: TLS 1.3 only, AES-GCM/ChaCha20 suites only, no weak groups', { skip: !hasSslscan && 'sslscan not installed (apt-get install sslscan)' }, async () => {
  const d = await startDaemon();
  try {
    const { stdout } = await run('sslscan', ['--no-colour', `127.0.0.1:${d.port}`], { timeout: 60_000 });
    for (const old of ['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2']) assert.match(stdout, new RegExp(`^${old.replace('.', '\\.')}\\s+disabled`, 'm'), `${old} must be disabled`);
    assert.match(stdout, /^TLSv1\.3\s+enabled/m);
    const suites = [...stdout.matchAll(/^(?:Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)/gm)];
    assert.ok(suites.length > 0, stdout);
    for (const [, version, , name] of suites) {
      assert.equal(version, 'TLSv1.3');
      assert.ok(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'].includes(name!), name);
    }
    assert.match(stdout, /^Preferred\s+TLSv1\.3\s+128 bits\s+TLS_AES_128_GCM_SHA256/m, 'AES-128-GCM preferred');
    const groups = [...stdout.matchAll(/^TLSv1\.3\s+(\d+) bits\s+(\S+)/gm)];
    assert.ok(groups.length > 0);
    for (const [, bits, name] of groups) assert.ok(Number(bits) >= 128, `group ${name} is only ${bits} bits`);
    assert.doesNotMatch(stdout, /ffdhe2048/);
  } finally {
    await d.stop();
  }
});
