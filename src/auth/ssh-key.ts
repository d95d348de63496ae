/**
 * Ed25519 keys in OpenSSH formats, so operators can reuse `~/.ssh/id_ed25519(.pub)`:
 * - public: `ssh-ed25519 <base64 of string "ssh-ed25519" + string pub32> [comment]`
 * - private: `-----BEGIN OPENSSH PRIVATE KEY-----` (openssh-key-v1), unencrypted only;
 *   a passphrase-protected key is refused with instructions (no bcrypt-pbkdf here).
 * Pure apart from crypto: no files are read here.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, createHash, sign, verify, type KeyObject } from 'node:crypto';
import { ErrorCode, UsageError } from '../errors.js';

const KEY_TYPE = 'ssh-ed25519';
const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
// DER prefixes that turn a raw 32-byte Ed25519 seed / public key into PKCS#8 / SPKI.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface SshPublicKey {
  /** Raw 32-byte Ed25519 public key. */
  raw: Buffer;
  comment: string;
  key: KeyObject;
  /** `SHA256:<base64>` of the key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** `ssh-ed25519 AAAA… comment` */
  line: string;
}

export interface SshPrivateKey {
  key: KeyObject;
  publicKey: SshPublicKey;
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

class SshReader {
  #buf: Buffer;
  #offset = 0;
  constructor(buf: Buffer) {
    this.#buf = buf;
  }
  u32(): number {
    if (this.#offset + 4 > this.#buf.length) throw new Error('truncated');
    const value = this.#buf.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }
  string(): Buffer {
    const length = this.u32();
    if (this.#offset + length > this.#buf.length) throw new Error('truncated');
    const value = this.#buf.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }
}

function publicBlob(raw: Buffer): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(raw)]);
}

function makePublicKey(raw: Buffer, comment: string): SshPublicKey {
  const blob = publicBlob(raw);
  return {
    raw,
    comment,
    key: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' }),
    fingerprint: 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, ''),
    line: `${KEY_TYPE} ${blob.toString('base64')}${comment ? ' ' + comment : ''}`,
  };
}

function badKey(what: string, why: string): UsageError {
  return new UsageError(ErrorCode.BAD_KEY, `${what}: ${why}`);
}

/** Parse one `ssh-ed25519 AAAA… [comment]` line. */
export function parsePublicKey(line: string, what = 'public key'): SshPublicKey {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw badKey(what, 'expected "ssh-ed25519 AAAA… [comment]"');
  const [type, data, ...comment] = parts as [string, string, ...string[]];
  if (type !== KEY_TYPE) throw badKey(what, `only ssh-ed25519 keys are supported, got ${type} (make one with: shellwire keygen)`);
  try {
    const reader = new SshReader(Buffer.from(data, 'base64'));
    const blobType = reader.string().toString('latin1');
    const raw = Buffer.from(reader.string());
    if (blobType !== KEY_TYPE || raw.length !== 32) throw new Error('bad blob');
    return makePublicKey(raw, comment.join(' '));
  } catch {
    throw badKey(what, 'the base64 key data is not a valid ssh-ed25519 key');
  }
}

/** Parse an OpenSSH private key file's text (unencrypted ssh-ed25519). */
export function parsePrivateKey(text: string, what = 'private key'): SshPrivateKey {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!match) {
    if (/BEGIN PRIVATE KEY/.test(text)) {
      const key = createPrivateKey(text);
      if (key.asymmetricKeyType !== 'ed25519') throw badKey(what, 'only Ed25519 keys are supported');
      const raw = Buffer.from(createPublicKey(key).export({ format: 'der', type: 'spki' })).subarray(SPKI_PREFIX.length);
      return { key, publicKey: makePublicKey(raw, '') };
    }
    throw badKey(what, 'not an OpenSSH private key (expected "-----BEGIN OPENSSH PRIVATE KEY-----")');
  }
  const data = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  if (!data.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) throw badKey(what, 'not an openssh-key-v1 file');
  try {
    const reader = new SshReader(data.subarray(OPENSSH_MAGIC.length));
    const cipher = reader.string().toString('latin1');
    reader.string(); // kdf name
    reader.string(); // kdf options
    if (cipher !== 'none') {
      throw badKey(
        what,
        'the key is passphrase-protected, which shellwire cannot read yet; make an unencrypted copy for shellwire ' +
          '(cp KEY KEY.shellwire && ssh-keygen -p -N "" -f KEY.shellwire) or make a new key with: shellwire keygen',
      );
    }
    if (reader.u32() !== 1) throw new Error('expected exactly one key');
    reader.string(); // public key blob
    const secret = new SshReader(reader.string());
    if (secret.u32() !== secret.u32()) throw new Error('check bytes differ');
    const type = secret.string().toString('latin1');
    if (type !== KEY_TYPE) throw badKey(what, `only ssh-ed25519 keys are supported, got ${type}`);
    const raw = Buffer.from(secret.string());
    const priv = secret.string(); // seed (32) + public (32)
    const comment = secret.string().toString('utf8');
    if (raw.length !== 32 || priv.length !== 64) throw new Error('bad key lengths');
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    return { key, publicKey: makePublicKey(raw, comment) };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw badKey(what, `malformed key data (${(err as Error).message})`);
  }
}

/** A new Ed25519 key pair as OpenSSH files' text: `{ privateText, publicLine }`. */
export function generateKeyPair(comment: string): { privateText: string; publicLine: string; fingerprint: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'der', type: 'spki' })).subarray(SPKI_PREFIX.length);
  const seed = Buffer.from(privateKey.export({ format: 'der', type: 'pkcs8' })).subarray(PKCS8_PREFIX.length);
  const blob = publicBlob(raw);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString(KEY_TYPE), sshString(raw), sshString(Buffer.concat([seed, raw])), sshString(comment)]);
  const padding = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from([1, 2, 3, 4, 5, 6, 7].slice(0, padding))]);
  const body = Buffer.concat([OPENSSH_MAGIC, sshString('none'), sshString('none'), sshString(''), Buffer.from([0, 0, 0, 1]), sshString(blob), sshString(secret)]);
  const privateText = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString('base64').replace(/(.{70})/g, '$1\n').replace(/\n$/, '')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  const pub = makePublicKey(raw, comment);
  return { privateText, publicLine: pub.line, fingerprint: pub.fingerprint };
}

/**
 * What a public-key login signs: a context string, the user, the key blob and a value
 * exported from this very TLS session. A signature is therefore useless on any other
 * connection: a captured HELLO cannot be replayed or relayed.
 */
export function authSignedData(user: string, publicKey: SshPublicKey, exporter: Buffer): Buffer {
  return Buffer.concat([Buffer.from('shellwire-publickey-v1\0', 'latin1'), sshString(user), sshString(publicBlob(publicKey.raw)), sshString(exporter)]);
}

export function signAuth(privateKey: SshPrivateKey, user: string, exporter: Buffer): Buffer {
  return sign(null, authSignedData(user, privateKey.publicKey, exporter), privateKey.key);
}

export function verifyAuth(publicKey: SshPublicKey, user: string, exporter: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, authSignedData(user, publicKey, exporter), publicKey.key, signature);
  } catch {
    return false;
  }
}

/** TLS exporter label and length both sides use (RFC 8446 §7.5). */
export const AUTH_EXPORTER_LABEL = 'EXPORTER-shellwire-publickey';
export const AUTH_EXPORTER_LENGTH = 32;
