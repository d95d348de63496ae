/**
 * TLS settings shared by client and server: TLS 1.3 only, AES-GCM first (hardware
 * accelerated on every server CPU we target), and the SHA-256 fingerprint of the peer's
 * public key that known_hosts pins.
 */
import { createHash, X509Certificate } from 'node:crypto';

export const TLS_MIN_VERSION = 'TLSv1.3';
// node:tls takes TLS 1.3 suites in `ciphers` (there is no `ciphersuites` option).
export const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
export const TLS_GROUPS = 'X25519:P-256:P-384:X448:P-521';
/** ALPN protocol id: a TLS peer that is not shellwire fails the handshake instead of talking nonsense. */
export const ALPN_PROTOCOL = 'shellwire/1';

/** `SHA256:<base64>` of the certificate's SubjectPublicKeyInfo, the format ssh users know. */
export function fingerprintOfCertificate(der: Buffer | string): string {
  const cert = new X509Certificate(der);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return 'SHA256:' + createHash('sha256').update(spki).digest('base64').replace(/=+$/, '');
}
