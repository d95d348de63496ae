/**
 * The gateway's own SSH key: it logs in to the hosts with it (never with an operator's
 * credential), so a host's users.yaml trusts one key and says whom it may act as (`actAs`).
 * Made on first start, as `ssh-keygen -t ed25519` would.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { generateKeyPair, parsePublicKey } from '../auth/ssh-key.js';
import { ensurePrivateDir, writeSecretFile } from '../auth/secret-file.js';
import { ErrorCode, UsageError } from '../errors.js';
import { gatewayKeyPath } from './gateway-config.js';

export interface GatewayKey {
  /** The private key file (connect()'s `identity`). */
  file: string;
  /** The public key line to paste into hosts' users.yaml. */
  publicLine: string;
  fingerprint: string;
  /** True when this call made it. */
  created: boolean;
}

/**
 * The gateway's key in `stateDir`, made (0600, with its `.pub`) when there is none.
 * @throws {UsageError} `SW_ERR_BAD_KEY` the `.pub` file is missing or unreadable beside an existing key.
 */
export function loadOrCreateGatewayKey(stateDir: string): GatewayKey {
  ensurePrivateDir(stateDir);
  const file = gatewayKeyPath(stateDir);
  if (existsSync(file)) {
    let line: string;
    try {
      line = readFileSync(`${file}.pub`, 'utf8').trim();
    } catch (err) {
      throw new UsageError(ErrorCode.BAD_KEY, `The gateway key ${file} has no readable public half ${file}.pub (${(err as NodeJS.ErrnoException).code ?? err}); write it with: ssh-keygen -y -f ${file} > ${file}.pub`);
    }
    const pub = parsePublicKey(line, `${file}.pub`);
    return { file, publicLine: pub.line, fingerprint: pub.fingerprint, created: false };
  }
  const pair = generateKeyPair(`shellwire-gateway@${hostname()}`, 'ed25519');
  writeSecretFile(file, pair.privateText);
  writeFileSync(`${file}.pub`, `${pair.publicLine}\n`, { mode: 0o644 });
  return { file, publicLine: pair.publicLine, fingerprint: pair.fingerprint, created: true };
}
