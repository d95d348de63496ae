/**
 * The public entry points as a library user's project meets them: `shellwire` (client, fleet
 * runner, errors), `shellwire/server` (the daemon) and `shellwire/audit` (reading and verifying
 * the audit log), resolved through package.json `exports` from a project of its own
 * (node_modules/shellwire is a link to this package, so only dist/ and the exports map are
 * seen, never src/). Programs that use each entry type-check under `strict` without
 * skipLibCheck (the emitted .d.ts files must hold together) and run against a daemon they
 * start; internal names are neither importable nor exported. The README's ```ts examples
 * are type-checked the same way by docs-examples.test.ts. Needs `npm run build` first.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { cleanEnv, removeDir } from '../helpers/fixtures.js';
import { packageProject, userCompilerOptions } from '../helpers/package-project.js';

let project: string;

before(() => {
  project = packageProject('shellwire-exports-', ['index', 'server/index', 'audit/index']);
});
after(() => removeDir(project));

function typeCheck(files: Record<string, string>, skipLibCheck = false): string[] {
  const paths = Object.entries(files).map(([name, text]) => {
    const path = join(project, name);
    writeFileSync(path, text);
    return path;
  });
  const program = ts.createProgram(paths, userCompilerOptions(project, skipLibCheck));
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, ' ');
  });
}

/** A program that uses all three entries: a daemon, a client on it, its audit log verified. */
const PROGRAM = `import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, runOn, CommandError, ErrorCode, type CommandResult, type FleetHost } from 'shellwire';
import { createServer, Server, DEFAULT_LIMITS, type ServerOptions } from 'shellwire/server';
import { AuditLog, auditLogPath, type AuditRow, type VerifyResult } from 'shellwire/audit';

const stateDir = mkdtempSync(join(tmpdir(), 'sw-exports-state-'));
const options: ServerOptions = { host: '127.0.0.1', port: 0, stateDir, limits: { ...DEFAULT_LIMITS, killGraceMs: 500 } };
const server: Server = await createServer(options);
const { port } = await server.listen();
const pin = { token: server.token, fingerprint: server.identity.fingerprint };
const out: Record<string, unknown> = {};
try {
  const conn = await connect({ host: '127.0.0.1', port }, pin);
  const result: CommandResult = await conn.exec(['echo', 'from the package'], { timeoutMs: 5_000, maxBuffer: 1024 });
  out.stdout = result.stdout;
  try {
    await conn.exec('exit 3');
  } catch (err) {
    if (err instanceof CommandError) out.failed = [err.code === ErrorCode.COMMAND_FAILED, err.exitCode];
  }
  await conn.close({ timeoutMs: 1_000 });
  const host: FleetHost = { name: 'one', address: '127.0.0.1', port, labels: {}, groups: [] };
  const summary = await runOn([host], 'echo fleet', { connect: pin, maxBuffer: 100 }).result();
  out.fleet = summary.results.map((r) => r.stdout);
} finally {
  await server.close(500);
}
const log = AuditLog.open(auditLogPath(stateDir), { readonly: true });
const verified: VerifyResult = log.verify();
const rows: AuditRow[] = log.query({ kind: 'command-end' });
out.audit = { ok: verified.ok, commands: rows.length };
log.close();
rmSync(stateDir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(out));
`;

test('a program using shellwire, shellwire/server and shellwire/audit type-checks (no skipLibCheck) and runs', () => {
  const diagnostics = typeCheck({ 'program.ts': PROGRAM });
  assert.deepEqual(diagnostics, []);
  // Run it as the user would after compiling: types stripped, imports through the exports map.
  const js = ts.transpileModule(PROGRAM, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true } }).outputText;
  writeFileSync(join(project, 'program.mjs'), js);
  const run = spawnSync(process.execPath, [join(project, 'program.mjs')], { cwd: project, encoding: 'utf8', env: cleanEnv({ NODE_PATH: '' }), timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.deepEqual(out, {
    stdout: 'from the package\n',
    failed: [true, 3],
    fleet: ['fleet\n'],
    audit: { ok: true, commands: 3 },
  });
});

