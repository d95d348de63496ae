/**
 * Setup shared by the gateway's integration tests (issue 13): operator key files, the hosts'
 * users.yaml that trusts the gateway's key to act as the operators, and a real
 * `shellwire gateway` child process whose port and fingerprint come from its banner.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import type { Connection } from '../../src/client/connection.js';
import { CLI, waitFor, type TestDaemon } from './daemon.js';

export interface KeyFile {
  /** The private key's path (for `identity`). */
  file: string;
  /** The public key's authorized_keys line (for users.yaml `keys`). */
  line: string;
}

/** A fresh key pair: the private key written to `dir/name` (mode 0600), the public line returned. */
export function keyFile(dir: string, name: string): KeyFile {
  const pair = generateKeyPair(`${name}@test`);
  const file = join(dir, name);
  writeFileSync(file, pair.privateText, { mode: 0o600 });
  return { file, line: pair.publicLine };
}

/** A host's users.yaml: the user `gateway` (these keys) may act as each operator, who may be root. */
export function hostUsersText(gatewayKeys: string[], operators: string[]): string {
  return (
    [
      'users:',
      '  gateway:',
      `    keys: ${JSON.stringify(gatewayKeys)}`,
      `    actAs: [${operators.join(', ')}]`,
      ...operators.flatMap((u) => [`  ${u}:`, '    allowRoot: true']),
    ].join('\n') + '\n'
  );
}

/** Put `text` in the daemon's users.yaml and make it take effect now. */
export function setHostUsers(daemon: TestDaemon, text: string): void {
  writeFileSync(join(daemon.server.stateDir, 'users.yaml'), text);
  assert.ok(daemon.server.reloadUsers().ok);
}

export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  fingerprint: string;
  /** Its stdout up to the line naming the gateway key. */
  banner: string;
}

/**
 * `shellwire gateway --listen 127.0.0.1:0 ...args` as a child process, resolved once its banner
 * names the port, its fingerprint and the gateway key. Its stderr goes to `onStderr` (else is
 * drained); the caller stops the child.
 */
export function startGatewayProcess(args: string[], onStderr?: (text: string) => void): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    onStderr?.(c.toString());
  });
  let banner = '';
  return new Promise<GatewayProcess>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${stderr}`)));
    child.stdout!.on('data', (c: Buffer) => {
      banner += c.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)[\s\S]*fingerprint: (SHA256:\S+)/.exec(banner);
      if (m && banner.includes('gateway key')) resolve({ child, port: Number(m[1]), fingerprint: m[2]!, banner });
    });
  });
}

/**
 * A terminal (80x24) on `conn` that prints its size, is resized to 100x40 once it has, reads
 * `line` and prints the new size and `got LINE`: its whole output, once it has exited.
 */
export async function resizeAndType(conn: Connection, line: string): Promise<string> {
  const proc = conn.spawn('stty size; read line; stty size; echo "got $line"', { pty: { term: 'xterm', cols: 80, rows: 24 } });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  assert.ok(await waitFor(() => out.includes('24 80'), 5_000), out);
  proc.resize(100, 40);
  proc.stdin.write(`${line}\n`);
  await proc.exited;
  return out;
}
