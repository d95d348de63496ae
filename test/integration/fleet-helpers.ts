/**
 * A small fleet on loopback for the fleet tests: real `shellwire serve` daemons on distinct
 * 127.0.0.N addresses sharing one identity and token (so one known_hosts and one token file
 * serve them all), each with its own environment (ROLE=…) so a command can behave
 * differently per host. Also a known_hosts home, an inventory file, and a JSON Lines schema check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server } from '../../src/server/server.js';
import { CLI } from '../helpers/daemon.js';

export interface FleetDaemon {
  name: string;
  host: string;
  port: number;
  role: string;
  child: ChildProcess;
}

export interface TestFleet {
  root: string;
  home: string;
  token: string;
  tokenFile: string;
  fingerprint: string;
  daemons: FleetDaemon[];
  inventory: string;
  env: NodeJS.ProcessEnv;
  /**
   * `<root>/private`: a daemon started with `privateTmpfs` sees its own tmpfs here (a mount
   * namespace of its own), so one remote path is a different place on each host; the test
   * reads a daemon's copy at `/proc/<pid>/root<privateDir>`.
   */
  privateDir: string;
  stop(): Promise<void>;
}

export function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Start one daemon per spec, on 127.0.0.(firstOctet + i). */
export async function startFleet(
  specs: Array<{ name: string; role: string; announce?: boolean; privateTmpfs?: 'rw' | 'ro' }>, firstOctet = 2, extraInventory = '',
): Promise<TestFleet> {
  const root = mkdtempSync(join(tmpdir(), 'shellwire-fleet-'));
  const privateDir = join(root, 'private');
  mkdirSync(privateDir);
  const stateDir = join(root, 'server');
  const home = join(root, 'home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  // Create the shared identity once, before the daemons race to make it.
  const seed = await Server.create({ stateDir, port: 0 });
  const daemons = await Promise.all(
    specs.map(async (spec, i) => {
      const host = `127.0.0.${firstOctet + i}`;
      const port = await freePortOn(host);
      // One state dir per daemon (a state dir serves one daemon), each with the seed's identity and token.
      const ownStateDir = join(root, `server-${i}`);
      mkdirSync(ownStateDir, { mode: 0o700 });
      for (const file of ['host-key.pem', 'host-cert.pem', 'token']) copyFileSync(join(stateDir, file), join(ownStateDir, file));
      const args = [CLI, 'serve', '--listen', `${host}:${port}`, '--state-dir', ownStateDir, '--log-level', 'warn', '--kill-grace', '0.5', '--shutdown-grace', '0.5'];
      if (spec.announce) args.push('--announce');
      // unshare execs sh, which execs node: the child's pid is the daemon's.
      const [file, argv] = spec.privateTmpfs
        ? ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ${spec.privateTmpfs},size=64m none "$0" && exec "$@"`, privateDir, process.execPath, ...args]]
        : [process.execPath, args];
      const child = spawn(file, argv, { env: { ...process.env, SHELLWIRE_HOME: home, ROLE: spec.role }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`daemon ${host}:${port} did not start: ${err}`)), 15_000);
        child.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('host key fingerprint')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
      });
      return { name: spec.name, host, port, role: spec.role, child };
    }),
  );
  writeFileSync(join(home, 'known_hosts'), daemons.map((d) => `${d.host}:${d.port} ${seed.identity.fingerprint}\n`).join(''));
  const inventory = join(root, 'inventory.yaml');
  writeFileSync(
    inventory,
    `hosts:\n${daemons.map((d) => `  ${d.name}: { address: ${d.host}, port: ${d.port}, labels: { role: ${d.role} }, groups: [all-${d.role}] }\n`).join('')}${extraInventory}`,
  );
  return {
    root,
    home,
    token: seed.token,
    tokenFile: seed.tokenFile,
    fingerprint: seed.identity.fingerprint,
    daemons,
    inventory,
    privateDir,
    env: { ...process.env, SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: seed.token, NO_COLOR: '1' },
    async stop() {
      await Promise.all(
        daemons.map(
          (d) =>
            new Promise<void>((resolve) => {
              if (d.child.exitCode !== null || d.child.signalCode !== null) return resolve();
              d.child.once('exit', () => resolve());
              d.child.kill('SIGTERM');
              setTimeout(() => d.child.kill('SIGKILL'), 3_000).unref();
            }),
        ),
      );
      rmSync(root, { recursive: true, force: true });
    },
  };
}

type Schema =
  | { type: 'string' | 'number' | 'boolean' | 'null' }
  | { type: 'integer' }
  | { enum: readonly unknown[] }
  | { anyOf: Schema[] }
  | { type: 'object'; required: Record<string, Schema>; additional?: false }
  | { type: 'array'; items: Schema };

/** A tiny JSON-schema-like validator: returns the first problem, or null. */
export function validate(value: unknown, schema: Schema, path = '$'): string | null {
  if ('enum' in schema) return schema.enum.includes(value) ? null : `${path}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`;
  if ('anyOf' in schema) return schema.anyOf.some((s) => validate(value, s, path) === null) ? null : `${path}: ${JSON.stringify(value)} matches no alternative`;
  switch (schema.type) {
    case 'null':
      return value === null ? null : `${path}: expected null`;
    case 'integer':
      return Number.isInteger(value) ? null : `${path}: expected an integer`;
    case 'string':
    case 'number':
    case 'boolean':
      return typeof value === schema.type ? null : `${path}: expected ${schema.type}, got ${JSON.stringify(value)}`;
    case 'array':
      if (!Array.isArray(value)) return `${path}: expected an array`;
      for (let i = 0; i < value.length; i++) {
        const problem = validate(value[i], schema.items, `${path}[${i}]`);
        if (problem) return problem;
      }
      return null;
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return `${path}: expected an object`;
      const obj = value as Record<string, unknown>;
      for (const [key, sub] of Object.entries(schema.required)) {
        if (!(key in obj)) return `${path}.${key}: missing`;
        const problem = validate(obj[key], sub, `${path}.${key}`);
        if (problem) return problem;
      }
      if (schema.additional === false) for (const key of Object.keys(obj)) if (!(key in schema.required)) return `${path}.${key}: unexpected`;
      return null;
    }
  }
}

const str = { type: 'string' } as const;
const nullable = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] });
const STATUSES = ['ok', 'failed', 'timed-out', 'error', 'unreachable', 'host-key', 'auth', 'lost', 'canceled', 'skipped'] as const;

/** Exactly one of `name` (text: the bytes were UTF-8) and `nameBase64` (they were not). */
const bytesFields = (name: string): Array<Record<string, Schema>> => [{ [name]: str }, { [`${name}Base64`]: str }];

const outputRecords: Schema[] = bytesFields('data').flatMap((data) =>
  ([{}, { partial: { enum: [true] } }] as Array<Record<string, Schema>>).map((partial): Schema => ({
    type: 'object',
    additional: false,
    required: { type: { enum: ['output'] }, host: str, stream: { enum: ['stdout', 'stderr'] }, ...data, ...partial },
  })),
);

const resultRecords: Schema[] = bytesFields('stdout').flatMap((stdout) =>
  bytesFields('stderr').map((stderr): Schema => ({
    type: 'object',
    additional: false,
    required: {
      type: { enum: ['result'] }, host: str, address: str, status: { enum: STATUSES }, exitCode: nullable({ type: 'integer' }),
      signal: nullable(str), durationMs: { type: 'integer' }, ...stdout, ...stderr, truncated: { type: 'boolean' },
      error: nullable({ type: 'object', additional: false, required: { code: str, message: str } }), batch: { type: 'integer' },
    },
  })),
);

/** The `--json` line schema (README "JSON Lines"): output line, host result, batch, summary. */
export const JSON_LINE_SCHEMA: Schema = {
  anyOf: [
    ...outputRecords,
    ...resultRecords,
    { type: 'object', additional: false, required: { type: { enum: ['batch'] }, batch: { type: 'integer' }, hosts: { type: 'array', items: str } } },
    {
      type: 'object',
      additional: false,
      required: {
        type: { enum: ['summary'] }, command: str, total: { type: 'integer' }, ok: { type: 'integer' }, failed: { type: 'integer' },
        unreachable: { type: 'integer' }, canceled: { type: 'integer' }, skipped: { type: 'integer' }, durationMs: { type: 'integer' },
        success: { type: 'boolean' }, stoppedBy: nullable({ enum: ['fail-fast', 'max-failures', 'canary', 'canceled'] }),
      },
    },
  ],
};
