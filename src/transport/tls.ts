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
export function fingerprintOfCertificate(cert: Buffer | string): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return 'SHA256:' + createHash('sha256').update(spkiOfCertificate(der)).digest('base64').replace(/=+$/, '');
}

// tag | length | content, DER (X.690 §8.1): long-form lengths up to 4 bytes.
function readTlv(der: Buffer, offset: number): { tag: number; offset: number; start: number; end: number } {
  if (offset + 2 > der.length) throw new Error('truncated DER');
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes < 1 || bytes > 4) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start++]!;
  }
  if (start + length > der.length) throw new Error('truncated DER');
  return { tag, offset, start, end: start + length };
}

/**
 * The SubjectPublicKeyInfo bytes inside an X.509 certificate (RFC 5280 §4.1), found by
 * walking the DER: Certificate → tbsCertificate → [version] serial signature issuer
 * validity subject → SPKI. Reading it this way costs microseconds; building an
 * X509Certificate and exporting its key costs ~0.25 ms, which adds up over a fleet.
 */
export function spkiOfCertificate(der: Buffer): Buffer {
  const certificate = readTlv(der, 0);
  const tbs = readTlv(der, certificate.start);
  if (certificate.tag !== 0x30 || tbs.tag !== 0x30) throw new Error('not an X.509 certificate');
  let element = readTlv(der, tbs.start);
  if (element.tag === 0xa0) element = readTlv(der, element.end); // explicit version
  for (let skip = 0; skip < 5; skip++) element = readTlv(der, element.end); // serial, signature, issuer, validity, subject
  if (element.tag !== 0x30) throw new Error('no SubjectPublicKeyInfo');
  return der.subarray(element.offset, element.end);
}
