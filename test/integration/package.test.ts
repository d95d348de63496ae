/**
 * The package as `npm install shellwire` delivers it: `npm pack` of this tree, unpacked, with
 * only its declared `dependencies` beside it (symlinks into this repository's node_modules).
 * better-sqlite3 and node-pty are optional peers, so they are not there and cannot be resolved:
 * the library, `exec` (client bundle), `run` (fleet bundle) and `ls` (main bundle) must work
 * against a real daemon, and what needs an addon must say which package to install.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, freePort, removeDir, tempDir } from '../helpers/fixtures.js';
import { connect } from '../../src/client/connect.js';
import { ErrorCode } from '../../src/errors.js';

const REPO = resolve(import.meta.dirname, '../..');
const NATIVE = ['better-sqlite3', 'node-pty'];

let root: string;
let pkg: string;
let packedFiles: string[];
let manifest: Record<string, unknown> & { dependencies: Record<string, string> };
let daemon: TestDaemon;

before(async () => {
  root = tempDir('shellwire-pack-');
  // --ignore-scripts: pack the dist/ the test run built (no `prepare` rebuild here).
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', root], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as { filename: string; files: { path: string }[] }[];
  packedFiles = packed!.files.map((file) => file.path);
  execFileSync('tar', ['xzf', join(root, packed!.filename), '-C', root]);
  pkg = join(root, 'package');
  manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  // What npm would install for a client: the dependencies, never the optional peers.
  for (const name of Object.keys(manifest.dependencies)) {
    if (NATIVE.includes(name)) continue;
    const link = join(pkg, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(realpathSync(join(REPO, 'node_modules', name)), link);
  }
  daemon = await startDaemon();
});

after(async () => {
  await daemon?.stop();
  if (root) removeDir(root);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `node ARGS` (the unpacked package's CLI or a script) with a clean environment. */
