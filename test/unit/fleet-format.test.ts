/** Output shaping: whole lines per host whatever the chunking, grouping, JSON Lines, discovery codec. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineSplitter, JsonLines, formatGrouped, formatSummary, groupResults } from '../../src/fleet/format.js';
import type { FleetSummary, HostResult } from '../../src/fleet/results.js';
import { TokenBucket, encodeProbe, parseProbe, expandSubnet, PROBE_SIZE } from '../../src/fleet/discovery.js';
import { validate, JSON_LINE_SCHEMA } from '../integration/fleet-helpers.js';

test('LineSplitter: any interleaving of any chunking yields each host\'s lines whole and unmixed', () => {
  const hostText = fc.array(fc.stringMatching(/^[a-z é]{0,12}$/), { minLength: 1, maxLength: 8 }).map((lines) => `${lines.join('\n')}\n`);
  fc.assert(
    fc.property(fc.array(hostText, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 80 }), (texts, cuts) => {
      // Chop every host's bytes into chunks, then deliver chunks round-robin-ish by `cuts`.
      const queues = texts.map((t) => {
        const bytes = Buffer.from(t);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const c of cuts) {
          if (at >= bytes.length) break;
          const size = 1 + (c % 5);
          chunks.push(bytes.subarray(at, at + size));
          at += size;
        }
        if (at < bytes.length) chunks.push(bytes.subarray(at));
        return chunks;
      });
      const splitter = new LineSplitter();
      const got = texts.map(() => [] as string[]);
      let turn = 0;
      while (queues.some((q) => q.length > 0)) {
        const i = (cuts[turn++ % Math.max(1, cuts.length)] ?? 0) % queues.length;
        const q = queues.find((_, j) => j === i && queues[j]!.length > 0) ?? queues.find((x) => x.length > 0)!;
        const host = queues.indexOf(q);
        for (const line of splitter.push(`h${host}`, 'stdout', q.shift()!)) got[host]!.push(line);
      }
      texts.forEach((t, i) => {
        assert.equal(splitter.flush(`h${i}`, 'stdout'), null);
        assert.deepEqual(got[i], t.slice(0, -1).split('\n'));
      });
    }),
  );
});

test('LineSplitter: an unterminated last line comes out at flush', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('a', 'stdout', Buffer.from('x\ny')), ['x']);
  assert.deepEqual(s.push('a', 'stderr', Buffer.from('e')), []);
  assert.equal(s.flush('a', 'stdout'), 'y');
  assert.equal(s.flush('a', 'stderr'), 'e');
});

function result(host: string, extra: Partial<HostResult> = {}): HostResult {
  return { host, address: `${host}:1`, status: 'ok', exitCode: 0, signal: null, durationMs: 5, stdout: '', stderr: '', truncated: false, error: null, batch: 0, ...extra };
}

function summaryOf(results: HostResult[]): FleetSummary {
  return { command: 'x', total: results.length, ok: results.filter((r) => r.status === 'ok').length, failed: 0, unreachable: 0, canceled: 0, skipped: 0, durationMs: 420, success: false, stoppedBy: null, results };
}

test('grouping: identical output once, folded names and counts; failures last with exit codes', () => {
  const results = [
    ...['web01', 'web02', 'web03'].map((h) => result(h, { stdout: 'up 3 days\n' })),
    result('web04', { status: 'failed', exitCode: 3, stdout: 'boom\n' }),
    result('db03', { stdout: 'up 3 days\n' }),
    result('web05', { status: 'failed', exitCode: 3, stdout: 'boom\n' }),
    result('web06', { stdout: 'two\nlines\n', stderr: 'warn\n' }),
    result('db09', { status: 'unreachable', exitCode: null, error: { code: 'SW_ERR_CONNECT_FAILED', message: 'Connection refused by db09:1' } }),
  ];
  assert.equal(groupResults(results).length, 3);
  const text = formatGrouped(summaryOf(results), { color: false });
  assert.equal(
    text,
    'web[01-03],db03 (4): up 3 days\n' +
      'web06 (1):\n  two\n  lines\n  ! warn\n' +
      'web[04-05] (2): exit 3\n  boom\n' +
      'db09: unreachable: Connection refused by db09:1\n',
  );
  assert.equal(formatSummary(summaryOf(results), { color: false }), 'shellwire: 5/8 ok, 2 failed (web[04-05]), 1 unreachable (db09), 0.42 s\n');
});

test('JSON Lines: UTF-8 split across chunks stays whole; other bytes go out as base64; lines match the schema', () => {
  const json = new JsonLines();
  const euro = Buffer.from('€\n');
  const a = json.line({ type: 'output', host: 'h', stream: 'stdout', data: euro.subarray(0, 1) });
  const b = json.line({ type: 'output', host: 'h', stream: 'stdout', data: euro.subarray(1) });
  assert.equal(a, null);
  assert.deepEqual(JSON.parse(b!), { type: 'output', host: 'h', stream: 'stdout', data: '€\n' });
  const bin = JSON.parse(json.line({ type: 'output', host: 'g', stream: 'stderr', data: Buffer.from([0xff, 0xfe]) })!);
  assert.equal(bin.encoding, 'base64');
  assert.equal(Buffer.from(bin.data, 'base64').toString('hex'), 'fffe');
  const r = JSON.parse(json.line({ type: 'result', host: 'h', result: result('h') })!);
  const s = JSON.parse(json.line({ type: 'summary', summary: summaryOf([result('h')]) })!);
  for (const line of [JSON.parse(b!), bin, r, s]) assert.equal(validate(line, JSON_LINE_SCHEMA), null, JSON.stringify(line));
  assert.notEqual(validate({ ...r, exitCode: 'zero' }, JSON_LINE_SCHEMA), null, 'the validator rejects a bad line');
});

test('discovery codec: only the exact padded probe is understood', () => {
  const probe = encodeProbe('0123456789abcdef');
  assert.equal(probe.length, PROBE_SIZE);
  assert.equal(parseProbe(probe), '0123456789abcdef');
  assert.equal(parseProbe(probe.subarray(0, 100)), null, 'short probes would allow amplification');
  assert.equal(parseProbe(Buffer.concat([Buffer.from('exec rm -rf /\n'), Buffer.alloc(600)])), null);
  const bad = Buffer.from(probe);
  bad.write('Z', 12);
  assert.equal(parseProbe(bad), null);
});

test('token bucket: burst, then the rate', () => {
  const bucket = new TokenBucket(10, 3, 0);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false]);
  assert.equal(bucket.take(50), false);
  assert.equal(bucket.take(100), true);
});

test('subnets expand to host addresses', () => {
  assert.deepEqual(expandSubnet('127.0.0.0/30'), ['127.0.0.1', '127.0.0.2']);
  assert.equal(expandSubnet('127.0.0.0/24').length, 254);
  assert.throws(() => expandSubnet('10.0.0.0/8'), /too large/);
  assert.throws(() => expandSubnet('nope'), /not an IPv4 subnet/);
});
