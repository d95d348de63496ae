/**
 * OpenSSH keys as ssh-keygen writes them: every type (Ed25519, ECDSA 256/384/521, RSA), every
 * format (OpenSSH, -m PEM, -m PKCS8), with and without a passphrase; login signatures in
 * SSH's encodings; SHA-1 RSA refused; public key lines refused with the right fix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import {
  generateKeyPair, parsePrivateKey, parsePublicKey, PassphraseNeededError, publicKeyOfPrivateKey, signAuth, signatureAlgorithmProblem, verifyAuth, verifyData, signData,
} from '../../src/auth/ssh-key.js';
import { ErrorCode } from '../../src/errors.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';

const PASS = 'correct horse';
const KINDS: { name: string; args: string[]; type: string }[] = [
  { name: 'ed25519', args: ['-t', 'ed25519'], type: 'ssh-ed25519' },
  { name: 'ecdsa-256', args: ['-t', 'ecdsa', '-b', '256'], type: 'ecdsa-sha2-nistp256' },
  { name: 'ecdsa-384', args: ['-t', 'ecdsa', '-b', '384'], type: 'ecdsa-sha2-nistp384' },
  { name: 'ecdsa-521', args: ['-t', 'ecdsa', '-b', '521'], type: 'ecdsa-sha2-nistp521' },
  { name: 'rsa', args: ['-t', 'rsa', '-b', '2048'], type: 'ssh-rsa' },
  { name: 'rsa-pem', args: ['-t', 'rsa', '-b', '2048', '-m', 'PEM'], type: 'ssh-rsa' },
  { name: 'ecdsa-pem', args: ['-t', 'ecdsa', '-m', 'PEM'], type: 'ecdsa-sha2-nistp256' },
  { name: 'rsa-pkcs8', args: ['-t', 'rsa', '-b', '2048', '-m', 'PKCS8'], type: 'ssh-rsa' },
  { name: 'ecdsa-pkcs8', args: ['-t', 'ecdsa', '-b', '384', '-m', 'PKCS8'], type: 'ecdsa-sha2-nistp384' },
];

test('every key ssh-keygen writes is read, plain and passphrase-protected, and signs logins that verify', () => {
  const dir = tempDir('sw-keys-');
  try {
    const exporter = Buffer.alloc(32, 5);
    for (const kind of KINDS) {
      for (const passphrase of ['', PASS]) {
        const file = join(dir, `${kind.name}${passphrase ? '-enc' : ''}`);
        execFileSync('ssh-keygen', ['-q', ...kind.args, '-a', '2', '-N', passphrase, '-C', `${kind.name} comment`, '-f', file]);
        const text = readFileSync(file, 'utf8');
        const label = `${kind.name}${passphrase ? ' (encrypted)' : ''}`;
        if (passphrase) {
          assert.throws(() => parsePrivateKey(text, file), (err: Error & { code?: string }) => err instanceof PassphraseNeededError && err.code === ErrorCode.BAD_KEY && /ssh-add/.test(err.message), label);
          assert.throws(() => parsePrivateKey(text, file, 'wrong passphrase'), /wrong passphrase/, label);
        }
        const key = parsePrivateKey(text, file, passphrase || undefined);
        const pub = parsePublicKey(readFileSync(`${file}.pub`, 'utf8'), `${file}.pub`);
        assert.equal(key.publicKey.type, kind.type, label);
        assert.equal(pub.type, kind.type, label);
        assert.ok(key.publicKey.blob.equals(pub.blob), label);
        assert.equal(pub.comment, `${kind.name} comment`, label);
        const fingerprint = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
        assert.equal(pub.fingerprint, fingerprint, label);
        // The agent lookup needs the public half without the passphrase.
        assert.ok(publicKeyOfPrivateKey(text, file, readFileSync(`${file}.pub`, 'utf8'))?.blob.equals(pub.blob), label);
        const signature = signAuth(key, 'alice', exporter);
        assert.equal(verifyAuth(pub, 'alice', exporter, signature), true, label);
        assert.equal(verifyAuth(pub, 'bob', exporter, signature), false, `${label}: another user`);
        assert.equal(verifyAuth(pub, 'alice', Buffer.alloc(32, 6), signature), false, `${label}: another TLS session`);
      }
    }
  } finally {
    removeDir(dir);
  }
});

test('ECDSA signatures use SSH mpints: any r and s (leading zeros, top bit set) verify; malformed ones fail quietly', () => {
  for (const bits of [256, 384, 521] as const) {
    const key = parsePrivateKey(ssh2.utils.generateKeyPairSync('ecdsa', { bits }).private);
    for (let i = 0; i < 24; i += 1) {
      const data = Buffer.from(`message ${i}`);
      const signature = signData(key, data);
      assert.equal(verifyData(key.publicKey, data, signature), true, `P-${bits} #${i}`);
    }
    const bad = [Buffer.alloc(0), Buffer.from([0, 0, 0, 1, 0x80, 0, 0, 0, 1, 1]), Buffer.from([0, 0, 0, 9, 1]), Buffer.alloc(8)];
    for (const signature of bad) assert.equal(verifyData(key.publicKey, Buffer.from('x'), signature), false);
  }
});

test('RSA signs with SHA-2 only: ssh-rsa (SHA-1) is refused, and a SHA-1 signature relabelled as SHA-2 fails', () => {
  const key = parsePrivateKey(ssh2.utils.generateKeyPairSync('rsa', { bits: 2048 }).private);
  const data = Buffer.from('login');
  assert.match(signatureAlgorithmProblem('ssh-rsa', 'ssh-rsa') ?? '', /SHA-1.*refused/);
  assert.equal(signatureAlgorithmProblem('ssh-rsa', 'rsa-sha2-256'), null);
  assert.equal(signatureAlgorithmProblem('ssh-rsa', 'rsa-sha2-512'), null);
  assert.match(signatureAlgorithmProblem('ssh-ed25519', 'rsa-sha2-256') ?? '', /does not fit/);
  const sha1 = cryptoSign('sha1', data, key.key.getPrivatePEM());
  assert.equal(verifyData(key.publicKey, data, sha1, 'ssh-rsa'), false);
  assert.equal(verifyData(key.publicKey, data, sha1, 'rsa-sha2-256'), false);
  assert.equal(verifyData(key.publicKey, data, sha1), false, 'the default (no algorithm named) is not SHA-1 either');
  assert.throws(() => signData(key, data, 'ssh-rsa'), /SHA-1/);
  for (const algorithm of ['rsa-sha2-256', 'rsa-sha2-512']) {
    const signature = signData(key, data, algorithm);
    assert.equal(verifyData(key.publicKey, data, signature, algorithm), true, algorithm);
    assert.equal(verifyData(key.publicKey, data, signature, algorithm === 'rsa-sha2-256' ? 'rsa-sha2-512' : 'rsa-sha2-256'), false, `${algorithm} relabelled`);
  }
});

test('public key lines: a private key, authorized_keys options, DSA/FIDO/certificates and short RSA keys are refused with the fix', () => {
  const pair = generateKeyPair('me@host', 'ecdsa');
  const [type, data] = pair.publicLine.split(' ');
  assert.equal(parsePublicKey(`${type} ${data} a comment with  spaces`).comment, 'a comment with spaces');
  assert.throws(() => parsePublicKey(pair.privateText, 'id_ecdsa'), /id_ecdsa: this is a private key; give its public half, the \.pub file/);
  const pem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
  assert.throws(() => parsePublicKey(pem), /this is a private key/);
  assert.throws(() => parsePublicKey(`from="10.0.0.0/8",command="echo hi there" ${pair.publicLine}`), /authorized_keys options \(from="10\.0\.0\.0\/8",command="echo hi there"\) are not supported/);
  assert.throws(() => parsePublicKey(`no-pty ${pair.publicLine}`), /options \(no-pty\)/);
  assert.throws(() => parsePublicKey('ssh-dss AAAAB3NzaC1kc3M= x'), /DSA keys are not supported/);
  assert.throws(() => parsePublicKey('sk-ssh-ed25519@openssh.com AAAA x'), /security-key \(FIDO\)/);
  assert.throws(() => parsePublicKey('ssh-ed25519-cert-v01@openssh.com AAAA x'), /certificates/);
  assert.throws(() => parsePublicKey(`ssh-ed25519 ${data}`), /not a valid ssh-ed25519 key/, 'an ECDSA blob under another type name');
  const short = ssh2.utils.generateKeyPairSync('rsa', { bits: 768 });
  assert.throws(() => parsePublicKey(short.public), /only 768 bits; at least 1024/);
  assert.throws(() => parsePrivateKey(pair.publicLine, 'id_ecdsa.pub'), /this is a public key; give the private key file/);
});

test('keygen makes each type in OpenSSH format that ssh-keygen reads back', () => {
  const dir = tempDir('sw-keygen-');
  try {
    for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
      const pair = generateKeyPair(`${type}@test`, type, type === 'rsa' ? 2048 : undefined);
      assert.match(pair.privateText, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
      const file = join(dir, type);
      writeFileSync(file, pair.privateText, { mode: 0o600 });
      assert.equal(execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim().split(' ').slice(0, 2).join(' '), pair.publicLine.split(' ').slice(0, 2).join(' '));
    }
    assert.throws(() => generateKeyPair('x', 'ecdsa', 512), /256, 384 or 521/);
    assert.throws(() => generateKeyPair('x', 'rsa', 512), /1024 to 16384/);
  } finally {
    removeDir(dir);
  }
});

test('keygen: every Ed25519 key made parses and signs (ssh2 drops a leading zero byte of about one public key in 200)', () => {
  // 1,000 keys: with the bug unchecked, at least one comes out unusable in 99 runs of 100.
  for (let i = 0; i < 1000; i += 1) {
    const pair = generateKeyPair(`k${i}`);
    const key = parsePrivateKey(pair.privateText);
    assert.equal(key.publicKey.fingerprint, pair.fingerprint);
    assert.equal(parsePublicKey(pair.publicLine).blob.length, 51, `key ${i}: an Ed25519 key blob is 51 bytes`);
  }
});
