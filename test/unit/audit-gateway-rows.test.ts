/**
 * Gateway rows in the audit log (issue 13, attack finding 6): operational failures are their
 * own kind, `failed` (so `--kind denied` lists policy refusals only, and `--failed` still
 * shows both), and the table names the host a gateway row went to and, on a host, the
 * operator and gateway a row came through. Also: at a gateway, command rules are matched
 * as written, never against the gateway's own disk (finding 5).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../../src/audit/audit-log.js';
import { formatTable } from '../../src/audit/audit-text.js';
import { checkOpen } from '../../src/auth/policy.js';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import type { OpenRequest } from '../../src/protocol/messages.js';

test('failed rows: their own kind, listed by --failed, not by --kind denied; the table shows HOST / VIA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-audit-gw-'));
  try {
    const log = AuditLog.open(join(dir, 'audit.sqlite'));
    log.record({ kind: 'denied', user: 'alice', osUser: 'deploy', command: 'rm -rf /', detail: { channelKind: 'exec', reason: 'no rule', host: 'web01', as: 'deploy' } });
    log.record({ kind: 'failed', user: 'alice', osUser: 'deploy', command: 'uptime', detail: { channelKind: 'exec', reason: 'cannot reach', host: 'db01', as: 'deploy', outcome: { code: 'SW_ERR_CONNECT_FAILED', message: 'cannot reach' } } });
    log.record({ kind: 'command-end', user: 'deploy', osUser: 'deploy', command: 'uptime', exitCode: 0, detail: { via: 'gateway', operator: 'alice' } });
    assert.deepEqual(log.query({ kind: 'denied' }).map((r) => r.command), ['rm -rf /']);
    assert.deepEqual(log.query({ failed: true }).map((r) => r.kind).sort(), ['denied', 'failed']);
    const lines = formatTable(log.query()).trimEnd().split('\n');
    log.close();
    assert.match(lines[0]!, /^TIME \(UTC\)\s+USER\s+OS USER\s+ADDRESS\s+HOST \/ VIA\s+KIND\s/);
    const byCommand = (kind: string) => lines.find((l) => l.includes(` ${kind} `))!;
    assert.match(byCommand('denied'), /\salice\s+deploy\s+-\s+web01\s+denied\s/);
    assert.match(byCommand('failed'), /\salice\s+deploy\s+-\s+db01\s+failed\s/);
    assert.match(byCommand('command-end'), /\sdeploy\s+deploy\s+-\s+alice via gateway\s+command-end\s/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("checkOpen at a gateway: the operator's kinds and command words only, nothing of this machine", () => {
  const config = parseUsersConfig(
    ['users:', '  carol:', '    channels: [exec]', '    commands: { allow: ["deploy-tool ...", "ls ..."], deny: ["ls /root"] }', '    hosts: [web01]'].join('\n') + '\n',
    'users.yaml',
    { gateway: true },
  );
  const carol = config.users.get('carol')!;
  const exec = (params: Record<string, unknown>) => ({ kind: 'exec', window: 65536, maxPacket: 32768, params }) as unknown as OpenRequest;
  const gw = { where: 'gateway' } as const;
  // A program only the host has; a cwd outside this machine's home of carol.
  assert.deepEqual(checkOpen(carol, exec({ command: 'deploy-tool --now' }), gw), { allowed: true });
  assert.equal(checkOpen(carol, exec({ command: 'deploy-tool --now' })).allowed, false, 'a daemon looks the program up on its own disk');
  assert.deepEqual(checkOpen(carol, exec({ command: 'ls', cwd: '/srv/nowhere-here' }), gw), { allowed: true });
  // Rules hold: deny rules by name and path, relative arguments against a cwd given.
  for (const command of ['ls /root', 'ls //root/', '/bin/ls /root']) assert.equal(checkOpen(carol, exec({ command }), gw).allowed, false, command);
  assert.equal(checkOpen(carol, exec({ command: 'ls root', cwd: '/' }), gw).allowed, false);
  assert.equal(checkOpen(carol, exec({ command: 'cat /etc/passwd' }), gw).allowed, false);
  assert.equal(checkOpen(carol, exec({ command: 'ls; id' }), gw).allowed, false);
  assert.equal(checkOpen(carol, exec({ command: 'ls', pty: { term: 'xterm', cols: 80, rows: 24 } }), gw).allowed, false);
  assert.equal(checkOpen(carol, { kind: 'file', window: 1, maxPacket: 1, params: { op: 'list', path: '/' } } as unknown as OpenRequest, gw).allowed, false);
});

test("a gateway's users.yaml refuses runAs, home and fileRoots: the host's business, named with where they belong", () => {
  for (const [key, value] of [['runAs', 'nosuchaccount-here'], ['home', '/srv/deploy'], ['fileRoots', '[/srv]']] as const) {
    assert.throws(
      () => parseUsersConfig(`users:\n  alice:\n    hosts: ["@web"]\n    ${key}: ${value}\n`, 'g.yaml', { gateway: true }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`users\\.alice\\.${key}: "${key}" belongs in the hosts' users\\.yaml`));
        assert.doesNotMatch(err.message, /no OS account/);
        return true;
      },
    );
  }
  // allowRoot (harmless there) is still taken, as older gateway files have it.
  assert.ok(parseUsersConfig('users:\n  alice:\n    allowRoot: true\n    hosts: ["@web"]\n', 'g.yaml', { gateway: true }).users.has('alice'));
});
