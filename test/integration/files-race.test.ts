/**
 * The file service under a hostile local account (issue 8 item 9, issue 9 item 3): a process
 * of the daemon's own account swaps a directory inside the file root with a symlink to the
 * outside (renameat2 RENAME_EXCHANGE in a loop) while requests run; plants FIFOs, devices,
 * symlinks and hard links where the daemon opens files. Nothing may land outside the root,
 * nothing outside may be read, listed or changed, and no request may block a daemon thread.
 *
 * Real daemon on loopback (in-process, and `shellwire serve` as a child where a hang would
 * take the test runner's own thread pool with it), real CLI, real files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync, constants, existsSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Connection } from '../../src/client/connection.js';
import { startDaemonWithRoot, runCli, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, startServeCli, cleanEnv } from '../helpers/fixtures.js';

const RACER = resolve(import.meta.dirname, '../fixtures/swap_racer.py');
/** Requests per race: the unfixed daemon let 28 of 400 puts land outside. */
const TRIES = 400;

let daemon: TestDaemon;
let conn: Connection;
let root: string; // the daemon's only file root
let home: string; // the test user's home, inside root
let outside: string; // a directory outside every root
let local: string; // the client's side

before(async () => {
  root = tempDir('shellwire-race-root-');
  home = join(root, 'home');
  mkdirSync(home);
  outside = tempDir('shellwire-race-outside-');
  local = tempDir('shellwire-race-local-');
  daemon = await startDaemonWithRoot(root, home);
  conn = await daemon.connect();
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  for (const dir of [root, outside, local]) if (dir) removeDir(dir);
});

const remote = (path: string) => `${daemon.address}:${path}`;
const cli = (args: string[], timeoutMs = 15_000) => runCli(args, { env: daemon.env, timeoutMs });

/**
 * `home/NAME/d` (a directory inside the root) and `home/NAME/swap` (a symlink to
 * `outside/NAME`) swapped by the racer for the duration of `body`; restored afterwards.
 */
