/**
 * Issue 8 item 14: commands must not outlive their daemon or their channel. Every kind of
 * command (plain exec, argv exec, session command, terminal, run-as via setpriv, the classic
 * port) starts `setsid sleep 313.<tag> & sleep 600.<tag>`; the real daemon is SIGKILLed;
 * within seconds nothing carrying the tag may run, no cgroup of that daemon may remain, and
 * the next start records an audit end row for each. Processes are found by the tag in their
 * argv (/proc), and only those are killed if a test fails.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { tempDir, removeDir, startServeCli, cleanEnv, freePort, type ServeChild } from '../helpers/fixtures.js';
import { connect } from '../../src/client/connect.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { findCgroup2, cgroupWritable } from '../../src/process/cgroup.js';
import { tagged } from '../helpers/processes.js';
import { transportOf } from '../helpers/transport-of.js';

const isRoot = process.getuid?.() === 0;
const cgroup = findCgroup2();
const hasCgroups = cgroup !== null && cgroupWritable(cgroup.ownDir);
const ACCOUNT = 'swcontain1';

let tagSeq = 0;
/** A unique tag: `sleep 600.<tag>` is a valid sleep and findable in /proc. */
const newTag = () => `${process.pid}${String(++tagSeq).padStart(3, '0')}`;
const workload = (tag: string) => `setsid sleep 313.${tag} & sleep 600.${tag}`;


/** The setsid'd sleep and the plain one both run. */
const bothSleeping = (tag: string) => {
  const cmdlines = tagged(tag).map((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { return ''; } });
  return cmdlines.some((c) => c.startsWith(`sleep\x00313.${tag}`)) && cmdlines.some((c) => c.startsWith(`sleep\x00600.${tag}`));
};

