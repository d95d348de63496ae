/**
 * The one table of CLI commands (src/cli/command-table.cts) drives bin/shellwire.cjs: each
 * command runs from the bundle the table names (a cold `shellwire exec` loads only the client
 * bundle), every bundle knows the commands it is given, and a word that is not a command —
 * including the names every JavaScript object inherits — is an unknown command (exit 2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI, runCli } from '../helpers/daemon.js';
import { cleanEnv } from '../helpers/fixtures.js';
import COMMAND_BUNDLES from '../../src/cli/command-table.cjs';

const BUNDLE_FILES = { client: 'dist/shellwire-client.cjs', fleet: 'dist/shellwire-fleet.cjs', full: 'dist/shellwire.cjs' } as const;

/** `shellwire <command> --help`, and the bundles Node loaded for it (NODE_DEBUG=module names each file it loads). */
function helpWithBundles(command: string): Promise<{ code: number | null; stdout: string; bundles: string[] }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, command, '--help'], { env: cleanEnv({ NODE_DEBUG: 'module' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      const bundles = [...stderr.matchAll(/load "[^"]*\/(dist\/shellwire(?:-[a-z]+)?\.cjs)"/g)].map((m) => m[1]!);
      resolvePromise({ code, stdout, bundles: [...new Set(bundles)] });
    });
  });
}

test('every command of the table runs from the bundle the table names, and only that bundle is loaded', async () => {
  const names = Object.keys(COMMAND_BUNDLES) as Array<keyof typeof COMMAND_BUNDLES>;
  assert.ok(names.includes('exec') && names.includes('run') && names.includes('serve'));
  for (const name of names) {
    const run = await helpWithBundles(name);
    assert.equal(run.code, 0, `${name} --help`);
    assert.match(run.stdout, new RegExp(`^Usage: shellwire ${name}\\b`, 'm'), `${name} --help shows its own usage`);
    assert.deepEqual(run.bundles, [BUNDLE_FILES[COMMAND_BUNDLES[name]]], `${name} loads its bundle alone`);
  }
});

test('a word that is not a command is refused as unknown with exit 2, names inherited by every object included', async () => {
  for (const word of ['nosuch', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const run = await runCli([word], { env: cleanEnv() });
    assert.equal(run.code, 2, `${word}: ${run.stderr}`);
    assert.match(run.stderr, new RegExp(`unknown command '${word}'`), word);
  }
});