async function withRace(name: string, setup: (inside: string, out: string) => void, body: (out: string) => Promise<void>): Promise<void> {
  const base = join(home, name);
  const d = join(base, 'd');
  const out = join(outside, name);
  mkdirSync(d, { recursive: true });
  mkdirSync(out);
  setup(d, out);
  symlinkSync(out, join(base, 'swap'));
  const racer = spawn('python3', [RACER, d, join(base, 'swap'), '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  racer.stdout.on('data', (c: Buffer) => (said += c.toString()));
  racer.stderr.on('data', (c: Buffer) => (said += c.toString()));
  const exited = new Promise<void>((done) => racer.on('close', () => done()));
  try {
    assert.ok(await waitFor(() => said.includes('ready') || racer.exitCode !== null, 10_000), 'the racer did not start');
    assert.match(said, /ready/, `the racer failed: ${said}`);
    await body(out);
  } finally {
    if (racer.exitCode === null && racer.signalCode === null) racer.kill('SIGKILL');
    await exited;
    // Stopped mid-swap: put the directory back under its name.
    if (lstatSync(d).isSymbolicLink()) {
      renameSync(join(base, 'swap'), join(base, 'tmp'));
      renameSync(d, join(base, 'swap'));
      renameSync(join(base, 'tmp'), d);
    }
  }
}

/** Run `attempt` up to TRIES times; stops at the first one that reports an escape. */
async function race(attempt: (i: number) => Promise<string | null>): Promise<{ escapes: string[]; tries: number }> {
  for (let i = 0; i < TRIES; i++) {
    const escaped = await attempt(i).catch(() => null); // refusals and ENOENT are fine
    if (escaped) return { escapes: [escaped], tries: i + 1 };
  }
  return { escapes: [], tries: TRIES };
}

test('put into a directory swapped with a symlink to the outside never lands a file outside the root', async () => {
  const payload = join(local, 'payload');
  writeFileSync(payload, 'payload');
  await withRace('put', () => {}, async (out) => {
    const result = await race(async (i) => {
      await conn.put(payload, `put/d/x${i}`, { resume: false }).catch(() => {});
      const landed = readdirSync(out);
      return landed.length > 0 ? `put ${i}: ${landed.join(', ')} landed in ${out}` : null;
    });
    assert.deepEqual(result.escapes, [], `after ${result.tries} puts`);
  });
});

test('get and stat of a file in a swapped directory never read the outside file', async () => {
  await withRace(
    'get',
    (d, out) => {
      writeFileSync(join(d, 'secret'), 'inside');
      writeFileSync(join(out, 'secret'), 'OUTSIDE SECRET');
    },
    async () => {
      const copy = join(local, 'got');
      const result = await race(async (i) => {
        rmSync(copy, { force: true });
        const entry = await conn.stat('get/d/secret').catch(() => null);
        if (entry && entry.size !== 'inside'.length) return `stat ${i} saw the outside file (${entry.size} bytes)`;
        await conn.get('get/d/secret', copy, { resume: false }).catch(() => {});
        const got = existsSync(copy) ? readFileSync(copy, 'utf8') : '';
        return got.includes('OUTSIDE') ? `get ${i} read the outside file` : null;
      });
      assert.deepEqual(result.escapes, [], `after ${result.tries} tries`);
    },
  );
});

test('ls of a swapped directory never lists the outside one', async () => {
  await withRace(
    'ls',
    (d, out) => {
      writeFileSync(join(d, 'inside-name'), '');
      writeFileSync(join(out, 'outside-name'), '');
    },
    async () => {
      const result = await race(async (i) => {
        const names = (await conn.list('ls/d')).map((e) => e.name);
        return names.includes('outside-name') ? `ls ${i} listed the outside directory` : null;
      });
      assert.deepEqual(result.escapes, [], `after ${result.tries} tries`);
    },
  );
});

test('mkdir -p through a swapped directory never creates directories outside the root', async () => {
  await withRace('mkdir', () => {}, async (out) => {
    const result = await race(async (i) => {
      await conn.mkdir(`mkdir/d/m${i}/deeper`).catch(() => {});
      const made = readdirSync(out);
      return made.length > 0 ? `mkdir ${i}: ${made.join(', ')} created in ${out}` : null;
    });
    assert.deepEqual(result.escapes, [], `after ${result.tries} tries`);
  });
});

/** Let a daemon thread stuck in open(2) of `fifo` (the unfixed code) go: be its writer for a moment. */
function releaseFifo(fifo: string): void {
  for (let i = 0; i < 16; i++) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      return; // ENXIO: nobody is waiting on it
    }
  }
}

