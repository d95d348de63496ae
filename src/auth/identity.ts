/**
 * The daemon's host identity: an ECDSA P-256 key and a self-signed certificate, made on
 * first start with @peculiar/x509 (no hand-written DER) and kept in the state dir.
 * Clients pin the SHA-256 fingerprint of its public key (known_hosts), so the
 * certificate needs no CA; it is long-lived because the pin, not the date, is the trust.
 */
import { webcrypto } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readSecretFile, writeSecretFile, ensurePrivateDir } from './secret-file.js';
import { HOST_CERT_FILE, HOST_KEY_FILE } from './paths.js';
import { fingerprintOfCertificate } from '../transport/tls.js';
import { writeFileSync, renameSync } from 'node:fs';
import { KEY_FILE_LIMIT, readBoundedText } from './bounded-file.js';

export interface HostIdentity {
  keyPem: string;
  certPem: string;
  fingerprint: string;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function loadOrCreateIdentity(stateDir: string): Promise<HostIdentity & { created: boolean }> {
  ensurePrivateDir(stateDir);
  const existing = readIdentity(stateDir);
  if (existing !== undefined) return { ...existing, created: false };
  const made = await createIdentity(hostname());
  writeIdentity(stateDir, made);
  return { ...made, created: true };
}

/** The identity in the state dir, or undefined when it has none yet. */
export function readIdentity(stateDir: string): HostIdentity | undefined {
  const keyPem = readSecretFile(join(stateDir, HOST_KEY_FILE));
  if (keyPem === undefined) return undefined;
  const certPem = readBoundedText(join(stateDir, HOST_CERT_FILE), 'Host certificate', KEY_FILE_LIMIT);
  return { keyPem, certPem, fingerprint: fingerprintOfCertificate(certPem) };
}

/** Write key and certificate (each atomically: temp file, then rename; the certificate first). */
export function writeIdentity(stateDir: string, identity: HostIdentity): void {
  const certPath = join(stateDir, HOST_CERT_FILE);
  writeFileSync(`${certPath}.tmp-${process.pid}`, identity.certPem, { mode: 0o644 });
  renameSync(`${certPath}.tmp-${process.pid}`, certPath);
  writeSecretFile(join(stateDir, HOST_KEY_FILE), identity.keyPem);
}

export async function createIdentity(commonName: string): Promise<HostIdentity> {
  // Loaded lazily: only the daemon's first start needs it, and it costs start-up time.
  // @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs the Reflect polyfill.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 100 * 365 * 24 * 3600 * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: webcrypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '01'),
    name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, '_')}`,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  const certPem = cert.toString('pem') + '\n';
  return { keyPem, certPem, fingerprint: fingerprintOfCertificate(certPem) };
}
