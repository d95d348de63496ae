/**
 * Access tokens (v1 authentication). A token is 32 random bytes, base64url. The server
 * keeps it in `<state-dir>/token` (0600) and compares offered tokens in constant time.
 */
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { readSecretFile, writeSecretFile } from './secret-file.js';
import { TOKEN_FILE } from './paths.js';

export function generateToken(): string {
  return 'swt_' + randomBytes(32).toString('base64url');
}

export function tokenPath(stateDir: string): string {
  return join(stateDir, TOKEN_FILE);
}

/** The server's token, created on first start. */
export function loadOrCreateToken(stateDir: string): { token: string; created: boolean } {
  const path = tokenPath(stateDir);
  const existing = readSecretFile(path);
  if (existing !== undefined && existing.trim().length > 0) return { token: existing.trim(), created: false };
  const token = generateToken();
  writeSecretFile(path, token + '\n');
  return { token, created: true };
}

/**
 * Constant-time comparison. Hashing first makes both sides the same length, so neither
 * the content nor the length of the real token leaks through timing.
 */
export function tokensEqual(offered: string, expected: string): boolean {
  const a = createHash('sha256').update(offered, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