test('get of a FIFO or a device is refused at once with a clear message', async () => {
  const dir = join(home, 'special');
  mkdirSync(dir);
  const fifo = join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  assert.equal(spawnSync('mknod', [join(dir, 'null'), 'c', '1', '3']).status, 0);
  symlinkSync('fifo', join(dir, 'link-to-fifo'));
  try {
    for (const name of ['fifo', 'link-to-fifo', 'null']) {
      const r = await cli(['get', remote(`special/${name}`), local], 8_000);
      assert.equal(r.code, 1, `get ${name} must fail at once, not hang (${r.signal ?? r.code}): ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`Cannot download .*special/${name === 'link-to-fifo' ? 'fifo' : name}: it is a (FIFO|character device), not a regular file`));
    }
    const entry = await conn.stat('special/fifo');
    assert.equal(entry.type, 'other');
    const payload = join(local, 'special-payload');
    writeFileSync(payload, 'x');
    for (const name of ['fifo', 'null']) {
      const r = await cli(['put', payload, remote(`special/${name}`)], 8_000);
      assert.equal(r.code, 1, `put onto ${name} (${r.signal ?? r.code}): ${r.stderr}`);
      assert.match(r.stderr, /it is a (FIFO|character device), not a regular file/);
    }
    assert.ok(lstatSync(fifo).isFIFO());
    // The client's side too: a local FIFO named as the source of a put.
    const localFifo = join(local, 'local-fifo');
    assert.equal(spawnSync('mkfifo', [localFifo]).status, 0);
    const put = await cli(['put', localFifo, remote('special/')], 8_000);
    assert.equal(put.code, 1, `put of a local FIFO must fail at once (${put.signal ?? put.code}): ${put.stderr}`);
    assert.match(put.stderr, /local-fifo is not a regular file/);
  } finally {
    releaseFifo(fifo);
  }
});

test('FIFOs never hold daemon threads: many gets of one, then ls, get -r and get still answer (serve)', async () => {
  const serveHome = tempDir('shellwire-race-serve-');
  const allowed = tempDir('shellwire-race-allowed-');
  const fifo = join(allowed, 'tree/fifo');
  mkdirSync(join(allowed, 'tree/sub'), { recursive: true });
  writeFileSync(join(allowed, 'tree/a.txt'), 'a');
  writeFileSync(join(allowed, 'tree/sub/b.txt'), 'b');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const serve = await startServeCli(serveHome, ['--file-root', allowed]);
  const env = cleanEnv({ SHELLWIRE_HOME: serveHome });
  const flags = ['--token-file', serve.tokenFile, '--accept-new-host'];
  const run = (args: string[]) => runCli([args[0]!, ...flags, ...args.slice(1)], { env, timeoutMs: 8_000 });
  const at = (path: string) => `${serve.address}:${path}`;
  try {
    const first = await run(['ls', at(allowed)]); // first contact: accept the host key once
    assert.equal(first.code, 0, first.stderr);
    // More than the thread pool (4): each one that blocked would hold a thread for good.
    const gets = await Promise.all(Array.from({ length: 6 }, (_, i) => run(['get', at(fifo), join(local, `fifo-copy-${i}`)])));
    for (const g of gets) {
      assert.equal(g.code, 1, `get of a FIFO must fail at once (${g.signal ?? g.code}): ${g.stderr}`);
      assert.match(g.stderr, /it is a FIFO, not a regular file/);
    }
    const ls = await run(['ls', at(join(allowed, 'tree'))]);
    assert.equal(ls.code, 0, `ls after the FIFO gets (${ls.signal ?? ls.code}): ${ls.stderr}`);
    assert.match(ls.stdout.toString(), /^\?.* fifo$/m); // type "other"
    const down = join(local, 'fifo-tree');
    const tree = await run(['get', '-r', at(join(allowed, 'tree')), down]);
    // The FIFO is not copied: said, and exit 1 (issue 9: never skipped in silence).
    assert.equal(tree.code, 1, `get -r of a tree with a FIFO (${tree.signal ?? tree.code}): ${tree.stderr}`);
    assert.match(tree.stderr, /fifo: not a regular file or directory; skipped/);
    assert.equal(readFileSync(join(down, 'a.txt'), 'utf8'), 'a');
    assert.equal(readFileSync(join(down, 'sub/b.txt'), 'utf8'), 'b');
    assert.equal(existsSync(join(down, 'fifo')), false);
  } finally {
    releaseFifo(fifo);
    serve.kill();
    await serve.exited;
    removeDir(serveHome);
    removeDir(allowed);
  }
});

test('a FIFO, a symlink or a hard link planted at the partial name never redirects or blocks a put', async () => {
  const dir = join(home, 'planted');
  mkdirSync(dir);
  const victim = join(outside, 'victim');
  writeFileSync(victim, 'victim: must stay as it is');
  const payload = join(local, 'planted-payload');
  writeFileSync(payload, 'the upload');
  const part = (name: string) => join(dir, `.${name}.shellwire-part`);
  assert.equal(spawnSync('mkfifo', [part('fifo')]).status, 0);
  symlinkSync(victim, part('symlink'));
  linkSync(victim, part('hardlink'));
  try {
    for (const name of ['fifo', 'symlink', 'hardlink']) {
      for (const resume of ['--resume', '--no-resume']) {
        const r = await cli(['put', resume, payload, remote(`planted/${name}`)], 8_000);
        assert.equal(r.code, 0, `put ${resume} over a ${name} partial (${r.signal ?? r.code}): ${r.stderr}`);
        assert.equal(readFileSync(join(dir, name), 'utf8'), 'the upload', `${name} ${resume}`);
        assert.equal(readFileSync(victim, 'utf8'), 'victim: must stay as it is', `${name} ${resume}: the outside file changed`);
        assert.equal(existsSync(part(name)), false, `${name} ${resume}: the partial name is left`);
        rmSync(join(dir, name));
        if (name === 'fifo') spawnSync('mkfifo', [part('fifo')]);
        if (name === 'symlink') symlinkSync(victim, part('symlink'));
        if (name === 'hardlink') linkSync(victim, part('hardlink'));
      }
    }
  } finally {
    releaseFifo(part('fifo'));
  }
});

test('symlinks inside the root are followed inside it; loops and links out are refused', async () => {
  const dir = join(home, 'links');
  mkdirSync(join(dir, 'real/sub'), { recursive: true });
  writeFileSync(join(dir, 'real/file'), 'real file');
  symlinkSync('real', join(dir, 'dirlink'));
  symlinkSync(join(dir, 'real/file'), join(dir, 'filelink'));
  symlinkSync('loop-b', join(dir, 'loop-a'));
  symlinkSync('loop-a', join(dir, 'loop-b'));
  mkdirSync(join(outside, 'linked-out'));
  writeFileSync(join(outside, 'linked-out/secret'), 'secret');
  symlinkSync(join(outside, 'linked-out'), join(dir, 'real/out'));
  const payload = join(local, 'links-payload');
  writeFileSync(payload, 'through the link');

  const got = join(local, 'via-link');
  assert.equal((await cli(['get', remote('links/filelink'), got])).code, 0);
  assert.equal(readFileSync(got, 'utf8'), 'real file');
  const put = await cli(['put', payload, remote('links/dirlink/sub/put.txt')]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(readFileSync(join(dir, 'real/sub/put.txt'), 'utf8'), 'through the link');
  assert.deepEqual((await conn.list('links/dirlink/sub')).map((e) => e.name), ['put.txt']);
  await conn.mkdir('links/dirlink/made/deeper');
  assert.ok(statSync(join(dir, 'real/made/deeper')).isDirectory());

  // A path spelled through a symlink outside the roots that leads back inside is allowed.
  symlinkSync(join(dir, 'real'), join(outside, 'into-root'));
  const spelled = await cli(['get', remote(join(outside, 'into-root/file')), join(local, 'spelled')]);
  assert.equal(spelled.code, 0, spelled.stderr);
  assert.equal(readFileSync(join(local, 'spelled'), 'utf8'), 'real file');

  const loop = await cli(['get', remote('links/loop-a'), join(local, 'loop')]);
  assert.equal(loop.code, 1);
  assert.match(loop.stderr, /too many levels of symbolic links \(ELOOP\)/);
  const down = join(local, 'links-tree');
  const tree = await cli(['get', '-r', remote('links/real'), down]);
  // Not copied, so not a whole copy: said, and exit 1 (issue 9: never skipped in silence).
  assert.equal(tree.code, 1, tree.stderr);
  assert.match(tree.stderr, /real\/out: broken symbolic link or outside the allowed roots; skipped/);
  assert.equal(existsSync(join(down, 'out')), false);
  assert.equal(readFileSync(join(down, 'file'), 'utf8'), 'real file');
  const through = await cli(['put', payload, remote('links/real/out/x')]);
  assert.equal(through.code, 1);
  assert.match(through.stderr, /outside the allowed file root/);
  assert.deepEqual(readdirSync(join(outside, 'linked-out')), ['secret']);
  rmSync(join(outside, 'into-root'));
});
