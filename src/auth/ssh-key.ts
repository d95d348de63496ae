/**
 * OpenSSH keys for shellwire logins, parsed by ssh2 (`utils.parseKey`): Ed25519, ECDSA
 * (nistp256/384/521) and RSA, in the OpenSSH format and the PEM / PKCS#8 formats
 * `ssh-keygen -m` writes, passphrase-protected or not. This module adds only what the
 * login needs on top: authorized_keys lines with clear refusals, the signed data bound to
 * the TLS session, and SSH's signature encodings (RFC 8332 for RSA, RFC 5656 for ECDSA).
 * Pure apart from crypto: no files are read here.
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import ssh2Parts from './ssh2-parts.cjs';
import type { ParsedKey } from 'ssh2';
import { ErrorCode, UsageError } from '../errors.js';

export const KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
/** RSA keys shorter than this are refused, as OpenSSH's RequiredRSASize does. */
export const RSA_MIN_BITS = 1024;

export interface SshPublicKey {
  type: KeyType;
  /** The SSH wire form of the key (`string type | …`), what fingerprints and agents use. */
  blob: Buffer;
  comment: string;
  /** `SHA256:<base64>` of the key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** `TYPE AAAA… comment`, the authorized_keys form. */
  line: string;
  key: ParsedKey;
}

export interface SshPrivateKey {
  key: ParsedKey;
  publicKey: SshPublicKey;
}

function badKey(what: string, why: string): UsageError {
  return new UsageError(ErrorCode.BAD_KEY, `${what}: ${why}`);
}

const PRIVATE_KEY_TEXT = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File-/m;

/** True for the text of any private key file (OpenSSH, PEM, PKCS#8, PuTTY). */
export function isPrivateKeyText(text: string): boolean {
  return PRIVATE_KEY_TEXT.test(text);
}

