/** `shellwire hosts` without an inventory: name the file looked for and how to make one, not "0 hosts". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';
import { cleanEnv, tempDir, removeDir } from '../helpers/fixtures.js';

test('hosts with no inventory names the missing file and how to make one (exit 1), for a group too (exit 2)', async () => {
  const home = tempDir('shellwire-hosts-');
  const env = cleanEnv({ SHELLWIRE_HOME: home });
  const file = join(home, 'inventory.yaml');
  try {
    const all = await runCli(['hosts'], { env });
    assert.equal(all.code, 1, all.stderr);
    assert.ok(all.stderr.includes(`no inventory: ${file} does not exist`), all.stderr);
    assert.match(all.stderr, /hosts:\n\s+web01: \{ address: /);
    assert.match(all.stderr, /--inventory FILE/);
    assert.doesNotMatch(all.stderr, /^0 hosts$/m);

    const group = await runCli(['hosts', '@web'], { env });
    assert.equal(group.code, 2);
    assert.match(group.stderr, /no group "web"/);
    assert.ok(group.stderr.includes(`no inventory: ${file} does not exist`), group.stderr);

    const adHoc = await runCli(['hosts', '127.0.0.1:50007'], { env });
    assert.equal(adHoc.code, 0, 'ad-hoc HOST:PORT needs no inventory');
    assert.match(adHoc.stderr, /^1 host$/m);
  } finally {
    removeDir(home);
  }
});
