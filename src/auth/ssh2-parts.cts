/**
 * The parts of ssh2 shellwire uses (key parsing, key generation, the agent client), each
 * loaded on first use.
 *
 * Why not `import ssh2 from 'ssh2'`: its index loads the whole SSH client and server (about
 * 80 ms of a cold `shellwire exec` here, measured with `node -e "require('ssh2')"` against a
 * bare `node`), and a login with a token never touches a key. These modules are the ones
 * ssh2's index re-exports; a CommonJS file so the loads stay synchronous in the tsc output and
 * in the esbuild bundles alike (see native-require.cts).
 */
import type { utils as Ssh2Utils, OpenSSHAgent as Ssh2OpenSSHAgent } from 'ssh2';

type ParseKey = typeof Ssh2Utils.parseKey;
type GenerateKeyPairSync = typeof Ssh2Utils.generateKeyPairSync;

const ssh2Parts = {
  parseKey(...args: Parameters<ParseKey>): ReturnType<ParseKey> {
    return (require('ssh2/lib/protocol/keyParser.js') as { parseKey: ParseKey }).parseKey(...args);
  },
  generateKeyPairSync: ((...args: unknown[]) =>
    (require('ssh2/lib/keygen.js') as { generateKeyPairSync: (...a: unknown[]) => unknown }).generateKeyPairSync(...args)) as GenerateKeyPairSync,
  /** The agent client class (ssh2's OpenSSHAgent). */
  openSshAgent(): typeof Ssh2OpenSSHAgent {
    return (require('ssh2/lib/agent.js') as { OpenSSHAgent: typeof Ssh2OpenSSHAgent }).OpenSSHAgent;
  },
};

export = ssh2Parts;
