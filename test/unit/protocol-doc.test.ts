/**
 * docs/protocol.md is the spec, and its byte-level examples are test fixtures: every
 * ```hex fixture NAME``` block must decode to the ```json fixture NAME``` block right after
 * it, and encoding that must give the hex back. The frame-type table and the error codes
 * the spec names are checked against the code too, so the page cannot drift from it.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder, FrameType, type Frame } from '../../src/protocol/frame.js';
import {
  decodeCodeMessage, decodeExit, decodeHello, decodeOpen, decodeOpenOk, decodeResize, decodeSignal,
  decodeWelcome, decodeWindow, encodeJson, encodeWindow, ALLOWED_SIGNALS,
} from '../../src/protocol/messages.js';
import { ErrorCode } from '../../src/errors.js';

const DOC_PATH = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const doc = readFileSync(DOC_PATH, 'utf8');

type TypeName = keyof typeof FrameType;

interface Fixture {
  name: string;
  bytes: Buffer;
  decoded: { type: TypeName; channel: number; payload: unknown };
  line: number;
}

/** Fenced blocks in document order: info string, body, and the line the fence opens on. */
function fencedBlocks(markdown: string): { info: string; body: string; line: number; end: number }[] {
  const blocks: { info: string; body: string; line: number; end: number }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    assert.ok(i < lines.length, `unclosed fence opened on line ${start + 1}`);
    blocks.push({ info: open[1]!.trim(), body: body.join('\n'), line: start + 1, end: i + 1 });
  }
  return blocks;
}

function parseFixtures(markdown: string): Fixture[] {
  const blocks = fencedBlocks(markdown);
  const lines = markdown.split('\n');
  const fixtures: Fixture[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i]!;
    const hex = /^hex fixture (\S+)$/.exec(block.info);
    if (!hex) {
      assert.doesNotMatch(block.info, /fixture/, `line ${block.line}: a json fixture must directly follow its hex fixture (or the info string is malformed): "${block.info}"`);
      continue;
    }
    const name = hex[1]!;
    const next = blocks[i + 1];
    assert.ok(next && next.info === `json fixture ${name}`, `line ${block.line}: hex fixture ${name} is not followed by a json fixture ${name}`);
    const between = lines.slice(block.end, next.line - 1).join('\n');
    assert.equal(between.trim(), '', `line ${block.line}: only blank lines may separate the hex and json blocks of ${name}`);
    const tokens = block.body.split(/\s+/).filter((t) => t.length > 0);
    for (const t of tokens) assert.match(t, /^[0-9a-f]{2}$/, `fixture ${name}: "${t}" is not a lower-case hex byte`);
    const decodedLine = /^decoded: (.*)$/.exec(next.body.trim());
    assert.ok(decodedLine, `fixture ${name}: the json block must be one line "decoded: {...}"`);
    fixtures.push({ name, bytes: Buffer.from(tokens.join(''), 'hex'), decoded: JSON.parse(decodedLine[1]!), line: block.line });
    i++;
  }
  return fixtures;
}

/** The payload bytes a `decoded:` line stands for (the rule table at the top of the spec). */
function payloadBytes(type: TypeName, payload: unknown): Buffer {
  switch (type) {
    case 'STDIN':
    case 'STDOUT':
    case 'STDERR':
      assert.equal(typeof payload, 'string', `${type} payload must be a string`);
      return Buffer.from(payload as string, 'utf8');
    case 'WINDOW':
      assert.equal(typeof payload, 'number', 'WINDOW payload must be a number');
      return encodeWindow(payload as number);
    case 'PING':
    case 'PONG': {
      assert.equal(typeof payload, 'number', `${type} payload must be a number`);
      const bytes = Buffer.alloc(8);
      bytes.writeDoubleBE(payload as number, 0);
      return bytes;
    }
    case 'EOF':
    case 'CLOSE':
      assert.equal(payload, null, `${type} payload must be null`);
      return Buffer.alloc(0);
    default:
      assert.ok(typeof payload === 'object' && payload !== null && !Array.isArray(payload), `${type} payload must be a JSON object`);
      return encodeJson(payload);
  }
}

