import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, runCli } from '../helpers/daemon.js';

test('IPv6: the daemon listens on [::1] and both the library and the CLI reach it', async () => {
  const d = await startDaemon({ host: '::1' });
  try {
    assert.equal(d.address, `[::1]:${d.port}`);
    const conn = await d.connect();
    assert.equal((await conn.exec('echo v6')).stdout, 'v6\n');
    await conn.close();
    const r = await runCli(['exec', d.address, '--', 'echo', 'cli-v6'], { env: d.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'cli-v6\n');
  } finally {
    await d.stop();
  }
});
