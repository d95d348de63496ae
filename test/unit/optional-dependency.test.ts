/**
 * The message for a native addon that cannot load: "not installed" only when the package
 * itself is missing; an addon that is there but broken (built for another Node.js, a file of
 * its own missing) asks for a rebuild; the install command is global for a global shellwire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { installCommand, isNotInstalled, missingDependencyError } from '../../src/optional-dependency.js';
import { ErrorCode, UsageError } from '../../src/errors.js';

function requireError(name: string): unknown {
  try {
    createRequire(import.meta.url)(name);
  } catch (err) {
    return err;
  }
  throw new Error(`${name} loaded`);
}

test('a package that is not there: install it', async () => {
  await assert.rejects(import('shellwire-no-such-package'), (err) => isNotInstalled(err, 'shellwire-no-such-package'));
  // Node's own wording, from require() and from import(): the classifier must read both.
  assert.ok(isNotInstalled(requireError('shellwire-no-such-package'), 'shellwire-no-such-package'));
  const missing = Object.assign(new Error("Cannot find module 'better-sqlite3'\nRequire stack:\n- /x.cjs"), { code: 'MODULE_NOT_FOUND' });
  const error = missingDependencyError('better-sqlite3', missing, '/srv/app/node_modules/shellwire/dist');
  assert.ok(error instanceof UsageError);
  assert.equal(error.code, ErrorCode.MISSING_DEPENDENCY);
  assert.equal(error.message, "The daemon's audit log needs the better-sqlite3 package, which is not installed: npm install better-sqlite3");
  assert.equal(error.cause, missing);
  const esm = Object.assign(new Error("Cannot find package 'node-pty' imported from /x.js"), { code: 'ERR_MODULE_NOT_FOUND' });
  assert.ok(isNotInstalled(esm, 'node-pty'));
});

test('a package that is there but does not load: rebuild it, with the first line of the reason', () => {
  const ownFile = Object.assign(new Error("Cannot find module '../build/Release/pty.node'\nRequire stack:\n- /x/node-pty/lib/index.js"), { code: 'MODULE_NOT_FOUND' });
  assert.equal(isNotInstalled(ownFile, 'node-pty'), false);
  const abi = new Error("The module '/x/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 127.");
  const error = missingDependencyError('better-sqlite3', abi);
  assert.equal(
    error.message,
    `The daemon's audit log needs the better-sqlite3 package, which is installed but did not load (The module '/x/better_sqlite3.node'): npm rebuild better-sqlite3, or reinstall it with this Node.js ${process.version}`,
  );
});

test('the install command is global for a globally installed shellwire', () => {
  assert.equal(installCommand('node-pty', '/usr/lib/node_modules/shellwire/dist/shellwire.cjs'), 'npm install -g node-pty');
  assert.equal(installCommand('node-pty', '/home/me/.npm-global/lib/node_modules/shellwire/dist/native-require.cjs'), 'npm install -g node-pty');
  assert.equal(installCommand('node-pty', '/srv/app/node_modules/shellwire/dist/shellwire.cjs'), 'npm install node-pty');
});
