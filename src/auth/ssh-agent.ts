/**
 * The client side of ssh-agent (`SSH_AUTH_SOCK`), through ssh2's `OpenSSHAgent`: list the
 * agent's keys and have it sign a login. The private keys never leave the agent, so an
 * encrypted key unlocked once with `ssh-add` serves scripts and fleets without prompts.
 */
import { lstatSync } from 'node:fs';
import type { OpenSSHAgent } from 'ssh2';
import ssh2Parts from './ssh2-parts.cjs';
import type { ParsedKey } from 'ssh2';
import { AuthenticationError, ErrorCode } from '../errors.js';
import { defaultSignatureAlgorithm, parsePublicKey, rsaHash, type SshPublicKey } from './ssh-key.js';

export class SshAgent {
  readonly socketPath: string;
  #agent: OpenSSHAgent;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
    this.#agent = new (ssh2Parts.openSshAgent())(socketPath);
  }

  /**
   * The agent's keys of types shellwire can use, in the agent's order; `skipped` gets a line
   * for each other key (FIDO, DSA, certificates). Rejects with a message that says why the
   * agent cannot be used (no such socket, nobody listening).
   */
  identities(skipped?: (message: string) => void): Promise<SshPublicKey[]> {
    return new Promise((resolve, reject) => {
      this.#agent.getIdentities((err, found) => {
        if (err || !found) return reject(this.#unusable(err ?? undefined));
        const usable: SshPublicKey[] = [];
        // OpenSSHAgent answers with parsed keys (it already dropped those ssh2 cannot parse).
        for (const key of found as ParsedKey[]) {
          try {
            usable.push(parsePublicKey(`${key.type} ${key.getPublicSSH().toString('base64')} ${key.comment}`, `ssh-agent key "${key.comment}"`));
          } catch (error) {
            skipped?.((error as Error).message);
          }
        }
        resolve(usable);
      });
    });
  }

  /** Have the agent sign `data` with `key`; the signature as SSH encodes it, without the algorithm name. */
  sign(key: SshPublicKey, data: Buffer): Promise<{ algorithm: string; signature: Buffer }> {
    const algorithm = defaultSignatureAlgorithm(key.type);
    const hash = rsaHash(algorithm);
    return new Promise((resolve, reject) => {
      this.#agent.sign(key.key, data, hash ? { hash } : {}, (err, signature) => {
        if (err || !signature) {
          // The agent refused (key removed since listing, or a confirm prompt denied).
          return reject(new AuthenticationError(ErrorCode.NO_CREDENTIALS, `ssh-agent (${this.socketPath}) did not sign with key ${key.fingerprint}: ${err?.message ?? 'no signature'}.`, { cause: err }));
        }
        resolve({ algorithm, signature });
      });
    });
  }

  #unusable(err: Error | undefined): AuthenticationError {
    let why: string;
    try {
      why = lstatSync(this.socketPath).isSocket()
        ? 'nothing answers on it (the agent has exited; start one with: eval "$(ssh-agent)"; ssh-add)'
        : 'it is not a socket';
    } catch (statError) {
      why = (statError as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'no such socket (the agent has exited or SSH_AUTH_SOCK is stale; start one with: eval "$(ssh-agent)"; ssh-add)'
        : `cannot reach it (${(statError as NodeJS.ErrnoException).code})`;
    }
    return new AuthenticationError(ErrorCode.NO_CREDENTIALS, `ssh-agent at SSH_AUTH_SOCK=${this.socketPath} is not usable: ${why}.`, { cause: err });
  }
}