// authorized_keys: [options] type base64 [comment]; options are comma-separated and may
// hold double-quoted values with spaces (sshd(8) AUTHORIZED_KEYS FILE FORMAT).
const OPTIONS_THEN_REST = /^((?:[^\s"]|"(?:[^"\\]|\\.)*")+)\s+(.*)$/s;

/** Parse one public key line as ssh-keygen writes it (`TYPE AAAA… [comment]`). */
export function parsePublicKey(line: string, what = 'public key'): SshPublicKey {
  const text = line.trim();
  if (isPrivateKeyText(text)) throw badKey(what, 'this is a private key; give its public half, the .pub file (ssh-keygen -y -f KEY prints it)');
  const fields = text.split(/\s+/);
  const withOptions = looksLikeKeyType(fields[0]!) ? null : OPTIONS_THEN_REST.exec(text);
  if (withOptions && looksLikeKeyType(withOptions[2]!)) {
    // Options such as from=, command= or no-pty restrict a key in sshd; shellwire would
    // ignore them and so grant more than the line says. Refuse instead.
    const options = withOptions[1]!;
    throw badKey(what, `authorized_keys options (${options.length > 60 ? options.slice(0, 60) + '…' : options}) are not supported; ` +
      'remove them and restrict the user in users.yaml instead (commands, channels, fileRoots)');
  }
  if (fields.length < 2) throw badKey(what, 'expected "TYPE AAAA… [comment]" (the one line of a .pub file), e.g. "ssh-ed25519 AAAAC3… alice@laptop"');
  const [type, data, ...comment] = fields as [string, string, ...string[]];
  checkKeyType(type, what);
  const blob = Buffer.from(data, 'base64');
  const parsed = blob.length > 0 ? ssh2Parts.parseKey(`${type} ${blob.toString('base64')}`) : new Error('empty');
  if (parsed instanceof Error || parsed.type !== type || !blob.equals(parsed.getPublicSSH())) {
    throw badKey(what, `the base64 key data is not a valid ${type} key`);
  }
  return makePublicKey(parsed, comment.join(' '), what);
}

function looksLikeKeyType(text: string): boolean {
  return /^(ssh-|ecdsa-|sk-)\S+\s/.test(text + ' ');
}

function checkKeyType(type: string, what: string): asserts type is KeyType {
  if ((KEY_TYPES as readonly string[]).includes(type)) return;
  if (type === 'ssh-dss') throw badKey(what, 'DSA keys are not supported (OpenSSH dropped them too); make an Ed25519 key: ssh-keygen -t ed25519');
  if (type.startsWith('sk-')) throw badKey(what, `security-key (FIDO) keys (${type}) are not supported; use an Ed25519, ECDSA or RSA key`);
  if (type.includes('-cert-')) throw badKey(what, `OpenSSH certificates (${type}) are not supported; give the plain public key`);
  throw badKey(what, `unknown key type "${type}" (expected one of ${KEY_TYPES.join(', ')})`);
}

function makePublicKey(parsed: ParsedKey, comment: string, what: string): SshPublicKey {
  const type = parsed.type;
  checkKeyType(type, what);
  const blob = parsed.getPublicSSH();
  if (type === 'ssh-rsa') {
    const bits = rsaBits(blob);
    if (bits < RSA_MIN_BITS) throw badKey(what, `this RSA key has only ${bits} bits; at least ${RSA_MIN_BITS} are needed (make a new key: ssh-keygen -t ed25519)`);
  }
  return {
    type,
    blob,
    comment,
    key: parsed,
    fingerprint: 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, ''),
    line: `${type} ${blob.toString('base64')}${comment ? ' ' + comment : ''}`,
  };
}

/** The modulus size of an `ssh-rsa` blob: string "ssh-rsa" | mpint e | mpint n. */
function rsaBits(blob: Buffer): number {
  let offset = 0;
  const next = () => {
    const length = blob.readUInt32BE(offset);
    const value = blob.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return value;
  };
  next();
  next();
  const n = next();
  let start = 0;
  while (start < n.length && n[start] === 0) start += 1;
  return start === n.length ? 0 : (n.length - start) * 8 - Math.clz32(n[start]!) + 24;
}

/** An encrypted private key was read without a passphrase (ask for one, or use ssh-agent). */
export class PassphraseNeededError extends UsageError {
  override name = 'PassphraseNeededError';
}

/**
 * Parse a private key file's text. An encrypted key without `passphrase` throws
 * `PassphraseNeededError`; a wrong passphrase throws a `BAD_KEY` error saying so.
 */
export function parsePrivateKey(text: string, what = 'private key', passphrase?: string): SshPrivateKey {
  let source = text;
  if (/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(text)) source = pkcs8ToTraditional(text, what, passphrase);
  const parsed = ssh2Parts.parseKey(source, passphrase);
  if (parsed instanceof Error) {
    if (/no passphrase given/i.test(parsed.message)) {
      throw new PassphraseNeededError(ErrorCode.BAD_KEY, `${what}: the key is passphrase-protected and no passphrase was given; add it to ssh-agent (ssh-add ${what}) or run where it can be asked for on a terminal`);
    }
    if (/bad passphrase/i.test(parsed.message)) throw badKey(what, 'wrong passphrase');
    if (!isPrivateKeyText(text)) {
      throw badKey(what, /^\s*(ssh-|ecdsa-)/.test(text) ? 'this is a public key; give the private key file (without .pub)' : 'not a private key file (expected "-----BEGIN OPENSSH PRIVATE KEY-----" or a PEM key)');
    }
    throw badKey(what, `cannot read the key (${parsed.message})`);
  }
  if (Array.isArray(parsed)) throw badKey(what, 'the file holds several keys; give a file with one');
  if (!parsed.isPrivateKey()) throw badKey(what, 'this is a public key; give the private key file (without .pub)');
  return { key: parsed, publicKey: makePublicKey(parsed, parsed.comment, what) };
}

/**
 * ssh2 reads OpenSSH and traditional PEM (`BEGIN RSA/EC PRIVATE KEY`) but not PKCS#8,
 * which `ssh-keygen -m PKCS8` writes: Node's crypto converts it.
 */
function pkcs8ToTraditional(text: string, what: string, passphrase?: string): string {
  if (/ENCRYPTED PRIVATE KEY/.test(text) && passphrase === undefined) {
    throw new PassphraseNeededError(ErrorCode.BAD_KEY, `${what}: the key is passphrase-protected and no passphrase was given; add it to ssh-agent (ssh-add ${what}) or run where it can be asked for on a terminal`);
  }
  let key;
  try {
    key = createPrivateKey(passphrase === undefined ? text : { key: text, passphrase });
  } catch (err) {
    // A wrong passphrase usually fails the padding check ("bad decrypt"), but about one time
    // in 256 the padding passes by chance and the garbage fails to decode ("unsupported").
    if (passphrase !== undefined && /ENCRYPTED PRIVATE KEY/.test(text)) throw badKey(what, 'wrong passphrase (or a damaged key file)');
    throw badKey(what, `cannot read the PKCS#8 key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType === 'rsa') return key.export({ format: 'pem', type: 'pkcs1' }).toString();
  if (key.asymmetricKeyType === 'ec') return key.export({ format: 'pem', type: 'sec1' }).toString();
  throw badKey(what, `${key.asymmetricKeyType ?? 'this'} keys in PKCS#8 are not supported; keep Ed25519 keys in OpenSSH format (ssh-keygen -t ed25519 writes one)`);
}

/**
 * The public half of a private key file without its passphrase, to find the key in
 * ssh-agent before asking for one: the OpenSSH format keeps it unencrypted in its header
 * (openssh-key-v1: magic | string cipher | string kdf | string kdfoptions | u32 n |
 * string publickey | …); for PEM keys, as ssh does, the `.pub` file beside it.
 */
export function publicKeyOfPrivateKey(text: string, what: string, pubText?: string): SshPublicKey | null {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (match) {
    const data = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
    const magic = Buffer.from('openssh-key-v1\0', 'latin1');
    try {
      if (!data.subarray(0, magic.length).equals(magic)) return null;
      const { strings } = readStrings(data.subarray(magic.length), 3);
      const offset = magic.length + strings.reduce((sum, s) => sum + 4 + s.length, 0) + 4;
      const { strings: [blob] } = readStrings(data.subarray(offset), 1);
      const type = readStrings(blob!, 1).strings[0]!.toString('latin1');
      return parsePublicKey(`${type} ${blob!.toString('base64')}`, what);
    } catch {
      return null;
    }
  }
  if (pubText === undefined) return null;
  try {
    return parsePublicKey(pubText, `${what}.pub`);
  } catch {
    return null;
  }
}

/** The key types `generateKeyPair` makes, as `ssh-keygen -t` names them. */
export const KEYGEN_TYPES = ['ed25519', 'ecdsa', 'rsa'] as const;
export type KeygenType = (typeof KEYGEN_TYPES)[number];

/**
 * How many times `generateKeyPair` makes a key before giving up: ssh2 1.17's
 * `generateKeyPairSync('ed25519')` drops a leading zero byte of the public key about once in
 * 200 keys (a 31-byte key that no parser takes), so a key whose halves do not parse as one
 * pair is made again.
 */
const KEYGEN_ATTEMPTS = 8;

/**
 * A new key pair as OpenSSH files' text (`ssh-keygen -t TYPE [-b BITS]` defaults: ECDSA 256, RSA 3072),
 * checked: both halves parse and name the same key.
 *
 * @throws {UsageError} `SW_ERR_BAD_KEY` for a size the type does not have, or when no good key came out.
 */
export function generateKeyPair(comment: string, type: KeygenType = 'ed25519', bits?: number): { privateText: string; publicLine: string; fingerprint: string } {
  let generate: () => { private: string; public: string };
  if (type === 'ecdsa') {
    const size = bits ?? 256;
    if (size !== 256 && size !== 384 && size !== 521) throw badKey('keygen', `ECDSA keys have 256, 384 or 521 bits, not ${size}`);
    generate = () => ssh2Parts.generateKeyPairSync('ecdsa', { bits: size, comment });
  } else if (type === 'rsa') {
    const size = bits ?? 3072;
    if (!Number.isInteger(size) || size < RSA_MIN_BITS || size > 16384) throw badKey('keygen', `RSA keys have ${RSA_MIN_BITS} to 16384 bits, not ${size}`);
    generate = () => ssh2Parts.generateKeyPairSync('rsa', { bits: size, comment });
  } else {
    generate = () => ssh2Parts.generateKeyPairSync('ed25519', { comment });
  }
  for (let attempt = 1; ; attempt++) {
    const pair = generate();
    const privateText = pair.private.endsWith('\n') ? pair.private : pair.private + '\n';
    try {
      const pub = parsePublicKey(pair.public);
      if (!parsePrivateKey(privateText, 'new key').publicKey.blob.equals(pub.blob)) throw badKey('keygen', 'the private and public halves name different keys');
      return { privateText, publicLine: pub.line, fingerprint: pub.fingerprint };
    } catch (err) {
      if (attempt >= KEYGEN_ATTEMPTS) throw err;
    }
  }
}

/**
 * What a public-key login signs: a context string, the user, the key blob and a value
 * exported from this very TLS session. A signature is therefore useless on any other
 * connection: a captured HELLO cannot be replayed or relayed. The signature algorithm is
 * not in the data: each one (and for RSA the hash, inside PKCS#1's DigestInfo) is bound by
 * the signature itself, so a signature cannot be passed off as another algorithm's.
 */
export function authSignedData(user: string, publicKey: SshPublicKey, exporter: Buffer): Buffer {
  return Buffer.concat([Buffer.from('shellwire-publickey-v1\0', 'latin1'), sshString(Buffer.from(user, 'utf8')), sshString(publicKey.blob), sshString(exporter)]);
}

/** The algorithm a key signs with: its type, except RSA, which signs with SHA-512 (never SHA-1). */
export function defaultSignatureAlgorithm(type: KeyType): string {
  return type === 'ssh-rsa' ? 'rsa-sha2-512' : type;
}

const ECDSA_HASH = { 'ecdsa-sha2-nistp256': 'sha256', 'ecdsa-sha2-nistp384': 'sha384', 'ecdsa-sha2-nistp521': 'sha512' } as const;
const ECDSA_FIELD_BYTES = { 'ecdsa-sha2-nistp256': 32, 'ecdsa-sha2-nistp384': 48, 'ecdsa-sha2-nistp521': 66 } as const;
const RSA_HASH: Record<string, 'sha256' | 'sha512'> = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' };

/** Why `algorithm` may not sign for a key of `type` (null when it may). */
export function signatureAlgorithmProblem(type: KeyType, algorithm: string): string | null {
  if (type === 'ssh-rsa') {
    if (RSA_HASH[algorithm]) return null;
    if (algorithm === 'ssh-rsa') return 'ssh-rsa signatures use SHA-1, which is refused (as OpenSSH 8.8+ does); sign with rsa-sha2-256 or rsa-sha2-512';
  } else if (algorithm === type) return null;
  return `signature algorithm "${algorithm}" does not fit a ${type} key`;
}

/** The hash an RSA signature algorithm uses, for ssh-agent's sign flags. */
export function rsaHash(algorithm: string): 'sha256' | 'sha512' | undefined {
  return RSA_HASH[algorithm];
}

/** Sign `data` as SSH encodes the signature (without the algorithm name around it). */
export function signData(privateKey: SshPrivateKey, data: Buffer, algorithm = defaultSignatureAlgorithm(privateKey.publicKey.type)): Buffer {
  const type = privateKey.publicKey.type;
  const problem = signatureAlgorithmProblem(type, algorithm);
  if (problem) throw badKey(privateKey.publicKey.fingerprint, problem);
  if (type === 'ssh-ed25519' || type === 'ssh-rsa') {
    const signature = privateKey.key.sign(data, type === 'ssh-rsa' ? RSA_HASH[algorithm] : undefined);
    if (signature instanceof Error) throw badKey(privateKey.publicKey.fingerprint, `cannot sign (${(signature as Error).message})`);
    return signature;
  }
  // ECDSA: r and s as two SSH mpints (RFC 5656 §3.1.2); crypto gives them fixed-width.
  const raw = cryptoSign(ECDSA_HASH[type], data, { key: createPrivateKey(privateKey.key.getPrivatePEM()), dsaEncoding: 'ieee-p1363' });
  const half = raw.length / 2;
  return Buffer.concat([sshString(mpint(raw.subarray(0, half))), sshString(mpint(raw.subarray(half)))]);
}

/** Check a signature made by `signData` (or ssh-agent) with the named algorithm. */
export function verifyData(publicKey: SshPublicKey, data: Buffer, signature: Buffer, algorithm = defaultSignatureAlgorithm(publicKey.type)): boolean {
  const type = publicKey.type;
  if (signatureAlgorithmProblem(type, algorithm)) return false;
  try {
    if (type === 'ssh-ed25519' || type === 'ssh-rsa') return publicKey.key.verify(data, signature, type === 'ssh-rsa' ? RSA_HASH[algorithm] : undefined) === true;
    const width = ECDSA_FIELD_BYTES[type];
    const { strings: [r, s], rest } = readStrings(signature, 2);
    if (rest !== 0) return false;
    const raw = Buffer.concat([fixedWidth(r!, width), fixedWidth(s!, width)]);
    return cryptoVerify(ECDSA_HASH[type], data, { key: createPublicKey(publicKey.key.getPublicPEM()), dsaEncoding: 'ieee-p1363' }, raw);
  } catch {
    return false;
  }
}

export function signAuth(privateKey: SshPrivateKey, user: string, exporter: Buffer, algorithm?: string): Buffer {
  return signData(privateKey, authSignedData(user, privateKey.publicKey, exporter), algorithm);
}

export function verifyAuth(publicKey: SshPublicKey, user: string, exporter: Buffer, signature: Buffer, algorithm?: string): boolean {
  return verifyData(publicKey, authSignedData(user, publicKey, exporter), signature, algorithm);
}

/** TLS exporter label and length both sides use (RFC 8446 §7.5). */
export const AUTH_EXPORTER_LABEL = 'EXPORTER-shellwire-publickey';
export const AUTH_EXPORTER_LENGTH = 32;

function sshString(body: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

/** An unsigned big-endian number as an SSH mpint body: minimal, with a 0 byte if the top bit is set. */
function mpint(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length && unsigned[start] === 0) start += 1;
  const body = unsigned.subarray(start);
  return body.length > 0 && body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body;
}

/** An mpint body back to `width` bytes; a negative or too-wide number throws. */
function fixedWidth(value: Buffer, width: number): Buffer {
  if (value.length > 0 && value[0]! & 0x80) throw new Error('negative');
  let start = 0;
  while (start < value.length && value[start] === 0) start += 1;
  const body = value.subarray(start);
  if (body.length > width) throw new Error('too wide');
  return Buffer.concat([Buffer.alloc(width - body.length), body]);
}

/** `count` SSH strings from the start of `buf`, then how many bytes were left over. */
function readStrings(buf: Buffer, count: number): { strings: Buffer[]; rest: number } {
  const out: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < count; i += 1) {
    if (offset + 4 > buf.length) throw new Error('truncated');
    const length = buf.readUInt32BE(offset);
    if (offset + 4 + length > buf.length) throw new Error('truncated');
    out.push(buf.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return { strings: out, rest: buf.length - offset };
}