/** Decode a control payload with the implementation's own decoder. */
function decodeControl(type: TypeName, payload: Buffer): unknown {
  switch (type) {
    case 'HELLO': return decodeHello(payload);
    case 'WELCOME': return decodeWelcome(payload);
    case 'GOODBYE': return decodeCodeMessage(FrameType.GOODBYE, payload);
    case 'OPEN_FAIL': return decodeCodeMessage(FrameType.OPEN_FAIL, payload);
    case 'OPEN': {
      // The wire's flat object: the header and the kind's parameters side by side.
      const { params, ...header } = decodeOpen(payload);
      const open: Record<string, unknown> & { env?: Record<string, string> } = { ...header, ...params };
      return open.env ? { ...open, env: { ...open.env } } : open;
    }
    case 'OPEN_OK': return decodeOpenOk(payload);
    case 'SIGNAL': return decodeSignal(payload);
    case 'EXIT': return decodeExit(payload);
    case 'RESIZE': return decodeResize(payload);
    case 'WINDOW': return decodeWindow(payload);
    case 'PING':
    case 'PONG': return payload.readDoubleBE(0);
    case 'STDIN':
    case 'STDOUT':
    case 'STDERR': return payload.toString('utf8');
    case 'EOF':
    case 'CLOSE': return null;
  }
}

/** What the decoder makes of a documented payload: a single HELLO auth attempt becomes a list. */
function normalized(type: TypeName, payload: unknown): unknown {
  if (type === 'HELLO') {
    const hello = payload as { auth?: unknown };
    if (hello.auth !== undefined && !Array.isArray(hello.auth)) return { ...hello, auth: [hello.auth] };
  }
  return payload;
}

const CONNECTION_TYPES = new Set<TypeName>(['HELLO', 'WELCOME', 'GOODBYE', 'PING', 'PONG']);

const fixtures = parseFixtures(doc);

