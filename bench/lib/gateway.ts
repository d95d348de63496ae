/**
 * A real gateway for the benchmarks (docs/gateway.md): `node bin/shellwire gateway` in its own
 * process, with its own state dir, inventory and users.yaml, in front of real daemons whose
 * users.yaml trusts the gateway's key with `actAs`. One operator, `bench`, with an ed25519
 * key (ssh-keygen) that the hosts also accept directly, so "direct" and "through the gateway"
 * run the same commands as the same host user with the same policy.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, benchDirs, startDaemon, type BenchDaemon } from './daemon.js';
import { track } from './children.js';
import { sleep } from './util.js';

export const OPERATOR = 'bench';

export interface Operator {
  /** The private key file (`-i`, `identity`). */
  keyFile: string;
  keyLine: string;
}

let operator: Operator | null = null;

/** The operator's key, made once per bench run. */
export function benchOperator(): Operator {
  if (operator) return operator;
  const { home } = benchDirs();
  const keyFile = join(home, 'operator_ed25519');
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-operator', '-f', keyFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${(r.stderr || r.error?.message || '').trim()}`);
  operator = { keyFile, keyLine: readFileSync(`${keyFile}.pub`, 'utf8').trim() };
  return operator;
}

let serial = 0;

/** A gateway state dir with its key made (`gateway --print-key`), not yet running. */
export function prepareGateway(): { stateDir: string; keyLine: string } {
  const stateDir = join(benchDirs().home, `gateway-${++serial}`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const r = spawnSync(process.execPath, [CLI, 'gateway', '--print-key', '--state-dir', stateDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`shellwire gateway --print-key failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return { stateDir, keyLine: r.stdout.trim() };
}

/**
 * users.yaml of a host: the gateway's key may act as `bench`; `bench` (root, as the bench
 * daemon's token user is) logs in with the operator key too, for the direct runs. `home` is
 * where relative file paths go.
 */
export function hostUsersYaml(gatewayKeyLine: string, home?: string): string {
  return [
    'users:',
    '  gateway:',
    `    keys: [${JSON.stringify(gatewayKeyLine)}]`,
    `    actAs: [${OPERATOR}]`,
    `  ${OPERATOR}:`,
    '    allowRoot: true',
    `    keys: [${JSON.stringify(benchOperator().keyLine)}]`,
    ...(home ? [`    home: ${JSON.stringify(home)}`] : []),
    '',
  ].join('\n');
}

/** A host daemon for the gateway rows: `shellwire serve` with hostUsersYaml. */
export function startHost(gatewayKeyLine: string, options: { host?: string; home?: string } = {}): Promise<BenchDaemon> {
  return startDaemon([], { usersYaml: hostUsersYaml(gatewayKeyLine, options.home), ...(options.host ? { host: options.host } : {}) });
}

export interface BenchGateway {
  pid: number;
  /** `127.0.0.1:PORT` */
  address: string;
  /** `bench@127.0.0.1:PORT`: what `--via` and `connect(host, { via })` take. */
  via: string;
  fingerprint: string;
  stop(): Promise<void>;
}

/**
 * Start `shellwire gateway` on 127.0.0.1 (a free port) with an inventory of `hosts` (group
 * `bench`) and users.yaml letting `bench` reach them as `bench`. Its address is pinned in the
 * bench's known_hosts, so the CLI and the library verify it as they would any daemon.
 */
export async function startGateway(prepared: { stateDir: string }, hosts: Array<{ name: string; daemon: BenchDaemon }>): Promise<BenchGateway> {
  const { home } = benchDirs();
  const { stateDir } = prepared;
  const inventory = join(stateDir, 'inventory.yaml');
  writeFileSync(
    inventory,
    ['hosts:', ...hosts.map(({ name, daemon: d }) => `  ${name}: { address: ${d.address.slice(0, d.address.lastIndexOf(':'))}, port: ${d.port}, groups: [bench] }`), ''].join('\n'),
  );
  writeFileSync(
    join(stateDir, 'users.yaml'),
    ['users:', `  ${OPERATOR}:`, '    allowRoot: true', `    keys: [${JSON.stringify(benchOperator().keyLine)}]`, '    hosts: ["@bench"]', `    as: ${OPERATOR}`, ''].join('\n'),
    { mode: 0o600 },
  );
  const child = track(
    spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--inventory', inventory, '--log-level', 'warn'], {
      env: { ...process.env, SHELLWIRE_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-8192)));
  const { address, fingerprint } = await new Promise<{ address: string; fingerprint: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start within 15 s; stderr: ${stderr}`)), 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      const a = /listening on (\S+)/.exec(stdout);
      const f = /host key fingerprint: (SHA256:\S+)/.exec(stdout);
      if (a && f) {
        clearTimeout(timer);
        resolve({ address: a[1]!, fingerprint: f[1]! });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited during start (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
  });
  child.stdout!.resume();
  appendFileSync(join(home, 'known_hosts'), `${address} ${fingerprint}\n`, { mode: 0o600 });
  return {
    pid: child.pid!,
    address,
    via: `${OPERATOR}@${address}`,
    fingerprint,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