function runNode(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

const cli = (): string => join(pkg, 'bin', 'shellwire.cjs');

test('npm pack ships LICENSE, README, the man page, bin and dist, and no tests, sources or source maps', () => {
  for (const file of ['LICENSE', 'README.md', 'package.json', 'docs/shellwire.1', 'bin/shellwire.cjs', 'dist/index.js', 'dist/index.d.ts', 'dist/server/index.js', 'dist/server/index.d.ts', 'dist/audit/index.js', 'dist/audit/index.d.ts', 'dist/shellwire.cjs', 'dist/shellwire-client.cjs', 'dist/shellwire-fleet.cjs']) {
    assert.ok(packedFiles.includes(file), `${file} is missing from the package`);
  }
  assert.match(readFileSync(join(pkg, 'LICENSE'), 'utf8'), /MIT License[\s\S]*2026 shellwire contributors/);
  const stray = packedFiles.filter((file) => /^(test|src|bench|scripts|\.ci)\//.test(file) || /\.map$/.test(file) || (/\.[cm]?ts$/.test(file) && !/\.d\.[cm]?ts$/.test(file)));
  assert.deepEqual(stray, [], 'tests, sources and source maps do not belong in the package');
  // No compiled file may point at a source map or a source the package does not carry.
  const dangling = packedFiles.filter((file) => /\.[cm]?js$/.test(file) && /sourceMappingURL=/.test(readFileSync(join(pkg, file), 'utf8')));
  assert.deepEqual(dangling, []);
});

test('the manifest names the repository, bug tracker and homepage, and makes the native addons optional peers', () => {
  assert.deepEqual(manifest.repository, { type: 'git', url: 'git+https://github.com/shellwire/shellwire.git' });
  assert.deepEqual(manifest.bugs, { url: 'https://github.com/shellwire/shellwire/issues' });
  assert.match(String(manifest.homepage), /^https:\/\/github\.com\/shellwire\/shellwire/);
  assert.equal(manifest.license, 'MIT');
  assert.ok(Array.isArray(manifest.keywords) && manifest.keywords.includes('ssh'));
  const peers = manifest.peerDependencies as Record<string, string>;
  const meta = manifest.peerDependenciesMeta as Record<string, { optional?: boolean }>;
  for (const name of NATIVE) {
    assert.equal(manifest.dependencies[name], undefined, `${name} must not be a dependency: npm would compile it for every client`);
    assert.equal((manifest.optionalDependencies as Record<string, string> | undefined)?.[name], undefined, `${name}: optionalDependencies are still installed (and compiled) by default`);
    assert.ok(peers[name], `${name} is an optional peer dependency`);
    assert.equal(meta[name]?.optional, true);
  }
});

test('without better-sqlite3 and node-pty the library, exec, run and ls work against a real daemon', async () => {
  const local = createRequire(join(pkg, 'package.json'));
  for (const name of NATIVE) assert.throws(() => local.resolve(name), { code: 'MODULE_NOT_FOUND' }, `${name} must not be resolvable from the unpacked package`);
  const env = cleanEnv({ SHELLWIRE_HOME: daemon.home, NODE_PATH: '' });

  const exec = await runNode([cli(), 'exec', '--token-file', daemon.tokenFile, daemon.address, '--', 'echo', 'client bundle'], env);
  assert.equal(exec.stderr, '');
  assert.equal(exec.stdout, 'client bundle\n');
  assert.equal(exec.code, 0);

  const run = await runNode([cli(), 'run', '--token-file', daemon.tokenFile, daemon.address, '--', 'echo', 'fleet bundle'], env);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /fleet bundle/);

  const ls = await runNode([cli(), 'ls', '--json', '--token-file', daemon.tokenFile, `${daemon.address}:.`], env);
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(Array.isArray(JSON.parse(ls.stdout)));

  // The library entries: connect, run a command; AuditLog.open (shellwire/audit) names the package it needs.
  const script = `
    const lib = await import(${JSON.stringify(join(pkg, 'dist', 'index.js'))});
    const auditLib = await import(${JSON.stringify(join(pkg, 'dist', 'audit', 'index.js'))});
    const conn = await lib.connect(${JSON.stringify(daemon.address)}, { tokenFile: ${JSON.stringify(daemon.tokenFile)}, home: ${JSON.stringify(daemon.home)} });
    const { stdout } = await conn.exec('echo library');
    await conn.close();
    let audit;
    try { auditLib.AuditLog.open(${JSON.stringify(join(root, 'lib-audit.sqlite'))}); audit = 'opened'; } catch (err) { audit = err.code + ' ' + err.message; }
    process.stdout.write(JSON.stringify({ stdout, audit }));
  `;
  const lib = await runNode(['--input-type=module', '-e', script], env);
  assert.equal(lib.code, 0, lib.stderr);
  const { stdout, audit } = JSON.parse(lib.stdout) as { stdout: string; audit: string };
  assert.equal(stdout, 'library\n');
  assert.equal(audit, `${ErrorCode.MISSING_DEPENDENCY} The daemon's audit log needs the better-sqlite3 package, which is not installed: npm install better-sqlite3`);
});

test('serve and audit without better-sqlite3 fail with one line naming the package and how to install it', async () => {
  const stateDir = join(root, 'no-sqlite-state');
  const env = cleanEnv({ SHELLWIRE_HOME: join(root, 'no-sqlite-home'), NODE_PATH: '' });
  const serve = await runNode([cli(), 'serve', '--listen', `127.0.0.1:${await freePort()}`, '--state-dir', stateDir], env);
  assert.equal(serve.code, 1);
  assert.equal(serve.stdout, '');
  assert.equal(serve.stderr, "shellwire: The daemon's audit log needs the better-sqlite3 package, which is not installed: npm install better-sqlite3\n");

  writeFileSync(join(stateDir, 'audit.sqlite'), '');
  const audit = await runNode([cli(), 'audit', '--state-dir', stateDir], env);
  assert.equal(audit.code, 1);
  assert.equal(audit.stderr, "shellwire: The daemon's audit log needs the better-sqlite3 package, which is not installed: npm install better-sqlite3\n");
});

test('serve --no-audit without node-pty serves commands, warns once, and refuses terminals naming node-pty', async () => {
  const home = join(root, 'no-pty-home');
  const port = await freePort();
  const child = spawn(process.execPath, [cli(), 'serve', '--no-audit', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
    env: cleanEnv({ SHELLWIRE_HOME: home, NODE_PATH: '' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolveExit) => child.on('close', resolveExit));
  try {
    assert.ok(await waitFor(() => /listening on/.test(stdout) || child.exitCode !== null, 15_000), `serve did not start: ${stderr}`);
    assert.match(stdout, /listening on 127\.0\.0\.1:/, stderr);
    const warnings = stderr.split('\n').filter((line) => line.includes('node-pty'));
    assert.equal(warnings.length, 1, stderr);
    const warning = JSON.parse(warnings[0]!) as { code: string; msg: string };
    assert.equal(warning.code, ErrorCode.MISSING_DEPENDENCY);
    assert.match(warning.msg, /needs the node-pty package, which is not installed: npm install node-pty; serving everything but terminals/);

    const conn = await connect(`127.0.0.1:${port}`, { tokenFile: join(home, 'server', 'token'), hostKeyPolicy: 'accept-new', home });
    try {
      assert.equal((await conn.exec('echo no terminal needed')).stdout, 'no terminal needed\n');
      await assert.rejects(conn.exec('tty', { pty: { term: 'xterm', cols: 80, rows: 24 } }), (err: Error & { code?: string }) => {
        assert.equal(err.code, ErrorCode.BAD_REQUEST);
        assert.match(err.message, /Terminals are not available on this daemon \(.*needs the node-pty package, which is not installed: npm install node-pty\)\. Run the command without a terminal\./);
        return true;
      });
    } finally {
      await conn.close();
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});
