/**
 * A broadcast to 10,000 agents from the client's side: one request, 10,000 signed answers
 * through a real nats-server (published by one stand-in connection that signs each agent's
 * result with that agent's host key, as 10,000 agents would), every answer verified and
 * checked against its known_hosts pin. The client keeps at most 16 KiB per agent (issue 15),
 * measured on the heap after a forced GC with the summary still held.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect as natsConnect } from '@nats-io/transport-node';
import { waitFor } from '../helpers/daemon.js';
import { freePort } from '../helpers/fixtures.js';
import { generateKeyPair, parsePrivateKey } from '../../src/auth/ssh-key.js';
import { createIdentity } from '../../src/auth/identity.js';
import { hostSigner, keySigner, signBroadcastResult } from '../../src/auth/broadcast-auth.js';
import { decodeRequest } from '../../src/protocol/broadcast-codec.js';
import { runBroadcast } from '../../src/fleet/nats-run.js';

const AGENTS = 10_000;
/** The bound on client memory per agent. */
const MAX_BYTES_PER_AGENT = 16 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heap(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('broadcast to 10,000 agents', { timeout: 240_000 }, () => {
  it('collects and verifies 10,000 signed answers with ≤ 16 KiB of client memory per agent', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sw-nats-scale-'));
    const server = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    server.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const agents = await natsConnect({ servers: `nats://127.0.0.1:${port}`, name: 'stand-in agents' }).catch(() => null);
    try {
      assert.ok(await waitFor(() => /Server is ready/.test(log), 10_000), log);
      const fleet = agents ?? await natsConnect({ servers: `nats://127.0.0.1:${port}` });
      const client = await natsConnect({ servers: `nats://127.0.0.1:${port}`, name: 'operator' });
      // Ten host keys shared round-robin (making 10,000 costs time, not coverage): each name pinned to its own.
      const keys = await Promise.all(Array.from({ length: 10 }, (_, i) => createIdentity(`agent-${i}`).then(hostSigner)));
      const names = Array.from({ length: AGENTS }, (_, i) => `agent-${String(i).padStart(5, '0')}`);
      const knownHosts = join(dir, 'known_hosts');
      writeFileSync(knownHosts, names.map((n, i) => `nats:${n} ${keys[i % 10]!.fingerprint}\n`).join(''));
      fleet.subscribe('shellwire.bcast.*', {
        callback: (_e, msg) => {
          const { body } = decodeRequest(msg.data);
          // Each shard's message names only its shard's agents: the key follows the name's number.
          body.targets.forEach((name) => {
            const i = Number(name.slice('agent-'.length));
            fleet.publish(body.replyTo, signBroadcastResult({ v: 1, id: body.id, name, exitCode: 0, signal: null, stdout: '', stderr: '', truncated: false, timedOut: false, durationMs: 3 }, keys[i % 10]!));
          });
        },
      });
      await fleet.flush();
      const operator = parsePrivateKey(generateKeyPair('op').privateText);

      const before = heap();
      const run = runBroadcast(names, 'true', { connection: client, signer: keySigner(operator), user: 'op', knownHostsFile: knownHosts, timeoutMs: 90_000, outputEvents: false });
      const summary = await run.result();
      const perAgent = (heap() - before) / AGENTS;
      assert.equal(summary.ok, AGENTS, JSON.stringify(summary.results.find((r) => r.status !== 'ok')));
      assert.equal(run.dropped, 0);
      process.stdout.write(`# client memory per agent: ${Math.round(perAgent)} bytes (bound ${MAX_BYTES_PER_AGENT}); ${summary.durationMs} ms for ${AGENTS} answers\n`);
      assert.ok(perAgent <= MAX_BYTES_PER_AGENT, `${Math.round(perAgent)} bytes per agent`);
      assert.equal(summary.results.length, AGENTS);
      await client.close();
      await fleet.close();
    } finally {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
