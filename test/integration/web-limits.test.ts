/**
 * The web console's limits and the answers at their edges (issue 14 review findings 1, 5,
 * 6, 7): a real gateway with its console (in process, small limits) in front of two real
 * daemons, spoken to over HTTPS and WebSocket by hand. WebSockets per session and per user
 * (terminals apart) refused at the upgrade with 429 naming the limit and counted back when
 * they close; a flood of terminal opens answered, every one, without ending anyone's session;
 * the file-descriptor reserve (503); an oversized terminal message dropped with an error while
 * the shell goes on; a push in another content type refused (415) before a host hears of it;
 * errors naming the gateway by its real address.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import '../../src/web/web-console.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { hashPassword } from '../../src/auth/password.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { removeDir, tempDir } from '../helpers/fixtures.js';
import { webClient, webLogin, webRequest, wsClosed, wsConnect, type WebClient } from '../helpers/web-http.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON messages of the console, read field by field
type Json = Record<string, any>;

function collect(ws: WebSocket): { texts: Json[]; bytes: () => Buffer; closed: Promise<{ code: number; reason: string }> } {
  const texts: Json[] = [];
  const chunks: Buffer[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) chunks.push(Buffer.from(data));
    else texts.push(JSON.parse(data.toString('utf8')) as Json);
  });
  return { texts, bytes: () => Buffer.concat(chunks), closed: wsClosed(ws) };
}

describe('web console limits', { timeout: 120_000 }, () => {
  let dir: string;
  let gwDir: string;
  const hosts: TestDaemon[] = [];
  const homes: string[] = [];
  let gateway: Gateway;
  let gwPort: number;
  let port: number;
  let ca: string;
  let inventory: string;

  before(async () => {
    dir = tempDir('shellwire-weblimits-');
    gwDir = join(dir, 'gateway');
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    for (let i = 0; i < 2; i++) {
      const d = await startDaemon({ host: `127.0.0.${i + 2}` });
      const home = join(dir, `h${i + 1}`);
      mkdirSync(join(home, 'up'), { recursive: true });
      homes.push(home);
      writeFileSync(join(d.server.stateDir, 'users.yaml'), [
        'users:', '  gateway:', `    keys: ${JSON.stringify([gwKey])}`, '    actAs: [alice, bob]',
        ...['alice', 'bob'].flatMap((u) => [`  ${u}:`, '    allowRoot: true', `    home: ${home}`, `    fileRoots: [${home}]`]),
      ].join('\n') + '\n');
      assert.ok(d.server.reloadUsers().ok);
      hosts.push(d);
    }
    inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, [
      'hosts:',
      `  web01: { address: 127.0.0.2, port: ${hosts[0]!.port}, groups: [web] }`,
      `  web02: { address: 127.0.0.3, port: ${hosts[1]!.port}, groups: [web] }`,
      `  secret01: { address: 127.0.0.2, port: ${hosts[0]!.port} }`,
      '  down01: { address: 127.0.0.9, port: 9, groups: [web] }',
    ].join('\n') + '\n');
    const hash = await hashPassword('pw');
    writeFileSync(join(gwDir, 'users.yaml'), [
      'settings:', '  passwordLogin: true', 'users:',
      '  alice:', '    allowRoot: true', `    password: "${hash}"`, '    hosts: ["@web"]',
      '  bob:', '    allowRoot: true', `    password: "${hash}"`, '    hosts: ["web01"]',
    ].join('\n') + '\n');
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, hostConnectTimeoutMs: 2_000,
      web: { host: '127.0.0.1', port: 0, limits: { socketsPerSession: 3, socketsPerUser: 4, terminalsPerUser: 2, opensPerUser: 1 } },
    });
    gwPort = (await gateway.listen()).port;
    port = gateway.webAddress!.port;
    ca = gateway.server.identity.certPem;
  });

  after(async () => {
    await gateway?.close(500);
    for (const d of hosts) await d.stop().catch(() => {});
    removeDir(dir);
  });

  const login = async (user: string): Promise<WebClient> => {
    const client = webClient(port, ca);
    const answer = await webLogin(client, user, 'pw');
    assert.equal(answer.status, 200, answer.body.toString());
    return client;
  };
  const terminal = (client: WebClient, host = 'web01') => wsConnect(client, `/api/terminal?host=${host}&cols=80&rows=24`);
  /** Output of each terminal socket so far (to wait for its prompt before closing it). */
  const output = new WeakMap<WebSocket, Buffer[]>();
  const watch = (ws: WebSocket) => {
    const chunks: Buffer[] = [];
    output.set(ws, chunks);
    ws.on('message', (data: Buffer, isBinary: boolean) => void (isBinary && chunks.push(Buffer.from(data))));
    return ws;
  };
  const opened = async (client: WebClient, path: string) => {
    const outcome = await wsConnect(client, path);
    assert.ok('ws' in outcome, `${path}: ${JSON.stringify(outcome)}`);
    return watch(outcome.ws);
  };
  /**
   * Close them, each terminal after its shell's prompt: a login shell killed while it starts
   * can leave a tool's lock behind (pyenv's rehash lock, here), stalling every later shell.
   */
  const closeAll = async (sockets: WebSocket[]) => {
    await Promise.all(sockets.map(async (ws) => {
      const chunks = output.get(ws);
      if (chunks && ws.readyState === WebSocket.OPEN) await waitFor(() => /[#$] $/.test(Buffer.concat(chunks).toString('latin1')), 20_000);
      const closed = wsClosed(ws);
      ws.close();
      return closed;
    }));
  };

  it('WebSockets per session, per user and terminals per user are capped at the upgrade (429 naming the limit), and counted back', async () => {
    const a1 = await login('alice');
    const a2 = await login('alice');
    const held: WebSocket[] = [];
    try {
      held.push(await opened(a1, '/api/terminal?host=web01'), await opened(a1, '/api/terminal?host=web02'));
      // A third terminal: past her 2 terminals.
      const third = await terminal(a2);
      assert.ok('refused' in third, 'a third terminal opened');
      assert.equal(third.refused, 429);
      assert.equal(JSON.parse(third.body).error.code, 'SW_ERR_TOO_MANY_CONNECTIONS');
      assert.match(JSON.parse(third.body).error.message, /terminals is 2 at once/);
      // A run socket fits the session (3), the next does not.
      held.push(await opened(a1, '/api/run'));
      const fourth = await wsConnect(a1, '/api/run');
      assert.ok('refused' in fourth && fourth.refused === 429, JSON.stringify(fourth));
      assert.match(JSON.parse(fourth.body).error.message, /one login session's is 3 at once/);
      // Her other session: one more (4 for her), then her user limit.
      held.push(await opened(a2, '/api/run'));
      const fifth = await wsConnect(a2, '/api/run');
      assert.ok('refused' in fifth && fifth.refused === 429, JSON.stringify(fifth));
      assert.match(JSON.parse(fifth.body).error.message, /alice's \(all her sessions\) is 4 at once/);
      // Another user is not held back by her.
      const bob = await login('bob');
      const bobs = await opened(bob, '/api/terminal?host=web01');
      await closeAll([bobs]);
      // Closing gives the slots back.
      await closeAll(held.splice(0, 1));
      assert.ok(await waitFor(async () => {
        const again = await terminal(a2, 'web02');
        if ('ws' in again) held.push(watch(again.ws));
        return 'ws' in again;
      }, 5_000), 'a terminal slot came back after a close');
    } finally {
      await closeAll(held);
    }
    // Refused opens (403 policy, 502 down) do not keep their slots: more of them than the limit, then one that works.
    for (let i = 0; i < 4; i++) {
      const no = await terminal(a1, 'secret01');
      assert.ok('refused' in no && no.refused === 403, JSON.stringify(no));
    }
    const down = await terminal(a1, 'down01');
    assert.ok('refused' in down && down.refused === 502, JSON.stringify(down));
    const after1 = await opened(a1, '/api/terminal?host=web01');
    const after2 = await opened(a1, '/api/terminal?host=web02');
    await closeAll([after1, after2]);
  });

  it('a flood of terminal opens: every one answered (open or 429), nobody else\'s session ends, the gateway keeps serving', async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    const bobTerm = await opened(bob, '/api/terminal?host=web01');
    const bobT = collect(bobTerm);
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => terminal(alice, i % 2 ? 'web01' : 'web02').catch((err: Error) => ({ error: err.message }))));
    const open = outcomes.filter((o) => 'ws' in o) as Array<{ ws: WebSocket }>;
    for (const o of open) watch(o.ws);
    const refused = outcomes.filter((o) => 'refused' in o) as Array<{ refused: number; body: string }>;
    assert.equal(open.length + refused.length, 40, JSON.stringify(outcomes.filter((o) => !('ws' in o) && !('refused' in o))));
    assert.equal(open.length, 2);
    for (const r of refused) assert.equal(r.refused, 429, r.body);
    // Bob's session and terminal are untouched; the gateway answers him.
    assert.equal((await webRequest(bob, 'GET', '/api/session')).status, 200);
    bobTerm.send(Buffer.from('echo bob-still-here\r'), { binary: true });
    assert.ok(await waitFor(() => bobT.bytes().includes('bob-still-here\r\n'), 10_000), bobT.bytes().toString('latin1'));
    await closeAll([...open.map((o) => o.ws), bobTerm]);
    assert.equal((await webRequest(alice, 'GET', '/api/session')).status, 200);
  });

  it('near the open-file limit (the reserve), new WebSockets and logins get 503', async () => {
    const stateDir = join(dir, 'gw-fd');
    mkdirSync(stateDir, { mode: 0o700 });
    writeFileSync(join(stateDir, 'users.yaml'), readFileSync(join(gwDir, 'users.yaml')));
    const gw = await Gateway.create({
      stateDir, host: '127.0.0.1', port: 0, inventory,
      // A reserve as large as any limit: the process is always "near" it.
      web: { host: '127.0.0.1', port: 0, limits: { fdReserve: 1e9 } },
    });
    try {
      await gw.listen();
      const c = webClient(gw.webAddress!.port, gw.server.identity.certPem);
      const answer = await webLogin(c, 'alice', 'pw');
      assert.equal(answer.status, 503, answer.body.toString());
      assert.equal(answer.json().error.code, 'SW_ERR_TOO_MANY_CONNECTIONS');
      assert.match(answer.json().error.message, /limit of open files/);
    } finally {
      await gw.close(200);
    }
  });

  it('a terminal message over the limit is dropped with an error naming it; the shell goes on', async () => {
    const alice = await login('alice');
    const ws = await opened(alice, '/api/terminal?host=web01');
    const t = collect(ws);
    try {
      assert.ok(await waitFor(() => /[#$] $/.test(t.bytes().toString('latin1')), 20_000), `a prompt: ${JSON.stringify(t.bytes().toString('latin1'))}`);
      ws.send(Buffer.alloc(1024 * 1024 + 1, 0x61), { binary: true });
      ws.send(JSON.stringify({ type: 'resize', cols: 80, rows: 24, pad: 'x'.repeat(5000) }));
      assert.ok(await waitFor(() => t.texts.filter((m) => m.type === 'error').length === 2, 10_000), JSON.stringify(t.texts));
      const [input, control] = t.texts.filter((m) => m.type === 'error');
      assert.equal(input!.code, 'SW_ERR_BAD_REQUEST');
      assert.match(input!.message, /1048577 bytes.*dropped.*at most 1048576 bytes/);
      assert.match(control!.message, /at most 4096 bytes/);
      ws.send(Buffer.from('echo still-$((40+2))\r'), { binary: true });
      assert.ok(await waitFor(() => t.bytes().includes('still-42'), 10_000), t.bytes().toString('latin1').slice(-300));
      assert.equal(ws.readyState, WebSocket.OPEN);
    } finally {
      await closeAll([ws]);
    }
  });

  it('a push in another content type is refused with 415 before any host hears of it; octet-stream or none is taken', async () => {
    const alice = await login('alice');
    for (const type of ['text/plain', 'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const name = `ct-${type.replace(/[^a-z]/g, '_')}`;
      const answer = await webRequest(alice, 'PUT', `/api/push?targets=web01&path=up/${name}`, { body: '{"a":1}\n', headers: { 'content-type': type } });
      assert.equal(answer.status, 415, `${type}: ${answer.body.toString()}`);
      assert.equal(answer.json().error.code, 'SW_ERR_BAD_REQUEST');
      assert.match(answer.json().error.message, /application\/octet-stream/);
      assert.equal(existsSync(join(homes[0]!, 'up', name)), false);
    }
    for (const [name, headers] of [['ct-octet', { 'content-type': 'application/octet-stream' }], ['ct-none', {}]] as const) {
      const answer = await webRequest(alice, 'PUT', `/api/push?targets=web01&path=up/${name}`, { body: '{"a":1}\n', headers });
      assert.equal(answer.status, 200, answer.body.toString());
      assert.equal(readFileSync(join(homes[0]!, 'up', name), 'utf8'), '{"a":1}\n');
    }
  });

  it("errors name the gateway by its real address, never an invented web-console:50007", async () => {
    const alice = await login('alice');
    const outcome = await wsConnect(alice, '/api/run');
    assert.ok('ws' in outcome);
    const c = collect(outcome.ws);
    outcome.ws.send(JSON.stringify({ type: 'run', targets: 'down01', command: 'true' }));
    await c.closed;
    const result = c.texts.find((m) => m.type === 'result')!;
    assert.ok(result.error, JSON.stringify(c.texts));
    const audit = await webRequest(alice, 'GET', '/api/audit?user=bob');
    const texts = [JSON.stringify(c.texts), audit.body.toString()];
    for (const text of texts) assert.doesNotMatch(text, /web-console|50007/);
    assert.ok(texts.some((t) => t.includes(`127.0.0.1:${gwPort}`)), texts.join('\n'));
  });
});
