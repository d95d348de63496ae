/**
 * Recording through a real `shellwire gateway` process (issue 13 item 4, docs/gateway.md):
 * two real daemons trust the gateway's key with `actAs`; operators drive the library through
 * the gateway (`connect(host, { via })`) and the CLI (`recordings`/`replay --via`). What must hold:
 * a terminal becomes `<state dir>/recordings/<id>.cast` referenced by its audit row with the
 * file's SHA-256 and `audit verify --state-dir` checks it (and names it once edited); exec
 * output is recorded byte-exact only with `record.output`; the `recordings`/`recording` ops
 * show an operator her own (`recordings: all` everyone's) and stream within the window;
 * recordings past `--recording-retention` are pruned at start.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import { rawChannel, type Connection } from '../../src/client/connection.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import type { AuditRow } from '../../src/audit/audit-event.js';
import { FileRecordingStore, type RecordingInfo, type RecordingStore } from '../../src/audit/recording.js';
import { readExecOutput } from '../../src/audit/exec-output.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { CLI, runCli, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, resizeAndType, setHostUsers, startGatewayProcess, type KeyFile } from '../helpers/gateway.js';
import { COLOUR_RESIZE_PROGRAM, hasTmux, TmuxPane } from '../helpers/tmux.js';
import { parseCast } from '../../src/audit/asciicast.js';

/**
 * One `gateway` op: its STDOUT bytes, or the OPEN_FAIL. `window` is the credit we give; we
 * return it only `creditDelayMs` after each piece, so a gateway that sent past it would make
 * our channel layer fail the connection (SW_ERR_WINDOW_OVERRUN).
 */