/** Internal names of each kind: formatters, line splitters, the connect-rate spreader, the channel core, daemon and audit internals. */
const INTERNAL = [
  'StartSpreader', 'formatGrouped', 'formatSummary', 'groupResults', 'prefixLine', 'JsonLines', 'LineSplitter', 'HostLines',
  'Announcer', 'splitTerms', 'connectArgs', 'OutputBuffer', 'resultFromExit', 'ChannelTable', 'FrameConnection', 'collectResult',
  'Server', 'ClassicServer', 'AuditLog', 'putFile', 'getFile',
];

test('internal names are not exported, in the types or at run time, and deep imports are refused', () => {
  const lines = INTERNAL.map((name, i) => `import { ${name} as n${i} } from 'shellwire';\nvoid n${i};`).join('\n');
  const diagnostics = typeCheck({ 'internal.ts': `${lines}\nexport {};\n` }, true);
  for (const name of INTERNAL) {
    assert.ok(diagnostics.some((d) => d.includes(`has no exported member '${name}'`) || d.includes(`has no exported member named '${name}'`)), `${name} is importable from 'shellwire':\n${diagnostics.join('\n')}`);
  }
  const deep = typeCheck({ 'deep.ts': "import { StartSpreader } from 'shellwire/dist/fleet/pool.js';\nvoid StartSpreader;\nexport {};\n" }, true);
  assert.equal(deep.length, 1, deep.join('\n'));
  assert.match(deep[0]!, /Cannot find module 'shellwire\/dist\/fleet\/pool\.js'/);

  const probe = `
    const main = await import('shellwire');
    const server = await import('shellwire/server');
    const audit = await import('shellwire/audit');
    let deep = 'imported';
    try { await import('shellwire/dist/fleet/pool.js'); } catch (err) { deep = err.code; }
    process.stdout.write(JSON.stringify({ main: Object.keys(main), server: Object.keys(server), audit: Object.keys(audit), deep }));
  `;
  writeFileSync(join(project, 'probe.mjs'), probe);
  const run = spawnSync(process.execPath, [join(project, 'probe.mjs')], { cwd: project, encoding: 'utf8', env: cleanEnv({ NODE_PATH: '' }) });
  assert.equal(run.status, 0, run.stderr);
  const { main, server, audit, deep: deepCode } = JSON.parse(run.stdout) as { main: string[]; server: string[]; audit: string[]; deep: string };
  assert.equal(deepCode, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  assert.deepEqual(INTERNAL.filter((name) => main.includes(name)), []);
  for (const name of ['connect', 'Connection', 'RemoteProcess', 'ShellSession', 'runOn', 'ConnectionPool', 'loadInventory', 'resolveTargets', 'discover', 'ShellwireError', 'HostVerificationError', 'CommandError', 'FileTransferError', 'ErrorCode', 'encodeOsBytes', 'decodeOsBytes']) {
    assert.ok(main.includes(name), `'shellwire' exports ${name}`);
  }
  for (const name of ['createServer', 'Server', 'ClassicServer', 'DEFAULT_LIMITS']) assert.ok(server.includes(name), `'shellwire/server' exports ${name}`);
  for (const name of ['AuditLog', 'auditLogPath']) assert.ok(audit.includes(name), `'shellwire/audit' exports ${name}`);
});

test("Connection's channel plumbing is not part of its public type", () => {
  const diagnostics = typeCheck({
    'plumbing.ts': `import type { Connection } from 'shellwire';
declare const conn: Connection;
// @ts-expect-error the channel table's door is internal
conn.openChannel;
// @ts-expect-error the frame connection is internal
conn.conn;
export {};
`,
  }, true);
  assert.deepEqual(diagnostics, []);
});