function killTagged(tags: string[]): void {
  for (const tag of tags) for (const pid of tagged(tag)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** cgroup directories a daemon with this pid left behind. */
function cgroupsOf(daemonPid: number): string[] {
  if (!cgroup) return [];
  return readdirSync(cgroup.ownDir).filter((name) => name.startsWith(`shellwire.${daemonPid}.`));
}

function ensureAccount(): boolean {
  try {
    execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
    return false;
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', ACCOUNT]);
    return true;
  }
}

function lostRows(stateDir: string): string[] {
  const log = AuditLog.open(auditLogPath(stateDir), { readonly: true });
  try {
    return log.query({ kind: 'command-end' }).filter((row) => row.detail?.ended === 'daemon lost').map((row) => row.command ?? '');
  } finally {
    log.close();
  }
}

async function killDaemonAndCheck(daemon: ServeChild, tags: string[]): Promise<void> {
  const pid = daemon.child.pid!;
  daemon.child.kill('SIGKILL');
  await daemon.exited;
  const gone = await waitFor(() => tags.every((tag) => tagged(tag).length === 0), 5_000);
  const survivors = tags.filter((tag) => tagged(tag).length > 0);
  assert.ok(gone, `processes of ${survivors.join(', ')} outlived the SIGKILLed daemon`);
  assert.ok(await waitFor(() => cgroupsOf(pid).length === 0, 5_000), `cgroups left behind: ${cgroupsOf(pid).join(' ')}`);
}

describe('commands end with their daemon (issue 8, item 14)', () => {
  const allTags: string[] = [];
  let createdAccount = false;
  after(() => {
    killTagged(allTags);
    if (createdAccount) execFileSync('userdel', ['-r', ACCOUNT], { stdio: 'ignore' });
  });

  it('every kind of command, setsid children included, dies when the daemon is SIGKILLed, and the next start audits it', async (t) => {
    const home = tempDir();
    t.after(() => removeDir(home));
    const stateDir = join(home, 'server');
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const runner = generateKeyPair('runner@test');
    const keyFile = join(home, 'runner');
    writeFileSync(keyFile, runner.privateText, { mode: 0o600 });
    if (isRoot) {
      createdAccount = ensureAccount();
      writeFileSync(join(stateDir, 'users.yaml'), `users:\n  runner:\n    runAs: ${ACCOUNT}\n    keys:\n      - ${runner.publicLine}\n`);
    }
    const classicPort = await freePort();
    const daemon = await startServeCli(home, ['--classic-port', String(classicPort)]);
    t.after(() => daemon.kill());
    const token = readFileSync(daemon.tokenFile, 'utf8').trim();
    const conn = await connect(daemon.address, { token, fingerprint: daemon.fingerprint, env: cleanEnv() });
    const kinds: Record<string, string> = {
      plain: newTag(), argv: newTag(), session: newTag(), pty: newTag(), classic: newTag(), ...(isRoot ? { runAs: newTag() } : {}),
    };
    allTags.push(...Object.values(kinds));
    const exits: Promise<unknown>[] = [];
    // The daemon dies under them: both promises reject, which is expected here.
    const track = (proc: { started: Promise<unknown>; exited: Promise<unknown> }) => exits.push(proc.started.catch(() => {}), proc.exited.catch(() => {}));
    track(conn.spawn(workload(kinds.plain!)));
    track(conn.spawn(['/bin/sh', '-c', workload(kinds.argv!)]));
    const session = await conn.shell();
    track(session.spawn(workload(kinds.session!)));
    track(conn.spawn(workload(kinds.pty!), { pty: { term: 'xterm', cols: 80, rows: 24 } }));
    if (kinds.runAs) {
      const runAs = await connect(`runner@${daemon.address}`, { identity: keyFile, fingerprint: daemon.fingerprint, env: cleanEnv() });
      track(runAs.spawn(workload(kinds.runAs)));
    }
    const classic = netConnect({ host: '127.0.0.1', port: classicPort });
    classic.on('error', () => {});
    t.after(() => classic.destroy());
    classic.write(`${token}\n${workload(kinds.classic!)}\n`);
    for (const [kind, tag] of Object.entries(kinds)) assert.ok(await waitFor(() => bothSleeping(tag), 10_000), `${kind}: the command did not start`);
    if (kinds.runAs) {
      const owner = tagged(kinds.runAs).map((pid) => readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1]);
      assert.ok(owner.every((uid) => uid !== '0'), 'run-as commands run as the account, not root');
    }

    await killDaemonAndCheck(daemon, Object.values(kinds));
    await Promise.all(exits);

    // The next start records what the dead daemon could not (the classic port has no audit rows).
    const again = await startServeCli(home);
    t.after(() => again.kill());
    const rows = lostRows(stateDir);
    for (const [kind, tag] of Object.entries(kinds)) {
      if (kind === 'classic') continue;
      assert.ok(rows.some((command) => command.includes(`.${tag}`)), `${kind}: no "daemon lost" end row (rows: ${rows.join(' | ')})`);
    }
    assert.equal(readdirSync(stateDir).filter((name) => name.startsWith('lost-commands.')).length, 0, 'the lost-commands file is consumed');
    again.child.kill('SIGTERM');
    await again.exited;
    assert.deepEqual(cgroupsOf(again.child.pid!), [], 'a clean stop removes the daemon\'s parent cgroup');
  });

  // Known bug, open: about 1 run in 10 (on the issue-9 build too) the processes are killed but
  // no lost-commands file is written, even after 20 s: the command's note never reaches the
  // supervisor. `todo` keeps it running and reported without failing CI until it is found.
  it('with --containment process-group, the supervisor still kills the process groups', { todo: 'about 1 run in 10 the lost command is not kept (note lost before the supervisor reads it?)' }, async (t) => {
    const home = tempDir();
    t.after(() => removeDir(home));
    const daemon = await startServeCli(home, ['--containment', 'process-group']);
    t.after(() => daemon.kill());
    const token = readFileSync(daemon.tokenFile, 'utf8').trim();
    const conn = await connect(daemon.address, { token, fingerprint: daemon.fingerprint, env: cleanEnv() });
    const tag = newTag();
    allTags.push(tag);
    const proc = conn.spawn(`sleep 600.${tag}`);
    const ended = proc.exited.catch(() => {}); // rejects: the daemon dies under it
    await proc.started;
    assert.ok(await waitFor(() => tagged(tag).length > 0, 10_000));
    await killDaemonAndCheck(daemon, [tag]);
    await ended;
    // The supervisor writes the file after the kill: wait for it.
    const kept = () => existsSync(join(home, 'server')) && readdirSync(join(home, 'server')).some((name) => /^lost-commands\.\d+\.jsonl$/.test(name));
    assert.ok(await waitFor(kept, 5_000), `the supervisor kept the lost command for the audit; daemon stderr: ${daemon.stderr()}`);
  });
});

describe('stopping a channel reaches setsid children (issue 8, item 14)', { skip: !hasCgroups && 'needs a writable cgroup v2' }, () => {
  const tags: string[] = [];
  after(() => killTagged(tags));

  for (const how of ['close', 'timeout', 'disconnect', 'terminal close'] as const) {
    it(`${how}: the whole command dies, setsid'd child included, and its cgroup is removed`, async (t) => {
      const d = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
      t.after(() => d.stop());
      const conn = await d.connect();
      const tag = newTag();
      tags.push(tag);
      const proc = conn.spawn(workload(tag), {
        ...(how === 'timeout' ? { timeout: 300 } : {}),
        ...(how === 'terminal close' ? { pty: { term: 'xterm', cols: 80, rows: 24 } } : {}),
      });
      await proc.started;
      assert.ok(await waitFor(() => bothSleeping(tag), 10_000), 'the command did not start');
      const parent = d.server.containers?.parentDir;
      if (how === 'close' || how === 'terminal close') proc.close();
      if (how === 'disconnect') transportOf(conn).destroy();
      await proc.exited.catch(() => {});
      assert.ok(await waitFor(() => tagged(tag).length === 0, 5_000), `still running: ${tagged(tag).join(' ')}`);
      assert.ok(parent, 'the command ran in a cgroup');
      assert.ok(await waitFor(() => readdirSync(parent).every((name) => !/^c\d+$/.test(name)), 3_000), 'the command\'s cgroup is removed');
      if (how !== 'disconnect') await conn.close();
    });
  }

  it('a command that exits by itself releases what it setsid\'d, and its cgroup is removed', async (t) => {
    const d = await startDaemon({ audit: false });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tag = newTag();
    tags.push(tag);
    // The pause lets setsid() happen before the group gets its end-of-command hang-up (SIGHUP).
    const result = await conn.exec(`setsid sleep 313.${tag} </dev/null >/dev/null 2>&1 & sleep 0.3; echo started`);
    assert.equal(result.stdout.toString(), 'started\n');
    const parent = d.server.containers.parentDir!;
    assert.ok(await waitFor(() => readdirSync(parent).every((name) => !/^c\d+$/.test(name)), 3_000), 'the command\'s cgroup is removed');
    const pids = tagged(tag);
    assert.equal(pids.length, 1, 'the setsid\'d job was released, not killed');
    const own = readFileSync(`/proc/${pids[0]}/cgroup`, 'utf8');
    assert.ok(!own.includes('shellwire.'), `released into the daemon's cgroup: ${own}`);
  });
});