function gatewayOp(conn: Connection, params: Record<string, unknown>, window = 1 << 20, creditDelayMs = 0): Promise<{ out: Buffer; fail?: { code: string; message: string }; most: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let outstanding = 0;
    let most = 0;
    const channel = conn[rawChannel]({ kind: 'gateway', window, maxPacket: 65536, params } as never, {
      onData: (_s, bytes) => {
        chunks.push(Buffer.from(bytes));
        outstanding += bytes.length;
        most = Math.max(most, outstanding);
        const give = () => {
          outstanding -= bytes.length;
          channel.consumed(bytes.length);
        };
        if (creditDelayMs > 0) setTimeout(give, creditDelayMs);
        else give();
      },
      onExit: () => {},
      onClose: (reason, detail) => {
        if (detail.openFail) return resolve({ out: Buffer.alloc(0), fail: { code: detail.openFail.code, message: detail.openFail.message }, most });
        if (reason !== 'normal') return reject(detail.error ?? new Error(reason));
        resolve({ out: Buffer.concat(chunks), most });
      },
    });
  });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('a gateway process records sessions and exec output', { timeout: 120_000 }, () => {
  let dir: string;
  let gwDir: string;
  let recDir: string;
  const hosts: TestDaemon[] = [];
  let child: ChildProcess;
  let port = 0;
  let fingerprint = '';
  let stderr = '';
  const keys: Record<string, KeyFile> = {};
  /** A recording planted before the start, 200 days old (retention is 30 days). */
  let oldId = '';
  let inventory = '';
  /** One planted 10 days old: kept. */
  let youngId = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-gw-rec-'));
    gwDir = join(dir, 'gateway');
    recDir = join(gwDir, 'recordings');
    for (const name of ['alice', 'bob', 'carol']) keys[name] = keyFile(dir, name);
    // The gateway process's key, and that of the in-process gateway of the shutdown test.
    const gwKeys = [loadOrCreateGatewayKey(gwDir).publicLine, loadOrCreateGatewayKey(join(dir, 'gateway-lib')).publicLine];
    const hostUsers = hostUsersText(gwKeys, ['alice', 'bob', 'carol']);
    for (let i = 0; i < 2; i++) {
      const d = await startDaemon();
      setHostUsers(d, hostUsers);
      hosts.push(d);
    }
    inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, ['hosts:', `  web01: { address: 127.0.0.1, port: ${hosts[0]!.port} }`, `  web02: { address: 127.0.0.1, port: ${hosts[1]!.port} }`].join('\n') + '\n');
    writeFileSync(
      join(gwDir, 'users.yaml'),
      [
        'users:',
        '  alice:',
        '    allowRoot: true',
        `    keys: ["${keys.alice!.line}"]`,
        '    hosts: ["web01", "web02"]',
        '    record: { output: true }',
        '  bob:',
        '    allowRoot: true',
        `    keys: ["${keys.bob!.line}"]`,
        '    hosts: ["web02"]',
        '    record: { input: true }',
        '  carol:',
        '    allowRoot: true',
        `    keys: ["${keys.carol!.line}"]`,
        '    hosts: ["web01"]',
        '    recordings: all',
      ].join('\n') + '\n',
    );
    // Recordings made by an earlier run of the gateway: one past the retention, one within it.
    const plant = (daysAgo: number) => {
      const store = new FileRecordingStore(gwDir, { now: () => new Date(Date.now() - daysAgo * 86_400_000) });
      const rec = store.startTerminal({ operator: 'alice', host: 'web01', as: 'alice', command: null, cols: 80, rows: 24, term: 'xterm', recordInput: false });
      rec.output(Buffer.from(`${daysAgo} days ago\r\n`));
      return rec.end();
    };
    oldId = (await plant(200)).id;
    youngId = (await plant(10)).id;
    const started = await startGatewayProcess(['--state-dir', gwDir, '--inventory', inventory, '--recording-retention', '30', '--log-level', 'info'], (text) => (stderr += text));
    ({ child, port, fingerprint } = started);
    const banner = started.banner;
    assert.match(banner, new RegExp(`recordings: ${recDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(kept 30 days\\)`));
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    for (const d of hosts) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The library through the gateway process: `connect(host, { via })`. */
  const login = (user: string, host: string) =>
    connect(host, { via: { user, host: '127.0.0.1', port }, identity: keys[user]!.file, fingerprint, env: {} });

  /** The gateway's audit rows (read-only, beside the running gateway). */
  function auditRows(): AuditRow[] {
    const log = AuditLog.open(auditLogPath(gwDir), { readonly: true });
    try {
      return log.query();
    } finally {
      log.close();
    }
  }

  async function endRow(match: (row: AuditRow) => boolean): Promise<AuditRow> {
    let found: AuditRow | undefined;
    assert.ok(await waitFor(() => (found = auditRows().find((r) => r.kind === 'command-end' && match(r))) !== undefined, 5_000), 'the end row was written');
    return found!;
  }

  const files = () => (existsSync(recDir) ? readdirSync(recDir) : []);

  it('prunes recordings past --recording-retention at start, and logs it; younger ones stay', async () => {
    assert.ok(!existsSync(join(recDir, `${oldId}.cast`)), 'the 200-day-old recording is gone');
    assert.ok(!existsSync(join(recDir, `${oldId}.json`)));
    assert.ok(existsSync(join(recDir, `${oldId}.pruned`)), 'a note says retention removed it');
    assert.ok(existsSync(join(recDir, `${youngId}.cast`)), 'the 10-day-old one is kept');
    // The log is written asynchronously (pino): it may follow the banner the start waited for.
    await waitFor(() => /recordings: removed 1 older than 30 days/.test(stderr), 5_000);
    assert.match(stderr, /recordings: removed 1 older than 30 days/);
  });

  let aliceCast = '';

  it('a terminal becomes a .cast (output, resize, no input) referenced by its audit row; audit verify checks it and names it once edited', async () => {
    const before = new Set(files());
    const conn = await login('alice', 'web01');
    try {
      const out = await resizeAndType(conn, 'secret');
      assert.match(out, /got secret/);
    } finally {
      await conn.close();
    }
    const row = await endRow((r) => r.user === 'alice' && (r.command ?? '').includes('stty size'));
    const ref = row.detail!.recording as { id: string; sha256: string };
    assert.ok(ref, `the end row references the recording: ${JSON.stringify(row.detail)}`);
    const made = files().filter((f) => !before.has(f));
    assert.deepEqual(made.sort(), [`${ref.id}.cast`, `${ref.id}.json`]);
    aliceCast = join(recDir, `${ref.id}.cast`);
    const cast = readFileSync(aliceCast);
    assert.equal(sha256(cast), ref.sha256, 'the row holds the SHA-256 of the file');
    const [header, ...events] = cast.toString('utf8').trimEnd().split('\n');
    assert.deepEqual({ ...JSON.parse(header!), timestamp: 0 }, { version: 2, width: 80, height: 24, timestamp: 0, command: 'stty size; read line; stty size; echo "got $line"', title: 'alice@web01', env: { TERM: 'xterm' } });
    const parsed = events.map((l) => JSON.parse(l) as [number, string, string]);
    assert.deepEqual(parsed.filter((e) => e[1] === 'r').map((e) => e[2]), ['100x40']);
    assert.equal(parsed.filter((e) => e[1] === 'i').length, 0, 'no input: alice has no record.input');
    assert.match(parsed.filter((e) => e[1] === 'o').map((e) => e[2]).join(''), /24 80[\s\S]*40 100[\s\S]*got secret/);

    const ok = await runCli(['audit', 'verify', '--state-dir', gwDir]);
    assert.equal(ok.code, 0, ok.stdout.toString() + ok.stderr);
    assert.match(ok.stdout.toString(), /recordings intact: [1-9]/);

    // One byte changed: verify fails, naming the recording.
    const edited = Buffer.from(cast);
    const at = edited.indexOf('got secret');
    edited[at] = 'G'.charCodeAt(0);
    writeFileSync(aliceCast, edited);
    try {
      const bad = await runCli(['audit', 'verify', '--state-dir', gwDir]);
      assert.equal(bad.code, 1, bad.stdout.toString());
      assert.match(bad.stdout.toString(), new RegExp(`recording NOT intact: recording ${ref.id} \\(row ${row.id}\\) was changed`));
    } finally {
      writeFileSync(aliceCast, cast);
    }
  });

  it('record.input: a terminal records what the operator typed too', async () => {
    const conn = await login('bob', 'web02');
    try {
      const proc = conn.spawn('read line; echo "read $line"', { pty: { term: 'xterm', cols: 80, rows: 24 } });
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      proc.stdin.write('typed\n');
      await proc.exited;
      assert.match(out, /read typed/);
    } finally {
      await conn.close();
    }
    const row = await endRow((r) => r.user === 'bob' && (r.command ?? '').startsWith('read line'));
    const ref = row.detail!.recording as { id: string; sha256: string };
    const cast = readFileSync(join(recDir, `${ref.id}.cast`));
    assert.equal(sha256(cast), ref.sha256);
    const input = cast.toString('utf8').trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'i');
    assert.equal(input.map((e) => e[2]).join(''), 'typed\n');
  });

  let aliceOut = '';
  let bigOut = Buffer.alloc(0);

  it('record.output: exec stdout and stderr are recorded byte-exact (not UTF-8) and referenced; without it, nothing is', async () => {
    const conn = await login('alice', 'web02');
    let r;
    try {
      r = await conn.exec(['/bin/sh', '-c', "printf 'a\\377\\376\\000b'; printf 'e\\300\\n' >&2; printf '\\351'; exit 3"], { reject: false });
    } finally {
      await conn.close();
    }
    assert.equal(r.exitCode, 3);
    const row = await endRow((r) => r.user === 'alice' && r.exitCode === 3);
    const ref = row.detail!.recording as { id: string; sha256: string };
    assert.ok(ref, JSON.stringify(row.detail));
    aliceOut = ref.id;
    const file = readFileSync(join(recDir, `${ref.id}.out`));
    assert.equal(sha256(file), ref.sha256);
    const records = readExecOutput(file);
    const of = (stream: string) => Buffer.concat(records.filter((x) => x.stream === stream).map((x) => x.data));
    assert.deepEqual(of('stdout'), Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62, 0xe9]));
    assert.deepEqual(of('stderr'), Buffer.from([0x65, 0xc0, 0x0a]));
    assert.ok(of('stdout').equals(r.stdoutBytes));

    // bob has no record.output: his command has a row, but no recording.
    const before = new Set(files());
    const bobConn = await login('bob', 'web02');
    try {
      assert.equal((await bobConn.exec("printf 'not recorded'")).stdout, 'not recorded');
    } finally {
      await bobConn.close();
    }
    const bobRow = await endRow((r) => r.user === 'bob' && r.command === "printf 'not recorded'");
    assert.equal(bobRow.detail!.recording, undefined);
    assert.deepEqual(files().filter((f) => !before.has(f)), []);

    // A larger output for the streaming test below (1 MiB of random bytes).
    const big = await login('alice', 'web01');
    try {
      bigOut = (await big.exec('head -c 1048576 /dev/urandom')).stdoutBytes;
    } finally {
      await big.close();
    }
    assert.equal(bigOut.length, 1 << 20);
  });

  it('ops recordings/recording: an operator sees and fetches her own; recordings: all sees everyone\'s; another\'s id is refused like an unknown one', async () => {
    const alice = await login('alice', 'web01');
    const bob = await login('bob', 'web02');
    const carol = await login('carol', 'web01');
    try {
      const list = async (conn: Connection) => JSON.parse((await gatewayOp(conn, { op: 'recordings' })).out.toString('utf8')) as RecordingInfo[];
      const mine = await list(alice);
      assert.ok(mine.length >= 4, JSON.stringify(mine));
      assert.ok(mine.every((i) => i.operator === 'alice'));
      assert.ok(mine.some((i) => i.id === aliceOut && i.type === 'exec'));
      const bobs = await list(bob);
      assert.ok(bobs.length >= 1 && bobs.every((i) => i.operator === 'bob'));
      const all = await list(carol);
      assert.deepEqual(new Set(all.map((i) => i.operator)), new Set(['alice', 'bob']));
      assert.equal(all.length, mine.length + bobs.length);
      // Asking for someone else's list without recordings: all is denied.
      const denied = await gatewayOp(alice, { op: 'recordings', user: 'bob' });
      assert.equal(denied.fail?.code, 'SW_ERR_DENIED');

      // Her own recording, byte for byte.
      const own = await gatewayOp(alice, { op: 'recording', id: aliceOut });
      assert.equal(own.fail, undefined);
      assert.ok(own.out.equals(readFileSync(join(recDir, `${aliceOut}.out`))));
      // bob asking for alice's id gets what an id that does not exist gets.
      const other = await gatewayOp(bob, { op: 'recording', id: aliceOut });
      const unknown = await gatewayOp(bob, { op: 'recording', id: '20200101T000000Z-00000000' });
      assert.equal(other.fail?.code, 'SW_ERR_NO_RECORDING');
      assert.equal(unknown.fail?.code, 'SW_ERR_NO_RECORDING');
      assert.equal(other.fail!.message.replace(aliceOut, 'ID'), unknown.fail!.message.replace('20200101T000000Z-00000000', 'ID'));
      assert.doesNotMatch(other.fail!.message, /recordings\//, 'no gateway path in the answer');
      // carol (recordings: all) may fetch it.
      const audited = await gatewayOp(carol, { op: 'recording', id: aliceOut });
      assert.ok(audited.out.equals(own.out));

      // A 1 MiB recording streamed to a reader granting 16 KiB at a time, returned slowly:
      // the gateway keeps within the window (else our channel fails the connection).
      const bigInfo = mine.find((i) => i.type === 'exec' && i.bytes > 1 << 20);
      assert.ok(bigInfo, 'the 1 MiB exec recording is listed');
      const streamed = await gatewayOp(alice, { op: 'recording', id: bigInfo.id }, 16_384, 2);
      assert.equal(streamed.fail, undefined);
      assert.ok(streamed.most <= 16_384, `never more than the window outstanding (${streamed.most})`);
      const file = readFileSync(join(recDir, `${bigInfo.id}.out`));
      assert.ok(streamed.out.equals(file), 'the file byte for byte');
      const records = readExecOutput(streamed.out);
      assert.ok(Buffer.concat(records.map((x) => x.data)).equals(bigOut));
    } finally {
      await Promise.all([alice.close(), bob.close(), carol.close()]);
    }
    // Who fetched whose recording is audited at the gateway, and so is a refused fetch.
    const rows = auditRows();
    const replayed = (who: string) => rows.filter((r) => r.kind === 'file' && r.user === who && (r.detail?.replayed as { id?: string } | undefined)?.id === aliceOut);
    assert.equal(replayed('carol').length, 1);
    assert.deepEqual(replayed('carol')[0]!.detail!.replayed, { id: aliceOut, operator: 'alice', host: 'web02' });
    assert.equal(replayed('alice').length, 1);
    const refused = rows.filter((r) => r.kind === 'denied' && r.user === 'bob' && r.detail?.op === 'recording');
    assert.deepEqual(refused.map((r) => r.detail!.id).sort(), ['20200101T000000Z-00000000', aliceOut].sort());
  });

  it('the CLI through the gateway: recordings --via lists her own, replay --via plays a terminal and exact exec bytes, another\'s id is refused', async () => {
    const home = join(dir, 'cli-home');
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, SHELLWIRE_HOME: join(home, '.shellwire') };
    delete env.SSH_AUTH_SOCK;
    const via = (user: string) => ['--via', `${user}@127.0.0.1:${port}`, '-i', keys[user]!.file, '--accept-new-host'];
    const list = await runCli(['recordings', ...via('alice'), '--json'], { env });
    assert.equal(list.code, 0, list.stderr);
    const infos = list.stdout.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as RecordingInfo);
    assert.ok(infos.length >= 4 && infos.every((i) => i.operator === 'alice'), list.stdout.toString());
    const ttyId = aliceCast.slice(aliceCast.lastIndexOf('/') + 1, -'.cast'.length);
    assert.ok(infos.some((i) => i.id === ttyId) && infos.some((i) => i.id === aliceOut));

    const tty = await runCli(['replay', ttyId, ...via('alice'), '--no-wait'], { env, timeoutMs: 10_000 });
    assert.equal(tty.code, 0, tty.stderr);
    const shown = readFileSync(aliceCast, 'utf8').trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]).filter((e) => e[1] === 'o').map((e) => e[2]).join('');
    assert.equal(tty.stdout.toString('utf8'), shown);
    const exec = await runCli(['replay', aliceOut, ...via('alice')], { env, timeoutMs: 10_000 });
    assert.equal(exec.code, 0, exec.stderr);
    assert.deepEqual(exec.stdout, Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62, 0xe9]));

    const refused = await runCli(['replay', aliceOut, ...via('bob')], { env, timeoutMs: 10_000 });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /No recording "[^"]+" for bob on this gateway/);
  });

  it('audit verify on the gateway state dir: every recording the rows reference is intact', async () => {
    assert.ok(aliceCast !== '');
    const ok = await runCli(['audit', 'verify', '--state-dir', gwDir]);
    assert.equal(ok.code, 0, ok.stdout.toString() + ok.stderr);
    assert.match(ok.stdout.toString(), /recordings intact: [3-9]/);
  });

  // Issue 13 item 6: a tty session through the real gateway, driven in tmux with the real CLI,
  // replayed with `replay --via` in a second pane of the final size: the same screen, colours included.
  it('shellwire tty --via in tmux is recorded at the gateway; replay --via shows the same screen', { skip: !hasTmux && 'tmux not installed' }, async () => {
    const home = join(dir, 'tty-home');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    // The gateway pinned ahead, so no "Permanently added" line lands on the recorded screen.
    writeFileSync(join(home, 'known_hosts'), `127.0.0.1:${port} ${fingerprint}\n`, { mode: 0o600 });
    const quote = (word: string) => `'${word.replace(/'/g, "'\\''")}'`;
    const cli = `SHELLWIRE_HOME=${quote(home)} TERM=xterm-256color ${process.execPath} ${CLI}`;
    const login = `--via alice@127.0.0.1:${port} -i ${quote(keys.alice!.file)}`;
    const before = new Set(new FileRecordingStore(gwDir).list({ operator: 'alice' }).map((r) => r.id));
    const shown = new TmuxPane(`${cli} tty ${login} web01 -- ${quote(COLOUR_RESIZE_PROGRAM)}; sleep 60`, 80, 24);
    try {
      assert.ok(await shown.shows(/before=24 80/, 15_000), `the program runs in the remote terminal:\n${shown.screen()}`);
      execFileSync('tmux', ['resize-window', '-t', shown.name, '-x', '100', '-y', '30']);
      assert.ok(await shown.shows(/after=30 100[\s\S]*done/), `the resize reaches the program:\n${shown.screen()}`);
      let id = '';
      assert.ok(await waitFor(() => {
        const made = new FileRecordingStore(gwDir).list({ operator: 'alice' }).find((r) => !before.has(r.id) && r.durationMs !== null);
        id = made?.id ?? '';
        return id !== '';
      }, 10_000), 'the gateway finished a recording of the session');
      const cast = parseCast(readFileSync(join(recDir, `${id}.cast`), 'utf8'));
      assert.deepEqual([cast.header.width, cast.header.height], [80, 24]);
      assert.deepEqual(cast.events.filter((e) => e[1] === 'r').map((e) => e[2]), ['100x30']);

      const replayed = new TmuxPane(`${cli} replay ${id} --no-wait ${login}; sleep 60`, 100, 30);
      try {
        assert.ok(await replayed.shows(/done/, 15_000), `the replay prints:\n${replayed.screen()}`);
        // The screens up to the program's last line: what the tty client prints after the
        // session ends (and the replay after the recording) is not part of the session.
        const upToDone = (screen: string) => screen.slice(0, screen.indexOf('\n', screen.indexOf('done')));
        const original = upToDone(shown.screenWithAttributes());
        assert.ok(original.includes('\x1b[31mRED'), `the colours are on the original screen:\n${original}`);
        assert.equal(upToDone(replayed.screenWithAttributes()), original);
      } finally {
        replayed.close();
      }
    } finally {
      shown.close();
    }
  });

  it('a gateway closing mid-session still writes the end row with the recording before its audit log closes', async () => {
    const libDir = join(dir, 'gateway-lib');
    writeFileSync(join(libDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${keys.alice!.line}"]`, '    hosts: ["web01"]'].join('\n') + '\n');
    // The real store on a slow disk: finishing a recording takes 300 ms (the file's last writes).
    const store = new FileRecordingStore(libDir);
    const slow: RecordingStore = {
      startTerminal: (meta) => {
        const rec = store.startTerminal(meta);
        return { id: rec.id, output: (c) => rec.output(c), input: (c) => rec.input(c), resize: (c, r) => rec.resize(c, r), end: async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return rec.end();
        } };
      },
      startExecOutput: (meta) => store.startExecOutput(meta),
      list: (filter) => store.list(filter),
      open: (id) => store.open(id),
      prune: (days) => store.prune(days),
    };
    const gateway = await Gateway.create({ stateDir: libDir, host: '127.0.0.1', port: 0, inventory, recordings: slow });
    const libPort = (await gateway.listen()).port;
    const conn = await connect('web01', { via: { user: 'alice', host: '127.0.0.1', port: libPort }, identity: keys.alice!.file, fingerprint: gateway.server.identity.fingerprint, env: {} });
    try {
      const proc = conn.spawn('echo running; exec sleep 300', { pty: { term: 'xterm', cols: 80, rows: 24 } });
      proc.exited.catch(() => {});
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      assert.ok(await waitFor(() => out.includes('running'), 5_000));
      await gateway.close(0);
    } finally {
      conn.destroy();
    }
    const log = AuditLog.open(auditLogPath(libDir), { readonly: true });
    let rows: AuditRow[];
    try {
      rows = log.query({ kind: 'command-end' });
    } finally {
      log.close();
    }
    const end = rows.find((r) => r.command === 'echo running; exec sleep 300');
    assert.ok(end, 'the end row was written');
    const ref = end.detail!.recording as { id: string; sha256: string };
    assert.ok(ref, JSON.stringify(end.detail));
    assert.equal(sha256(readFileSync(join(libDir, 'recordings', `${ref.id}.cast`))), ref.sha256);
  });
});

describe('shellwire gateway --recording-retention', () => {
  it('takes a number of days above 0, and says so otherwise (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shellwire-gw-ret-'));
    try {
      for (const bad of ['0', '-1', 'ninety', '']) {
        const r = await runCli(['gateway', '--listen', '127.0.0.1:0', '--state-dir', dir, '--recording-retention', bad]);
        assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /--recording-retention takes a number of days above 0 \(default 90\)/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