describe('docs/protocol.md fixtures', () => {
  test('the spec has the required examples, each name once', () => {
    const names = fixtures.map((f) => f.name);
    assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'duplicate fixture names');
    for (const required of ['hello', 'welcome', 'open-exec', 'stdout-hello', 'window', 'exit', 'close', 'ping']) {
      assert.ok(names.includes(required), `missing fixture ${required}`);
    }
    const types = new Set(fixtures.map((f) => f.decoded.type));
    for (const type of ['HELLO', 'WELCOME', 'GOODBYE', 'OPEN', 'OPEN_OK', 'OPEN_FAIL', 'STDOUT', 'WINDOW', 'SIGNAL', 'EOF', 'EXIT', 'CLOSE', 'PING', 'PONG'] as const) {
      assert.ok(types.has(type), `no example of ${type}`);
    }
  });

  test('the parser finds every fixture block in the file', () => {
    const hexBlocks = doc.match(/^```hex fixture /gm)?.length ?? 0;
    const jsonBlocks = doc.match(/^```json fixture /gm)?.length ?? 0;
    assert.equal(fixtures.length, hexBlocks);
    assert.equal(fixtures.length, jsonBlocks);
  });

  for (const fixture of fixtures) {
    describe(`fixture ${fixture.name} (line ${fixture.line})`, () => {
      const { type, channel, payload } = fixture.decoded;

      test('names a real frame type and a u32 channel', () => {
        assert.ok(Object.hasOwn(FrameType, type), `unknown type ${type}`);
        assert.ok(Number.isInteger(channel) && channel >= 0 && channel <= 0xffffffff, `channel ${channel}`);
        assert.equal(channel === 0, CONNECTION_TYPES.has(type), `${type} belongs on ${CONNECTION_TYPES.has(type) ? 'channel 0' : 'a channel other than 0'}`);
      });

      test('the hex decodes to the documented frame, in one piece and byte by byte', () => {
        for (const chunking of ['whole', 'bytes'] as const) {
          const frames: Frame[] = [];
          const decoder = new FrameDecoder((f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
          if (chunking === 'whole') decoder.push(fixture.bytes);
          else for (let i = 0; i < fixture.bytes.length; i++) decoder.push(fixture.bytes.subarray(i, i + 1));
          assert.equal(frames.length, 1, `${chunking}: exactly one frame`);
          assert.equal(decoder.idle, true, `${chunking}: no bytes left over`);
          const [frame] = frames as [Frame];
          assert.equal(frame.type, FrameType[type]);
          assert.equal(frame.channel, channel);
          assert.equal(frame.payload.toString('hex'), payloadBytes(type, payload).toString('hex'));
        }
      });

      test('encoding the documented frame gives the hex', () => {
        const encoded = encodeFrame(FrameType[type], channel, payloadBytes(type, payload));
        assert.equal(encoded.toString('hex'), fixture.bytes.toString('hex'));
      });

      test('the payload is a valid message that decodes to the documented value', () => {
        const bytes = fixture.bytes.subarray(9);
        assert.equal(fixture.bytes.readUInt32BE(0), bytes.length, 'length prefix = payload bytes');
        assert.deepEqual(decodeControl(type, bytes), normalized(type, payload));
        if (type === 'SIGNAL') assert.ok((ALLOWED_SIGNALS as readonly string[]).includes((payload as { signal: string }).signal));
        if (type === 'PING' || type === 'PONG') assert.equal(bytes.length, 8, 'keepalive payloads are 8 bytes');
      });
    });
  }

  test('PONG examples echo a PING example byte for byte', () => {
    const pings = fixtures.filter((f) => f.decoded.type === 'PING').map((f) => f.bytes.subarray(9).toString('hex'));
    for (const pong of fixtures.filter((f) => f.decoded.type === 'PONG')) {
      assert.ok(pings.includes(pong.bytes.subarray(9).toString('hex')), `${pong.name} echoes no PING`);
    }
  });

  test('the stdout-hello example is the one the spec text describes', () => {
    const f = fixtures.find((x) => x.name === 'stdout-hello')!;
    assert.equal(f.bytes.toString('hex'), '00000006' + '14' + '00000001' + Buffer.from('hello\n').toString('hex'));
  });
});

describe('docs/protocol.md text', () => {
  test('the frame-type table lists exactly the FrameType values, with their hex codes', () => {
    const rows = [...doc.matchAll(/^\| `0x([0-9a-f]{2})` \| ([A-Z_]+) \|/gm)].map((m) => [m[2]!, parseInt(m[1]!, 16)] as const);
    assert.ok(rows.length > 0, 'no frame-type table found');
    assert.deepEqual(new Map(rows), new Map(Object.entries(FrameType)));
    assert.equal(rows.length, Object.keys(FrameType).length, 'each type listed once');
  });

  test('every SW_ERR_ code the spec names exists', () => {
    const codes = new Set<string>(Object.values(ErrorCode));
    const named = new Set(doc.match(/SW_ERR_[A-Z_]+/g) ?? []);
    assert.ok(named.size > 10);
    for (const code of named) assert.ok(codes.has(code), `${code} is not an ErrorCode`);
  });

  test('the spec has the sections the code comments point to', () => {
    for (const heading of ['## §1 ', '## §2 Frames', '## §3 Handshake', '## §4 Control messages', '## §5 Flow control', '## §6 Exec channels', '## §7 Session channels', '## §8 Keepalive']) {
      assert.ok(doc.includes(heading), `missing "${heading}"`);
    }
  });

  test('every allowed signal is listed', () => {
    for (const signal of ALLOWED_SIGNALS) assert.match(doc, new RegExp(`\\b${signal}\\b`), signal);
  });
});
